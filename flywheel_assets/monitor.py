"""The data monitor (the replaced system's daily ``data_monitor``): is what readers see fresh and sound?

For every table of both pipelines, as the catalog and storage hold them now:
- freshness: the table's snapshot is at most ``freshness_days`` old;
- keys: null and duplicate key counts, within limits;
- row counts: ``bucketed_`` = its ``ext_`` table's files (the bucket-layout split output); the live
  ``part_`` partition = its split_part files; a table in both layouts has the same rows in both when
  they hold the same snapshot; the Entity Resolution table = the distinct keys it was built from;
- partitions: every registered ``snapshot_dt`` has data files, every snapshot folder with data is registered;
- contract: external parquet tables with the key column; ``part_`` partitioned by ``snapshot_dt``
  alone; ``bucketed_`` bucketed by the key into the configured count.

Cost stays flat as history grows: one catalog listing, one partition-values call and one storage
listing per ``part_`` table (never one per partition), parquet footers of the live files only, and
two SQL statements for all the key counts (``Catalog.key_stats``): one for the tables that need no
partition listing, run while the part tables' partitions are listed, one for the part tables.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field

from flywheel_assets.catalog.base import Catalog
from flywheel_assets.catalog.names import TableInfo
from flywheel_assets.cleanrooms import columns_over_limit
from flywheel_assets.core import publish, sizing, storage
from flywheel_assets.core.errors import FlywheelInputError
from flywheel_assets.core.snapshots import parse_date, snapshot_path

FOLDER = "data-monitor"
ER_TABLE = "part_addressable_ids_er"
PIPELINES = ("bucketed", "partitioned")
SNAPSHOT_PREFIX = "snapshot_dt="
LISTINGS_AT_ONCE = 4  # part tables whose partitions are listed at the same time


@dataclass(frozen=True)
class Limits:
    freshness_days: int = 45
    max_null_keys: int = 0
    max_duplicate_keys: int = 0
    key: str = "customer_user_id"
    bucket_count: int | None = None  # None: any count, the same in every bucketed_ table (joinable)


@dataclass
class TableHealth:
    """One table's verdict. ``stale`` and ``problems`` empty: healthy."""

    table: str
    pipeline: str
    snapshot: str | None = None
    age_days: int | None = None
    rows: int | None = None
    expected_rows: int | None = None  # what the files it was built from hold
    null_keys: int | None = None
    duplicate_keys: int | None = None
    partitions_registered: int | None = None
    partitions_on_storage: int | None = None
    distinct_keys: int | None = None
    stale: str | None = None
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # reported, not failing: e.g. what Clean Rooms would cut

    @property
    def healthy(self) -> bool:
        return not self.stale and not self.problems


def run_monitor(catalog: Catalog, database: str, bucket_tables: list[str], part_tables: list[str],
                er: bool, limits: Limits, as_of: dt.date | None = None) -> dict:
    """The monitor's report over ``bucketed_<t>`` for ``bucket_tables``, ``part_<t>`` for
    ``part_tables`` (lowercase names) and, if ``er``, the Entity Resolution table."""
    as_of = as_of or dt.datetime.now(dt.timezone.utc).date()
    infos = {t.name: t for t in catalog.list_tables(database, "", partitions=False)}  # one statement
    bucketed = [_bucketed(infos, t, limits) for t in bucket_tables]
    identity = [_identity(database, infos, limits)] if er else []
    with ThreadPoolExecutor(max_workers=LISTINGS_AT_ONCE + 1) as pool:
        # The counts that need no partition listing run while the part tables' partitions are
        # listed (a round trip each), then the part tables' counts: two statements, not one.
        counted = pool.submit(_count_keys, catalog, bucketed + identity, limits)
        parts = list(pool.map(lambda t: _part(catalog, database, infos, t, limits), part_tables))
        _count_keys(catalog, parts, limits)
        counted.result()
    rows = [health for health, _ in bucketed + parts + identity]
    _compare_across(rows, infos, bucket_tables, part_tables, limits)
    for health in rows:
        _freshness(health, as_of, limits.freshness_days)
    return report(database, as_of, limits, rows)


