"""The production deployment, for real: PostgreSQL (Debian's server), and the code server, daemon
and webserver started as `flywheel serve` starts them.

The daemon's sensor launches the run of a new snapshot, and the daemon is killed (SIGKILL) while
that run is in flight and started again: the run still ends (succeeded, not stuck), nothing is
launched twice, and the success alert arrives once. A snapshot with unreadable source files then
fails with exactly one failure alert and no retry. History survives a webserver restart. A run
worker killed mid-run is marked failed and re-run once, successfully. The
figures (sensor tick, run launch) are printed for the README.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml
from dagster import DagsterEventType, DagsterInstance, DagsterRunStatus, RunsFilter

from flywheel_assets import settings as fw_settings
from flywheel_assets.demo_data import DemoSpec, snapshot_dates, write_demo_lake
from flywheel_assets.instance import MARKER, instance_config, render, write_instance_config
from flywheel_assets.settings import get_settings
from flywheel_assets_tests.conftest import free_port, webhook_receiver

FIRST = (dt.date.today().replace(day=1) - dt.timedelta(days=70)).replace(day=15).isoformat()
TINY = DemoSpec(rows=60, tables=(("IBE_01", 4), ("MIACS_02_A", 3)), snapshots=3, files_per_snapshot=1, seed=5,
                first_snapshot=FIRST)
SNAP1, SNAP2, SNAP3 = snapshot_dates(3, FIRST)
REPO = Path(__file__).resolve().parent.parent


def test_production_instance_config_is_valid_and_holds_no_secret(tmp_path):
    from dagster._config import validate_config
    from dagster._core.instance.config import dagster_instance_config
    from dagster_aws.s3.compute_log_manager import S3ComputeLogManager
    from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage, PostgresScheduleStorage

    env = {"FLYWHEEL_HOME": str(tmp_path), "FLYWHEEL_PG_HOST": "db.internal", "FLYWHEEL_PG_PASSWORD": "s3cret-pw"}
    local, production = get_settings({"FLYWHEEL_HOME": str(tmp_path)}), get_settings({**env, "FLYWHEEL_ENV": "aws"})
    assert "storage" not in instance_config(local) and "compute_logs" not in instance_config(local)  # SQLite, disk
    config = instance_config(production)
    assert "s3cret-pw" not in render(production)
    assert config["storage"]["postgres"]["postgres_db"]["password"] == {"env": "FLYWHEEL_PG_PASSWORD"}
    assert config["run_monitoring"]["enabled"] and config["run_retries"]["retry_on_asset_or_op_failure"] is False
    assert config["compute_logs"]["config"]["bucket"] == "omc-flywheel-prod-analysis-data"
    for settings in (local, production):
        folder = tmp_path / settings.env
        folder.mkdir()
        (folder / "dagster.yaml").write_text(render(settings))
        dagster_instance_config(str(folder))  # the instance schema; raises on any unknown or mistyped key
    for cls in (PostgresRunStorage, PostgresEventLogStorage, PostgresScheduleStorage):
        assert validate_config(cls.config_type(), config["storage"]["postgres"]).success
    assert validate_config(S3ComputeLogManager.config_type(), config["compute_logs"]["config"]).success
    # the checked-in example of running each run as an ECS task: valid for dagster-aws's launcher
    from dagster_aws.ecs import EcsRunLauncher

    example = yaml.safe_load((REPO / "deploy" / "dagster" / "ecs-run-launcher.yaml").read_text())
    assert example["run_launcher"]["class"] == "EcsRunLauncher"
    result = validate_config(EcsRunLauncher.config_type(), example["run_launcher"]["config"])
    assert result.success, [e.message for e in result.errors]
    # a file the user took over (marker removed) is left alone
    home = Path(production.dagster_home)
    home.mkdir(parents=True)
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    write_instance_config(production)
    assert (home / "dagster.yaml").read_text() == "telemetry:\n  enabled: false\n"
    (home / "dagster.yaml").write_text(MARKER + "old: 1\n")
    write_instance_config(production)
    assert (home / "dagster.yaml").read_text() == render(production)


class Services:
    """`flywheel serve <component>` processes on one instance."""

    def __init__(self, env: dict, logs: Path):
        self.env, self.logs, self.procs = env, logs, {}

    def start(self, component: str, *args: str) -> subprocess.Popen:
        log = open(self.logs / f"{component}.log", "a")
        proc = subprocess.Popen([sys.executable, "-m", "flywheel_assets.cli", "serve", component, *args],
                                env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.procs[component] = proc
        return proc

    def kill(self, component: str) -> None:
        proc = self.procs.pop(component)
        os.killpg(proc.pid, signal.SIGKILL)  # the process and what it started, as the OOM killer would
        proc.wait(timeout=30)

    def stop_all(self) -> None:
        for component in list(self.procs):
            self.kill(component)

    def log(self, component: str) -> str:
        return (self.logs / f"{component}.log").read_text()[-3000:]


def wait_for(what: str, check, timeout: float, services: Services | None = None, interval: float = 0.5):
    deadline = time.time() + timeout
    while time.time() < deadline:
        found = check()
        if found:
            return found
        time.sleep(interval)
    logs = "\n".join(f"--- {c}\n{services.log(c)}" for c in ("daemon", "code-server")) if services else ""
    pytest.fail(f"timed out after {timeout} s waiting for {what}\n{logs}")


def port_open(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def graphql(port: int, query: str) -> dict:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/graphql", data=json.dumps({"query": query}).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())["data"]


RUNS = "{ runsOrError { ... on Runs { results { runId status tags { key value } } } } }"
TICKS = ("{ repositoriesOrError { ... on RepositoryConnection { nodes { sensors { name sensorState "
         "{ ticks(limit: 50) { status timestamp endTimestamp runIds } } } } } } }")


def sensor_ticks(port: int, name: str) -> list[dict]:
    repositories = graphql(port, TICKS)["repositoriesOrError"]["nodes"]
    return next(s["sensorState"]["ticks"] for r in repositories for s in r["sensors"] if s["name"] == name)


def runs_for(instance: DagsterInstance, snapshot: str):
    return instance.get_runs(RunsFilter(job_name="flywheel_snapshot", tags={"dagster/partition": snapshot}))


def finished(instance: DagsterInstance, run_id: str):
    run = instance.get_run_by_id(run_id)
    return run if run.is_finished else None


def write_unreadable_snapshot(lake: Path) -> None:
    """Snapshot 2: the addressable sources fine, the infobase files not parquet at all."""
    folder = lake / fw_settings.INFOBASE_RAW / f"snapshot_dt={SNAP2}"
    folder.mkdir(parents=True)
    (folder / "part-00000.snappy.parquet").write_bytes(b"this is not parquet")
    (folder / "_SUCCESS").write_text("")


def worker_in_split_step(instance: DagsterInstance, run_id: str) -> int | None:
    """The pid of the run's worker once a pool-limited split step has started (its slot claimed)."""
    events = [r.event_log_entry for r in instance.get_records_for_run(run_id).records]
    started = {e.step_key for e in events if e.dagster_event and e.dagster_event.event_type == DagsterEventType.STEP_START}
    pids = [e.message.split("pid: ")[1].rstrip(").") for e in events
            if e.message.startswith("Started process for run (pid: ")]
    return int(pids[0]) if pids and started & {"infobase_split", "addressable_bucket"} else None


