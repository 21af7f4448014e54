"""The code location loads, and the graph reads like the run book."""

from dagster import AssetKey, Definitions, DynamicPartitionsDefinition

from flywheel_assets.definitions import SNAPSHOT_JOB, defs
from flywheel_assets.pipelines.split import DEFAULTS
from flywheel_assets.catalog.aws import GlueAthenaCatalog
from flywheel_assets.catalog.local import LocalCatalog
from flywheel_assets.resources import LocalSparkRunner, resources_for
from flywheel_assets.settings import get_settings


def test_definitions_load_and_the_graph_reads_like_the_run_book():
    Definitions.validate_loadable(defs)
    graph = defs.resolve_asset_graph()
    groups = {k.to_user_string(): graph.get(k).group_name for k in graph.get_all_asset_keys()}
    assert groups == {
        "infobase_split": "bucketed_pipeline",
        "addressable_bucket": "bucketed_pipeline",
        "ext_tables": "bucketed_pipeline",
        "bucketed_tables": "bucketed_pipeline",
        "infobase_split_part": "partitioned_pipeline",
        "addressable_split_part": "partitioned_pipeline",
        "part_tables": "partitioned_pipeline",
        "prepared_part_tables": "partitioned_pipeline",
        "cleanrooms_report": "reporting",
    }
    parents = {k.to_user_string(): sorted(p.to_user_string() for p in graph.get(k).parent_keys)
               for k in graph.get_all_asset_keys()}
    assert parents["ext_tables"] == ["addressable_bucket", "infobase_split"]
    assert parents["bucketed_tables"] == ["ext_tables"]
    assert parents["part_tables"] == ["addressable_split_part", "infobase_split_part"]
    assert parents["prepared_part_tables"] == ["part_tables"]
    assert parents["cleanrooms_report"] == ["prepared_part_tables"]
    assert defs.resolve_schedule_def("monthly_cleanrooms_report").default_status.value == "STOPPED"
    for key in graph.get_all_asset_keys():
        partitions = graph.get(key).partitions_def
        assert isinstance(partitions, DynamicPartitionsDefinition) and partitions.name == "snapshot_dt"


def test_run_config_defaults_are_the_run_book_paths():
    job = defs.resolve_job_def(SNAPSHOT_JOB)
    schema = job.run_config_schema.config_type.fields["ops"].config_type.fields
    infobase = schema["infobase_split"].config_type.fields["config"].config_type.fields
    assert infobase["source_path"].default_value == "opus/infobase_attributes/raw_input/"
    assert infobase["target_path"].default_value == "omc_cleanroom_data/split_cluster/infobase_attributes/"
    assert infobase["csv_file"].default_value == "omc_cleanroom_data/omc_flywheel_infobase_table_split_lowercase.csv"
    assert DEFAULTS["addressable_bucket"] == {
        "source_path": "omc_cleanroom_data/addressable/addressable_ids_compaction_cr/",
        "target_path": "omc_cleanroom_data/split_cluster/addressable_ids/",
    }


def test_local_environment_runs_spark_jobs_in_a_subprocess_and_the_catalog_on_spark_sql():
    assert isinstance(defs.resources["spark_jobs"], LocalSparkRunner)
    assert isinstance(defs.resources["catalog"], LocalCatalog)
    assert defs.resolve_assets_def(AssetKey("infobase_split")).required_resource_keys >= {"spark_jobs", "lake"}


def test_aws_environment_uses_glue_and_athena():
    resources = resources_for(get_settings({"FLYWHEEL_ENV": "aws", "FLYWHEEL_HOME": "/tmp/x"}))
    catalog = resources["catalog"]
    assert isinstance(catalog, GlueAthenaCatalog)
    assert (catalog.database, catalog.workgroup) == ("omc_flywheel_prod", "primary")
    assert catalog.results_s3 == "s3://omc-flywheel-prod-analysis-data/query-results/"
    assert resources["lake"].data_root == "s3://omc-flywheel-data-us-east-1-prod"


def test_bucket_layout_writers_never_overlap_across_runs(tmp_path):
    from dagster import DagsterInstance

    from flywheel_assets.cli import INSTANCE_YAML

    (tmp_path / "dagster.yaml").write_text(INSTANCE_YAML)
    config = DagsterInstance.from_config(str(tmp_path)).get_concurrency_config()
    assert config.pool_config.default_pool_limit == 1
    assert config.run_queue_config.max_concurrent_runs == 4
    pools = {name: defs.resolve_assets_def(name).op.pool for name in DEFAULTS}
    assert pools == {"infobase_split": "infobase_split_target", "addressable_bucket": "addressable_bucket_target",
                     "infobase_split_part": None, "addressable_split_part": None}


def test_addressable_mapping_is_optional_only_at_its_default_path(tmp_path):
    """Absent at the run book's default path: all columns (production has none). Named by the
    user: passed on, so the job says it is missing."""
    from flywheel_assets import settings
    from flywheel_assets.pipelines.split import SplitConfig
    from flywheel_assets.resources import Lake

    lake = Lake(data_root=str(tmp_path))
    paths = settings.SPLIT_JOB_PATHS["addressable_split_and_part"]
    default = SplitConfig(**paths)
    args = default.arguments(lake, "2024-02-15", "addressable_split_and_part", paths["csv_file"])
    assert "CSV_FILE" not in args and args["SNAPSHOT_MATCH"] == "at_or_before"
    (tmp_path / paths["csv_file"]).parent.mkdir(parents=True)
    (tmp_path / paths["csv_file"]).write_text("table_name,column_name\naddressable_ids,maid\n")
    assert default.arguments(lake, "2024-02-15", "addressable_split_and_part", paths["csv_file"])["CSV_FILE"] == str(
        tmp_path / paths["csv_file"])
    named = SplitConfig(**{**paths, "csv_file": "elsewhere/none.csv"})
    assert named.arguments(lake, "2024-02-15", "addressable_split_and_part", paths["csv_file"])["CSV_FILE"] == str(
        tmp_path / "elsewhere/none.csv")
    infobase = settings.SPLIT_JOB_PATHS["infobase_split_and_part"]
    args = SplitConfig(**infobase).arguments(lake, "2024-02-15", "infobase_split_and_part", infobase["csv_file"])
    assert args["CSV_FILE"] == str(tmp_path / infobase["csv_file"]) and args["SNAPSHOT_MATCH"] == "exact"