def _count_keys(catalog: Catalog, found: list[tuple[TableHealth, list[tuple]]], limits: Limits) -> None:
    """Every key count of ``found`` in one statement (Catalog.key_stats), recorded in its table's health."""
    queries = [(health, q) for health, qs in found for q in qs]
    stats = catalog.key_stats([q for _, q in queries]) if queries else []
    for (health, query), counted in zip(queries, stats):
        _record_keys(health, query, counted, limits)


def _record_keys(health: TableHealth, query: tuple, counted: tuple[int, int, int] | str, limits: Limits) -> None:
    if isinstance(counted, str):
        health.problems.append(f"key count on {query[1]} failed: {counted}")
        return
    n_rows, n_keys, n_distinct = counted
    nulls, dups = n_rows - n_keys, n_keys - n_distinct
    if query[2] != limits.key:  # the ER table's row_id: unique
        if dups:
            health.problems.append(f"{dups} duplicate {query[2]} values")
        return
    health.rows, health.null_keys, health.duplicate_keys, health.distinct_keys = n_rows, nulls, dups, n_distinct
    if nulls > limits.max_null_keys:
        health.problems.append(f"{nulls} rows without {limits.key} (limit {limits.max_null_keys})")
    if dups > limits.max_duplicate_keys:
        health.problems.append(f"{dups} duplicate {limits.key} values (limit {limits.max_duplicate_keys})")
    if health.expected_rows is not None and n_rows != health.expected_rows:
        health.problems.append(f"{n_rows} rows, but {health.expected_rows} in the files it was built from")


def _compare_across(rows: list[TableHealth], infos: dict[str, TableInfo], bucket_tables: list[str],
                    part_tables: list[str], limits: Limits) -> None:
    """What no table shows alone: bucket counts, the two layouts, the ER table against its source."""
    by_name = {h.table: h for h in rows}
    if limits.bucket_count is None:  # tables are joined bucket to bucket: one count for all
        counts = Counter(infos[f"bucketed_{t}"].num_buckets for t in bucket_tables if f"bucketed_{t}" in infos)
        usual = counts.most_common(1)[0][0] if counts else None
        for t in bucket_tables:
            info = infos.get(f"bucketed_{t}")
            if info and info.num_buckets != usual:
                by_name[info.name].problems.append(f"contract: {info.num_buckets} buckets, the others {usual}")
    for t in part_tables:  # the same table in both layouts, on the same snapshot: the same rows
        part, bucketed = by_name.get(f"part_{t}"), by_name.get(f"bucketed_{t}")
        if part and bucketed and part.snapshot == bucketed.snapshot and None not in (part.rows, bucketed.rows) \
                and part.rows != bucketed.rows:
            part.problems.append(f"{part.rows} rows for snapshot_dt={part.snapshot}, but bucketed_{t} has {bucketed.rows}")
    er, source = by_name.get(ER_TABLE), by_name.get("part_addressable_ids")
    if er and er.rows is not None and source and source.snapshot:
        if er.snapshot != source.snapshot:
            er.problems.append(f"built for snapshot_dt={er.snapshot}, but part_addressable_ids is on {source.snapshot}")
        elif source.distinct_keys is not None and er.rows != source.distinct_keys:
            er.problems.append(f"{er.rows} rows, but part_addressable_ids has {source.distinct_keys} distinct keys "
                               f"for {source.snapshot}")


def _contract(health: TableHealth, info: TableInfo, columns: tuple[str, ...], partition_keys: list[str] | None = None,
              buckets: tuple[list[str], int] | None = None) -> None:
    names = {c.name for c in info.columns}
    missing = [c for c in columns if c not in names]
    if missing:
        health.problems.append(f"contract: no column {', '.join(missing)}")
    if info.external is False:
        health.problems.append("contract: a managed table (its files belong to the catalog), not external")
    if info.parquet is False:
        health.problems.append("contract: not stored as parquet")
    if partition_keys is not None and info.partition_keys != partition_keys:
        health.problems.append(f"contract: partitioned by {info.partition_keys or 'nothing'}, not {partition_keys}")
    if buckets and (info.bucket_columns != buckets[0] or not info.num_buckets
                    or buckets[1] not in (None, info.num_buckets)):
        health.problems.append(f"contract: bucketed by {info.bucket_columns} into {info.num_buckets}, not "
                               f"{buckets[0]} into {buckets[1] or 'buckets'}")


