"""Pipeline 1: bucketed tables for Cleanroom joins (run book, pipeline 1).

One asset per table: split_cluster/<table> (the split jobs) -> ext_<table> -> bucketed_<table>.
The split folders and the bucketed tables hold one snapshot at a time: the current one.
"""

from concurrent.futures import ThreadPoolExecutor
from typing import Optional

from dagster import AssetExecutionContext, AssetsDefinition, AssetSpec, Config, Failure, MaterializeResult, multi_asset
from pydantic import Field

from flywheel_assets import settings
from flywheel_assets.catalog.base import Catalog
from flywheel_assets.catalog.discover import parquet_columns
from flywheel_assets.catalog.names import (
    TableSpec,
    column_name,
    identifier,
    location,
    positive,
    snapshot_comment,
    table_filter,
)
from flywheel_assets.core import publish, sizing, storage
from flywheel_assets.core.jobs import BUCKETED_PIPELINE, CURRENT_SNAPSHOT, JOBS, SplitJob
from flywheel_assets.partitions import snapshot_partitions
from flywheel_assets.pipelines import catalog_checks
from flywheel_assets.pipelines.common import table_metadata
from flywheel_assets.pipelines.keys import bucketed_key, catalog_key, split_key
from flywheel_assets.pipelines.split import split_assets
from flywheel_assets.resources import Lake
from flywheel_assets.tables import TableSet

GROUP = BUCKETED_PIPELINE
CURRENT = ("Holds one snapshot at a time (the current one, in its metadata and table comment); older "
           "snapshot_dt partitions show the run that last built them, not data still served.")


def current_snapshot_tables(tables: TableSet) -> list[tuple[SplitJob, str]]:
    return [(job, t) for job in JOBS.values() if job.layout == CURRENT_SNAPSHOT for t in tables.tables(job)]


class ExtTablesConfig(Config):
    database: Optional[str] = Field(default=None, description="--DATABASE (default: the catalog's database)")
    s3_roots: list[str] = Field(
        default=[j.target_path for j in JOBS.values() if j.layout == CURRENT_SNAPSHOT],
        description="--S3_ROOT of steps 3a and 3b: split_cluster roots whose table folders become ext_ tables",
    )
    table_prefix: str = Field(default="ext_", description="--TABLE_PREFIX")
    max_cols: int = Field(default=100, description="--MAX_COLS: a table with more columns fails")


def find_folders(roots: list[str], tables: list[str], snapshot: str
                 ) -> tuple[dict[str, str], dict[str, str], dict[str, publish.Publication]]:
    """table -> its folder, and table -> why the split skipped it, for ``tables`` (any case) in
    the split roots, from each root's publication of ``snapshot`` (staged or current); and those
    publications by root. Every root that holds one of the tables must have ``snapshot``."""
    wanted = {t.lower(): t for t in tables}
    folders, skipped, publications = {}, {}, {}
    for root in roots:
        latest = publish.latest(root)
        if latest is None or not any(t.lower() in wanted for t in (*latest.tables, *latest.skipped_tables)):
            continue
        found = publish.for_snapshot(root, snapshot)
        if found is None:
            raise Failure(f"{root} holds snapshot_dt={latest.snapshot_dt}, not {snapshot}: materialize its split "
                          f"for {snapshot} first")
        publications[root] = found
        folders |= {wanted[t.lower()]: storage.join(root, f) for t, f in found.tables.items() if t.lower() in wanted}
        skipped |= {wanted[t.lower()]: why for t, why in found.skipped_tables.items()
                    if t.lower() in wanted and wanted[t.lower()] not in folders}
    absent = [t for t in tables if t not in folders and t not in skipped]
    if absent:
        raise Failure(f"no folder for {', '.join(absent)} under {', '.join(roots)}: materialize its split for "
                      f"{snapshot} first")
    return folders, skipped, publications


def unswitched(publication: publish.Publication, held: publish.Publication | None, chosen: set[str]) -> list[str]:
    """Tables a switch to ``publication`` would change but that are not ``chosen``: switching a
    root changes what every one of its tables serves, so all of them must be registered."""
    before = held.tables if held else {}
    return sorted(t for t, f in publication.tables.items() if t.lower() not in chosen and before.get(t) != f)


