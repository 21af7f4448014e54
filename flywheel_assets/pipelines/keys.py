"""Asset keys: one asset per table of each stage, named after the table.

raw/infobase_attributes -> split_cluster/ibe_01 -> ext_ibe_01 -> bucketed_ibe_01
raw/infobase_attributes -> split_part/ibe_01 -> part_ibe_01 -> cleanrooms_report
"""

from dagster import AssetKey

from flywheel_assets.core.jobs import SplitJob

RAW_GROUP = "raw_sources"


def raw_key(job: SplitJob) -> AssetKey:
    return AssetKey(["raw", job.raw_source])


def split_key(job: SplitJob, table: str) -> AssetKey:
    return AssetKey([job.key_prefix, table.lower()])


def catalog_key(job: SplitJob, table: str) -> AssetKey:
    """The catalog table over a split output: ext_<table> or part_<table>."""
    return AssetKey(job.catalog_prefix + table.lower())


def bucketed_key(table: str) -> AssetKey:
    return AssetKey("bucketed_" + table.lower())
