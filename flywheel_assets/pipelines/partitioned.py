"""Pipeline 2: snapshot-partitioned part tables (run book, pipeline 2).

One asset per table: split_part/<table> (the split jobs) -> part_<table> (the catalog table, with
the snapshot's partition registered) -> cleanrooms_report.
"""

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Literal, Optional

from dagster import (
    AssetCheckResult,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetsDefinition,
    AssetSpec,
    Config,
    Failure,
    MaterializeResult,
    asset,
    multi_asset,
)
from pydantic import Field

from flywheel_assets import settings
from flywheel_assets.catalog.base import Catalog
from flywheel_assets.catalog.discover import parquet_columns, part_datasets
from flywheel_assets.catalog.names import Column, TableSpec, identifier, location, positive, snapshot_comment
from flywheel_assets.core import publish, sizing
from flywheel_assets.core.jobs import JOBS, PARTITIONED_PIPELINE, SNAPSHOT_FOLDERS, SplitJob
from flywheel_assets.core.snapshots import list_snapshots, snapshot_path
from flywheel_assets.partitions import snapshot_partitions
from flywheel_assets.pipelines import catalog_checks
from flywheel_assets.pipelines.common import table_metadata
from flywheel_assets.pipelines.keys import catalog_key, split_key
from flywheel_assets.pipelines.split import split_assets
from flywheel_assets.resources import Lake
from flywheel_assets.tables import TableSet

GROUP = PARTITIONED_PIPELINE


def snapshot_folder_tables(tables: TableSet) -> list[tuple[SplitJob, str]]:
    return [(job, t) for job in JOBS.values() if job.layout == SNAPSHOT_FOLDERS for t in tables.tables(job)]


class PartTablesConfig(Config):
    source_path: str = Field(default=settings.SPLIT_PART_ROOT, description="--SOURCE_PATH (step 3): the split_part/ root")
    staged_db: Optional[str] = Field(default=None, description="--STAGED_DB / --DATABASE (default: the catalog's database)")
    table_prefix: str = Field(default="part_", description="--TABLE_PREFIX")
    mode: Literal["add", "msck"] = Field(
        default="add",
        description="step 4: add registers exactly this snapshot's partition (cost independent of history); "
        "msck runs MSCK REPAIR TABLE on the selected tables (explicit repair)",
    )
    max_concurrency: int = Field(default=5, description="--MAX_CONCURRENCY: tables registered at the same time "
                                 "(and MSCK REPAIRs on Athena)")
    poll_interval_sec: float = Field(default=2.0, description="--POLL_INTERVAL_SEC (msck mode, Athena)")


def part_specs(root: str, database: str, prefix: str, snapshot: str, catalog: Catalog,
               tables: list[str]) -> tuple[dict[str, TableSpec], dict[str, str], dict[str, str]]:
    """Table definitions of ``tables`` (lowercase) from the snapshot just written; columns only ever
    added (older partitions keep theirs), a type change is schema drift and fails. Tables the split
    skipped for this snapshot (missing_columns: skip_table) are returned apart: they get no partition.
    And the folder each table's snapshot is in (its snapshot folder, or the version a re-publication
    wrote in it)."""
    specs, skipped, data = {}, {}, {}
    datasets = part_datasets(root)
    known = {t.name: t for t in catalog.list_tables(database, prefix, partitions=False)}  # one statement
    absent = [t for t in tables if t not in datasets]
    if absent:
        raise Failure(f"no partitioned dataset for {', '.join(absent)} under {root}: materialize the split-part "
                      f"step for {snapshot} first")
    for table in tables:
        folder = datasets[table]
        name = identifier(f"{prefix}{table}", "table")
        partition = publish.data_folder(snapshot_path(folder, snapshot))
        if not sizing.data_files(partition):
            why = publish.part_table_skipped(folder, snapshot)
            if why:
                skipped[table] = why
                continue
            raise Failure(f"{name}: no data in {partition}; materialize the split-part step for {snapshot} first")
        columns = [c for c in parquet_columns(partition) if c.name != "snapshot_dt"]
        existing = known.get(name)
        if existing:
            known = {c.name: c.type for c in existing.columns}
            drift = [f"{c.name} ({known[c.name]} -> {c.type})" for c in columns if known.get(c.name, c.type) != c.type]
            if drift:
                raise Failure(f"{name}: column types changed in snapshot_dt={snapshot}: {', '.join(drift)}")
            columns = existing.columns + [c for c in columns if c.name not in known]
        record = publish.folder_publication(partition)
        source_snapshot = record.source_snapshot_dt if record else snapshot
        data[table] = partition
        specs[table] = TableSpec(database, name, folder, columns,
                                 comment=snapshot_comment("part; partitioned by snapshot_dt; last published", snapshot,
                                                          source_snapshot),
                                 partition_keys=[Column("snapshot_dt", "string")])
    return specs, skipped, data