def ext_tables_asset(tables: TableSet) -> AssetsDefinition:
    entries = {catalog_key(job, t): t for job, t in current_snapshot_tables(tables)}
    specs = [AssetSpec(key, deps=[split_key(job, t)], group_name=GROUP, partitions_def=snapshot_partitions,
                       kinds={"catalog"}, metadata={"table": t},
                       description=f"Step 3: external table over the version folder the split wrote for {t} (columns "
                       f"from its parquet files, snapshot in the comment). Materializing it switches readers of "
                       f"every split_cluster root to the staged snapshot at once. {CURRENT}")
             for job, t in current_snapshot_tables(tables) for key in [catalog_key(job, t)]]

    @multi_asset(name="ext_tables", specs=specs, can_subset=True,
                 check_specs=[catalog_checks.ext_spec(key) for key in entries])
    def ext_tables(context: AssetExecutionContext, config: ExtTablesConfig, lake: Lake, catalog: Catalog):
        snapshot = context.partition_key
        database = identifier(config.database or catalog.database, "DATABASE")
        max_cols = positive(config.max_cols, "MAX_COLS")
        selected = {key: t for key, t in entries.items() if key in context.selected_asset_keys}
        folders, skipped, publications = find_folders([lake.resolve(r) for r in config.s3_roots],
                                                      list(selected.values()), snapshot)
        chosen = {t.lower() for t in selected.values()}
        for root, publication in publications.items():
            left = unswitched(publication, publish.current(root), chosen)
            if left:
                raise Failure(f"{root} switches to snapshot_dt={snapshot} as a whole (readers never see two snapshots "
                              f"side by side): select the ext tables of {', '.join(left)} too, or all of ext_tables")
        specs = {}
        for t, folder in folders.items():  # check everything before changing anything
            name = identifier(f"{config.table_prefix}{t}".lower(), "table")
            columns = parquet_columns(folder)
            if len(columns) > max_cols:
                raise Failure(f"{name} has {len(columns)} columns, more than MAX_COLS={max_cols}")
            record = publish.folder_publication(folder)
            specs[t] = TableSpec(database, name, folder, columns,
                                 comment=snapshot_comment("ext", snapshot, record and record.source_snapshot_dt))
        applied = catalog.apply_tables(list(specs.values()))
        actions = {t: applied[spec.name] for t, spec in specs.items()}
        # A table the split skipped (missing_columns: skip_table) has no folder in this snapshot: its
        # ext table would read nothing, so it is dropped (the files of earlier snapshots are untouched).
        dropped = {t: catalog.drop_table(database, identifier(f"{config.table_prefix}{t}".lower(), "table"))
                   for t in skipped}
        for root, publication in publications.items():  # readers of every root now see the snapshot
            publish.switch(root, publication)
        context.log.info(f"ext tables in {database}: {actions}" + (f"; dropped (skipped by the split): {dropped}" if dropped else ""))
        registered = {i.name: i for i in catalog.list_tables(database, config.table_prefix.lower(), partitions=False)}
        # A table the mapping no longer has is no asset, and no root holds it any more: its ext
        # table would read a retired version. It is dropped (its bucketed_ table keeps its last data).
        known = {f"{config.table_prefix}{t}".lower() for t in entries.values()}
        roots = {location(lake.resolve(r)): lake.resolve(r) for r in config.s3_roots}
        held = {location(storage.join(root, f)) for root in roots.values() for p in [publish.current(root)] if p
                for f in p.tables.values()}
        for name, info in list(registered.items()):
            if (name not in known and any(info.location.startswith(r) for r in roots)
                    and info.location not in held):
                catalog.drop_table(database, name)
                registered.pop(name)
                context.log.warning(f"dropped {database}.{name}: no split_cluster root holds {info.location} any more "
                                    "(the table is no longer in the mapping)")
        for key, t in selected.items():
            if t in skipped:
                yield MaterializeResult(asset_key=key, metadata={
                    "snapshot_dt": snapshot, "action": "dropped" if dropped[t] else "absent",
                    "skipped_by_split": skipped[t]},
                    check_results=[catalog_checks.ext_matches(key, None, registered, snapshot)])
                continue
            spec = specs[t]
            yield MaterializeResult(asset_key=key, metadata={
                **table_metadata(spec, sizing.folder_stats(spec.location).rows), "action": actions[t],
                "snapshot_dt": snapshot}, check_results=[catalog_checks.ext_matches(key, spec, registered, snapshot)])

    return ext_tables


class BucketedTablesConfig(Config):
    staged_db: Optional[str] = Field(default=None, description="--STAGED_DB (default: the catalog's database)")
    final_db: Optional[str] = Field(default=None, description="--FINAL_DB (default: the catalog's database)")
    bucket_count: int = Field(default=256, description="--BUCKET_COUNT")
    bucket_col: str = Field(default="customer_user_id", description="--BUCKET_COL")
    bucketed_base: str = Field(default=settings.BUCKETED_BASE, description="--BUCKETED_BASE")
    tables_filter: Optional[str] = Field(
        default=None, description="--TABLES_FILTER, e.g. addressable_ids,ibe_01: of the selected tables, build only "
        "these (a shorthand for selecting their bucketed_ assets)")
    staged_prefix: str = Field(default="ext_", description="prefix of the staged tables to bucket")
    max_concurrency: int = Field(default=4, description="tables built at the same time (measured: 4 is ~20% faster than 2 on 2 cores, see docs/benchmarks.md)")


