"""The job table: the run book's four Spark jobs, declared once.

The job scripts (layout, mapping policy, snapshot rule), the Dagster assets (step name, asset keys,
group, raw source, defaults), the sensor (raw sources), ``flywheel deploy`` (Glue job names and
default arguments) and the CLI all read this table; nothing else lists the jobs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from flywheel_assets.core import storage
from flywheel_assets.core.snapshots import AT_OR_BEFORE, EXACT, snapshot_path

# Run-book paths, relative to the data root (s3://omc-flywheel-data-us-east-1-prod in production).
INFOBASE_RAW = "opus/infobase_attributes/raw_input/"
ADDRESSABLE_COMPACTION = "omc_cleanroom_data/addressable/addressable_ids_compaction_cr/"
ADDRESSABLE_RAW = "opus/addressable_ids/raw_input/"
SPLIT_CLUSTER_INFOBASE = "omc_cleanroom_data/split_cluster/infobase_attributes/"
SPLIT_CLUSTER_ADDRESSABLE = "omc_cleanroom_data/split_cluster/addressable_ids/"
SPLIT_PART_ROOT = "omc_cleanroom_data/split_part/"
SPLIT_PART_INFOBASE = SPLIT_PART_ROOT + "infobase_attributes/"
SPLIT_PART_ADDRESSABLE = SPLIT_PART_ROOT + "addressable_ids/"
INFOBASE_BUCKET_MAPPING = "omc_cleanroom_data/omc_flywheel_infobase_table_split_lowercase.csv"
INFOBASE_PART_MAPPING = "omc_cleanroom_data/omc_flywheel_infobase_table_split_part.csv"
ADDRESSABLE_PART_MAPPING = "omc_cleanroom_data/omc_flywheel_addressable_ids_table_split_part.csv"
BUCKETED_BASE = "omc_cleanroom_data/cleanroom_tables/bucketed/"
IDENTITY_BASE = "omc_cleanroom_data/identity/acx_ids_cur/"  # the Entity Resolution input table's files

# The two layouts of a split job's output. SNAPSHOT_FOLDERS: <target>/<table>/snapshot_dt=<d>/,
# every snapshot kept (the run book's "part" tables). CURRENT_SNAPSHOT: <target>/<TABLE>/ holding
# one snapshot at a time (what the bucketed tables are built from; "bucket" in the run book's names).
CURRENT_SNAPSHOT, SNAPSHOT_FOLDERS = "current_snapshot", "snapshot_folders"
REQUIRED, OPTIONAL, NONE = "required", "optional", "none"  # mapping policy (optional: absent = all columns)
GLUE_JOB_PREFIX = "etl-omc-flywheel-prod-"  # the run book's job names: <prefix><job with dashes>

BUCKETED_PIPELINE, PARTITIONED_PIPELINE = "bucketed_pipeline", "partitioned_pipeline"


@dataclass(frozen=True)
class SplitJob:
    """One run-book split job and everything that is derived from it."""

    name: str  # the run book's job (script) name
    step: str  # the Dagster step that runs it; run config is keyed by it
    layout: str  # CURRENT_SNAPSHOT | SNAPSHOT_FOLDERS
    mapping: str  # REQUIRED | OPTIONAL | NONE
    source_path: str
    target_path: str
    csv_file: Optional[str]
    raw_source: str  # the raw source's asset name (group raw_sources)
    single_table: Optional[str] = None  # all (mapped) columns in one table with this name
    # The infobase snapshot is the partition (EXACT); the addressable sources contribute their
    # newest snapshot at or before it (AT_OR_BEFORE): sources do not land on the same day.
    snapshot_match: str = EXACT
    description: str = ""

    @property
    def pipeline(self) -> str:
        return BUCKETED_PIPELINE if self.layout == CURRENT_SNAPSHOT else PARTITIONED_PIPELINE

    @property
    def key_prefix(self) -> str:
        """The split output tables' asset keys: ``split_cluster/ibe_01``, ``split_part/ibe_01``."""
        return "split_cluster" if self.layout == CURRENT_SNAPSHOT else "split_part"

    @property
    def catalog_prefix(self) -> str:
        """The catalog tables registered over the output: ``ext_ibe_01``, ``part_ibe_01``."""
        return "ext_" if self.layout == CURRENT_SNAPSHOT else "part_"

    def defaults(self) -> dict[str, str]:
        """--SOURCE_PATH/--TARGET_PATH/--CSV_FILE defaults (run config and the deployed Glue jobs)."""
        paths = {"source_path": self.source_path, "target_path": self.target_path}
        return {**paths, "csv_file": self.csv_file} if self.csv_file else paths

    def glue_job_name(self, prefix: str = GLUE_JOB_PREFIX) -> str:
        """``infobase_split_and_bucket`` -> ``etl-omc-flywheel-prod-infobase-split-and-bucket``."""
        return prefix + self.name.replace("_", "-")

    def table_folder(self, target: str, table: str, snapshot: str) -> str:
        """Where one table's files of one snapshot live under ``target`` (the one rule)."""
        if self.layout == CURRENT_SNAPSHOT:
            return storage.join(target, table)
        return snapshot_path(target if self.single_table else storage.join(target, table), snapshot)


