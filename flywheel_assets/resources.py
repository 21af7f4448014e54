"""Resources, and the one function that picks them for the environment.

Asset code only sees the interfaces (``Lake``, ``SparkJobRunner``); which implementation runs is
decided here from the settings.
"""

from __future__ import annotations

import re
import sys
import time
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

from dagster import (
    AssetExecutionContext,
    ConfigurableResource,
    DagsterEventType,
    Failure,
    PipesSubprocessClient,
)
from dagster._core.errors import DagsterPipesExecutionError

from flywheel_assets.catalog.aws import GlueAthenaCatalog
from flywheel_assets.catalog.local import LocalCatalog
from flywheel_assets.local_spark import LocalSpark
from flywheel_assets.core import publish, storage
from flywheel_assets.core.errors import FlywheelInputError
from flywheel_assets.core.jobs import GLUE_JOB_PREFIX, JOBS, SplitJob, raw_sources
from flywheel_assets.core.snapshots import list_snapshots
from flywheel_assets.settings import Settings
from flywheel_assets.spark_jobs import scripts

SCRIPTS_DIR = Path(scripts.__file__).parent

# dagster's own Pipes plumbing warns that one of its internals is in preview; nothing to act on.
warnings.filterwarnings("ignore", message=".*expected_writer_count.*")


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


def reported_error(context: AssetExecutionContext):
    """The latest exception the job script reported through Pipes for this step, for a failure
    message users can act on; None if it reported none. (After a retry this can be an earlier
    attempt's, when the last attempt reported nothing, e.g. a Glue TIMEOUT.)"""
    step_key = context.get_step_execution_context().step.key
    records = context.instance.get_records_for_run(context.run_id, of_type=DagsterEventType.ENGINE_EVENT)
    for record in reversed(records.records):
        event = record.event_log_entry.dagster_event
        error = event.engine_event_data.error if event and event.engine_event_data else None
        if error and event.step_key == step_key:
            return error
    return None


def retryable(error) -> bool:
    """Bad input fails the same way every time, so it is never retried; anything else (a lost
    executor, a Glue TIMEOUT, a restarted server) may be, per the asset's retry policy."""
    return not (error and error.cls_name == "FlywheelInputError")


def _lines(*parts: str) -> str:
    return "\n".join(p for p in parts if p)


class Lake(ConfigurableResource):
    """Where the data lives: run-book paths are relative to ``data_root``."""

    data_root: str

    def resolve(self, path: str) -> str:
        """The full path of a run-config path; it must stay inside the data root, so a typo or a
        ``..`` cannot make a job read or overwrite anything else."""
        root = storage.normalize(self.data_root)
        full = storage.normalize(path if "://" in path or path.startswith("/") else storage.join(root, path))
        if full != root and not full.startswith(root + "/"):
            raise FlywheelInputError(f"path {path!r} is outside the data root {root}")
        return full

    # What the sensor and the CLI read, through the resource (the seam tests swap).
    def list_dir(self, path: str) -> list[storage.Entry]:
        return storage.list_dir(self.resolve(path))

    def snapshots(self, path: str) -> list[str]:
        return list_snapshots(self.resolve(path))

    def raw_sources(self, jobs=None) -> dict[str, str]:
        """The raw sources behind ``jobs`` (default all; the infobase always, its snapshots are the
        partitions), resolved, each with how a partition finds its snapshot there."""
        return {self.resolve(path): match for path, match in raw_sources(jobs).items()}

    def current_snapshot(self, job: SplitJob) -> str | None:
        """The snapshot a current-snapshot layout's target holds (None: nothing published yet)."""
        return publish.published_snapshot(self.resolve(job.target_path))


class SparkJobRunner(ConfigurableResource):
    """Runs one flywheel Spark job script and returns what the script itself reported."""

    def run(self, context: AssetExecutionContext, job: str, arguments: Mapping[str, str]) -> Sequence:
        raise NotImplementedError


