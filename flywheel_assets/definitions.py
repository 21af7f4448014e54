"""The Dagster code location: ``dagster dev -m flywheel_assets.definitions`` (see workspace.yaml).

The assets are one per table, from the mapping files as they are when the definitions load (see
tables.py); reload the code location to pick up a changed mapping.
"""

from dagster import AssetSelection, Definitions, define_asset_job, multiprocess_executor
from dagster._core.executor import child_process_executor

from flywheel_assets import alerts
from flywheel_assets.automation import build_sensor
from flywheel_assets.partitions import snapshot_partitions
from flywheel_assets.pipelines import build_assets
from flywheel_assets.pipelines import monitoring
from flywheel_assets.pipelines.keys import RAW_GROUP
from flywheel_assets.pipelines.reporting import monthly_cleanrooms_report, report_job
from flywheel_assets.resources import resources_for
from flywheel_assets.settings import Settings, get_settings
from flywheel_assets.tables import TableSet, read_table_set

SNAPSHOT_JOB = "flywheel_snapshot"
# What every step process needs, imported once by the fork server the steps are forked from
# instead of in each of them (about 0.9 CPU-s a step here): this code location, the instance's
# storage (SQLite locally, PostgreSQL deployed; a module that is not installed is skipped)
# and the Spark Connect client. Dagster's own default preloads its executor module alone.
STEP_PRELOAD = ["dagster._core.executor.multiprocess", "flywheel_assets.definitions",
                "dagster._core.storage.sqlite_storage", "dagster_postgres", "pyspark.sql.connect.session"]

# Dagster's multiprocess executor takes one event per running step per turn and waits up to TICK
# (20 ms) on each step that has none: a step that ends with a few hundred events (a check and a
# materialization per table) while another step is busy reached its downstream steps seconds late
# (ext_tables -> bucketed_tables 1.9 s). At 5 ms: 0.02-0.2 s, for about 0.1 CPU-s a run of
# polling (2 ms cost 1.1 CPU-s). A private constant of Dagster (pinned): were it dropped, this is inert.
child_process_executor.TICK = 0.005

snapshot_job = define_asset_job(
    SNAPSHOT_JOB,
    selection=AssetSelection.all() - AssetSelection.groups(RAW_GROUP),
    partitions_def=snapshot_partitions,
    description="Every flywheel table for one snapshot_dt: the run book, both pipelines, in order.",
    # Each step in its own process, forked from a server that has imported STEP_PRELOAD once.
    # Up to 4 at once whatever the cores (Dagster's default is one per core): a step mostly waits
    # for its Spark server or Glue job, and the graph starts with 4 independent split steps.
    executor_def=multiprocess_executor.configured(
        {"start_method": {"forkserver": {"preload_modules": STEP_PRELOAD}}, "max_concurrent": 4}),
)


def build_definitions(settings: Settings, tables: TableSet | None = None) -> Definitions:
    tables = tables or read_table_set(settings.data_root, settings.home)
    monitor = monitoring.monitor_check(tables)
    monitor_job = monitoring.monitor_job(monitor)
    return Definitions(
        assets=build_assets(tables),
        asset_checks=[monitor],
        jobs=[snapshot_job, report_job, monitor_job],
        sensors=[build_sensor(snapshot_job), *alerts.sensors],
        schedules=[monthly_cleanrooms_report, monitoring.daily_schedule(monitor_job)],
        resources=resources_for(settings),
    )


defs = build_definitions(get_settings())


def flywheel_snapshot_job():
    """Module-level handle so `flywheel run` can execute the job in a reconstructable way."""
    return defs.resolve_job_def(SNAPSHOT_JOB)


def data_monitor_job():
    """The same for `flywheel monitor`."""
    return defs.resolve_job_def(monitoring.JOB)
