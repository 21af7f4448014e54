"""The code location loads, and the graph reads like the run book."""

from dagster import AssetKey, Definitions, DynamicPartitionsDefinition

from flywheel_assets.definitions import SNAPSHOT_JOB, defs
from flywheel_assets.pipelines.split import DEFAULTS
from flywheel_assets.resources import LocalSparkRunner


def test_definitions_load_with_four_spark_stage_assets_grouped_by_pipeline():
    Definitions.validate_loadable(defs)
    graph = defs.resolve_asset_graph()
    groups = {k.to_user_string(): graph.get(k).group_name for k in graph.get_all_asset_keys()}
    assert groups == {
        "infobase_split": "bucketed_pipeline",
        "addressable_bucket": "bucketed_pipeline",
        "infobase_split_part": "partitioned_pipeline",
        "addressable_split_part": "partitioned_pipeline",
    }
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


def test_local_environment_runs_spark_jobs_in_a_subprocess():
    assert isinstance(defs.resources["spark_jobs"], LocalSparkRunner)
    assert defs.resolve_assets_def(AssetKey("infobase_split")).required_resource_keys >= {"spark_jobs", "lake"}
