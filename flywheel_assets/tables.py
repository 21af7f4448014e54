"""The table catalogue: which tables each split job writes, read when the definitions load.

A mapping-driven job writes the tables of its mapping file (``--CSV_FILE`` at its default path,
local or on S3); a single-table job writes its one table. What was read is cached under
``FLYWHEEL_HOME`` so the definitions still load, with the last known tables, when the lake cannot
be read; a changed mapping shows up on the next definitions reload.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

from flywheel_assets.core import storage
from flywheel_assets.core.jobs import JOBS, SplitJob
from flywheel_assets.core.mapping import load_mapping

log = logging.getLogger(__name__)
CACHE_FILE = "table_catalogue.json"


@dataclass(frozen=True)
class TableSet:
    by_job: dict[str, tuple[str, ...]]  # run-book job -> its tables, named as in the mapping (IBE_01)
    origin: dict[str, str] = field(default_factory=dict)  # job -> where the list came from

    def tables(self, job: SplitJob) -> tuple[str, ...]:
        return self.by_job.get(job.name, ())


def mapping_tables(job: SplitJob, data_root: str) -> tuple[str, ...]:
    if job.single_table:
        return (job.single_table,)
    return tuple(load_mapping(storage.join(data_root, job.csv_file), quick=True).tables)


def read_table_set(data_root: str, home: Path | None) -> TableSet:
    """Each job's tables from its mapping; from the cache under ``home`` (None: no cache) where
    the mapping cannot be read now."""
    cache_path = home / CACHE_FILE if home else None
    cached = json.loads(cache_path.read_text()) if cache_path and cache_path.is_file() else {}
    by_job, origin = {}, {}
    for job in JOBS.values():
        try:
            by_job[job.name] = mapping_tables(job, data_root)
            origin[job.name] = "single table" if job.single_table else job.csv_file
        except Exception as exc:  # noqa: BLE001 - a damaged mapping, a missing file, an unreachable S3
            by_job[job.name] = tuple(cached.get(job.name, ()))
            origin[job.name] = f"cache ({exc})" if job.name in cached else f"none ({exc})"
            log.warning("%s: cannot read its tables from %s (%s); %s", job.name, job.csv_file, exc,
                        f"using the {len(by_job[job.name])} cached in {cache_path}" if job.name in cached
                        else "it has no table assets until the mapping is readable and the definitions reload")
    fresh = {job: list(t) for job, t in by_job.items() if not origin[job].startswith(("cache", "none"))}
    if cache_path and fresh and {**cached, **fresh} != cached:
        try:
            home.mkdir(parents=True, exist_ok=True)
            cache_path.write_text(json.dumps({**cached, **fresh}, indent=1, sort_keys=True))
        except OSError as exc:
            log.warning("cannot cache the table catalogue in %s: %s", cache_path, exc)
    return TableSet(by_job, origin)
