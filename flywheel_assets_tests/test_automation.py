"""The sensor on a temporary lake and on moto's S3; the rollback guard; the UI's GraphQL."""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import boto3
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from dagster import DagsterInstance, build_sensor_context, materialize

from flywheel_assets import settings
from flywheel_assets.automation import ready_snapshots
from flywheel_assets.definitions import build_definitions
from flywheel_assets.demo_data import write_demo_lake
from flywheel_assets.resources import Lake, SparkJobRunner
from flywheel_assets.tables import TableSet
from flywheel_assets_tests.conftest import SMALL, step

SOURCES = (settings.INFOBASE_RAW, settings.ADDRESSABLE_COMPACTION, settings.ADDRESSABLE_RAW)
TABLES = TableSet({"infobase_split_and_bucket": ("IBE_01", "IBE_04_B"), "addressable_bucket": ("addressable_ids",),
                   "infobase_split_and_part": ("IBE_01",), "addressable_split_and_part": ("addressable_ids",)})
DEFS = build_definitions(settings.get_settings(), TABLES)
SENSOR = DEFS.resolve_sensor_def("raw_snapshot_sensor")


def parquet_bytes() -> bytes:
    buffer = io.BytesIO()
    pq.write_table(pa.table({"Customer_User_id": ["a"]}), buffer)
    return buffer.getvalue()


class LocalLake:
    def __init__(self, root: Path):
        self.root = root

    def put(self, key: str, body: bytes = b"") -> None:
        path = self.root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(body)

    def mkdir(self, key: str) -> None:
        (self.root / key).mkdir(parents=True, exist_ok=True)

    @property
    def data_root(self) -> str:
        return str(self.root)


class S3Lake:
    def __init__(self, bucket: str):
        self.bucket = bucket
        self.s3 = boto3.client("s3")
        self.s3.create_bucket(Bucket=bucket)

    def put(self, key: str, body: bytes = b"") -> None:
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=body)

    def mkdir(self, key: str) -> None:
        self.put(key.rstrip("/") + "/_placeholder")

    @property
    def data_root(self) -> str:
        return f"s3://{self.bucket}"


def snapshot(lake, date: str, sources=SOURCES, success=True) -> None:
    for src in sources:
        lake.put(f"{src}snapshot_dt={date}/part-0.parquet", parquet_bytes())
        if success:
            lake.put(f"{src}snapshot_dt={date}/_SUCCESS")


@pytest.fixture(params=["local", "s3"])
def any_lake(request, tmp_path):
    if request.param == "local":
        return LocalLake(tmp_path / "lake")
    request.getfixturevalue("aws_env")
    return S3Lake("sensor-lake")


def evaluate(lake, cursor=None, instance=None):
    instance = instance or DagsterInstance.ephemeral()
    context = build_sensor_context(cursor=cursor, instance=instance, resources={"lake": Lake(data_root=lake.data_root)},
                                   repository_def=DEFS.get_repository_def())
    return SENSOR(context), instance


def test_new_complete_snapshots_become_partitions_and_runs_once(any_lake):
    snapshot(any_lake, "2024-01-15")
    snapshot(any_lake, "2024-02-15")
    snapshot(any_lake, "2024-03-14", sources=SOURCES[1:])  # the addressable sources land a day early,
    snapshot(any_lake, "2024-03-15", sources=SOURCES[:1])  # the infobase a day later: 03-15 takes 03-14
    snapshot(any_lake, "2024-01-10", sources=SOURCES[:1])  # no addressable snapshot that early yet
    snapshot(any_lake, "2024-04-15", success=False)  # being written, no marker, fresh files
    any_lake.mkdir(f"{settings.INFOBASE_RAW}snapshot_dt=not-a-date")
    result, instance = evaluate(any_lake)
    ready = ["2024-01-15", "2024-02-15", "2024-03-15"]
    assert [r.partition_key for r in result.run_requests] == ready
    assert [r.run_key for r in result.run_requests] == ready
    assert list(result.dynamic_partitions_requests[0].partition_keys) == ready
    assert json.loads(result.cursor) == ready
    # next tick: nothing new; then an addressable snapshot old enough for 2024-01-10 arrives
    again, _ = evaluate(any_lake, result.cursor, instance)
    assert not again.run_requests and again.cursor == result.cursor
    snapshot(any_lake, "2024-01-09", sources=SOURCES[1:])
    third, _ = evaluate(any_lake, result.cursor, instance)
    assert [r.partition_key for r in third.run_requests] == ["2024-01-10"]


