"""The Dagster code location: ``dagster dev -m flywheel_assets.definitions`` (see workspace.yaml)."""

from dagster import AssetSelection, Definitions, define_asset_job

from flywheel_assets import alerts
from flywheel_assets.automation import build_sensor
from flywheel_assets.partitions import snapshot_partitions
from flywheel_assets.pipelines import bucketed, partitioned, reporting
from flywheel_assets.resources import resources_for
from flywheel_assets.settings import get_settings

SNAPSHOT_JOB = "flywheel_snapshot"

snapshot_job = define_asset_job(
    SNAPSHOT_JOB,
    selection=AssetSelection.all(),
    partitions_def=snapshot_partitions,
    description="Every flywheel asset for one snapshot_dt: the run book, both pipelines, in order.",
)

ASSETS = [*bucketed.assets, *partitioned.assets, *reporting.assets]

defs = Definitions(
    assets=ASSETS,
    jobs=[snapshot_job, reporting.report_job],
    sensors=[build_sensor(snapshot_job, [a.key for a in ASSETS]), *alerts.sensors],
    schedules=[reporting.monthly_cleanrooms_report],
    resources=resources_for(get_settings()),
)


def flywheel_snapshot_job():
    """Module-level handle so `flywheel run` can execute the job in a reconstructable way."""
    return defs.resolve_job_def(SNAPSHOT_JOB)
