"""Pipeline 2: snapshot-partitioned part tables (run book, pipeline 2)."""

from flywheel_assets import settings
from flywheel_assets.pipelines.split import split_asset

GROUP = "partitioned_pipeline"

infobase_split_part = split_asset(
    name="infobase_split_part",
    job="infobase_split_and_part",
    group=GROUP,
    defaults={
        "source_path": settings.INFOBASE_RAW,
        "target_path": settings.SPLIT_PART_INFOBASE,
        "csv_file": settings.INFOBASE_PART_MAPPING,
    },
    description="Step 1: the infobase snapshot split into <table>/snapshot_dt=<d>/ under "
    "split_part/infobase_attributes/; other snapshots are left untouched (dynamic partition overwrite).",
)

addressable_split_part = split_asset(
    name="addressable_split_part",
    job="addressable_split_and_part",
    group=GROUP,
    defaults={
        "source_path": settings.ADDRESSABLE_RAW,
        "target_path": settings.SPLIT_PART_ADDRESSABLE,
        "csv_file": settings.ADDRESSABLE_PART_MAPPING,
    },
    description="Step 2: the raw addressable-ids snapshot as snapshot_dt=<d>/ under split_part/addressable_ids/.",
)

assets = [infobase_split_part, addressable_split_part]
