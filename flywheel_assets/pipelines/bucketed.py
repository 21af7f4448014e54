"""Pipeline 1: bucketed tables for Cleanroom joins (run book, pipeline 1)."""

from concurrent.futures import ThreadPoolExecutor
from typing import Optional

from dagster import AssetExecutionContext, Config, Failure, MaterializeResult, asset
from pydantic import Field

from flywheel_assets import settings
from flywheel_assets.catalog.base import Catalog
from flywheel_assets.catalog.discover import parquet_columns, staged_snapshot, table_folders
from flywheel_assets.catalog.names import TableSpec, column_name, identifier, positive, snapshot_comment, table_filter
from flywheel_assets.partitions import snapshot_partitions
from flywheel_assets.pipelines import catalog_checks
from flywheel_assets.pipelines.common import catalog_metadata
from flywheel_assets.pipelines.split import split_asset
from flywheel_assets.resources import Lake
from flywheel_assets.spark_jobs import publish, sizing, storage

GROUP = "bucketed_pipeline"

infobase_split = split_asset(
    name="infobase_split",
    job="infobase_split_and_bucket",
    group=GROUP,
    description="Step 1: the wide infobase snapshot split into IBE_NN/ tables (flat, one snapshot at a "
    "time) plus metadata/snapshot_dt.txt, under split_cluster/infobase_attributes/.",
)

addressable_bucket = split_asset(
    name="addressable_bucket",
    job="addressable_bucket",
    group=GROUP,
    description="Step 2: the addressable-ids compaction snapshot as addressable_ids/ plus "
    "metadata/snapshot_dt.txt, under split_cluster/addressable_ids/.",
)

class ExtTablesConfig(Config):
    database: Optional[str] = Field(default=None, description="--DATABASE (default: the catalog's database)")
    s3_roots: list[str] = Field(
        default=[settings.SPLIT_CLUSTER_INFOBASE, settings.SPLIT_CLUSTER_ADDRESSABLE],
        description="--S3_ROOT of steps 3a and 3b: split_cluster roots whose table folders become ext_ tables",
    )
    table_prefix: str = Field(default="ext_", description="--TABLE_PREFIX")
    max_cols: int = Field(default=100, description="--MAX_COLS: a table with more columns fails")


@asset(
    partitions_def=snapshot_partitions,
    group_name=GROUP,
    deps=[infobase_split, addressable_bucket],
    kinds={"catalog"},
    check_specs=[catalog_checks.EXT],
    description="Step 3: external tables ext_<table> over every split_cluster table folder, schema from "
    "the parquet files, snapshot from metadata/snapshot_dt.txt in the table comment.",
)
def ext_tables(context: AssetExecutionContext, config: ExtTablesConfig, lake: Lake, catalog: Catalog) -> MaterializeResult:
    snapshot = context.partition_key
    database = identifier(config.database or catalog.database, "DATABASE")
    max_cols = positive(config.max_cols, "MAX_COLS")
    specs, skipped = [], {}
    roots = [lake.resolve(r) for r in config.s3_roots]
    for root in roots:  # check everything before changing anything
        staged = staged_snapshot(root)
        if staged != snapshot:
            raise Failure(f"{root} holds snapshot_dt={staged}, not {snapshot}: materialize its split for {snapshot} first")
        for table, why in publish.skipped_tables(root, snapshot).items():
            skipped[identifier(f"{config.table_prefix}{table}".lower(), "table")] = why
        for folder in table_folders(root):
            name = identifier(f"{config.table_prefix}{folder}".lower(), "table")
            columns = parquet_columns(storage.join(root, folder))
            if len(columns) > max_cols:
                raise Failure(f"{name} has {len(columns)} columns, more than MAX_COLS={max_cols}")
            record = publish.folder_publication(storage.join(root, folder))
            specs.append(TableSpec(database, name, storage.join(root, folder), columns,
                                   comment=snapshot_comment("ext", snapshot, record and record.source_snapshot_dt)))
    if not specs:
        raise Failure(f"no table folders under {', '.join(config.s3_roots)}")
    actions = {spec.name: catalog.apply_table(spec) for spec in specs}
    # A table the split skipped (missing_columns: skip_table) has no folder in this snapshot: its
    # ext table would read nothing, so it is dropped (the files of earlier snapshots are untouched).
    dropped = sorted(name for name in skipped if catalog.drop_table(database, name))
    context.log.info(f"ext tables in {database}: {actions}" + (f"; dropped (skipped by the split): {dropped}" if dropped else ""))
    registered = catalog.list_tables(database, config.table_prefix.lower(), partitions=False)
    metadata = {**catalog_metadata(database, specs, actions), "skipped_by_split": skipped or "none"}
    return MaterializeResult(metadata=metadata,
                             check_results=[catalog_checks.ext_tables_match(registered, specs, roots, snapshot)])


