"""Production execution: `flywheel deploy` against moto, and the real PipesGlueClient driving a Glue
stand-in that really runs the deployed script (downloaded from moto's S3) with local Spark."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

import boto3
import pytest
from dagster import AssetKey, DagsterInstance, materialize

from flywheel_assets import settings as fw_settings
from flywheel_assets.core import publish
from flywheel_assets.demo_data import addressable_dates, attribute_names
from flywheel_assets.deploy import deploy
from flywheel_assets.resources import GlueSparkRunner, Lake
from flywheel_assets.settings import get_settings
from flywheel_assets_tests.conftest import SMALL, assets_of, step
from flywheel_assets_tests.test_split_jobs import LATEST

ARTIFACTS = "flywheel-artifacts"


@pytest.fixture
def deployed(aws_env, tmp_path):
    s3 = boto3.client("s3")
    for bucket in (ARTIFACTS, "flywheel-pipes"):
        s3.create_bucket(Bucket=bucket)
    settings = get_settings({"FLYWHEEL_ENV": "aws", "FLYWHEEL_HOME": str(tmp_path / "home"),
                             "FLYWHEEL_ARTIFACTS_S3": f"s3://{ARTIFACTS}/glue/flywheel/",
                             "FLYWHEEL_PIPES_S3": "s3://flywheel-pipes/pipes/",
                             "FLYWHEEL_GLUE_ROLE": "arn:aws:iam::123456789012:role/flywheel-glue",
                             "FLYWHEEL_GLUE_WORKERS": "24"})  # the production Terraform's count; the run book's is 8
    first = deploy(settings)
    return settings, first


def test_deploy_creates_the_run_book_jobs_then_changes_nothing(deployed):
    settings, first = deployed
    glue = boto3.client("glue")
    names = ["etl-omc-flywheel-prod-infobase-split-and-bucket", "etl-omc-flywheel-prod-addressable-bucket",
             "etl-omc-flywheel-prod-infobase-split-and-part", "etl-omc-flywheel-prod-addressable-split-and-part"]
    assert {n: a for n, (a, _) in first.jobs.items()} == {n: "create" for n in names}
    job = glue.get_job(JobName=names[0])["Job"]
    assert (job["GlueVersion"], job["WorkerType"], job["NumberOfWorkers"], job["Timeout"]) == ("5.0", "G.4X", 24, 2880)
    assert job["Command"]["ScriptLocation"] == f"s3://{ARTIFACTS}/glue/flywheel/scripts/infobase_split_and_bucket.py"
    args = job["DefaultArguments"]
    assert args["--enable-glue-datacatalog"] == "true"
    assert args["--conf"] == "spark.sql.sources.partitionOverwriteMode=dynamic"
    assert args["--extra-py-files"].startswith(f"s3://{ARTIFACTS}/glue/flywheel/flywheel_jobs-")
    # the run book's `aws glue start-job-run` commands work as written, or with no arguments at all
    data = "s3://omc-flywheel-data-us-east-1-prod"
    assert {k: args[k] for k in ("--SNAPSHOT_DT", "--SOURCE_PATH", "--TARGET_PATH", "--CSV_FILE")} == {
        "--SNAPSHOT_DT": "_NONE_", "--SOURCE_PATH": f"{data}/opus/infobase_attributes/raw_input/",
        "--TARGET_PATH": f"{data}/omc_cleanroom_data/split_cluster/infobase_attributes/",
        "--CSV_FILE": f"{data}/omc_cleanroom_data/omc_flywheel_infobase_table_split_lowercase.csv"}
    from flywheel_assets.spark_jobs.entry import job_arguments

    parsed = job_arguments([x for pair in args.items() for x in pair])  # what the script reads from them
    assert (parsed["SNAPSHOT_DT"], parsed["TARGET_PATH"]) == ("_NONE_", args["--TARGET_PATH"])
    # no mapping for the addressable part job: without one it takes every column, as in production
    part = glue.get_job(JobName="etl-omc-flywheel-prod-addressable-split-and-part")["Job"]["DefaultArguments"]
    assert "--CSV_FILE" not in part and part["--SOURCE_PATH"] == f"{data}/opus/addressable_ids/raw_input/"
    calls = []
    glue.meta.events.register("provide-client-params.glue.*", lambda params, event_name, **_: calls.append(event_name))
    storage_calls = []
    from flywheel_assets.core import storage

    storage.s3_client().meta.events.register("provide-client-params.s3.PutObject",
                                             lambda **_: storage_calls.append("put"))
    second = deploy(settings, glue=glue)
    assert {a for a, _ in second.jobs.values()} == {"unchanged"} and not second.uploads
    assert not [c for c in calls if c.endswith(("CreateJob", "UpdateJob"))] and not storage_calls
    dry = deploy(get_settings({**{"FLYWHEEL_ENV": "aws", "FLYWHEEL_HOME": "/tmp/x",
                                  "FLYWHEEL_ARTIFACTS_S3": f"s3://{ARTIFACTS}/glue/flywheel/",
                                  "FLYWHEEL_GLUE_ROLE": "arn:aws:iam::123456789012:role/other"}}), dry_run=True, glue=glue)
    assert {a for a, _ in dry.jobs.values()} == {"update"}
    assert glue.get_job(JobName=names[0])["Job"]["Role"].endswith("role/flywheel-glue")  # dry run changed nothing


def test_uploaded_bundle_is_importable_on_its_own(deployed, tmp_path):
    _, first = deployed
    bundle_uri = next(iter(first.jobs.values()))[1]["DefaultArguments"]["--extra-py-files"]
    bucket, key = bundle_uri[5:].split("/", 1)
    target = tmp_path / "bundle.zip"
    boto3.client("s3").download_file(bucket, key, str(target))
    # -S: no site-packages, so nothing can come from the editable install of this checkout
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import flywheel_assets.spark_jobs.split as s, "
            "flywheel_assets.spark_jobs.entry as e; print(s.__file__); print(sorted(s.JOBS))")
    out = subprocess.run([sys.executable, "-S", "-c", code, str(target)], capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[0].startswith(str(target))
    assert out.stdout.splitlines()[1] == str(sorted(["addressable_bucket", "addressable_split_and_part",
                                                      "infobase_split_and_bucket", "infobase_split_and_part"]))
    names = zipfile.ZipFile(target).namelist()
    assert {"flywheel_assets/spark_jobs/split.py", "flywheel_assets/core/jobs.py"} <= set(names)
    assert not any(n.startswith(("flywheel_assets/pipelines", "flywheel_assets/definitions")) for n in names)


@dataclass
class _Run:
    proc: subprocess.Popen
    workdir: str
    forced_state: str | None = None
    stopped: bool = False
    final: dict | None = None
    output: list[str] | None = None
    shippers: list[threading.Thread] | None = None


def ship_output(pipe, lines: list[str], logs, group: str, stream: str) -> None:
    """What Glue does with a driver's output: each line into CloudWatch Logs (stdout to group
    /aws-glue/jobs/output, stderr to /aws-glue/jobs/error), a stream named after the run id, while
    the job runs."""
    logs.create_log_stream(logGroupName=group, logStreamName=stream)
    for line in pipe:
        lines.append(line)
        logs.put_log_events(logGroupName=group, logStreamName=stream,
                            logEvents=[{"timestamp": int(time.time() * 1000), "message": line.rstrip("\n") or " "}])


def test_deploy_says_which_catalog_locations_lake_formation_does_not_know(deployed):
    """Production's first CTAS was denied until its source location was registered."""
    from botocore.stub import Stubber

    from flywheel_assets.deploy import catalog_locations

    settings, first = deployed
    assert first.warnings == []  # Lake Formation manages nothing here: IAM alone governs
    lf = boto3.client("lakeformation")
    data = "s3://omc-flywheel-data-us-east-1-prod/omc_cleanroom_data"
    lf.register_resource(ResourceArn="arn:aws:s3:::omc-flywheel-data-us-east-1-prod/omc_cleanroom_data/split_cluster",
                         UseServiceLinkedRole=True)
    dry = deploy(settings, dry_run=True, lakeformation=lf)
    unregistered = [w.split(": ", 1)[1].split(" is not registered")[0] for w in dry.warnings]
    assert unregistered == [f"{data}/split_part/", f"{data}/cleanroom_tables/bucketed/"]
    assert "aws lakeformation register-resource --resource-arn arn:aws:s3:::omc-flywheel-data-us-east-1-prod/" \
           "omc_cleanroom_data/split_part --use-service-linked-role" in dry.warnings[0]
    assert len(catalog_locations(settings)) == 4  # both split_cluster roots are covered by the registration
    denied = boto3.client("lakeformation")
    stub = Stubber(denied)
    stub.add_client_error("list_resources", "AccessDeniedException", "not allowed")
    with stub:
        warnings = deploy(settings, dry_run=True, lakeformation=denied).warnings
    assert len(warnings) == 1 and "cannot list registered locations (AccessDeniedException)" in warnings[0]