def test_incomplete_snapshot_waits_for_marker_or_quiet_period(tmp_path):
    lake = LocalLake(tmp_path / "lake")
    snapshot(lake, "2024-05-01", success=False)
    sources = Lake(data_root=lake.data_root)
    now = time.time()
    assert ready_snapshots(sources, set(), quiet_seconds=900, now=now) == []
    assert ready_snapshots(sources, set(), quiet_seconds=900, now=now + 901) == ["2024-05-01"]
    lake.mkdir(f"{settings.ADDRESSABLE_RAW}snapshot_dt=2024-05-01/_temporary/0")  # a writer still at work
    assert ready_snapshots(sources, set(), quiet_seconds=900, now=now + 901) == []
    # an addressable snapshot on or before the infobase one that is still being written is waited
    # for, not passed over for an older one
    snapshot(lake, "2024-04-01")
    snapshot(lake, "2024-05-20", sources=SOURCES[1:], success=False)
    snapshot(lake, "2024-05-21", sources=SOURCES[:1])
    assert ready_snapshots(sources, set(), quiet_seconds=900, now=now) == ["2024-04-01"]
    assert ready_snapshots(sources, {"2024-04-01"}, quiet_seconds=900, now=now + 901) == ["2024-05-21"]


def test_late_older_snapshot_runs_only_the_partitioned_pipeline(tmp_path):
    lake = LocalLake(tmp_path / "lake")
    snapshot(lake, "2024-03-15")
    lake.put(f"{settings.SPLIT_CLUSTER_INFOBASE}metadata/snapshot_dt.txt", b"2024-03-15\n")
    first, instance = evaluate(lake)
    assert first.run_requests[0].asset_selection is None  # the whole graph
    snapshot(lake, "2024-01-15")  # arrives late
    late, _ = evaluate(lake, first.cursor, instance)
    request = late.run_requests[0]
    assert request.partition_key == "2024-01-15"
    selected = {k.to_user_string() for k in request.asset_selection}
    # Entity Resolution's input holds the current snapshot, as the bucketed tables do: not rebuilt for an older one
    assert selected == {"split_part/ibe_01", "split_part/addressable_ids", "part_ibe_01", "part_addressable_ids",
                        "cleanrooms_report"}
    assert json.loads(late.cursor) == ["2024-01-15", "2024-03-15"]


def test_snapshots_registered_by_hand_are_not_run_again(tmp_path):
    lake = LocalLake(tmp_path / "lake")
    snapshot(lake, "2024-01-15")
    instance = DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("snapshot_dt", ["2024-01-15"])
    result, _ = evaluate(lake, instance=instance)
    assert not result.run_requests and json.loads(result.cursor) == ["2024-01-15"]


def test_sensor_runs_by_default():
    from dagster import DefaultSensorStatus

    assert SENSOR.default_status == DefaultSensorStatus.RUNNING


class NeverRuns(SparkJobRunner):
    def run(self, context, job, arguments):
        raise AssertionError("the rollback guard must refuse before any Spark job starts")