class BucketedTablesConfig(Config):
    staged_db: Optional[str] = Field(default=None, description="--STAGED_DB (default: the catalog's database)")
    final_db: Optional[str] = Field(default=None, description="--FINAL_DB (default: the catalog's database)")
    bucket_count: int = Field(default=256, description="--BUCKET_COUNT")
    bucket_col: str = Field(default="customer_user_id", description="--BUCKET_COL")
    bucketed_base: str = Field(default=settings.BUCKETED_BASE, description="--BUCKETED_BASE")
    tables_filter: Optional[str] = Field(default=None, description="--TABLES_FILTER, e.g. addressable_ids,ibe_01")
    staged_prefix: str = Field(default="ext_", description="prefix of the staged tables to bucket")
    max_concurrency: int = Field(default=4, description="tables built at the same time (measured: 4 is ~20% faster than 2 on 2 cores, see docs/benchmarks.md)")


@asset(
    partitions_def=snapshot_partitions,
    group_name=GROUP,
    deps=[ext_tables],
    kinds={"catalog", "spark"},
    check_specs=[catalog_checks.BUCKETED],
    description="Step 4: bucketed_<table> from each ext table, bucketed by customer_user_id into 256 buckets "
    "under BUCKETED_BASE/<table>/; rebuilt into fresh files and swapped in, so readers never see it half-built.",
)
def bucketed_tables(context: AssetExecutionContext, config: BucketedTablesConfig, lake: Lake, catalog: Catalog) -> MaterializeResult:
    snapshot = context.partition_key
    staged_db = identifier(config.staged_db or catalog.database, "STAGED_DB")
    final_db = identifier(config.final_db or catalog.database, "FINAL_DB")
    count = positive(config.bucket_count, "BUCKET_COUNT", 100_000)
    column = column_name(config.bucket_col, "BUCKET_COL")
    prefix = config.staged_prefix
    staged = {t.name[len(prefix):]: t for t in catalog.list_tables(staged_db, prefix, partitions=False)}
    wanted = table_filter(config.tables_filter) or sorted(staged)
    unknown = [t for t in wanted if t not in staged]
    if unknown:
        raise Failure(f"TABLES_FILTER names unknown tables {', '.join(unknown)}; "
                      f"staged tables: {', '.join(sorted(staged)) or 'none'}")
    for base in wanted:  # check all before building any
        info = staged[base]
        if info.snapshot != snapshot:
            raise Failure(f"{staged_db}.{info.name} is at snapshot_dt={info.snapshot}, not {snapshot}")
        if column not in [c.name for c in info.columns]:
            raise Failure(f"{staged_db}.{info.name} has no column {column} to bucket by")
    catalog.ensure_database(final_db)
    base_location = lake.resolve(config.bucketed_base)

    def build(base: str) -> str:
        name = identifier(f"bucketed_{base}", "table")
        source = staged[base]
        comment = snapshot_comment(f"bucketed by {column} into {count}", snapshot, source.source_snapshot)
        writers = sizing.bucket_writers(sum(size for _, size in sizing.data_files(source.location)), count)
        catalog.replace_bucketed(final_db, name, (staged_db, source.name), storage.join(base_location, base),
                                 column, count, comment, writers)
        context.log.info(f"built {final_db}.{name} ({writers} writer task(s))")
        return name

    with ThreadPoolExecutor(max_workers=positive(config.max_concurrency, "max_concurrency", 32)) as pool:
        built = list(pool.map(build, wanted))
    check = catalog_checks.bucketed_tables_match(catalog, final_db, built, column, count, base_location, snapshot)
    return MaterializeResult(metadata={
        "database": final_db, "tables": built, "table_count": len(built),
        "bucket_column": column, "bucket_count": count, "snapshot_dt": snapshot,
    }, check_results=[check])


assets = [infobase_split, addressable_bucket, ext_tables, bucketed_tables]