def bucketed_tables_asset(tables: TableSet) -> AssetsDefinition:
    entries = {bucketed_key(t): t.lower() for _, t in current_snapshot_tables(tables)}
    specs = [AssetSpec(bucketed_key(t), deps=[catalog_key(job, t)], group_name=GROUP, partitions_def=snapshot_partitions,
                       kinds={"catalog", "spark"}, metadata={"table": t}, skippable=True,
                       description=f"Step 4: {t} bucketed by customer_user_id into 256 buckets under "
                       f"BUCKETED_BASE/{t.lower()}/; rebuilt into fresh files and swapped in, so readers never see "
                       f"it half-built. {CURRENT}")
             for job, t in current_snapshot_tables(tables)]

    @multi_asset(name="bucketed_tables", specs=specs, can_subset=True,
                 check_specs=[catalog_checks.bucketed_spec(key) for key in entries])
    def bucketed_tables(context: AssetExecutionContext, config: BucketedTablesConfig, lake: Lake, catalog: Catalog):
        snapshot = context.partition_key
        staged_db = identifier(config.staged_db or catalog.database, "STAGED_DB")
        final_db = identifier(config.final_db or catalog.database, "FINAL_DB")
        count = positive(config.bucket_count, "BUCKET_COUNT", 100_000)
        column = column_name(config.bucket_col, "BUCKET_COL")
        prefix = config.staged_prefix
        selected = {t: key for key, t in entries.items() if key in context.selected_asset_keys}
        wanted = table_filter(config.tables_filter) or sorted(selected)
        unknown = [t for t in wanted if t not in selected]
        if unknown:
            raise Failure(f"TABLES_FILTER names {', '.join(unknown)}, which {'are' if len(unknown) > 1 else 'is'} not "
                          f"among the selected tables ({', '.join(sorted(selected)) or 'none'})")
        staged = {t.name[len(prefix):]: t for t in catalog.list_tables(staged_db, prefix, partitions=False)}
        absent = [t for t in wanted if t not in staged]
        if absent and len(absent) == len(wanted):
            raise Failure(f"no {prefix} table for {', '.join(absent)} in {staged_db}: materialize ext_tables for "
                          f"{snapshot} first")
        if absent:  # the split skipped them (missing_columns: skip_table), so ext_tables dropped them
            context.log.warning(f"not built, no {prefix} table (skipped by the split?): {', '.join(absent)}; "
                                "their bucketed_ tables keep what they held")
            wanted = [t for t in wanted if t in staged]
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
            source_bytes = sum(size for _, size in sizing.data_files(source.location))
            writers = sizing.bucket_writers(source_bytes, count)
            options = sizing.bucket_file_options(source_bytes, count)
            catalog.replace_bucketed(final_db, name, (staged_db, source.name), storage.join(base_location, base),
                                     column, count, comment, writers, options)
            context.log.info(f"built {final_db}.{name} ({writers} writer task(s), "
                             + ", ".join(f"{k}={v}" for k, v in options.items()) + ")")
            return name

        with ThreadPoolExecutor(max_workers=positive(config.max_concurrency, "max_concurrency", 32)) as pool:
            built = list(pool.map(build, wanted))
        infos = {t.name: t for t in catalog.list_tables(final_db, "bucketed_", partitions=False)}
        for base, name in zip(wanted, built):
            info = infos.get(name)
            check = catalog_checks.bucketed_matches(selected[base], name, info, column, count, base_location, snapshot)
            metadata = {"bucket_column": column, "bucket_count": count, "snapshot_dt": snapshot}
            if info:
                rows = sizing.folder_stats(staged[base].location).rows  # the ext table it was built from, row for row
                metadata = {**table_metadata(info, rows), **metadata}
            yield MaterializeResult(asset_key=selected[base], metadata=metadata, check_results=[check])

    return bucketed_tables


def build(tables: TableSet) -> list[AssetsDefinition]:
    jobs = [j for j in JOBS.values() if j.layout == CURRENT_SNAPSHOT and tables.tables(j)]
    if not jobs:
        return []
    return [*(split_assets(j, tables.tables(j)) for j in jobs), ext_tables_asset(tables), bucketed_tables_asset(tables)]
