"""Snapshot discovery: ``snapshot_dt=YYYY-MM-DD/`` folders under a source path."""

from __future__ import annotations

import datetime as dt
import re

from flywheel_assets.core import storage
from flywheel_assets.core.errors import FlywheelInputError

LATEST = "_NONE_"  # the run book's "auto-discover the latest snapshot"
EXACT, AT_OR_BEFORE = "exact", "at_or_before"  # how a partition date finds its snapshot in a source
_FOLDER = re.compile(r"^snapshot_dt=(\d{4}-\d{2}-\d{2})$")


def parse_date(value: str, what: str = "snapshot_dt") -> str:
    """A strict YYYY-MM-DD date, returned unchanged; anything else is a FlywheelInputError."""
    try:
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
            raise ValueError
        dt.date.fromisoformat(value)
    except (TypeError, ValueError):
        raise FlywheelInputError(f"{what} must be a date YYYY-MM-DD (or {LATEST} for the latest), got {value!r}")
    return value


def list_snapshots(source: str) -> list[str]:
    """Sorted dates of the snapshot folders under ``source``.

    Anything else there (``_temporary/``, ``snapshot_dt=bad/``, files) is ignored.
    """
    dates = []
    for entry in storage.list_dir(source):
        match = _FOLDER.match(entry.name)
        if entry.is_dir and match:
            try:
                dates.append(parse_date(match.group(1)))
            except FlywheelInputError:
                continue
    return sorted(dates)


def at_or_before(available: list[str], date: str) -> str | None:
    """The newest of ``available`` (sorted dates) on or before ``date``."""
    earlier = [d for d in available if d <= date]
    return earlier[-1] if earlier else None


def resolve_snapshot(source: str, requested: str, match: str = EXACT) -> tuple[str, str]:
    """(partition, source snapshot) for a run.

    ``_NONE_``/``latest``: the source's newest snapshot, for both. A date: that date is the
    partition; the source must hold exactly it (``exact``), or its newest snapshot at or before it
    is read (``at_or_before``: a source that landed a day earlier than the infobase)."""
    available = list_snapshots(source)
    if requested in (LATEST, "latest", "", None):
        if not available:
            raise FlywheelInputError(f"no snapshot_dt=YYYY-MM-DD folders under {source}")
        return available[-1], available[-1]
    parse_date(requested)
    listed = ", ".join(available) if available else "none"
    if match == AT_OR_BEFORE:
        found = at_or_before(available, requested)
        if found is None:
            raise FlywheelInputError(
                f"no snapshot at or before snapshot_dt={requested} under {source}; available snapshots: {listed}")
        return requested, found
    if requested not in available:
        raise FlywheelInputError(
            f"snapshot_dt={requested} not found under {source}; available snapshots: {listed}"
        )
    return requested, requested


def source_snapshots(date: str, listed: dict[str, tuple[str, list[str]]]) -> dict[str, str | None]:
    """For partition ``date``: the snapshot each source contributes (None: it has none for it).
    ``listed``: source -> (EXACT or AT_OR_BEFORE, its sorted snapshot dates)."""
    return {src: (date if date in dates else None) if match == EXACT else at_or_before(dates, date)
            for src, (match, dates) in listed.items()}


def partition_dates(listed: dict[str, tuple[str, list[str]]]) -> list[str]:
    """The partition dates every source can serve, oldest first: dates present in every EXACT
    source (the infobase) for which every AT_OR_BEFORE source has a snapshot on or before."""
    exact = [set(dates) for match, dates in listed.values() if match == EXACT]
    candidates = set.intersection(*exact) if exact else set()
    return sorted(d for d in candidates if all(source_snapshots(d, listed).values()))


def unsatisfied(date: str, listed: dict[str, tuple[str, list[str]]]) -> list[str]:
    """Why ``date`` cannot be a partition: one line per source that lacks what it needs."""
    out = []
    for src, found in source_snapshots(date, listed).items():
        if found is None:
            match, dates = listed[src]
            wanted = f"snapshot_dt={date}" if match == EXACT else f"snapshot on or before {date}"
            out.append(f"{src} has no {wanted} (it has: {', '.join(dates) or 'none'})")
    return out


def snapshot_path(source: str, snapshot: str) -> str:
    return storage.join(source, f"snapshot_dt={snapshot}")
