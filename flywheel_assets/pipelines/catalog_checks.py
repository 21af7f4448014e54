"""Asset checks on the catalog, one result per table: it says what storage holds, for the
snapshot just published. The blocking ones stop the steps built on a table whose catalog entry
disagrees with its files."""

from __future__ import annotations

from dagster import AssetCheckResult, AssetCheckSeverity, AssetCheckSpec, AssetKey

from flywheel_assets.catalog.names import TableInfo, TableSpec, location
from flywheel_assets.core import publish, sizing, storage
from flywheel_assets.core.snapshots import snapshot_path

EXT = ("catalog_matches_storage", True, "the ext table has its folder's location, columns and comment snapshot")
BUCKETED = ("bucket_spec", True, "bucket column and count as configured, data files in its location, comment "
            "snapshot = partition")
PARTITIONS = ("partitions_match_data", True, "every registered partition has its snapshot_dt= folder in the "
              "table's location, and the new one has data files")
UNREGISTERED = ("written_partitions_registered", False, "every snapshot folder written is registered (a warning: "
                "another snapshot's run may be between its split and its registration)")


def spec(check: tuple[str, bool, str], key: AssetKey) -> AssetCheckSpec:
    name, blocking, description = check
    return AssetCheckSpec(name, asset=key, blocking=blocking, description=description)


def ext_spec(key: AssetKey) -> AssetCheckSpec:
    return spec(EXT, key)


def bucketed_spec(key: AssetKey) -> AssetCheckSpec:
    return spec(BUCKETED, key)


def part_specs(key: AssetKey) -> list[AssetCheckSpec]:
    return [spec(PARTITIONS, key), spec(UNREGISTERED, key)]


def result(check: tuple[str, bool, str], key: AssetKey, problem: str | None, **metadata) -> AssetCheckResult:
    name, blocking, _ = check
    return AssetCheckResult(
        check_name=name, asset_key=key, passed=not problem,
        severity=AssetCheckSeverity.ERROR if blocking else AssetCheckSeverity.WARN,
        metadata={"problem": problem or "none", **metadata}, description=problem[:2000] if problem else None,
    )


def ext_matches(key: AssetKey, wanted: TableSpec | None, registered: dict[str, TableInfo],
                snapshot: str) -> AssetCheckResult:
    """``wanted``: the table as its folder says it should be (None: the split skipped it, so no
    ext table may be left reading an older snapshot's folder)."""
    if wanted is None:
        name = key.path[-1]
        return result(EXT, key, f"{name} is still registered, over {registered[name].location}"
                      if name in registered else None)
    info = registered.get(wanted.name)
    problem = None
    if info is None:
        problem = "not registered"
    elif info.location != wanted.location:
        problem = f"location {info.location}, but the data is in {wanted.location}"
    elif info.columns != wanted.columns:
        problem = "columns differ from the parquet files"
    elif info.snapshot != snapshot:
        problem = f"comment says snapshot_dt={info.snapshot}"
    return result(EXT, key, problem)


def bucketed_matches(key: AssetKey, name: str, info: TableInfo | None, column: str, count: int, base: str,
                     snapshot: str) -> AssetCheckResult:
    folder = location(storage.join(base, name[len("bucketed_"):]))
    problem = None
    if info is None:
        problem = "not registered"
    elif (info.bucket_columns, info.num_buckets) != ([column], count):
        problem = f"bucketed by {info.bucket_columns} into {info.num_buckets}, not [{column!r}] into {count}"
    elif not info.location.startswith(folder):
        problem = f"location {info.location} is outside {folder}"
    elif not sizing.data_files(info.location):
        problem = f"no data files in {info.location}"
    elif info.snapshot != snapshot:
        problem = f"comment says snapshot_dt={info.snapshot}"
    return result(BUCKETED, key, problem)


def partitions_match(key: AssetKey, table_location: str, registered: set[str], on_storage: set[str],
                     snapshot: str) -> list[AssetCheckResult]:
    """Registered values (``Catalog.partition_values``: one call per table however long the
    history) against the table's ``snapshot_dt=`` folders (one listing), plus the new partition's
    data files."""
    found = []
    if missing := sorted(registered - on_storage):
        found.append(f"registered without data: {', '.join(missing)}")
    if snapshot in registered and not sizing.data_files(publish.data_folder(snapshot_path(table_location, snapshot))):
        found.append(f"snapshot_dt={snapshot} has no data files")
    unregistered = sorted(on_storage - registered)
    return [result(PARTITIONS, key, "; ".join(found) or None, partitions=len(registered)),
            result(UNREGISTERED, key, f"written but not registered: {', '.join(unregistered)}" if unregistered else None)]