def kill_tree(pid: int) -> None:
    """SIGKILL a process and its descendants, as the OOM killer takes a worker and what it started."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    todo, tree = [pid], []
    while todo:
        tree.append(todo.pop())
        todo += children.get(tree[-1], [])
    for p in tree:
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass


def test_daemon_runs_new_snapshots_alerts_once_and_survives_restarts(postgres, spark_url, tmp_path, monkeypatch):
    home, lake = tmp_path / "home", tmp_path / "home" / "lake"
    write_demo_lake(lake, TINY)
    shutil.rmtree(lake / fw_settings.INFOBASE_RAW / f"snapshot_dt={SNAP2}")  # it arrives later, broken
    held = tmp_path / "held"  # snapshot 3 arrives last
    held.mkdir()
    shutil.move(lake / fw_settings.INFOBASE_RAW / f"snapshot_dt={SNAP3}", held / SNAP3)
    web_port, code_port = free_port(), free_port()
    with webhook_receiver() as (url, received):
        env = {**os.environ, **postgres, "FLYWHEEL_HOME": str(home), "FLYWHEEL_DATA_ROOT": str(lake),
               "FLYWHEEL_DATABASE": "t_deployment", "FLYWHEEL_ALERT_WEBHOOK_URL": url, "FLYWHEEL_ALERT_ON_SUCCESS": "true",
               "FLYWHEEL_SENSOR_INTERVAL_SECONDS": "2", "FLYWHEEL_CODE_SERVER": f"127.0.0.1:{code_port}",
               "FLYWHEEL_UI_URL": f"http://127.0.0.1:{web_port}", "FLYWHEEL_ENV": "local",
               "FLYWHEEL_FRESHNESS_DAYS": "400"}  # snapshot 1 may be two months old; a data monitor alert would be extra
        env.pop("DAGSTER_HOME", None)
        for key, value in postgres.items():  # the instance file refers to them; this process reads it too
            monkeypatch.setenv(key, value)
        services = Services(env, tmp_path)
        try:
            services.start("code-server")
            wait_for("the code server", lambda: port_open(code_port), 120, services)
            services.start("daemon")
            services.start("webserver", "--port", str(web_port))
            assert "FLYWHEEL_PG_PASSWORD" in (home / "dagster" / "dagster.yaml").read_text()
            assert postgres["FLYWHEEL_PG_PASSWORD"] not in (home / "dagster" / "dagster.yaml").read_text()
            instance = DagsterInstance.from_config(str(home / "dagster"))
            assert type(instance.run_storage).__name__ == "PostgresRunStorage"

            # 1. the sensor launches snapshot 1; the daemon is killed while it runs, then restarted
            run = wait_for("the sensor's run of snapshot 1", lambda: runs_for(instance, SNAP1), 180, services)[0]
            wait_for("run 1 to start", lambda: instance.get_run_by_id(run.run_id).status == DagsterRunStatus.STARTED,
                     120, services)
            services.kill("daemon")
            time.sleep(3)
            services.start("daemon")
            done = wait_for("run 1 to finish", lambda: finished(instance, run.run_id), 600, services)
            assert done.status == DagsterRunStatus.SUCCESS, services.log("daemon")
            wait_for("the success alert", lambda: [m for m in received if m["run_id"] == run.run_id], 120, services)

            # 2. a snapshot whose source cannot be read: one failure, one alert, no retry
            write_unreadable_snapshot(lake)
            bad = wait_for("the sensor's run of snapshot 2", lambda: runs_for(instance, SNAP2), 120, services)[0]
            failed = wait_for("run 2 to fail", lambda: finished(instance, bad.run_id), 600, services)
            assert failed.status == DagsterRunStatus.FAILURE
            alert = wait_for("the failure alert", lambda: [m for m in received if m["run_id"] == bad.run_id], 120,
                             services)
            assert alert[0]["status"] == "FAILURE" and alert[0]["snapshot_dt"] == SNAP2
            assert "infobase_split" in json.dumps(alert[0]["failed_assets"])
            time.sleep(8)  # room for a wrong retry or a second launch to show
            assert [r.run_id for r in runs_for(instance, SNAP2)] == [bad.run_id]  # no run retry
            retried = instance.get_records_for_run(bad.run_id, of_type=DagsterEventType.STEP_UP_FOR_RETRY).records
            assert retried == []  # an input error is never retried
            assert [r.run_id for r in runs_for(instance, SNAP1)] == [run.run_id]  # nothing launched twice
            assert sorted(m["run_id"] for m in received) == sorted([run.run_id, bad.run_id]), [  # one message each
                (m["status"], m["text"][:600]) for m in received]

            # 3. history survives a webserver restart; the sensor's cursor holds both snapshots
            wait_for("the webserver", lambda: port_open(web_port), 120, services)
            before = graphql(web_port, RUNS)["runsOrError"]["results"]
            services.kill("webserver")
            services.start("webserver", "--port", str(web_port))
            wait_for("the webserver again", lambda: port_open(web_port), 120, services)
            after = wait_for("the runs", lambda: graphql(web_port, RUNS)["runsOrError"]["results"], 60, services)
            assert sorted(r["runId"] for r in after) == sorted(r["runId"] for r in before)
            ticks = sensor_ticks(web_port, "raw_snapshot_sensor")
            launched = [run_id for t in ticks for run_id in t["runIds"]]
            assert sorted(launched) == sorted([run.run_id, bad.run_id])

            # 4. `flywheel status` on the production instance: snapshot 1 live, the failed newest run named
            proc = subprocess.run([sys.executable, "-m", "flywheel_assets.cli", "status", "--json"], env=env,
                                  capture_output=True, text=True, timeout=120)
            assert proc.stdout.startswith("{"), proc.stderr[-3000:]
            status = json.loads(proc.stdout)
            assert proc.returncode == 1 and status["pipelines"]["partitioned"]["live_snapshot"] == SNAP1
            assert status["pipelines"]["partitioned"]["last_run"]["status"] == "SUCCESS"
            assert f"the newest run ({bad.run_id}, snapshot_dt={SNAP2}) FAILED" in status["needs_attention"]

            # 5. snapshot 3's run worker is killed with its steps while a split step holds its pool
            # slot: the code server marks the run failed, run_retries re-runs it once, run monitoring
            # frees the dead step's slot, and the re-run succeeds
            shutil.move(held / SNAP3, lake / fw_settings.INFOBASE_RAW / f"snapshot_dt={SNAP3}")
            third = wait_for("the sensor's run of snapshot 3", lambda: runs_for(instance, SNAP3), 120, services)[0]
            kill_tree(wait_for("run 3's split step", lambda: worker_in_split_step(instance, third.run_id), 300,
                               services, interval=0.2))
            killed_at = time.time()
            dead = wait_for("run 3 to be marked failed", lambda: finished(instance, third.run_id), 120, services)
            marked_after = time.time() - killed_at
            assert dead.status == DagsterRunStatus.FAILURE
            retry = wait_for("the re-run of run 3", lambda: instance.get_runs(
                RunsFilter(tags={"dagster/parent_run_id": third.run_id})), 180, services)[0]
            redone = wait_for("the re-run to finish", lambda: finished(instance, retry.run_id), 600, services)
            assert redone.status == DagsterRunStatus.SUCCESS, services.log("daemon")
            assert len(runs_for(instance, SNAP3)) == 2  # one re-run, no more
            print(f"\nkilled worker: marked failed after {marked_after:.1f} s, re-run succeeded after "
                  f"{time.time() - killed_at:.1f} s")

            # figures for the README: sensor tick and run launch on this instance
            durations = sorted(t["endTimestamp"] - t["timestamp"] for t in ticks if t["endTimestamp"])
            record = instance.get_run_record_by_id(run.run_id)
            print(f"\nsensor ticks: {len(durations)}, median {durations[len(durations) // 2]:.3f} s, "
                  f"max {durations[-1]:.3f} s; run launch (created -> started): "
                  f"{record.start_time - record.create_timestamp.timestamp():.1f} s")
        finally:
            services.stop_all()
