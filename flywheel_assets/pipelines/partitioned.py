"""Pipeline 2: snapshot-partitioned part tables (run book, pipeline 2)."""

import time
from typing import Literal, Optional

from dagster import AssetExecutionContext, Config, Failure, MaterializeResult, asset
from pydantic import Field

from flywheel_assets import settings
from flywheel_assets.catalog.base import Catalog
from flywheel_assets.catalog.discover import parquet_columns, part_datasets
from flywheel_assets.catalog.names import Column, TableSpec, identifier, positive, snapshot_comment
from flywheel_assets.partitions import snapshot_partitions
from flywheel_assets.pipelines import catalog_checks
from flywheel_assets.pipelines.common import catalog_metadata
from flywheel_assets.pipelines.split import split_asset
from flywheel_assets.resources import Lake
from flywheel_assets.spark_jobs import publish, sizing, storage

GROUP = "partitioned_pipeline"

infobase_split_part = split_asset(
    name="infobase_split_part",
    job="infobase_split_and_part",
    group=GROUP,
    description="Step 1: the infobase snapshot split into <table>/snapshot_dt=<d>/ under "
    "split_part/infobase_attributes/; other snapshots are left untouched.",
)

addressable_split_part = split_asset(
    name="addressable_split_part",
    job="addressable_split_and_part",
    group=GROUP,
    description="Step 2: the raw addressable-ids snapshot as snapshot_dt=<d>/ under split_part/addressable_ids/.",
)

class PartTablesConfig(Config):
    source_path: str = Field(default=settings.SPLIT_PART_ROOT, description="--SOURCE_PATH: the split_part/ root")
    staged_db: Optional[str] = Field(default=None, description="--STAGED_DB (default: the catalog's database)")
    table_prefix: str = Field(default="part_", description="--TABLE_PREFIX")


def part_specs(root: str, database: str, prefix: str, snapshot: str, catalog: Catalog) -> tuple[list[TableSpec], dict]:
    """Table definitions from the snapshot just written; columns only ever added (older
    partitions keep theirs), a type change is schema drift and fails. Tables the split skipped
    for this snapshot (missing_columns: skip_table) are returned apart: they get no partition."""
    specs, skipped = [], {}
    for table, folder in sorted(part_datasets(root).items()):
        name = identifier(f"{prefix}{table}", "table")
        partition = storage.join(folder, f"snapshot_dt={snapshot}")
        if not sizing.data_files(partition):
            why = publish.part_table_skipped(folder, snapshot)
            if why:
                skipped[name] = why
                continue
            raise Failure(f"{name}: no data in {partition}; materialize the split-part step for {snapshot} first")
        columns = [c for c in parquet_columns(partition) if c.name != "snapshot_dt"]
        existing = catalog.describe(database, name, partitions=False)
        if existing:
            known = {c.name: c.type for c in existing.columns}
            drift = [f"{c.name} ({known[c.name]} -> {c.type})" for c in columns if known.get(c.name, c.type) != c.type]
            if drift:
                raise Failure(f"{name}: column types changed in snapshot_dt={snapshot}: {', '.join(drift)}")
            columns = existing.columns + [c for c in columns if c.name not in known]
        record = publish.folder_publication(partition)
        source_snapshot = record.source_snapshot_dt if record else snapshot
        specs.append(TableSpec(database, name, folder, columns,
                               comment=snapshot_comment("part; partitioned by snapshot_dt; last published", snapshot,
                                                        source_snapshot),
                               partition_keys=[Column("snapshot_dt", "string")]))
    if not specs:
        raise Failure(f"no partitioned datasets under {root}")
    return specs, skipped


@asset(
    partitions_def=snapshot_partitions,
    group_name=GROUP,
    deps=[infobase_split_part, addressable_split_part],
    kinds={"catalog"},
    description="Step 3: external tables part_<table> partitioned by snapshot_dt over split_part/.",
)
def part_tables(context: AssetExecutionContext, config: PartTablesConfig, lake: Lake, catalog: Catalog) -> MaterializeResult:
    database = identifier(config.staged_db or catalog.database, "STAGED_DB")
    specs, skipped = part_specs(lake.resolve(config.source_path), database, config.table_prefix,
                                context.partition_key, catalog)
    actions = {spec.name: catalog.apply_table(spec) for spec in specs}
    context.log.info(f"part tables in {database}: {actions}" + (f"; skipped by the split: {skipped}" if skipped else ""))
    return MaterializeResult(metadata={**catalog_metadata(database, specs, actions), "skipped_by_split": skipped or "none"})


class PreparePartTablesConfig(Config):
    database: Optional[str] = Field(default=None, description="--DATABASE (default: the catalog's database)")
    table_prefix: str = Field(default="part_", description="--TABLE_PREFIX")
    mode: Literal["add", "msck"] = Field(
        default="add",
        description="add: register exactly this snapshot's partitions (cost independent of history); "
        "msck: MSCK REPAIR TABLE every part_ table (explicit repair)",
    )
    max_concurrency: int = Field(default=5, description="--MAX_CONCURRENCY (msck mode, Athena)")
    poll_interval_sec: float = Field(default=2.0, description="--POLL_INTERVAL_SEC (msck mode, Athena)")


@asset(
    partitions_def=snapshot_partitions,
    group_name=GROUP,
    deps=[part_tables],
    kinds={"catalog"},
    check_specs=[catalog_checks.PARTITIONS, catalog_checks.UNREGISTERED],
    description="Step 4: makes the snapshot queryable: registers its snapshot_dt partition in every part_ table.",
)
def prepared_part_tables(context: AssetExecutionContext, config: PreparePartTablesConfig, catalog: Catalog) -> MaterializeResult:
    snapshot = context.partition_key
    database = identifier(config.database or catalog.database, "DATABASE")
    tables = [t for t in catalog.list_tables(database, config.table_prefix, partitions=False) if t.partition_keys]
    if not tables:
        raise Failure(f"no partitioned {config.table_prefix}* tables in {database}: materialize part_tables first")
    # A table the split skipped for this snapshot (missing_columns: skip_table) has no folder for it,
    # and Clean Rooms refuses registered partitions without data: only tables with data get one.
    with_data = [t for t in tables if sizing.data_files(storage.join(t.location, f"snapshot_dt={snapshot}"))]
    if not with_data:
        raise Failure(f"no {config.table_prefix}* table has data for snapshot_dt={snapshot}: materialize the split-part steps first")
    started = time.monotonic()
    if config.mode == "msck":
        catalog.repair(database, [t.name for t in tables], positive(config.max_concurrency, "MAX_CONCURRENCY"),
                       float(config.poll_interval_sec))
    else:
        for t in with_data:
            catalog.add_partitions(database, t.name, [(snapshot, storage.join(t.location, f"snapshot_dt={snapshot}"))])
    registered = {t.name: set(catalog.partition_values(database, t.name)) for t in tables}
    missing = [t.name for t in with_data if snapshot not in registered[t.name]]
    if missing:
        raise Failure(f"snapshot_dt={snapshot} is not registered in {', '.join(missing)}")
    return MaterializeResult(metadata={
        "database": database, "mode": config.mode, "tables": [t.name for t in tables],
        "without_data_for_snapshot": sorted({t.name for t in tables} - {t.name for t in with_data}) or "none",
        "table_count": len(tables), "snapshot_dt": snapshot,
        "registration_seconds": round(time.monotonic() - started, 3),
    }, check_results=catalog_checks.partitions_match(registered, tables, snapshot))


assets = [infobase_split_part, addressable_split_part, part_tables, prepared_part_tables]