def job_env(bundle: str, endpoint: str, spark_remote: str) -> dict:
    """A stand-in job's environment: the bundle, moto's endpoint and its keys, nothing of ours.
    Its Spark: a classic session of its own, as the script makes on Glue or EMR (a JVM started per
    run), or with ``spark_remote`` the test run's server, for the tests about what surrounds the
    job (retries, messages, credentials, data), which need no JVM started per job run."""
    env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/root"), "PYTHONPATH": bundle,
           "AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "testing",
           "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
    if "JAVA_HOME" in os.environ:
        env["JAVA_HOME"] = os.environ["JAVA_HOME"]
    if spark_remote:
        env["FLYWHEEL_SPARK_REMOTE"] = spark_remote
    return env


class GlueStandIn:
    """moto records the job runs; this runs them: the job's ScriptLocation and --extra-py-files are
    downloaded from (moto's) S3 and executed as Glue would, `python script.py --ARG value ...`, on
    local Spark (see job_env). ``force_state`` makes the next run end in that state (TIMEOUT, ERROR...)."""

    def __init__(self, endpoint: str, spark_remote: str = ""):
        self.glue = boto3.client("glue")
        self.s3 = boto3.client("s3")
        self.endpoint = endpoint
        self.spark_remote = spark_remote
        self.runs: dict[str, _Run] = {}
        self.force_state: str | None = None
        self.force_once = False
        self.started: list[dict] = []
        self.logs = boto3.client("logs")
        for group in ("/aws-glue/jobs/output", "/aws-glue/jobs/error"):
            self.logs.create_log_group(logGroupName=group)

    @property
    def meta(self):
        return self.glue.meta

    def _download(self, uri: str, folder: str) -> str:
        bucket, key = uri[5:].split("/", 1)
        local = os.path.join(folder, key.rsplit("/", 1)[-1])
        self.s3.download_file(bucket, key, local)
        return local

    def start_job_run(self, JobName: str, Arguments: dict, **_):
        self.started.append({"JobName": JobName, "Arguments": dict(Arguments)})
        job = self.glue.get_job(JobName=JobName)["Job"]
        run_id = self.glue.start_job_run(JobName=JobName, Arguments=Arguments)["JobRunId"]
        workdir = tempfile.mkdtemp(prefix="glue-run-")
        script = self._download(job["Command"]["ScriptLocation"], workdir)
        bundle = self._download(job["DefaultArguments"]["--extra-py-files"], workdir)
        args = [item for pair in {**job["DefaultArguments"], **Arguments}.items() for item in pair]
        env = job_env(bundle, self.endpoint, self.spark_remote)
        proc = subprocess.Popen([sys.executable, script, *args], env=env, cwd=workdir,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        lines: list[str] = []  # both streams, as they come
        shippers = [threading.Thread(target=ship_output, args=(pipe, lines, self.logs, group, run_id), daemon=True)
                    for pipe, group in ((proc.stdout, "/aws-glue/jobs/output"), (proc.stderr, "/aws-glue/jobs/error"))]
        for shipper in shippers:
            shipper.start()
        self.runs[run_id] = _Run(proc, workdir, self.force_state, output=lines, shippers=shippers)
        if self.force_state:  # a run that times out or errors is cut short, as Glue would
            proc.kill()
        if self.force_once:
            self.force_state = None
        return {"JobRunId": run_id}

    def get_job_run(self, JobName: str, RunId: str, **_):
        response = self.glue.get_job_run(JobName=JobName, RunId=RunId)
        run = self.runs[RunId]
        if run.final:
            return run.final
        if run.proc.poll() is None and not run.stopped:
            response["JobRun"]["JobRunState"] = "RUNNING"
            return response
        run.proc.wait()
        for shipper in run.shippers:
            shipper.join(timeout=30)
        output = "".join(run.output) if not run.stopped else ""
        if run.stopped:
            state = "STOPPED"
        elif run.forced_state:
            state = run.forced_state
        else:
            state = "SUCCEEDED" if run.proc.returncode == 0 else "FAILED"
        response["JobRun"]["JobRunState"] = state
        if state != "SUCCEEDED":
            response["JobRun"]["ErrorMessage"] = output.strip().splitlines()[-1] if output.strip() else state
        shutil.rmtree(run.workdir, ignore_errors=True)
        run.final = response
        return response

    def batch_stop_job_run(self, JobName: str, JobRunIds: list[str]):
        for run_id in JobRunIds:
            self.runs[run_id].proc.terminate()
            self.runs[run_id].stopped = True
        return {"SuccessfulSubmissions": [{"JobName": JobName, "JobRunId": r} for r in JobRunIds], "Errors": []}


@pytest.fixture
def glue_stand_in(deployed, monkeypatch):
    """Glue running the deployed scripts with a Spark session of their own, as on Glue."""
    settings, _ = deployed
    stand_in = GlueStandIn(os.environ["AWS_ENDPOINT_URL"])
    monkeypatch.setattr(GlueSparkRunner, "glue_client", lambda self: stand_in)
    return settings, stand_in


@pytest.fixture
def glue_on_test_server(glue_stand_in, spark_url):
    """The same, the scripts' Spark the test run's server (job_env)."""
    glue_stand_in[1].spark_remote = spark_url
    return glue_stand_in


def materialize_on_glue(settings, lake, name, snapshot=LATEST, config=None, assets=None):
    instance = DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("snapshot_dt", [snapshot])
    runner = GlueSparkRunner(region="us-east-1", pipes_s3=settings.pipes_s3, message_interval_sec=0.5)
    return materialize([step(assets or assets_of(lake), name)], partition_key=snapshot, instance=instance, raise_on_error=False,
                       resources={"lake": Lake(data_root=str(lake)), "spark_jobs": runner}, run_config=config or {})


def test_split_asset_runs_the_deployed_script_through_pipes_glue_client(glue_stand_in, lake, capsys):
    settings, stand_in = glue_stand_in
    result = materialize_on_glue(settings, lake, "addressable_bucket")
    assert result.success, [e.step_failure_data.error.message for e in result.get_step_failure_events()]
    # the Glue driver's output (CloudWatch /aws-glue/jobs/output, stream = run id) in the step's stdout
    run_id = result.asset_materializations_for_node("addressable_bucket")[0].metadata["AWS Glue Job Run ID"].value
    shipped = [e["message"] for e in boto3.client("logs").get_log_events(
        logGroupName="/aws-glue/jobs/output", logStreamName=run_id, startFromHead=True)["events"]]
    summary = next(line for line in shipped if line.startswith('{"job": "addressable_bucket"'))
    assert summary in capsys.readouterr().out
    started = stand_in.started[0]
    assert started["JobName"] == "etl-omc-flywheel-prod-addressable-bucket"
    assert started["Arguments"]["--SNAPSHOT_DT"] == LATEST
    assert started["Arguments"]["--SOURCE_PATH"] == str(lake / fw_settings.ADDRESSABLE_COMPACTION)
    assert {"--dagster-pipes-context", "--dagster-pipes-messages"} <= set(started["Arguments"])
    out = lake / fw_settings.SPLIT_CLUSTER_ADDRESSABLE
    staged = publish.staged(str(out))  # written and staged; ext_tables switches readers to it
    assert staged.snapshot_dt == LATEST
    import pyarrow.parquet as pq

    assert pq.read_table(out / staged.tables["addressable_ids"]).num_rows == SMALL.rows
    mat = result.asset_materializations_for_node("addressable_bucket")[0]
    assert mat.asset_key == AssetKey(["split_cluster", "addressable_ids"])
    assert mat.metadata["dagster/row_count"].value == SMALL.rows
    assert mat.metadata["source_rows"].value == SMALL.rows and mat.metadata["snapshot_dt"].value == LATEST
    assert mat.metadata["source_snapshot_dt"].value == addressable_dates(SMALL)[-1]  # landed a day earlier
    assert mat.metadata["AWS Glue Job Run ID"].value.startswith("jr_")
    assert {e.check_name: e.passed for e in result.get_asset_check_evaluations()} == {
        "row_count": True, "columns": True, "key_not_null": True, "file_sizing": True, "not_skipped": True}


def test_production_inputs_through_glue_land_every_mapped_column_and_row(glue_on_test_server, lake):
    """The production-format mapping and sources through the deployed script on the Glue stand-in:
    every mapped column in its table, lowercased, key first, every source row; the addressable
    part job without a mapping (as deployed) takes every column of the earlier-landed source."""
    import pyarrow.parquet as pq

    from flywheel_assets.core.mapping import load_mapping

    settings, stand_in = glue_on_test_server
    for asset in ("infobase_split_part", "addressable_split_part"):
        result = materialize_on_glue(settings, lake, asset)
        assert result.success, [e.step_failure_data.error.message for e in result.get_step_failure_events()]
    assert "--CSV_FILE" not in stand_in.started[1]["Arguments"]  # the default addressable mapping is absent
    source = pq.read_table(lake / fw_settings.INFOBASE_RAW / f"snapshot_dt={LATEST}")
    by_lower = {c.lower(): c for c in source.column_names}
    mapping = load_mapping(str(lake / fw_settings.INFOBASE_PART_MAPPING))
    assert len(mapping.tables) == len(SMALL.tables)
    for table, columns in mapping.tables.items():
        out = pq.read_table(lake / fw_settings.SPLIT_PART_INFOBASE / table / f"snapshot_dt={LATEST}")
        assert out.column_names == ["customer_user_id", *columns]
        expected = source.select([by_lower[c] for c in out.column_names]).rename_columns(out.column_names)
        assert sorted(out.to_pylist(), key=lambda r: r["customer_user_id"]) == sorted(
            expected.to_pylist(), key=lambda r: r["customer_user_id"])
    addressable = pq.read_table(lake / fw_settings.SPLIT_PART_ADDRESSABLE / f"snapshot_dt={LATEST}")
    raw = pq.read_table(lake / fw_settings.ADDRESSABLE_RAW / f"snapshot_dt={addressable_dates(SMALL)[-1]}")
    assert addressable.column_names == [c.lower() for c in raw.column_names] and addressable.num_rows == raw.num_rows


def test_no_credentials_in_job_arguments_events_or_objects(glue_on_test_server, lake, monkeypatch):
    """The orchestrator's keys stay in its environment: not in Glue arguments, Pipes messages
    on S3, event log or metadata (the job runs with its own role)."""
    from flywheel_assets_tests.conftest import SECRETS, leaked

    for key, value in SECRETS.items():
        monkeypatch.setenv(key, value)
    settings, stand_in = glue_on_test_server
    result = materialize_on_glue(settings, lake, "addressable_bucket")
    assert result.success
    s3 = boto3.client("s3")
    objects = {f"s3://{b['Name']}/{o['Key']}": s3.get_object(Bucket=b["Name"], Key=o["Key"])["Body"].read().decode(
        "utf-8", "replace") for b in s3.list_buckets()["Buckets"]
        for o in s3.list_objects_v2(Bucket=b["Name"]).get("Contents", [])}
    assert any(k.endswith("/1.json") for k in objects)  # the Pipes messages were searched
    events = {str(i): repr(e) for i, e in enumerate(result.all_events)}
    assert leaked({"arguments": repr(stand_in.started), **events, **objects}, lake) == []


def test_failed_glue_run_reaches_the_user_with_error_run_id_and_logs(glue_stand_in, lake):
    settings, stand_in = glue_stand_in
    mapping = lake / fw_settings.INFOBASE_BUCKET_MAPPING
    column = attribute_names(SMALL)[0]
    assets = assets_of(lake)  # the definitions as loaded before the mapping was damaged
    mapping.write_bytes(mapping.read_bytes() + f"IBE_01,{column.lower()},again,{column},1\r\n".encode())
    result = materialize_on_glue(settings, lake, "infobase_split", assets=assets)
    assert not result.success
    message = result.get_step_failure_events()[0].step_failure_data.error.message
    assert "Glue job etl-omc-flywheel-prod-infobase-split-and-bucket run jr_" in message
    assert "completed with status FAILED" in message
    assert f"column '{column.lower()}' listed twice for table IBE_01" in message
    assert "gluestudio/home?region=us-east-1#/job/etl-omc-flywheel-prod-infobase-split-and-bucket/run/jr_" in message
    assert "log-events/jr_" in message
    assert not (lake / fw_settings.SPLIT_CLUSTER_INFOBASE).exists()
    assert len(stand_in.started) == 1  # bad input fails the same way every time: never retried


def test_glue_timeout_is_retried_twice_then_reported_as_such(glue_stand_in, lake):
    settings, stand_in = glue_stand_in
    stand_in.force_state = "TIMEOUT"  # every run times out: a transient failure that does not go away
    result = materialize_on_glue(settings, lake, "addressable_bucket")
    assert not result.success
    assert len(stand_in.started) == 3  # production's policy: 2 retries (delays set to 0 in the tests)
    from flywheel_assets.messages import step_error_message

    message = step_error_message(result.get_step_failure_events()[0].step_failure_data.error)
    assert "completed with status TIMEOUT" in message and "error log:" in message
    assert message.endswith("(failed again after 2 retries)")


def test_a_transient_glue_failure_is_retried_and_the_asset_materializes(glue_on_test_server, lake):
    settings, stand_in = glue_on_test_server
    stand_in.force_state = "ERROR"
    stand_in.force_once = True  # the next run only
    result = materialize_on_glue(settings, lake, "addressable_bucket")
    assert result.success and len(stand_in.started) == 2
    assert [e.event_type_value for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"] == [
        "STEP_UP_FOR_RETRY"]


class EMRServerlessStandIn:
    """EMR Serverless as PipesEMRServerlessClient sees it: start_job_run runs the deployed entry
    point from (moto's) S3 with the --py-files bundle and the driverEnv variables Pipes added."""

    def __init__(self, endpoint: str, spark_remote: str = ""):
        self.s3 = boto3.client("s3")
        self.endpoint = endpoint
        self.spark_remote = spark_remote
        self.runs: dict[str, subprocess.Popen] = {}
        self.started: list[dict] = []

    def _download(self, uri: str, folder: str) -> str:
        bucket, key = uri[5:].split("/", 1)
        local = os.path.join(folder, key.rsplit("/", 1)[-1])
        self.s3.download_file(bucket, key, local)
        return local

    def start_job_run(self, **params):
        self.started.append(params)
        submit = params["jobDriver"]["sparkSubmit"]
        workdir = tempfile.mkdtemp(prefix="emr-run-")
        script = self._download(submit["entryPoint"], workdir)
        words = submit["sparkSubmitParameters"].split()
        bundle = self._download(words[words.index("--py-files") + 1], workdir)
        env = job_env(bundle, self.endpoint, self.spark_remote)
        for word in words:
            if word.startswith("spark.emr-serverless.driverEnv."):
                key, value = word[len("spark.emr-serverless.driverEnv."):].split("=", 1)
                env[key] = value
        run_id = f"00f{len(self.runs):013d}"
        proc = subprocess.Popen([sys.executable, script, *submit["entryPointArguments"]], env=env,
                                cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.runs[run_id] = proc
        logging = params["configurationOverrides"]["monitoringConfiguration"]["cloudWatchLoggingConfiguration"]
        if logging["enabled"]:  # EMR Serverless's layout: <group> /applications/<app>/jobs/<run>/SPARK_DRIVER/<stream>
            logs, group = boto3.client("logs"), logging["logGroupName"]
            if not logs.describe_log_groups(logGroupNamePrefix=group)["logGroups"]:
                logs.create_log_group(logGroupName=group)
            base = f"/applications/{params['applicationId']}/jobs/{run_id}/SPARK_DRIVER"
            for pipe, name in ((proc.stdout, "stdout"), (proc.stderr, "stderr")):
                threading.Thread(target=ship_output, args=(pipe, [], logs, group, f"{base}/{name}"), daemon=True).start()
        return {"applicationId": params["applicationId"], "jobRunId": run_id, "arn": f"arn:aws:emr-serverless:::{run_id}"}

    def get_job_run(self, applicationId: str, jobRunId: str):
        proc = self.runs[jobRunId]
        state = "RUNNING" if proc.poll() is None else ("SUCCESS" if proc.returncode == 0 else "FAILED")
        return {"jobRun": {"applicationId": applicationId, "jobRunId": jobRunId, "state": state,
                           "stateDetails": "" if state != "FAILED" else "Job failed", "arn": f"arn:{jobRunId}",
                           "configurationOverrides": {}}}

    def get_application(self, applicationId: str):
        return {"application": {"applicationId": applicationId, "type": "Spark", "monitoringConfiguration": {}}}

    def get_dashboard_for_job_run(self, applicationId: str, jobRunId: str):
        return {"url": f"https://emr-studio.example/{jobRunId}"}


def test_emr_serverless_runner_runs_the_deployed_script_through_pipes(deployed, lake, monkeypatch, capsys, spark_url):
    from flywheel_assets.resources import EMRServerlessSparkRunner

    settings, _ = deployed
    stand_in = EMRServerlessStandIn(os.environ["AWS_ENDPOINT_URL"], spark_url)
    monkeypatch.setattr(EMRServerlessSparkRunner, "emr_client", lambda self: stand_in)
    runner = EMRServerlessSparkRunner(application_id="00fabc", execution_role_arn="arn:aws:iam::123456789012:role/emr",
                                      artifacts_s3=settings.artifacts_s3, pipes_s3=settings.pipes_s3,
                                      message_interval_sec=0.5)
    instance = DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("snapshot_dt", [LATEST])
    result = materialize([step(assets_of(lake), "addressable_bucket")], partition_key=LATEST, instance=instance,
                         resources={"lake": Lake(data_root=str(lake)), "spark_jobs": runner})
    assert result.success
    # the driver's stdout, shipped to CloudWatch as EMR Serverless does, in the step's stdout
    assert '{"job": "addressable_bucket"' in capsys.readouterr().out
    assert stand_in.started[0]["configurationOverrides"]["monitoringConfiguration"][
        "cloudWatchLoggingConfiguration"] == {"enabled": True, "logGroupName": "/aws/emr-serverless"}
    submit = stand_in.started[0]["jobDriver"]["sparkSubmit"]
    assert submit["entryPoint"] == f"{settings.artifacts_s3}scripts/addressable_bucket.py"
    assert submit["entryPointArguments"][:2] == ["--SNAPSHOT_DT", LATEST]
    mat = result.asset_materializations_for_node("addressable_bucket")[0]
    assert mat.metadata["source_rows"].value == SMALL.rows
    assert publish.staged(str(lake / fw_settings.SPLIT_CLUSTER_ADDRESSABLE)).snapshot_dt == LATEST


def test_iam_policies_grant_what_the_platform_calls():
    import json

    root = Path(__file__).resolve().parent.parent / "deploy" / "iam"
    dagster = {a for st in json.loads((root / "dagster-policy.json").read_text())["Statement"]
               for a in ([st["Action"]] if isinstance(st["Action"], str) else st["Action"])}
    needed = {"glue:StartJobRun", "glue:GetJobRun", "glue:BatchStopJobRun", "glue:CreateJob", "glue:UpdateJob",
              "glue:GetJob", "glue:GetTable", "glue:GetTables", "glue:CreateTable", "glue:UpdateTable",
              "glue:DeleteTable", "glue:GetPartitions", "glue:GetPartition", "glue:BatchCreatePartition",
              "glue:UpdatePartition",
              "glue:CreateDatabase", "glue:GetDatabase", "athena:StartQueryExecution",
              "athena:GetQueryExecution", "athena:GetQueryResults", "athena:StopQueryExecution", "iam:PassRole",
              "lakeformation:ListResources", "lakeformation:GetDataAccess", "sns:Publish",
              "logs:GetLogEvents", "logs:DescribeLogStreams"}  # the Glue driver's output in the run's logs
    assert needed <= dagster
    assert not any(a.endswith(":*") or a == "*" for a in dagster)  # least privilege: no wildcard actions
    # the catalog steps record each switch and delete the versions it retires, in both split roots
    writes = [st for st in json.loads((root / "dagster-policy.json").read_text())["Statement"]
              if {"s3:PutObject", "s3:DeleteObject"} <= set(st["Action"])]
    for prefix in ("omc_cleanroom_data/split_cluster/*", "omc_cleanroom_data/split_part/*"):
        assert any(r.endswith(prefix) for st in writes for r in st["Resource"]), prefix
    job = json.loads((root / "glue-job-role-policy.json").read_text())
    resources = [r for st in job["Statement"] for r in ([st["Resource"]] if isinstance(st["Resource"], str) else st["Resource"])]
    assert not any(r == "arn:aws:s3:::*" for r in resources)


def test_script_runs_with_the_production_job_definitions_arguments(lake, spark_url):
    """The production Terraform's argument names and extras, as its Glue job passes them, with this
    repository's script in place of the original: nothing about the job definition changes."""
    from flywheel_assets.resources import script_path

    out = lake / fw_settings.SPLIT_PART_INFOBASE
    args = ["--JOB_ID", "j_1", "--JOB_RUN_ID", "jr_1", "--JOB_NAME", "etl-omc-flywheel-prod-infobase-split-and-part",
            "--job-bookmark-option", "job-bookmark-disable", "--TempDir", "s3://aws-glue-assets/temporary/",
            "--enable-glue-datacatalog", "true", "--SNAPSHOT_DT", "_NONE_",
            "--SOURCE_PATH", str(lake / fw_settings.INFOBASE_RAW), "--TARGET_BUCKET", str(out),
            "--CSV_PATH", str(lake / fw_settings.INFOBASE_PART_MAPPING), "--BUCKET_COUNT", "256",
            "--TARGET_FILE_MB", "512", "--spark.sql.adaptive.enabled", "true"]
    env = {**os.environ, "FLYWHEEL_SPARK_RUNTIME": "local", "FLYWHEEL_SPARK_REMOTE": spark_url}
    done = subprocess.run([sys.executable, str(script_path("infobase_split_and_part")), *args], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    tables = [t for t, _ in SMALL.tables]
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith("_")) == sorted(tables)
    import pyarrow.parquet as pq

    assert pq.read_table(out / "IBE_04_B" / f"snapshot_dt={LATEST}").column_names[0] == "customer_user_id"
