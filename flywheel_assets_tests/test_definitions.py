"""The code location loads, and the graph reads like the run book."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from dagster import AssetKey, DagsterInstance, Definitions, DynamicPartitionsDefinition

from flywheel_assets.core.jobs import JOBS
from flywheel_assets.definitions import SNAPSHOT_JOB, STEP_PRELOAD, build_definitions, defs
from flywheel_assets.demo_data import PRODUCTION_TABLES, DemoSpec, write_demo_lake
from flywheel_assets.pipelines import build_assets
from flywheel_assets.catalog.aws import GlueAthenaCatalog
from flywheel_assets.catalog.local import LocalCatalog
from flywheel_assets.resources import LocalSparkRunner, resources_for
from flywheel_assets.settings import get_settings


@pytest.fixture(scope="module")
def production_defs(tmp_path_factory):
    """The definitions of the production-shaped sample (27 infobase tables + addressable ids)."""
    home = tmp_path_factory.mktemp("home")
    write_demo_lake(home / "lake", DemoSpec(rows=20, snapshots=1))
    settings = get_settings({"FLYWHEEL_HOME": str(home)})
    return build_definitions(settings), settings


def test_every_table_is_an_asset_with_lineage_from_raw_source_to_bucketed_and_report(production_defs):
    defs, _ = production_defs
    Definitions.validate_loadable(defs)
    graph = defs.resolve_asset_graph()
    groups = {k.to_user_string(): graph.get(k).group_name for k in graph.get_all_asset_keys()}
    tables = [t.lower() for t, _ in PRODUCTION_TABLES] + ["addressable_ids"]
    assert len(tables) == 28
    assert {k for k, g in groups.items() if g == "bucketed_pipeline"} == {
        f"{stage}{t}" for t in tables for stage in ("split_cluster/", "ext_", "bucketed_")}
    assert {k for k, g in groups.items() if g == "partitioned_pipeline"} == {
        f"{stage}{t}" for t in tables for stage in ("split_part/", "part_")} | {"part_addressable_ids_er"}
    assert groups["cleanrooms_report"] == "reporting"
    parents = {k.to_user_string(): sorted(p.to_user_string() for p in graph.get(k).parent_keys)
               for k in graph.get_all_asset_keys()}
    assert parents["split_cluster/ibe_08"] == ["raw/infobase_attributes"]
    assert parents["ext_ibe_08"] == ["split_cluster/ibe_08"]
    assert parents["bucketed_ibe_08"] == ["ext_ibe_08"]
    assert parents["split_cluster/addressable_ids"] == ["raw/addressable_ids_compaction"]
    assert parents["split_part/addressable_ids"] == ["raw/addressable_ids"]
    assert parents["part_ibe_08"] == ["split_part/ibe_08"]
    assert parents["cleanrooms_report"] == sorted([*(f"part_{t}" for t in tables), "part_addressable_ids_er"])
    assert parents["part_addressable_ids_er"] == ["part_addressable_ids"]
    assert defs.resolve_schedule_def("monthly_cleanrooms_report").default_status.value == "STOPPED"
    for key in graph.materializable_asset_keys:
        partitions = graph.get(key).partitions_def
        assert isinstance(partitions, DynamicPartitionsDefinition) and partitions.name == "snapshot_dt"
    # one step per run-book job and catalog step, each can materialize any subset of its tables
    steps = {defs.resolve_assets_def(k).node_def.name for k in graph.materializable_asset_keys}
    assert steps == {"infobase_split", "addressable_bucket", "infobase_split_part", "addressable_split_part",
                     "ext_tables", "bucketed_tables", "part_tables", "part_addressable_ids_er", "cleanrooms_report"}
    assert defs.resolve_assets_def(AssetKey("bucketed_ibe_08")).can_subset
    checks = {c.name for c in defs.resolve_assets_def(AssetKey(["split_cluster", "ibe_08"])).check_specs
              if c.asset_key == AssetKey(["split_cluster", "ibe_08"])}
    assert checks == {"row_count", "columns", "key_not_null", "file_sizing", "not_skipped"}


def test_the_data_monitor_checks_every_catalog_table_daily_and_status_knows_every_check(production_defs):
    from flywheel_assets.status import CHECK_NAMES

    defs, _ = production_defs
    graph = defs.resolve_asset_graph()
    tables = [t.lower() for t, _ in PRODUCTION_TABLES] + ["addressable_ids"]
    monitored = {k.asset_key.to_user_string() for k in graph.asset_check_keys if k.name == "data_monitor"}
    assert monitored == {f"{stage}{t}" for t in tables for stage in ("bucketed_", "part_")} | {"part_addressable_ids_er"}
    assert {k.asset_key for k in graph.asset_check_keys if k.name == "snapshot_freshness"} == {
        k.asset_key for k in graph.asset_check_keys if k.name == "data_monitor"}
    schedule = defs.resolve_schedule_def("daily_data_monitor")
    assert schedule.default_status.value == "RUNNING" and schedule.cron_schedule == "0 7 * * *"
    assert schedule.job_name == "data_monitor_job"
    # the snapshot job runs the monitor too, after the tables it checks
    assert "data_monitor" in {n.name for n in defs.resolve_job_def("flywheel_snapshot").graph.nodes}
    # `flywheel status` reads the latest result of every check by name: it must know them all
    assert {k.name for k in graph.asset_check_keys} <= set(CHECK_NAMES)


def test_the_table_catalogue_is_cached_and_a_changed_mapping_shows_on_reload(production_defs, tmp_path):
    from flywheel_assets.tables import read_table_set

    _, settings = production_defs
    mapping = Path(settings.data_root) / JOBS["infobase_split_and_bucket"].csv_file
    lake = tmp_path / "lake"
    (lake / mapping.relative_to(settings.data_root)).parent.mkdir(parents=True)
    text = mapping.read_bytes()
    (lake / mapping.relative_to(settings.data_root)).write_bytes(text + b"IBE_99,ibe9999,new,IBE9999,9999\r\n")
    fresh = read_table_set(str(lake), tmp_path)
    assert "IBE_99" in fresh.by_job["infobase_split_and_bucket"]  # a new mapping row: a new table on reload
    # the lake unreachable: the last tables read are used, and said to come from the cache
    gone = read_table_set("s3://no-such-bucket-flywheel-test", tmp_path)
    assert gone.by_job["infobase_split_and_bucket"] == fresh.by_job["infobase_split_and_bucket"]
    assert gone.origin["infobase_split_and_bucket"].startswith("cache")
    assert build_assets(gone)  # the definitions still load


def test_run_config_defaults_are_the_run_book_paths(production_defs):
    job = production_defs[0].resolve_job_def(SNAPSHOT_JOB)
    schema = job.run_config_schema.config_type.fields["ops"].config_type.fields
    infobase = schema["infobase_split"].config_type.fields["config"].config_type.fields
    assert infobase["source_path"].default_value == "opus/infobase_attributes/raw_input/"
    assert infobase["target_path"].default_value == "omc_cleanroom_data/split_cluster/infobase_attributes/"
    assert infobase["csv_file"].default_value == "omc_cleanroom_data/omc_flywheel_infobase_table_split_lowercase.csv"
    assert JOBS["addressable_bucket"].defaults() == {
        "source_path": "omc_cleanroom_data/addressable/addressable_ids_compaction_cr/",
        "target_path": "omc_cleanroom_data/split_cluster/addressable_ids/",
    }
    part = schema["part_tables"].config_type.fields["config"].config_type.fields
    assert part["source_path"].default_value == "omc_cleanroom_data/split_part/"
    assert part["mode"].default_value == "add"  # run book part step 4, in the same step
    assert JOBS["infobase_split_and_bucket"].glue_job_name() == "etl-omc-flywheel-prod-infobase-split-and-bucket"


def test_local_environment_runs_spark_jobs_in_a_subprocess_and_the_catalog_on_spark_sql():
    assert isinstance(defs.resources["spark_jobs"], LocalSparkRunner)
    assert isinstance(defs.resources["catalog"], LocalCatalog)
    assert defs.resolve_assets_def(AssetKey(["split_cluster", "addressable_ids"])).required_resource_keys >= {
        "spark_jobs", "lake"}


def test_aws_environment_uses_glue_and_athena():
    resources = resources_for(get_settings({"FLYWHEEL_ENV": "aws", "FLYWHEEL_HOME": "/tmp/x"}))
    catalog = resources["catalog"]
    assert isinstance(catalog, GlueAthenaCatalog)
    assert (catalog.database, catalog.workgroup) == ("omc_flywheel_prod", "primary")
    assert catalog.results_s3 == "s3://omc-flywheel-prod-analysis-data/query-results/"
    assert resources["lake"].data_root == "s3://omc-flywheel-data-us-east-1-prod"


def test_current_snapshot_layout_writers_never_overlap_across_runs(tmp_path, production_defs):
    from dagster import DagsterInstance

    from flywheel_assets.instance import write_instance_config

    home = write_instance_config(get_settings({"FLYWHEEL_HOME": str(tmp_path)}))
    config = DagsterInstance.from_config(str(home)).get_concurrency_config()
    assert config.pool_config.default_pool_limit == 1
    assert config.run_queue_config.max_concurrent_runs == 4
    defs = production_defs[0]
    table = {"infobase_split_and_bucket": "ibe_01", "infobase_split_and_part": "ibe_01"}
    pools = {job.step: defs.resolve_assets_def(AssetKey([job.key_prefix, table.get(job.name, "addressable_ids")])).op.pool
             for job in JOBS.values()}
    assert pools == {"infobase_split": "infobase_split_target", "addressable_bucket": "addressable_bucket_target",
                     "infobase_split_part": None, "addressable_split_part": None}


def test_addressable_mapping_is_optional_only_at_its_default_path(tmp_path):
    """Absent at the run book's default path: all columns (production has none). Named by the
    user: passed on, so the job says it is missing."""
    from flywheel_assets.pipelines.split import SplitConfig
    from flywheel_assets.resources import Lake

    lake = Lake(data_root=str(tmp_path))
    job = JOBS["addressable_split_and_part"]
    paths = job.defaults()
    default = SplitConfig(**paths)
    args = default.arguments(lake, "2024-02-15", job)
    assert "CSV_FILE" not in args and args["SNAPSHOT_MATCH"] == "at_or_before"
    (tmp_path / paths["csv_file"]).parent.mkdir(parents=True)
    (tmp_path / paths["csv_file"]).write_text("table_name,column_name\naddressable_ids,maid\n")
    assert default.arguments(lake, "2024-02-15", job)["CSV_FILE"] == str(
        tmp_path / paths["csv_file"])
    named = SplitConfig(**{**paths, "csv_file": "elsewhere/none.csv"})
    assert named.arguments(lake, "2024-02-15", job)["CSV_FILE"] == str(
        tmp_path / "elsewhere/none.csv")
    infobase = JOBS["infobase_split_and_part"]
    args = SplitConfig(**infobase.defaults()).arguments(lake, "2024-02-15", infobase)
    assert args["CSV_FILE"] == str(tmp_path / infobase.csv_file) and args["SNAPSHOT_MATCH"] == "exact"


def test_snapshot_steps_are_forked_with_the_code_location_storage_and_spark_client_imported(tmp_path):
    """The fork server ignores a preload module it cannot import: a renamed module would only
    cost every step its imports again, silently. A step forked as Dagster forks them must find
    every STEP_PRELOAD module already imported."""
    found = tmp_path / "found"
    script = f"""