def _bucketed(infos: dict[str, TableInfo], table: str, limits: Limits) -> tuple[TableHealth, list[tuple]]:
    health = TableHealth(f"bucketed_{table}", "bucketed")
    ext, bucketed = infos.get(f"ext_{table}"), infos.get(f"bucketed_{table}")
    for name, info in ((f"ext_{table}", ext), (health.table, bucketed)):
        if info is None:
            health.problems.append(f"{name} is not in the catalog")
    if bucketed is None:
        return health, []
    health.snapshot = bucketed.snapshot
    _contract(health, bucketed, (limits.key,), buckets=([limits.key], limits.bucket_count))
    if ext is not None:
        _contract(health, ext, (limits.key,))
        if ext.snapshot != bucketed.snapshot:
            health.problems.append(f"ext_{table} is on snapshot_dt={ext.snapshot}, {health.table} on {bucketed.snapshot}")
        health.expected_rows = _file_rows(health, ext.location)
    return health, [(bucketed.database, health.table, limits.key, None)]


def _part(catalog: Catalog, database: str, infos: dict[str, TableInfo], table: str,
          limits: Limits) -> tuple[TableHealth, list[tuple]]:
    health = TableHealth(f"part_{table}", "partitioned")
    info = infos.get(health.table)
    if info is None:
        health.problems.append("not in the catalog")
        return health, []
    _contract(health, info, (limits.key,), partition_keys=["snapshot_dt"])
    if over := columns_over_limit([c.name for c in info.columns] + list(info.partition_keys)):
        health.warnings.append(over)
    registered = set(catalog.partition_values(database, health.table))  # one call, however many
    with_data = _snapshot_folders_with_data(info.location)
    health.partitions_registered, health.partitions_on_storage = len(registered), len(with_data)
    if empty := sorted(registered - with_data):
        health.problems.append(f"registered without data: snapshot_dt={', '.join(empty)}")
    if unregistered := sorted(with_data - registered):
        health.problems.append(f"on storage but not registered: snapshot_dt={', '.join(unregistered)}")
    if not registered:
        health.problems.append("no partition registered")
        return health, []
    health.snapshot = max(registered)
    if health.snapshot in with_data:
        health.expected_rows = _file_rows(health, publish.data_folder(snapshot_path(info.location, health.snapshot)))
    return health, [(database, health.table, limits.key, health.snapshot)]


def _identity(database: str, infos: dict[str, TableInfo], limits: Limits) -> tuple[TableHealth, list[tuple]]:
    health = TableHealth(ER_TABLE, "partitioned")
    info = infos.get(ER_TABLE)
    if info is None:
        health.problems.append("not in the catalog")
        return health, []
    health.snapshot = info.snapshot
    _contract(health, info, ("row_id", limits.key))
    return health, [(database, ER_TABLE, limits.key, None), (database, ER_TABLE, "row_id", None)]


def _snapshot_folders_with_data(table_location: str) -> set[str]:
    """The snapshot_dt values whose folder under the table holds a data file, in itself or in the
    version a re-publication wrote in it (one listing)."""
    found = set()
    for path, _ in storage.list_files(table_location):
        folder, _, name = path.partition("/")
        if name.startswith(publish.PART_VERSION_PREFIX):
            name = name.partition("/")[2]
        if folder.startswith(SNAPSHOT_PREFIX) and name and "/" not in name and not storage.is_hidden(name):
            found.add(folder[len(SNAPSHOT_PREFIX):])
    return found


