"""Asset checks on the catalog: it says what storage holds, for the snapshot just published.

Each check returns the problems it found per table (empty when it passes); they are blocking, so
a catalog that disagrees with the files stops the steps built on it.
"""

from __future__ import annotations

from dagster import AssetCheckResult, AssetCheckSeverity, AssetCheckSpec

from flywheel_assets.catalog.base import Catalog
from flywheel_assets.catalog.names import TableInfo, TableSpec, location
from flywheel_assets.spark_jobs import sizing, storage
from flywheel_assets.spark_jobs.snapshots import list_snapshots

EXT = AssetCheckSpec("catalog_matches_storage", asset="ext_tables", blocking=True,
                     description="one ext table per table folder: location, columns and comment snapshot as on "
                     "storage; no ext table left over a folder that is gone")
BUCKETED = AssetCheckSpec("bucket_spec", asset="bucketed_tables", blocking=True,
                          description="every bucketed table: bucket column and count as configured, data files "
                          "in its location, comment snapshot = partition")
PARTITIONS = AssetCheckSpec("partitions_match_data", asset="prepared_part_tables", blocking=True,
                            description="every registered partition has its snapshot_dt= folder in the table's "
                            "location, and the new one has data files")
UNREGISTERED = AssetCheckSpec("written_partitions_registered", asset="prepared_part_tables", blocking=False,
                              description="every snapshot folder written is registered (a warning: another "
                              "snapshot's run may be between its split and its registration)")


def result(spec: AssetCheckSpec, problems: dict[str, str], checked: int) -> AssetCheckResult:
    severity = AssetCheckSeverity.ERROR if spec.blocking else AssetCheckSeverity.WARN
    return AssetCheckResult(
        check_name=spec.name, asset_key=spec.asset_key, passed=not problems, severity=severity,
        metadata={"tables_checked": checked, "problems": problems or "none"},
        description="; ".join(f"{t}: {p}" for t, p in problems.items())[:2000] or None,
    )


def ext_tables_match(registered: list[TableInfo], specs: list[TableSpec], roots: list[str],
                     snapshot: str) -> AssetCheckResult:
    """``registered``: every ext table of the database; ``specs``: the table folders on storage."""
    by_name = {t.name: t for t in registered}
    problems = {}
    for spec in specs:
        info = by_name.get(spec.name)
        if info is None:
            problems[spec.name] = "not registered"
        elif info.location != spec.location:
            problems[spec.name] = f"location {info.location}, but the data is in {spec.location}"
        elif info.columns != spec.columns:
            problems[spec.name] = "columns differ from the parquet files"
        elif info.snapshot != snapshot:
            problems[spec.name] = f"comment says snapshot_dt={info.snapshot}"
    written = {s.name for s in specs}
    roots = [location(r) for r in roots]
    for info in registered:
        if info.name not in written and any(info.location.startswith(r) for r in roots):
            problems[info.name] = (f"registered over {info.location}, which holds no table of snapshot_dt={snapshot} "
                                   "(removed from the mapping?): drop the table or restore the folder")
    return result(EXT, problems, len(registered))


def bucketed_tables_match(catalog: Catalog, database: str, built: list[str], column: str, count: int,
                          base: str, snapshot: str) -> AssetCheckResult:
    tables = {t.name: t for t in catalog.list_tables(database, "bucketed_", partitions=False)}
    problems = {}
    for name in built:
        info = tables.get(name)
        folder = location(storage.join(base, name[len("bucketed_"):]))
        if info is None:
            problems[name] = "not registered"
        elif (info.bucket_columns, info.num_buckets) != ([column], count):
            problems[name] = f"bucketed by {info.bucket_columns} into {info.num_buckets}, not [{column!r}] into {count}"
        elif not info.location.startswith(folder):
            problems[name] = f"location {info.location} is outside {folder}"
        elif not sizing.data_files(info.location):
            problems[name] = f"no data files in {info.location}"
        elif info.snapshot != snapshot:
            problems[name] = f"comment says snapshot_dt={info.snapshot}"
    return result(BUCKETED, problems, len(built))


def partitions_match(registered_by_table: dict[str, set[str]], tables: list[TableInfo],
                     snapshot: str) -> list[AssetCheckResult]:
    """Registered values (``Catalog.partition_values``: one call per table however long the
    history) against the table's ``snapshot_dt=`` folders (one listing), plus the new partition's data files."""
    problems, unregistered_by_table = {}, {}
    for t in tables:
        registered = registered_by_table[t.name]
        on_storage = set(list_snapshots(t.location))
        found = []
        if missing := sorted(registered - on_storage):
            found.append(f"registered without data: {', '.join(missing)}")
        if snapshot in registered and not sizing.data_files(storage.join(t.location, f"snapshot_dt={snapshot}")):
            found.append(f"snapshot_dt={snapshot} has no data files")
        if found:
            problems[t.name] = "; ".join(found)
        if unregistered := sorted(on_storage - registered):
            unregistered_by_table[t.name] = f"written but not registered: {', '.join(unregistered)}"
    return [result(PARTITIONS, problems, len(tables)), result(UNREGISTERED, unregistered_by_table, len(tables))]
