"""Pipeline 1: bucketed tables for Cleanroom joins (run book, pipeline 1)."""

from flywheel_assets import settings
from flywheel_assets.pipelines.split import split_asset

GROUP = "bucketed_pipeline"

infobase_split = split_asset(
    name="infobase_split",
    job="infobase_split_and_bucket",
    group=GROUP,
    defaults={
        "source_path": settings.INFOBASE_RAW,
        "target_path": settings.SPLIT_CLUSTER_INFOBASE,
        "csv_file": settings.INFOBASE_BUCKET_MAPPING,
    },
    description="Step 1: the wide infobase snapshot split into IBE_NN/ tables (flat, one snapshot at a "
    "time) plus metadata/snapshot_dt.txt, under split_cluster/infobase_attributes/.",
)

addressable_bucket = split_asset(
    name="addressable_bucket",
    job="addressable_bucket",
    group=GROUP,
    defaults={"source_path": settings.ADDRESSABLE_COMPACTION, "target_path": settings.SPLIT_CLUSTER_ADDRESSABLE},
    description="Step 2: the addressable-ids compaction snapshot as addressable_ids/ plus "
    "metadata/snapshot_dt.txt, under split_cluster/addressable_ids/.",
)

assets = [infobase_split, addressable_bucket]
