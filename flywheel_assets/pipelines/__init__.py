"""The assets, grouped by pipeline, built from the table catalogue (one asset per table)."""

from dagster import AssetSpec

from flywheel_assets.core.jobs import JOBS
from flywheel_assets.tables import TableSet


def raw_sources() -> list[AssetSpec]:
    """The raw snapshots the split jobs read: written by systems upstream, observed by the sensor."""
    from flywheel_assets.pipelines.keys import RAW_GROUP, raw_key

    sources = {raw_key(j): j for j in JOBS.values()}
    return [AssetSpec(key, group_name=RAW_GROUP, kinds={"parquet"},
                      description=f"Raw snapshots (snapshot_dt=YYYY-MM-DD/ folders) under {job.source_path}, written "
                      "upstream; the raw-snapshot sensor watches them.", metadata={"path": job.source_path})
            for key, job in sources.items()]


def build_assets(tables: TableSet) -> list:
    from flywheel_assets.pipelines import bucketed, partitioned, reporting

    part = partitioned.build(tables)
    return [*raw_sources(), *bucketed.build(tables), *part,
            *([reporting.cleanrooms_report_asset(tables)] if part else [])]