from flywheel_assets.definitions import STEP_PRELOAD
from flywheel_assets.orchestration import start_step_fork_server
child = start_step_fork_server().Process(target=exec, args=(
    "import sys; open({str(found)!r}, 'w').write(' '.join(m for m in STEP_PRELOAD if m in sys.modules))",
    {{"STEP_PRELOAD": STEP_PRELOAD}}))
child.start()
child.join(120)
assert child.exitcode == 0, child.exitcode
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=180,
                          env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert found.read_text().split() == STEP_PRELOAD


def test_local_event_log_reuses_one_engine_per_shard_and_keeps_dagsters_files(tmp_path):
    """Stored through one engine per shard, unsynced, read back by a separate instance, in the
    files where Dagster's default storage keeps them (an existing home keeps its history)."""
    from dagster import AssetCheckResult, AssetCheckSpec, DagsterInstance, Output, asset, materialize

    from flywheel_assets.instance import ENGINES_KEPT, LocalEventLogStorage, write_instance_config

    home = write_instance_config(get_settings({"FLYWHEEL_HOME": str(tmp_path)}))
    instance = DagsterInstance.from_config(str(home))
    storage = instance.event_log_storage
    assert isinstance(storage, LocalEventLogStorage)

    @asset(check_specs=[AssetCheckSpec(f"c{i}", asset="a") for i in range(20)])
    def a():
        yield Output(1)
        for i in range(20):
            yield AssetCheckResult(check_name=f"c{i}", passed=i % 2 == 0)

    run_id = materialize([a], instance=instance, raise_on_error=False).run_id
    assert {shard for _, shard in storage._engines} == {run_id, "index"}  # ~150 events, 2 engines
    assert "asset_check_executions" in storage._tables  # asked once, not per check result
    for connection in (storage.run_connection(run_id), storage.index_connection()):
        with connection as conn:
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 0  # unsynced (OFF)
    for connection in (instance.run_storage.connect(), instance.schedule_storage.connect()):
        with connection as conn:  # the run list, schedules and sensors' cursors: SQLite's default
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
    assert (home / "history" / "runs" / f"{run_id}.db").exists()

    reader = DagsterInstance.from_config(str(home))
    evaluations = [e.dagster_event.event_specific_data for e in reader.all_logs(run_id)
                   if e.dagster_event and e.dagster_event.event_type_value == "ASSET_CHECK_EVALUATION"]
    assert sorted((ev.check_name, ev.passed) for ev in evaluations) == sorted(
        (f"c{i}", i % 2 == 0) for i in range(20))
    assert reader.get_latest_materialization_event(AssetKey("a")).run_id == run_id
    reader.event_log_storage.dispose()

    # a process reading many runs (the UI) keeps a bounded number of shards open
    for i in range(ENGINES_KEPT + 4):
        with storage.run_connection(f"{i:08d}-0000-4000-8000-000000000000") as conn:
            conn.exec_driver_sql("SELECT 1")
    open_shards = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:  # closed since the listing
            continue
        if target.startswith(str(home)) and target.endswith(".db"):
            open_shards.add(target)
    assert len(storage._engines) == ENGINES_KEPT and 2 <= len(open_shards) <= ENGINES_KEPT
    storage.dispose()
    assert not storage.__dict__.get("_engines")
