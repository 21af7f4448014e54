"""Shared fixtures: one SparkSession per test process, small lakes written per test."""

from __future__ import annotations

import json
import os
import shutil
import threading
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from flywheel_assets.demo_data import DemoSpec, write_demo_lake

# Subprocesses (Pipes job scripts, CLI runs) import this checkout's code, not whatever checkout the
# shared virtualenv's editable install last pointed at.
REPO = str(Path(__file__).resolve().parent.parent)
os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (REPO, os.environ.get("PYTHONPATH")) if p)
# Spark steps keep production's 2 retries, without the 60 s / 120 s waits.
os.environ["FLYWHEEL_SPARK_RETRY_DELAY_SECONDS"] = "0"

# Credentials no log, metadata, report or file may ever contain (moto accepts any).
SECRETS = {"AWS_ACCESS_KEY_ID": "AKIAFLYWHEELLEAKTEST", "AWS_SECRET_ACCESS_KEY": "fLyWhEeL+sEcReT/never-logged-0123",
           "AWS_SESSION_TOKEN": "FwSessionToken//never-logged/4567"}


def leaked(texts, root: Path | None = None) -> list[str]:
    """Where any of SECRETS appears: in ``texts`` (label -> text) or any file under ``root``."""
    found = [label for label, text in texts.items() for s in SECRETS.values() if s in text]
    if root:
        found += [str(p) for p in root.rglob("*") if p.is_file()
                  for s in SECRETS.values() if s.encode() in p.read_bytes()]
    return found


# The production formats (mapping header, BOM, CRLF, quoting, a table without its key row, uppercase
# source columns, odd unmapped columns, addressable sources a day earlier), on a few small tables.
SMALL = DemoSpec(rows=300, tables=(("IBE_01", 8), ("IBE_01_A", 6), ("IBE_04_B", 5), ("MIACS_02_A", 7)),
                 snapshots=2, files_per_snapshot=2, seed=11)


def tables_of(lake_root):
    """The table catalogue of a test lake, read from its mapping files as the definitions do."""
    from flywheel_assets.tables import read_table_set

    return read_table_set(str(lake_root), None)


def assets_of(lake_root) -> list:
    """The asset definitions (one asset per table) a lake's mapping files give."""
    from flywheel_assets.pipelines import build_assets

    return build_assets(tables_of(lake_root))


def step(assets: list, name: str):
    """The multi-asset of one step (``infobase_split``, ``ext_tables``...) among ``assets``."""
    from dagster import AssetsDefinition

    return next(a for a in assets if isinstance(a, AssetsDefinition) and a.node_def.name == name)


def materialized(result) -> dict:
    """asset key (user string) -> the metadata of its materialization, from an execution result."""
    return {e.asset_key.to_user_string(): e.step_materialization_data.materialization.metadata
            for e in result.get_asset_materialization_events()}


@pytest.fixture(autouse=True)
def no_wait_for_late_messages(monkeypatch):
    """After a remote job ends without Pipes' closing message (a run cut short by TIMEOUT or
    ERROR), Dagster's message reader waits 10 s for late messages, for real S3 and CloudWatch
    lag; the stand-ins write theirs before the run ends, so the tests do not wait (3 attempts of
    the Glue timeout test: 33 s)."""
    from dagster._core.pipes import utils as pipes_utils

    monkeypatch.setattr(pipes_utils, "WAIT_FOR_LOGS_AFTER_EXECUTION_INTERVAL", 0)


@pytest.fixture(autouse=True)
def short_aws_job_polls(monkeypatch):
    """dagster-aws's Glue client polls a job run every 5 s (fixed), its EMR Serverless client every
    ``poll_interval`` (5 s): real jobs run for minutes, the stand-ins' for seconds. The clients still
    poll (RUNNING, then the final state); each wait is cut to 0.2 s (the Glue tests: 5 s per run)."""
    import time
    import types

    from dagster_aws.pipes.clients import emr_serverless, glue

    quick = types.SimpleNamespace(**{name: getattr(time, name) for name in dir(time) if not name.startswith("_")})
    quick.sleep = lambda seconds: time.sleep(min(seconds, 0.2))
    for module in (glue, emr_serverless):
        monkeypatch.setattr(module, "time", quick)


SPARK_HOME_VAR = "FLYWHEEL_TEST_SPARK_SERVER_HOME"


def pytest_configure(config):
    """The test run's one Spark server home, chosen before pytest-xdist starts its workers (they
    inherit the environment): the workers share one server, one JVM warmed up once, instead of a
    server each (the suite on 2 cores: 7 min 56 s with one per worker). The controller's watchdog
    stops that server and removes its home when the run ends, even a run killed outright."""
    import tempfile

    if not hasattr(config, "workerinput"):
        from flywheel_assets.local_spark import SparkServer

        os.environ[SPARK_HOME_VAR] = tempfile.mkdtemp(prefix="flywheel-test-spark-")
        config._flywheel_server_watchdog = SparkServer(os.environ[SPARK_HOME_VAR]).stop_with_caller(remove_home=True)


def pytest_unconfigure(config):
    """The run's controller stops the shared server once every worker is done with it."""
    watchdog = getattr(config, "_flywheel_server_watchdog", None)
    if watchdog:
        watchdog.stdin.close()
        watchdog.wait(timeout=120)


# pytest-xdist (`make test`) hands whole files to its two workers in collection order: the
# longest files go first, so that the workers finish together instead of one waiting out the
# deployment test alone.
LONGEST_FIRST = ("test_deployment.py", "test_end_to_end.py", "test_aws_runners.py", "test_catalog_local.py")