class LocalSparkRunner(SparkJobRunner):
    """The job script in a subprocess, through Pipes, as a client of the local Spark server."""

    server: LocalSpark

    def run(self, context: AssetExecutionContext, job: str, arguments: Mapping[str, str]) -> Sequence:
        env = {"FLYWHEEL_SPARK_RUNTIME": "local", "FLYWHEEL_SPARK_REMOTE": self.server.url(),
               "FLYWHEEL_SPARK_LOG": self.server.log_path()}
        command = [sys.executable, str(script_path(job)), *job_arguments(arguments)]
        context.log.info(f"running {job} on local Spark: {' '.join(command[1:])}")
        try:
            invocation = PipesSubprocessClient().run(context=context, command=command, env=env)
        except DagsterPipesExecutionError as exc:
            error = reported_error(context)
            raise Failure(description=f"{job} failed: {error.message.strip() if error else exc}",
                          allow_retries=retryable(error)) from exc
        return invocation.get_results()  # the materialization and the asset check results


def glue_links(region: str, job_name: str, run_id: str) -> str:
    run = f"https://{region}.console.aws.amazon.com/gluestudio/home?region={region}#/job/{job_name}/run/{run_id}"
    logs = (f"https://{region}.console.aws.amazon.com/cloudwatch/home?region={region}"
            f"#logsV2:log-groups/log-group/$252Faws-glue$252Fjobs$252Ferror/log-events/{run_id}")
    return f"job run: {run}\nerror log: {logs}"


def pipes_over_s3(pipes_s3: str, interval: float) -> dict:
    """Context in and messages out through s3://bucket/prefix/: streamed while the job runs."""
    from dagster_aws.pipes import PipesS3ContextInjector, PipesS3MessageReader

    bucket, prefix = storage.split_s3(pipes_s3)
    s3 = storage.s3_client()
    return {
        "context_injector": PipesS3ContextInjector(bucket=bucket, client=s3, key_prefix=prefix.rstrip("/") + "/"),
        "message_reader": PipesS3MessageReader(bucket=bucket, client=s3, interval=interval),
    }


GLUE_LOG_GROUPS = (("/aws-glue/jobs/output", "stdout"), ("/aws-glue/jobs/error", "stderr"))
LOG_POLL_SECONDS = 2.0


def driver_log_reader(**kwargs):
    """dagster-aws's CloudWatch log reader, polling every few seconds and ending with the session.

    Its own loop (dagster-aws 0.29) calls GetLogEvents back to back and looks at the end of the
    session only after a batch of new lines: once the job is quiet it polls without pause, forever,
    in a non-daemon thread that keeps the step's process alive; and a stream that never appears (a
    driver that wrote nothing there) holds the step 60 s after the job ended. Here the reader starts
    at once, waits for its stream, drains it once the session has closed, then returns."""
    from dagster._core.pipes.utils import forward_only_logs_to_file
    from dagster_aws.pipes import PipesCloudWatchLogReader

    class DriverLogReader(PipesCloudWatchLogReader):
        def target_is_readable(self, params) -> bool:
            return True  # the stream appears with the driver's first line (or never): waited for below

        def _start(self, params, is_session_closed) -> None:
            request = {"logGroupName": params.get("log_group") or self.log_group, "startFromHead": True,
                       "logStreamName": params.get("log_stream") or self.log_stream}
            if self.start_time:
                request["startTime"] = self.start_time
            while True:
                closing = is_session_closed.is_set()  # read once more after the job ended
                try:
                    response = self.client.get_log_events(**request)
                except self.client.exceptions.ResourceNotFoundException:  # nothing written yet
                    if closing:
                        return
                    is_session_closed.wait(LOG_POLL_SECONDS)
                    continue
                except Exception as exc:  # noqa: BLE001 - logs are a courtesy: never fail the step for them
                    self.target_stream.write(f"[flywheel] stopped reading {request['logGroupName']}: {exc}\n")
                    return
                for event in response.get("events", []):
                    for line in event.get("message", "").splitlines():
                        if line:
                            forward_only_logs_to_file(line, self.target_stream)
                request["nextToken"] = response["nextForwardToken"]
                if not response.get("events"):
                    if closing:
                        return
                    is_session_closed.wait(LOG_POLL_SECONDS)

    return DriverLogReader(**kwargs)


