"""Resources, and the one function that picks them for the environment.

Asset code only sees the interfaces (``Lake``, ``SparkJobRunner``); which implementation runs is
decided here from the settings.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path

from dagster import (
    AssetExecutionContext,
    ConfigurableResource,
    DagsterEventType,
    Failure,
    MaterializeResult,
    PipesSubprocessClient,
)
from dagster._core.errors import DagsterPipesExecutionError

from flywheel_assets.catalog.aws import GlueAthenaCatalog
from flywheel_assets.catalog.local import LocalCatalog
from flywheel_assets.local_spark import LocalSpark
from flywheel_assets.settings import Settings
from flywheel_assets.spark_jobs import scripts, storage

SCRIPTS_DIR = Path(scripts.__file__).parent


def script_path(job: str) -> Path:
    path = SCRIPTS_DIR / f"{job}.py"
    if not path.is_file():
        raise ValueError(f"unknown Spark job {job!r}")
    return path


def job_arguments(arguments: Mapping[str, str]) -> list[str]:
    """Run-book style ``--NAME value`` pairs, the same on every runtime."""
    out: list[str] = []
    for name, value in arguments.items():
        out += [f"--{name}", str(value)]
    return out


def reported_error(context: AssetExecutionContext) -> str | None:
    """The exception the job script reported through Pipes, for a failure message users can act on."""
    step_key = context.get_step_execution_context().step.key
    records = context.instance.get_records_for_run(context.run_id, of_type=DagsterEventType.ENGINE_EVENT)
    for record in reversed(records.records):
        event = record.event_log_entry.dagster_event
        error = event.engine_event_data.error if event and event.engine_event_data else None
        if error and event.step_key == step_key:
            return error.message.strip()
    return None


class Lake(ConfigurableResource):
    """Where the data lives: run-book paths are relative to ``data_root``."""

    data_root: str

    def resolve(self, path: str) -> str:
        if "://" in path or path.startswith("/"):
            return path
        return storage.join(self.data_root, path)


class SparkJobRunner(ConfigurableResource):
    """Runs one flywheel Spark job script and returns what the script itself reported."""

    def run(self, context: AssetExecutionContext, job: str, arguments: Mapping[str, str]) -> MaterializeResult:
        raise Failure(f"no Spark runtime is configured for {job} in this environment "
                      "(FLYWHEEL_ENV=aws runs Spark jobs on Glue once the Glue runner exists)")


class LocalSparkRunner(SparkJobRunner):
    """The job script in a subprocess, through Pipes, as a client of the local Spark server."""

    server: LocalSpark

    def run(self, context: AssetExecutionContext, job: str, arguments: Mapping[str, str]) -> MaterializeResult:
        env = {"FLYWHEEL_SPARK_RUNTIME": "local", "FLYWHEEL_SPARK_REMOTE": self.server.url()}
        command = [sys.executable, str(script_path(job)), *job_arguments(arguments)]
        context.log.info(f"running {job} on local Spark: {' '.join(command[1:])}")
        try:
            invocation = PipesSubprocessClient().run(context=context, command=command, env=env)
        except DagsterPipesExecutionError as exc:
            raise Failure(description=f"{job} failed: {reported_error(context) or exc}") from exc
        return invocation.get_materialize_result()


def local_spark(settings: Settings) -> LocalSpark:
    return LocalSpark(home=str(settings.spark_home), master=settings.spark_master,
                      driver_memory=settings.spark_driver_memory, remote=settings.spark_remote)


def resources_for(settings: Settings) -> dict:
    if settings.env == "local":
        server = local_spark(settings)
        return {
            "lake": Lake(data_root=settings.data_root),
            "catalog": LocalCatalog(database=settings.database, server=server),
            "spark_jobs": LocalSparkRunner(server=server),
        }
    return {
        "lake": Lake(data_root=settings.data_root),
        "catalog": GlueAthenaCatalog(database=settings.database, region=settings.aws_region,
                                     workgroup=settings.athena_workgroup, results_s3=settings.athena_results_s3),
        "spark_jobs": SparkJobRunner(),  # the Glue runner is not built yet: its run() says so
    }