def test_bucketed_pipeline_refuses_rollback_unless_allowed(tmp_path):
    target = tmp_path / settings.SPLIT_CLUSTER_INFOBASE / "metadata"
    target.mkdir(parents=True)
    (target / "snapshot_dt.txt").write_text("2024-03-15\n")
    instance = DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("snapshot_dt", ["2024-01-15"])
    resources = {"lake": Lake(data_root=str(tmp_path)), "spark_jobs": NeverRuns()}
    infobase_split = step(DEFS.assets, "infobase_split")
    result = materialize([infobase_split], partition_key="2024-01-15", instance=instance, resources=resources,
                         raise_on_error=False)
    message = result.get_step_failure_events()[0].step_failure_data.error.message
    assert "holds snapshot_dt=2024-03-15, newer than 2024-01-15" in message and "allow_rollback: true" in message
    allowed = materialize([infobase_split], partition_key="2024-01-15", instance=instance, resources=resources,
                          raise_on_error=False,
                          run_config={"ops": {"infobase_split": {"config": {"allow_rollback": True}}}})
    error = allowed.get_step_failure_events()[0].step_failure_data.error
    assert "must refuse before any Spark job starts" in (error.cause.message if error.cause else error.message)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ui_graphql_shows_both_pipelines_and_the_running_sensor(tmp_path):
    port = _free_port()
    home = tmp_path / "dagster"
    home.mkdir()
    env = {**os.environ, "DAGSTER_HOME": str(home), "FLYWHEEL_HOME": str(tmp_path)}
    write_demo_lake(tmp_path / "lake", SMALL)  # the tables come from its mapping files
    webserver = Path(sys.executable).with_name("dagster-webserver")
    proc = subprocess.Popen([str(webserver), "-m", "flywheel_assets.definitions", "-h", "127.0.0.1", "-p", str(port)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    query = """{
      workspaceOrError { ... on Workspace { locationEntries { name
        locationOrLoadError { __typename ... on PythonError { message } } } } }
      assetNodes { assetKey { path } groupName partitionDefinition { name } }
      repositoriesOrError { ... on RepositoryConnection { nodes { name
        sensors { name sensorState { status } } jobs { name } } } }
    }"""
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                request = urllib.request.Request(f"http://127.0.0.1:{port}/graphql", method="POST",
                                                 data=json.dumps({"query": query}).encode(),
                                                 headers={"Content-Type": "application/json"})
                data = json.loads(urllib.request.urlopen(request, timeout=10).read())["data"]
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read() if proc.poll() else "timeout"
                time.sleep(1)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    entries = data["workspaceOrError"]["locationEntries"]
    assert [e["locationOrLoadError"]["__typename"] for e in entries] == ["RepositoryLocation"]
    groups = {"/".join(n["assetKey"]["path"]): n["groupName"] for n in data["assetNodes"]}
    tables = ["ibe_01", "ibe_01_a", "ibe_04_b", "miacs_02_a", "addressable_ids"]  # SMALL's mapping + addressable
    assert {k for k, g in groups.items() if g == "bucketed_pipeline"} == {
        f"{stage}{t}" for t in tables for stage in ("split_cluster/", "ext_", "bucketed_")}
    assert {k for k, g in groups.items() if g == "partitioned_pipeline"} == {
        f"{stage}{t}" for t in tables for stage in ("split_part/", "part_")} | {"part_addressable_ids_er"}
    assert groups["cleanrooms_report"] == "reporting"
    assert {k for k, g in groups.items() if g == "raw_sources"} == {
        "raw/infobase_attributes", "raw/addressable_ids_compaction", "raw/addressable_ids"}
    partitioned = {n["partitionDefinition"]["name"] for n in data["assetNodes"] if n["groupName"] != "raw_sources"}
    assert partitioned == {"snapshot_dt"}
    repo = data["repositoriesOrError"]["nodes"][0]
    assert {s["name"]: s["sensorState"]["status"] for s in repo["sensors"]} == {
        "raw_snapshot_sensor": "RUNNING", "alert_on_failure": "RUNNING", "alert_on_success": "RUNNING"}
    assert "flywheel_snapshot" in {j["name"] for j in repo["jobs"]}
