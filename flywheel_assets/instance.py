"""The Dagster instance configuration (``$FLYWHEEL_HOME/dagster/dagster.yaml``), from the settings.

Both: the run queue's limits and run monitoring. Locally: SQLite under FLYWHEEL_HOME (the event log
through LocalEventLogStorage), compute logs on disk. In production (``FLYWHEEL_PG_HOST`` set): run, event-log and schedule storage in PostgreSQL
(dagster-postgres), a run whose worker died re-run once (input errors and failed checks never
are), and with ``FLYWHEEL_ENV=aws`` compute logs on S3 (dagster-aws).
Connection settings are written as references to the environment (``{env: FLYWHEEL_PG_PASSWORD}``),
never their values: the file holds no secret.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import yaml
from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage
from dagster._core.storage.sqlite import SQLITE_BUSY_TIMEOUT_SECONDS
from dagster._serdes import ConfigurableClassData
from sqlalchemy import create_engine, event
from sqlalchemy.engine import Connection, Engine

from flywheel_assets.core import storage
from flywheel_assets.settings import Settings

MARKER = "# Written by flywheel from its settings (FLYWHEEL_*); delete this line to keep your own edits.\n"

# Runs launched from the UI, the sensor and backfills go through the run queue: at most 4 at once,
# and never two of the same snapshot (the partition tag) at the same time. Pools (the
# current-snapshot-layout split assets) run one step at a time across runs.
CONCURRENCY = {
    "runs": {"max_concurrent_runs": 4,
             "tag_concurrency_limits": [{"key": "dagster/partition", "value": {"applyLimitPerUniqueValue": True},
                                         "limit": 1}]},
    "pools": {"default_limit": 1},
}
# What flywheel wrote before it wrote the marker: still ours to update.
LEGACY = """telemetry:
  enabled: false
concurrency:
  runs:
    max_concurrent_runs: 4
    tag_concurrency_limits:
      - key: dagster/partition
        value:
          applyLimitPerUniqueValue: true
        limit: 1
  pools:
    default_limit: 1