def register_partition(catalog: Catalog, database: str, table: str, snapshot: str, snapshot_folder: str,
                       folder: str, add: bool = True) -> None:
    """Make the snapshot's partition read ``folder``. A first publication is the snapshot folder
    itself: one ADD (``add``; in msck mode the repair registered it). A re-publication wrote a
    version in it: the partition is pointed there if it is elsewhere (one catalog update), then
    the versions older than the one it replaced are deleted (kept for readers still on it)."""
    republished = location(folder) != location(snapshot_folder)
    held = catalog.partition_location(database, table, snapshot) if republished else None
    if held is None:
        if add:
            catalog.add_partitions(database, table, [(snapshot, folder)])
    elif location(held) != location(folder):
        catalog.set_partition_location(database, table, snapshot, folder)
        publish.prune_snapshot_folder(snapshot_folder, {folder, held})


def part_tables_asset(tables: TableSet) -> AssetsDefinition:
    entries = {catalog_key(job, t): t.lower() for job, t in snapshot_folder_tables(tables)}
    specs = [AssetSpec(catalog_key(job, t), deps=[split_key(job, t)], group_name=GROUP,
                       partitions_def=snapshot_partitions, kinds={"catalog"}, metadata={"table": t},
                       description=f"Steps 3 and 4: external table over split_part's {t}, partitioned by "
                       "snapshot_dt; materializing a snapshot registers its partition, so it is queryable.")
             for job, t in snapshot_folder_tables(tables)]

    @multi_asset(name="part_tables", specs=specs, can_subset=True,
                 check_specs=[c for key in entries for c in catalog_checks.part_specs(key)])
    def part_tables(context: AssetExecutionContext, config: PartTablesConfig, lake: Lake, catalog: Catalog):
        snapshot = context.partition_key
        database = identifier(config.staged_db or catalog.database, "STAGED_DB")
        selected = {t: key for key, t in entries.items() if key in context.selected_asset_keys}
        specs, skipped, data = part_specs(lake.resolve(config.source_path), database, config.table_prefix, snapshot,
                                          catalog, sorted(selected))
        applied = catalog.apply_tables(list(specs.values()))
        actions = {t: applied[spec.name] for t, spec in specs.items()}
        started = time.monotonic()
        concurrency = positive(config.max_concurrency, "MAX_CONCURRENCY", 32)

        def register(t: str) -> set[str]:
            """One table's partition for this snapshot registered; the table's partitions after that."""
            spec = specs[t]
            register_partition(catalog, database, spec.name, snapshot, snapshot_path(spec.location, snapshot), data[t],
                               add=config.mode == "add")
            return set(catalog.partition_values(database, spec.name))

        if config.mode == "msck":
            catalog.repair(database, [s.name for s in specs.values()], concurrency, float(config.poll_interval_sec))
        # tables at the same time: each is a few catalog round trips, which overlap (one table's
        # statement is planned while another's is in the metastore)
        with ThreadPoolExecutor(max_workers=concurrency) as pool:
            partitions = dict(zip(specs, pool.map(register, specs)))
        seconds = round(time.monotonic() - started, 3)
        context.log.info(f"part tables in {database}: {actions}; snapshot_dt={snapshot} registered in {seconds} s"
                         + (f"; skipped by the split: {skipped}" if skipped else ""))
        for t, key in selected.items():
            if t in skipped:
                yield MaterializeResult(asset_key=key, metadata={"snapshot_dt": snapshot, "skipped_by_split": skipped[t],
                                                                 "partition_registered": False})
                continue
            spec, registered = specs[t], partitions[t]
            if snapshot not in registered:
                raise Failure(f"snapshot_dt={snapshot} is not registered in {database}.{spec.name}")
            rows = sizing.folder_stats(data[t]).rows
            yield MaterializeResult(
                asset_key=key,
                metadata={**table_metadata(spec, rows), "action": actions[t], "mode": config.mode,
                          "snapshot_dt": snapshot, "partitions": len(registered), "registration_seconds": seconds},
                check_results=catalog_checks.partitions_match(key, spec.location, registered, set(list_snapshots(spec.location)),
                                                              snapshot),
            )

    return part_tables