def _file_rows(health: TableHealth, folder: str) -> int | None:
    try:
        return sizing.folder_stats(folder).rows
    except FlywheelInputError as exc:  # an unreadable file is a finding, not a crash
        health.problems.append(str(exc))
        return None


def _freshness(health: TableHealth, as_of: dt.date, days: int) -> None:
    if not health.snapshot:
        return
    health.age_days = (as_of - dt.date.fromisoformat(health.snapshot)).days
    if health.age_days > days:
        health.stale = f"snapshot_dt={health.snapshot} is {health.age_days} days old (limit {days})"


def report(database: str, as_of: dt.date, limits: Limits, rows: list[TableHealth]) -> dict:
    now = dt.datetime.now(dt.timezone.utc)
    pipelines = {}
    for pipeline in PIPELINES:
        mine = [h for h in rows if h.pipeline == pipeline]
        snapshots = sorted({h.snapshot for h in mine if h.snapshot})
        newest = snapshots[-1] if snapshots else None
        age = (as_of - dt.date.fromisoformat(newest)).days if newest else None
        pipelines[pipeline] = {"live_snapshot": newest, "age_days": age, "tables": len(mine),
                               "stale": age is None or age > limits.freshness_days,
                               "tables_behind": sorted(h.table for h in mine if h.snapshot and h.snapshot != newest)}
    failing = [h for h in rows if not h.healthy]
    return {
        "database": database, "generated_at": now.strftime("%Y-%m-%dT%H:%M:%SZ"), "as_of": as_of.isoformat(),
        "freshness_window_days": limits.freshness_days, "pk_column": limits.key, "bucket_count": limits.bucket_count,
        "max_null_keys": limits.max_null_keys, "max_duplicate_keys": limits.max_duplicate_keys,
        "status": "red" if failing else "green", "pipelines": pipelines,
        "alerts": [f"{h.table}: {'; '.join(([h.stale] if h.stale else []) + h.problems)}" for h in failing],
        "tables": [asdict(h) for h in rows],
    }


CSV_HEADER = ["table", "pipeline", "status", "snapshot", "age_days", "rows", "expected_rows", "null_keys",
              "duplicate_keys", "partitions_registered", "partitions_on_storage", "stale", "problems", "warnings"]


def write_report(result: dict, analysis_root: str) -> dict[str, str]:
    """ACX_Data_Monitor_Report_<YYYYMMDD>.json and .csv under <analysis root>/data-monitor/ (one
    pair a day: a second run that day replaces it, as the original monitor's did)."""
    day = result["generated_at"][:10].replace("-", "")
    base = storage.join(analysis_root, FOLDER, f"ACX_Data_Monitor_Report_{day}")
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_HEADER, lineterminator="\n")
    writer.writeheader()
    for row in result["tables"]:
        healthy = not row["stale"] and not row["problems"]
        writer.writerow({**{k: row.get(k) for k in CSV_HEADER}, "status": "ok" if healthy else "FAIL",
                         "stale": row["stale"] or "", "problems": "; ".join(row["problems"]),
                         "warnings": "; ".join(row["warnings"])})
    files = {"json": f"{base}.json", "csv": f"{base}.csv"}
    storage.write_text(files["json"], json.dumps(result, indent=2) + "\n")
    storage.write_text(files["csv"], buffer.getvalue())
    return files


def newest_json(folder: str, prefix: str) -> tuple[str, dict] | None:
    """The newest ``<prefix>...json`` report in ``folder`` (names sort by date): (path, content)."""
    names = sorted(e.name for e in storage.list_dir(folder) if e.name.startswith(prefix) and e.name.endswith(".json"))
    if not names:
        return None
    path = storage.join(folder, names[-1])
    return path, json.loads(storage.read_text(path))


def latest_report(analysis_root: str) -> tuple[str, dict] | None:
    """The newest monitor report under ``analysis_root`` (path, content), if any."""
    return newest_json(storage.join(analysis_root, FOLDER), "ACX_Data_Monitor_Report_")


def as_of_date(value: str | None) -> dt.date | None:
    return dt.date.fromisoformat(parse_date(value, "as_of")) if value else None
