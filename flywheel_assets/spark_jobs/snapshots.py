"""Snapshot discovery: ``snapshot_dt=YYYY-MM-DD/`` folders under a source path."""

from __future__ import annotations

import datetime as dt
import re

from flywheel_assets.spark_jobs import storage
from flywheel_assets.spark_jobs.errors import FlywheelInputError

LATEST = "_NONE_"  # the run book's "auto-discover the latest snapshot"
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


def resolve_snapshot(source: str, requested: str) -> str:
    """The snapshot to process: ``_NONE_``/``latest`` picks the newest; a given date must exist."""
    available = list_snapshots(source)
    if requested in (LATEST, "latest", "", None):
        if not available:
            raise FlywheelInputError(f"no snapshot_dt=YYYY-MM-DD folders under {source}")
        return available[-1]
    parse_date(requested)
    if requested not in available:
        listed = ", ".join(available) if available else "none"
        raise FlywheelInputError(
            f"snapshot_dt={requested} not found under {source}; available snapshots: {listed}"
        )
    return requested


def snapshot_path(source: str, snapshot: str) -> str:
    return storage.join(source, f"snapshot_dt={snapshot}")