ER_TABLE = "part_addressable_ids_er"
ER_CHECK = AssetCheckSpec("built_for_snapshot", asset=ER_TABLE, blocking=True,
                          description="row_id and customer_user_id (strings) in a fresh folder under the identity "
                          "location, with data files, and the partition's snapshot in the comment")


class EntityResolutionConfig(Config):
    database: Optional[str] = Field(default=None, description="catalog database (default: the catalog's)")
    source_table: str = Field(default="part_addressable_ids", description="the addressable part table it reads")
    location: str = Field(default=settings.IDENTITY_BASE, description="where its versions are written "
                          "(production: omc_cleanroom_data/identity/acx_ids_cur/)")
    allow_rollback: bool = Field(default=False, description="it holds one current snapshot: allow replacing it "
                                 "with an older one")


def er_problem(info, base: str, snapshot: str) -> str | None:
    if info is None:
        return "not registered"
    if [(c.name, c.type) for c in info.columns] != [("row_id", "string"), ("customer_user_id", "string")]:
        return f"columns {[(c.name, c.type) for c in info.columns]}"
    if not info.location.startswith(location(base)) or not sizing.data_files(info.location):
        return f"no data files in {info.location}, or outside {base}"
    if info.snapshot != snapshot:
        return f"comment says snapshot_dt={info.snapshot}"
    return None


def entity_resolution_asset(addressable: SplitJob) -> AssetsDefinition:
    @asset(name=ER_TABLE, group_name=GROUP, partitions_def=snapshot_partitions, kinds={"catalog"},
           deps=[catalog_key(addressable, "addressable_ids")], check_specs=[ER_CHECK],
           description="Entity Resolution's input (row_id = customer_user_id, each key of the snapshot once), "
           "rebuilt for every snapshot into a fresh folder and swapped in like the bucketed tables. Production's "
           "script built it once and never refreshed it.")
    def part_addressable_ids_er(context: AssetExecutionContext, config: EntityResolutionConfig, lake: Lake,
                                catalog: Catalog) -> MaterializeResult:
        snapshot = context.partition_key
        database = identifier(config.database or catalog.database, "database")
        source = (database, identifier(config.source_table, "source_table"))
        if snapshot not in catalog.partition_values(*source):
            raise Failure(f"{database}.{source[1]} has no partition snapshot_dt={snapshot}: materialize "
                          f"{catalog_key(addressable, 'addressable_ids').to_user_string()} first")
        held = catalog.describe(database, ER_TABLE, partitions=False)
        if held and held.snapshot and snapshot < held.snapshot and not config.allow_rollback:
            raise Failure(f"{database}.{ER_TABLE} holds snapshot_dt={held.snapshot}, newer than {snapshot}: Entity "
                          "Resolution's input keeps one current snapshot and this would roll it back. Set "
                          "allow_rollback: true in this asset's run config to do it anyway.", allow_retries=False)
        base = lake.resolve(config.location)
        catalog.replace_identity_table(database, ER_TABLE, source, snapshot, base,
                                       snapshot_comment("entity resolution input; row_id = customer_user_id", snapshot))
        info = catalog.describe(database, ER_TABLE, partitions=False)
        problem = er_problem(info, base, snapshot)
        rows = sizing.folder_stats(info.location).rows if info else None
        return MaterializeResult(
            metadata={**(table_metadata(info, rows) if info else {}), "snapshot_dt": snapshot},
            check_results=[AssetCheckResult(check_name=ER_CHECK.name, passed=problem is None,
                                            metadata={"problem": problem or "none"})])

    return part_addressable_ids_er


def build(tables: TableSet) -> list[AssetsDefinition]:
    jobs = [j for j in JOBS.values() if j.layout == SNAPSHOT_FOLDERS and tables.tables(j)]
    if not jobs:
        return []
    er = [entity_resolution_asset(j) for j in jobs if j.single_table == "addressable_ids"]
    return [*(split_assets(j, tables.tables(j)) for j in jobs), part_tables_asset(tables), *er]