JOBS: dict[str, SplitJob] = {
    job.name: job
    for job in (
        SplitJob("infobase_split_and_bucket", "infobase_split", CURRENT_SNAPSHOT, REQUIRED,
                 INFOBASE_RAW, SPLIT_CLUSTER_INFOBASE, INFOBASE_BUCKET_MAPPING, "infobase_attributes",
                 description="Run book pipeline 1, step 1: the wide infobase snapshot split into one folder "
                 "per table under split_cluster/infobase_attributes/, holding one snapshot at a time."),
        SplitJob("addressable_bucket", "addressable_bucket", CURRENT_SNAPSHOT, NONE,
                 ADDRESSABLE_COMPACTION, SPLIT_CLUSTER_ADDRESSABLE, None, "addressable_ids_compaction",
                 single_table="addressable_ids", snapshot_match=AT_OR_BEFORE,
                 description="Run book pipeline 1, step 2: the addressable-ids compaction snapshot as "
                 "addressable_ids/ under split_cluster/addressable_ids/, one snapshot at a time."),
        SplitJob("infobase_split_and_part", "infobase_split_part", SNAPSHOT_FOLDERS, REQUIRED,
                 INFOBASE_RAW, SPLIT_PART_INFOBASE, INFOBASE_PART_MAPPING, "infobase_attributes",
                 description="Run book pipeline 2, step 1: the infobase snapshot split into "
                 "<table>/snapshot_dt=<d>/ under split_part/infobase_attributes/; other snapshots untouched."),
        SplitJob("addressable_split_and_part", "addressable_split_part", SNAPSHOT_FOLDERS, OPTIONAL,
                 ADDRESSABLE_RAW, SPLIT_PART_ADDRESSABLE, ADDRESSABLE_PART_MAPPING, "addressable_ids",
                 single_table="addressable_ids", snapshot_match=AT_OR_BEFORE,
                 description="Run book pipeline 2, step 2: the raw addressable-ids snapshot as "
                 "snapshot_dt=<d>/ under split_part/addressable_ids/."),
    )
}
JOB_BY_STEP: dict[str, SplitJob] = {job.step: job for job in JOBS.values()}


def raw_sources(jobs=None) -> dict[str, str]:
    """Raw source path (relative to the data root) -> how a partition date finds its snapshot
    there, for ``jobs`` (default all). The infobase source is always in: its snapshots are the
    partitions."""
    chosen = list(jobs or JOBS.values()) + [j for j in JOBS.values() if j.snapshot_match == EXACT]
    return {j.source_path: j.snapshot_match for j in sorted(chosen, key=lambda j: j.source_path)}