def pytest_collection_modifyitems(items):
    def rank(item) -> int:
        name = item.path.name
        return LONGEST_FIRST.index(name) if name in LONGEST_FIRST else len(LONGEST_FIRST)

    items.sort(key=rank)  # stable: each file's own order is kept


@pytest.fixture(scope="session")
def spark_server():
    """The local Spark server (Spark Connect + Hive metastore) of the test run, shared by its
    workers: the split jobs, the catalog and the CLI runs of the tests are all its clients. Each
    test's catalog database is its own (``database_for``), so the workers' tests do not meet."""
    from flywheel_assets.catalog.local import close_sessions
    from flywheel_assets.local_spark import SHORT_LIVED_JIT, SparkServer

    server = SparkServer(os.environ[SPARK_HOME_VAR], "local[2]", "3g", java_options=SHORT_LIVED_JIT)
    server.ensure()
    yield server
    close_sessions()


@pytest.fixture(scope="session")
def spark_url(spark_server):
    url = spark_server.ensure()
    os.environ["FLYWHEEL_SPARK_RUNTIME"] = "local"
    os.environ["FLYWHEEL_SPARK_REMOTE"] = url
    return url


@pytest.fixture(scope="session")
def spark(spark_url):
    from flywheel_assets.spark_jobs.runtime import spark_session, stop_quietly

    session = spark_session("flywheel-tests")
    yield session
    stop_quietly(session)


@pytest.fixture(scope="session")
def _small_lake_template(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("lake-template")
    write_demo_lake(root, SMALL)
    return root


@pytest.fixture
def lake(_small_lake_template, tmp_path) -> Path:
    """A fresh copy of the small sample lake (2 snapshots, 4 tables, 3 unmapped columns; the
    addressable sources a day before the infobase)."""
    root = tmp_path / "lake"
    shutil.copytree(_small_lake_template, root)
    return root


def database_for(request) -> str:
    import re

    return "t_" + re.sub(r"[^a-z0-9_]", "_", request.node.name.lower())[:60]


@pytest.fixture
def catalog(spark_url, request):
    from flywheel_assets.catalog.local import LocalCatalog
    from flywheel_assets.local_spark import LocalSpark

    return LocalCatalog(database=database_for(request), server=LocalSpark(home="unused", remote=spark_url))


@pytest.fixture(scope="session")
def moto_url():
    """moto's HTTP server on loopback: the stand-in for S3, Glue and Athena."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def aws_env(moto_url, monkeypatch):
    """A credentialed environment pointing every AWS client at a freshly reset moto."""
    import urllib.request

    for key, value in {"AWS_ENDPOINT_URL": moto_url, "AWS_ACCESS_KEY_ID": "testing",
                       "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
                       "AWS_REGION": "us-east-1"}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
    urllib.request.urlopen(urllib.request.Request(moto_url + "/moto-api/reset", method="POST"))
    return moto_url


@contextmanager
def webhook_receiver():
    """A Slack-compatible webhook on loopback: (its URL, the JSON bodies it received)."""
    received = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/hooks/T000/B000", received
    finally:
        server.shutdown()


@pytest.fixture
def receiver():
    with webhook_receiver() as found:
        yield found


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _postgres_bin(name: str) -> str:
    import glob

    found = shutil.which(name) or next(iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)), None)
    if not found:
        pytest.fail(f"{name} not found: PostgreSQL's server (Debian package postgresql) is needed; .ci/run installs it")
    return found


@pytest.fixture(scope="session")
def postgres():
    """A real PostgreSQL server (Debian's package) on 127.0.0.1, any free port, its data under a
    temporary folder, password authentication over TCP. Yields the FLYWHEEL_PG_* environment."""
    import subprocess
    import tempfile

    # not under pytest's own temporary root: that is private to this user, and the server's user must reach it
    root = Path(tempfile.mkdtemp(prefix="flywheel-postgres-"))
    data, password = root / "data", "fw-pg-" + os.urandom(6).hex()
    (root / "pw").write_text(password)
    # initdb and postgres refuse to run as root: as root, run them as Debian's postgres user
    as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    if as_user:
        shutil.chown(root, "postgres")
        shutil.chown(root / "pw", "postgres")
    port = free_port()

    def run(*cmd):
        done = subprocess.run([*as_user, *cmd], capture_output=True, text=True)
        if done.returncode:
            pytest.fail(f"{' '.join(cmd)} failed: {done.stdout}{done.stderr}")
    run(_postgres_bin("initdb"), "-D", str(data), "-U", "flywheel", f"--pwfile={root / 'pw'}",
        "--auth-host=scram-sha-256", "--auth-local=trust", "-E", "UTF8")
    run(_postgres_bin("pg_ctl"), "-D", str(data), "-l", str(root / "server.log"), "-w", "start",
        "-o", f"-c listen_addresses=127.0.0.1 -c port={port} -k {root} -c max_connections=200")
    run(_postgres_bin("createdb"), "-h", str(root), "-p", str(port), "-U", "flywheel", "flywheel")  # its socket: trust
    yield {"FLYWHEEL_PG_HOST": "127.0.0.1", "FLYWHEEL_PG_PORT": str(port), "FLYWHEEL_PG_USER": "flywheel",
           "FLYWHEEL_PG_PASSWORD": password, "FLYWHEEL_PG_DB": "flywheel"}
    run(_postgres_bin("pg_ctl"), "-D", str(data), "-m", "immediate", "stop")
    shutil.rmtree(root, ignore_errors=True)