"""
MAX_RUN_SECONDS = 72 * 3600
POSTGRES_ENV = {"hostname": "FLYWHEEL_PG_HOST", "port": "FLYWHEEL_PG_PORT", "username": "FLYWHEEL_PG_USER",
                "password": "FLYWHEEL_PG_PASSWORD", "db_name": "FLYWHEEL_PG_DB"}


ENGINES_KEPT = 16  # shards a process keeps open (a run worker uses two: its run's and the index)


class LocalEventLogStorage(SqliteEventLogStorage):
    """Dagster's SQLite event log (a shard per run, an index shard), keeping one engine and its
    pooled connections per shard in each process.

    Dagster's own opens a new engine for every statement: a new SQLAlchemy dialect set-up and a
    new SQLite connection (schema read, WAL opened) per event, three times for a check result,
    and a local run stores about 2,100 events. The statements, tables and files are Dagster's.
    The shards are written unsynced (``synchronous=OFF``): a crashed process loses nothing; a
    power cut or OS crash during a run can damage that run's log or the asset index (the lake,
    the catalog, the run list and the sensors' cursors are not in these files). Deployed
    instances use PostgreSQL, which this does not touch."""

    def __init__(self, base_dir: str, inst_data: ConfigurableClassData | None = None):
        self._engines: OrderedDict[tuple[int, str], Engine] = OrderedDict()  # by (process, shard), oldest first
        self._tables: set[str] = set()  # tables of Dagster's schema found
        super().__init__(base_dir, inst_data)

    @classmethod
    def from_config_value(cls, inst_data: ConfigurableClassData | None, config_value: Mapping) -> "LocalEventLogStorage":
        return cls(inst_data=inst_data, **config_value)

    @contextmanager
    def _connect(self, shard: str) -> Iterator[Connection]:
        with self._db_lock:
            engine = self._engine(shard)
            with engine.connect() as conn, conn.begin():
                yield conn

    def _engine(self, shard: str) -> Engine:
        engines = self._engines
        key = (os.getpid(), shard)  # never a connection inherited across a fork
        if key in engines:
            engines.move_to_end(key)
            return engines[key]
        engine = create_engine(self.conn_string_for_shard(shard), connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS})
        event.listen(engine, "connect", _unsynced)
        if shard not in self._initialized_dbs:
            self._initdb(engine)
            self._initialized_dbs.add(shard)
        engines[key] = engine
        while len(engines) > ENGINES_KEPT:  # the UI reads many runs: keep open files bounded
            engines.popitem(last=False)[1].dispose()
        return engine

    def has_table(self, table_name: str) -> bool:
        """Dagster asks before each check result and asset event whether a table of its schema
        exists, building an engine each time; a table once there stays (nothing here drops one)."""
        if table_name not in self._tables and super().has_table(table_name):
            self._tables.add(table_name)
        return table_name in self._tables

    def dispose(self) -> None:
        for engine in self._engines.values():
            engine.dispose()
        self._engines.clear()
        super().dispose()


def _unsynced(dbapi_connection, _connection_record) -> None:
    dbapi_connection.execute("PRAGMA synchronous=OFF")


def run_monitoring(settings: Settings) -> dict:
    """A run worker that dies is reported by the code server that launched it; run monitoring
    catches runs that never start and hung cancels, ends a run at the runtime cap (above the Glue
    jobs' 48 h timeout), and frees the pool slots a killed step still held, once its run has ended:
    without that the slot stays claimed and every later run of that step waits for it forever."""
    poll = min(30, settings.sensor_interval_seconds)
    return {"enabled": True, "start_timeout_seconds": 180, "cancel_timeout_seconds": 180,
            "max_runtime_seconds": MAX_RUN_SECONDS, "poll_interval_seconds": poll,
            "max_resume_run_attempts": 0, "free_slots_after_run_end_seconds": 2 * poll}


def instance_config(settings: Settings) -> dict:
    config: dict = {"telemetry": {"enabled": False}, "concurrency": CONCURRENCY,
                    "run_monitoring": run_monitoring(settings)}
    if settings.postgres:
        # SQLAlchemy 2.1 defaults postgresql:// to psycopg 3; dagster-postgres ships psycopg2
        config["storage"] = {"postgres": {"postgres_db": {**{k: {"env": v} for k, v in POSTGRES_ENV.items()},
                                                          "scheme": "postgresql+psycopg2"}}}
        # a run whose worker died is re-run once; a run that failed in a step (bad input, a failed
        # blocking check, a step that used up its own retries) never is
        config["run_retries"] = {"enabled": True, "max_retries": 1, "retry_on_asset_or_op_failure": False}
    else:  # Dagster's SQLite files, at the path its default uses
        config["event_log_storage"] = {"module": __name__, "class": LocalEventLogStorage.__name__,
                                       "config": {"base_dir": str(settings.dagster_home / "history" / "runs")}}
    if settings.env == "aws":
        bucket, prefix = storage.split_s3(storage.join(settings.analysis_root, "dagster-compute-logs"))
        config["compute_logs"] = {"module": "dagster_aws.s3.compute_log_manager", "class": "S3ComputeLogManager",
                                  "config": {"bucket": bucket, "prefix": prefix, "region": settings.aws_region,
                                             "upload_interval": 30}}
    return config


def render(settings: Settings) -> str:
    return MARKER + yaml.safe_dump(instance_config(settings), sort_keys=False)


def write_instance_config(settings: Settings) -> Path:
    """Write dagster.yaml under the Dagster home from the settings, unless a user took it over
    (removed the marker line); returns the home."""
    home = settings.dagster_home
    home.mkdir(parents=True, exist_ok=True)
    path = home / "dagster.yaml"
    if not path.exists() or path.read_text().startswith(MARKER) or path.read_text() == LEGACY:
        text = render(settings)
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
    return home