class DriverLogForwarding:
    """A Glue or EMR Serverless client, except that once a job run starts, its driver's stdout and
    stderr (the service writes them to CloudWatch, in streams named after the run) are tailed into
    this step's own stdout and stderr: the run's logs show them while the job runs. The run id is
    only known after start_job_run, which is what the message reader's ``add_log_reader`` is for.
    ``streams``: the start_job_run response -> (log group, log stream, "stdout"/"stderr")."""

    def __init__(self, client, message_reader, logs, streams):
        self._client, self._reader, self._logs, self._streams = client, message_reader, logs, streams
        self._started_ms = int(time.time() * 1000)

    def start_job_run(self, **params):
        response = self._client.start_job_run(**params)
        for group, stream, target in self._streams(response):
            self._reader.add_log_reader(driver_log_reader(
                client=self._logs, log_group=group, log_stream=stream, start_time=self._started_ms,
                target_stream=getattr(sys, target), debug_info=f"driver {target} ({group})"))
        return response

    def __getattr__(self, name):
        return getattr(self._client, name)


class GlueSparkRunner(SparkJobRunner):
    """The job script as the run book's Glue job, through Dagster Pipes (context and messages on S3)."""

    region: str = "us-east-1"
    pipes_s3: str  # s3://bucket/prefix/ for Pipes context and messages
    job_prefix: str = GLUE_JOB_PREFIX
    message_interval_sec: float = 5.0

    def glue_client(self):
        return storage.aws_client("glue", self.region)

    def run(self, context: AssetExecutionContext, job: str, arguments: Mapping[str, str]) -> Sequence:
        from dagster_aws.pipes import PipesGlueClient

        script_path(job)  # a known job
        pipes = pipes_over_s3(self.pipes_s3, self.message_interval_sec)
        glue = DriverLogForwarding(self.glue_client(), pipes["message_reader"], storage.aws_client("logs", self.region),
                                   lambda started: [(g, started["JobRunId"], t) for g, t in GLUE_LOG_GROUPS])
        client = PipesGlueClient(client=glue, **pipes, forward_termination=True)  # terminating the run stops Glue's
        name = JOBS[job].glue_job_name(self.job_prefix)
        args = {f"--{k}": str(v) for k, v in arguments.items()}
        try:
            invocation = client.run(context=context, start_job_run_params={"JobName": name, "Arguments": args})
        except RuntimeError as exc:  # "Glue job <name> run <id> completed with status FAILED: ..."
            match = re.search(r"run (\S+) completed with status", str(exc))
            links = glue_links(self.region, name, match.group(1)) if match else ""
            error = reported_error(context)
            raise Failure(description=_lines(str(exc).strip(), error.message.strip() if error else "", links),
                          allow_retries=retryable(error)) from exc
        return invocation.get_results()  # the materialization and the asset check results


class EMRServerlessSparkRunner(SparkJobRunner):
    """The job script as an EMR Serverless Spark job run, through Dagster Pipes (S3), using the
    scripts and bundle `flywheel deploy` uploaded."""

    region: str = "us-east-1"
    application_id: str
    execution_role_arn: str
    artifacts_s3: str
    pipes_s3: str
    message_interval_sec: float = 5.0
    log_group: str = "/aws/emr-serverless"  # where each run's driver stdout/stderr go (CloudWatch)

    def emr_client(self):
        return storage.aws_client("emr-serverless", self.region)

    def start_params(self, job: str, arguments: Mapping[str, str]) -> dict:
        from flywheel_assets.deploy import bundle_uri, script_uri

        return {
            "applicationId": self.application_id,
            "executionRoleArn": self.execution_role_arn,
            "name": f"flywheel-{job}",
            "jobDriver": {"sparkSubmit": {
                "entryPoint": script_uri(self.artifacts_s3, job),
                "entryPointArguments": job_arguments(arguments),
                "sparkSubmitParameters": f"--py-files {bundle_uri(self.artifacts_s3)} "
                                         "--conf spark.sql.sources.partitionOverwriteMode=dynamic",
            }},
            "configurationOverrides": {"monitoringConfiguration": {"cloudWatchLoggingConfiguration": {
                "enabled": True, "logGroupName": self.log_group}}},
        }

    def driver_streams(self, started: dict) -> list[tuple[str, str, str]]:
        """EMR Serverless's CloudWatch streams of a run's Spark driver."""
        base = f"/applications/{started['applicationId']}/jobs/{started['jobRunId']}/SPARK_DRIVER"
        return [(self.log_group, f"{base}/{t}", t) for t in ("stdout", "stderr")]

    def run(self, context: AssetExecutionContext, job: str, arguments: Mapping[str, str]) -> Sequence:
        from dagster_aws.pipes import PipesEMRServerlessClient

        script_path(job)
        pipes = pipes_over_s3(self.pipes_s3, self.message_interval_sec)
        emr = DriverLogForwarding(self.emr_client(), pipes["message_reader"], storage.aws_client("logs", self.region),
                                  self.driver_streams)
        client = PipesEMRServerlessClient(client=emr, **pipes, forward_termination=True)
        try:
            invocation = client.run(context=context, start_job_run_params=self.start_params(job, arguments))
        except RuntimeError as exc:
            error = reported_error(context)
            raise Failure(description=_lines(f"EMR Serverless run of {job}: {exc}", error.message.strip() if error else ""),
                          allow_retries=retryable(error)) from exc
        return invocation.get_results()  # the materialization and the asset check results


class CleanRoomsReporting(ConfigurableResource):
    """Where the readiness report reads Clean Rooms / Entity Resolution from, and writes to."""

    analysis_root: str
    query_aws: bool = False  # locally there is no Clean Rooms: the report says so instead
    region: str = "us-east-1"
    membership_id: str = ""  # the membership reported on; "" = every membership

    def client(self, service: str):
        if not self.query_aws:
            return None
        return storage.aws_client(service, self.region)


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
            "reporting": CleanRoomsReporting(analysis_root=settings.analysis_root,
                                             membership_id=settings.cleanrooms_membership_id),
        }
    return {
        "lake": Lake(data_root=settings.data_root),
        "catalog": GlueAthenaCatalog(database=settings.database, region=settings.aws_region,
                                     workgroup=settings.athena_workgroup, results_s3=settings.athena_results_s3),
        "spark_jobs": aws_runner(settings),
        "reporting": CleanRoomsReporting(analysis_root=settings.analysis_root, query_aws=True, region=settings.aws_region,
                                         membership_id=settings.cleanrooms_membership_id),
    }


def aws_runner(settings: Settings) -> SparkJobRunner:
    """Glue by default; EMR Serverless when FLYWHEEL_AWS_SPARK_RUNTIME=emr-serverless."""
    if settings.aws_spark_runtime == "emr-serverless":
        return EMRServerlessSparkRunner(region=settings.aws_region, application_id=settings.emr_application_id,
                                        execution_role_arn=settings.emr_execution_role_arn,
                                        artifacts_s3=settings.artifacts_s3, pipes_s3=settings.pipes_s3)
    return GlueSparkRunner(region=settings.aws_region, pipes_s3=settings.pipes_s3, job_prefix=settings.glue_job_prefix)
