"""The local catalog: Spark SQL over the Hive metastore of the local catalog server."""

from __future__ import annotations

import logging
import re
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import ClassVar

from flywheel_assets.catalog.base import Catalog, chunks, column_change
from flywheel_assets.catalog.names import (
    Column,
    TableInfo,
    TableSpec,
    comment_text,
    identifier,
    location,
    partition_value,
    positive,
    qualified,
    quote,
)
from flywheel_assets.local_spark import LocalSpark
from flywheel_assets.spark_jobs.runtime import fail_fast_when_gone, stop_quietly
from flywheel_assets.core import publish, storage
from flywheel_assets.core.errors import FlywheelInputError


_sessions: dict = {}
METASTORE_WAIT_S = 120.0
LOCKED = "Unable to instantiate org.apache.hadoop.hive.ql.metadata.SessionHiveMetaStoreClient"


class MetastoreLockedError(RuntimeError):
    pass


def wait_for_metastore(session, url: str, wait_s: float = METASTORE_WAIT_S, say=logging.getLogger(__name__).warning) -> int:
    """Returns once the server's metastore answers; the number of attempts it took.

    Derby admits one JVM: a server started while another JVM holds the same metastore_db (a
    second server on the same FLYWHEEL_HOME, a spark-shell) cannot open it until that one ends,
    so waiting is right; past ``wait_s`` the user is told what to look for.
    """
    deadline, attempts = time.monotonic() + wait_s, 0
    while True:
        attempts += 1
        try:
            session.sql("SHOW DATABASES").collect()
            return attempts
        except Exception as exc:
            if LOCKED not in str(exc):
                raise
            if time.monotonic() > deadline:
                raise MetastoreLockedError(
                    f"the local Hive metastore of the Spark server at {url} is locked by another process (tried "
                    f"{attempts} times over {wait_s:.0f} s). Derby admits one JVM: look for a second Spark server "
                    "or spark-shell using the same FLYWHEEL_HOME (`flywheel spark status`), stop it, and rerun."
                ) from None
            say(f"local metastore locked by another process; attempt {attempts}, retrying in 2 s")
            time.sleep(2)


def _new_session(url: str, log: str = ""):
    from pyspark.sql import SparkSession

    # The Connect client logs every failed statement with its JVM stack trace; callers report
    # the error themselves, once. Its own logger has a level of its own and is off only until
    # something calls logging.config.dictConfig (Dagster does, in every step process).
    for name in ("pyspark", "pyspark.sql.connect.logging", "SQLQueryContextLogger"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    session = SparkSession.builder.remote(url).create()
    fail_fast_when_gone(session, url, log)
    return session


def _session(url: str, log: str = ""):
    """This process's session with the server at ``url``, made once."""
    if url not in _sessions:
        session = _new_session(url, log)
        try:
            wait_for_metastore(session, url)
        except BaseException:
            stop_quietly(session)
            raise
        _sessions[url] = session
    return _sessions[url]


def close_sessions(*urls: str) -> None:
    """Close this process's client sessions (of ``urls``, default all); one whose server is gone
    is dropped all the same."""
    for url in urls or list(_sessions):
        session = _sessions.pop(url, None)
        if session is not None:
            stop_quietly(session)


def _columns_sql(columns: list[Column]) -> str:
    return ", ".join(f"{quote(c.name)} {c.type}" for c in columns)


def _plain_location(value: str) -> str:
    return location(value[len("file:"):] if value.startswith("file:") else value)


# SHOW TABLE EXTENDED prints a schema tree with Spark's type names; the catalog speaks Hive's.
HIVE_NAMES = {"long": "bigint", "integer": "int", "short": "smallint", "byte": "tinyint"}
FLAT_TYPE = re.compile(r"^(string|double|float|boolean|date|timestamp|timestamp_ntz|binary|bigint|int|smallint|"
                       r"tinyint|decimal\(\d+,\d+\))$")
SCHEMA_LINE = re.compile(r"^ \|-- ([A-Za-z0-9_]+): (\S+) \(nullable = (?:true|false)\)$")


def _backquoted(value: str) -> list[str]:
    return re.findall(r"`([^`]+)`", value)


def parse_extended(database: str, name: str, information: str) -> TableInfo | None:
    """A table from one SHOW TABLE EXTENDED entry; None when its schema is not flat columns of
    plain types (nested types print over several lines): the caller describes it instead."""
    fields, columns, in_schema = {}, [], False
    for line in information.splitlines():
        if in_schema and line.startswith(" |"):
            match = SCHEMA_LINE.match(line)
            kind = match and HIVE_NAMES.get(match.group(2), match.group(2))
            if not match or not FLAT_TYPE.match(kind):
                return None
            columns.append(Column(match.group(1), kind))
            continue
        in_schema = line == "Schema: root"
        key, sep, value = line.partition(": ")
        if sep:
            fields.setdefault(key, value)
    keys = _backquoted(fields.get("Partition Columns", ""))
    return TableInfo(
        database=database, name=name, location=_plain_location(fields.get("Location", "")),
        columns=[c for c in columns if c.name not in keys], comment=fields.get("Comment", ""),
        partition_keys=keys, partitions=0, bucket_columns=_backquoted(fields.get("Bucket Columns", "")),
        num_buckets=int(fields.get("Num Buckets") or 0), **_kind(fields))


def _kind(fields: dict) -> dict:
    """external/parquet from SHOW TABLE EXTENDED or DESCRIBE TABLE EXTENDED fields (a Hive-format
    table says parquet in its input format, a Spark data source table in its provider)."""
    formats = " ".join(fields.get(k) or "" for k in ("Provider", "InputFormat", "Serde Library")).lower()
    return {"external": (fields.get("Type") or "").upper() == "EXTERNAL", "parquet": "parquet" in formats}


PARQUET_CODECS = frozenset({"snappy", "uncompressed", "gzip", "zstd", "lz4_raw"})
# the parquet writer options a bucketed build may set, and their values (they go into SQL)
BUCKET_FILE_OPTIONS = {"compression": PARQUET_CODECS, "parquet.enable.dictionary": frozenset({"true", "false"})}
APPLY_CONCURRENCY = 4  # tables defined at the same time (apply_tables)
KEY_STATS_CONF = {"spark.sql.sources.bucketing.enabled": "false", "spark.sql.files.openCostInBytes": "65536"}


class LocalCatalog(Catalog):
    """Spark SQL + Hive metastore of the local Spark server (see local_spark.py)."""

    server: LocalSpark

    def engine(self) -> str:
        return "local Spark SQL (Hive metastore)"

    def teardown_after_execution(self, context) -> None:
        # Release the step's session: the server keeps an unreleased one for an hour, with every
        # table listing it cached (a server 45 minutes and about 20 runs old held 319,000 file statuses)
        close_sessions()

    @property
    def spark(self):
        return _session(self.server.url(), self.server.log_path())

    def sql(self, statement: str):
        return self.spark.sql(statement)

    def ensure_database(self, database: str) -> None:
        self.sql(f"CREATE DATABASE IF NOT EXISTS {quote(database)}")

    def drop_table(self, database: str, table: str) -> bool:
        if not self.spark.catalog.tableExists(f"{identifier(database)}.{identifier(table)}"):
            return False
        self.sql(f"DROP TABLE IF EXISTS {qualified(database, table)}")  # external: the files stay
        return True

    def describe(self, database: str, table: str, partitions: bool = True) -> TableInfo | None:
        """One DESCRIBE TABLE EXTENDED (columns, partition keys, buckets, location, comment): every
        statement is a metastore round trip, and the server's metastore serves one at a time."""
        from pyspark.errors import AnalysisException

        name = qualified(database, table)
        try:
            rows = self.sql(f"DESCRIBE TABLE EXTENDED {name}").collect()
        except AnalysisException as exc:
            if (exc.getCondition() or "") in ("TABLE_OR_VIEW_NOT_FOUND", "SCHEMA_NOT_FOUND"):
                return None
            raise
        columns, keys, details, section = [], [], {}, "columns"
        for column, kind, _ in rows:  # columns, a blank line or "# Partition Information", details
            if section != "details" and not column:
                section = "details"
            elif section == "columns" and column == "# Partition Information":
                section = "partitions"
            elif section == "columns":
                columns.append(Column(column, kind))
            elif section == "partitions" and not column.startswith("#"):
                keys.append(column)
            elif section == "details":
                details.setdefault(column, kind)
        count = len(self.sql(f"SHOW PARTITIONS {name}").collect()) if keys and partitions else 0
        return TableInfo(
            database=database,
            name=table,
            location=_plain_location(details.get("Location", "")),
            columns=[c for c in columns if c.name not in keys],
            comment=details.get("Comment") or "",
            partition_keys=keys,
            partitions=count,
            bucket_columns=_backquoted(details.get("Bucket Columns", "")),
            num_buckets=int(details.get("Num Buckets") or 0),
            **_kind(details),
        )

    def list_tables(self, database: str, prefix: str = "", partitions: bool = True) -> list[TableInfo]:
        """Every table of ``database`` whose name starts with ``prefix``: one SHOW TABLE EXTENDED
        for all of them (plus SHOW PARTITIONS per partitioned table if ``partitions``), instead of
        three round trips per table; a table it cannot read exactly is described on its own."""
        if not self.spark.catalog.databaseExists(identifier(database)):
            return []
        if prefix:  # the prefix goes into the statement's pattern
            identifier(prefix, "table prefix")
        out = []
        for name, info in sorted(self._extended(database, f"{prefix}*").items()):
            if not name.startswith(prefix):
                continue
            if partitions and info.partition_keys:
                info.partitions = len(self.partition_values(database, name))
            out.append(info)
        return out

    def _extended(self, database: str, pattern: str) -> dict[str, TableInfo]:
        """name -> table, for the tables of ``database`` that SHOW TABLE EXTENDED's ``pattern``
        matches (``*``: any characters; ``|`` between alternatives): one statement for them all.
        ``pattern`` is made of validated identifiers."""
        rows = self.sql(f"SHOW TABLE EXTENDED IN {quote(database)} LIKE '{pattern}'").collect()
        found = {}
        for row in rows:
            name = row["tableName"]
            info = None if row["isTemporary"] else (
                parse_extended(database, name, row["information"]) or self.describe(database, name, False))
            if info:
                found[name] = info
        return found

    def apply_table(self, spec: TableSpec) -> str:
        self.ensure_database(spec.database)
        return self._apply(spec, self.describe(spec.database, spec.name, partitions=False))

    def apply_tables(self, specs: list[TableSpec]) -> dict[str, str]:
        """One listing per database of the tables named, instead of a DESCRIBE per table (and
        instead of every table of the database: 0.17 s for 29 of 85 tables, 0.42 s for all)."""
        known = {}
        for database in sorted({s.database for s in specs}):
            self.ensure_database(database)
            known[database] = self._extended(database, "|".join(identifier(s.name) for s in specs
                                                                 if s.database == database))
        # tables at the same time: one's statement is planned while another's is in the metastore
        # (ext_tables alone: 2 ALTERs per table on a new snapshot)
        with ThreadPoolExecutor(max_workers=APPLY_CONCURRENCY) as pool:
            actions = list(pool.map(lambda s: self._apply(s, known[s.database].get(s.name)), specs))
        return {s.name: action for s, action in zip(specs, actions)}

    def _apply(self, spec: TableSpec, existing: TableInfo | None) -> str:
        name = qualified(spec.database, spec.name)
        change = column_change(existing.columns, spec.columns) if existing else None
        recreate = existing is not None and (
            (existing.location != spec.location and spec.partition_keys)
            or existing.partition_keys != [c.name for c in spec.partition_keys]
            or existing.num_buckets
            or change == "incompatible"
        )
        if recreate:
            self.sql(f"DROP TABLE {name}")  # external: the files stay
        if existing is None or recreate:
            partitioned = f" PARTITIONED BY ({_columns_sql(spec.partition_keys)})" if spec.partition_keys else ""
            self.sql(
                f"CREATE EXTERNAL TABLE IF NOT EXISTS {name} ({_columns_sql(spec.columns)}) "
                f"COMMENT '{comment_text(spec.comment)}'{partitioned} "
                f"STORED AS PARQUET LOCATION '{spec.location}'"
            )
            if recreate and spec.partition_keys:
                self.sql(f"MSCK REPAIR TABLE {name}")  # re-register what the drop forgot
            return "recreated" if recreate else "created"
        updated = False
        if existing.location != spec.location:  # one metastore update: readers see the old files or the new
            self.sql(f"ALTER TABLE {name} SET LOCATION '{spec.location}'")
            updated = True
        if change == "added":
            self.sql(f"ALTER TABLE {name} ADD COLUMNS ({_columns_sql(spec.columns[len(existing.columns):])})")
            updated = True
        if existing.comment != spec.comment:
            self.sql(f"ALTER TABLE {name} SET TBLPROPERTIES ('comment' = '{comment_text(spec.comment)}')")
            updated = True
        return "updated" if updated else "unchanged"

    def add_partitions(self, database: str, table: str, partitions: list[tuple[str, str]]) -> None:
        name = qualified(database, table)
        for chunk in chunks(partitions):
            specs = " ".join(
                f"PARTITION (snapshot_dt = '{partition_value(v)}') LOCATION '{location(loc)}'" for v, loc in chunk
            )
            self.sql(f"ALTER TABLE {name} ADD IF NOT EXISTS {specs}")

    def has_partition(self, database: str, table: str, value: str) -> bool:
        name = qualified(database, table)
        return bool(self.sql(f"SHOW PARTITIONS {name} PARTITION (snapshot_dt = '{partition_value(value)}')").collect())

    def partition_location(self, database: str, table: str, value: str) -> str | None:
        """One statement (not SHOW PARTITIONS, then DESCRIBE): the partition's entry, or none."""
        from pyspark.errors import AnalysisException

        try:
            rows = self.sql(f"SHOW TABLE EXTENDED IN {quote(database)} LIKE '{identifier(table)}' "
                            f"PARTITION (snapshot_dt = '{partition_value(value)}')").collect()
        except AnalysisException as exc:
            if exc.getCondition() == "PARTITIONS_NOT_FOUND":
                return None
            raise
        found = re.search(r"^Location: (.*)$", rows[0]["information"] if rows else "", re.M)
        return _plain_location(found.group(1)) if found else None

    def set_partition_location(self, database: str, table: str, value: str, location_: str) -> None:
        self.sql(f"ALTER TABLE {qualified(database, table)} PARTITION (snapshot_dt = '{partition_value(value)}') "
                 f"SET LOCATION '{location(location_)}'")

    def partition_values(self, database: str, table: str) -> list[str]:
        rows = self.sql(f"SHOW PARTITIONS {qualified(database, table)}").collect()
        return sorted(partition_value(row[0].split("=", 1)[1]) for row in rows)

    def partitions(self, database: str, table: str) -> list[tuple[str, str]]:
        """Spark SQL has no bulk form: one DESCRIBE per partition (the report's cost, not publishing's)."""
        name = qualified(database, table)
        out = []
        for value in self.partition_values(database, table):
            details = self.sql(f"DESCRIBE TABLE EXTENDED {name} PARTITION (snapshot_dt = '{value}')").collect()
            loc = next((r[1] for r in details if r[0] == "Location"), "")
            out.append((value, _plain_location(loc)))
        return sorted(out)

    def partition_locations(self, database: str, table: str, table_location: str) -> list[tuple[str, str]]:
        """One SHOW PARTITIONS instead of a DESCRIBE per partition: locally every partition is
        registered by this platform at ``<table location>/snapshot_dt=<value>/`` or the version a
        re-publication wrote in it, which the folder's record names (publish.data_folder)."""
        return [(v, publish.data_folder(storage.join(table_location, f"snapshot_dt={v}")))
                for v in self.partition_values(database, table)]

    def repair(self, database: str, tables: list[str], max_concurrency: int, poll_interval: float) -> None:
        for table in tables:  # one engine, one statement at a time; concurrency matters on Athena
            self.sql(f"MSCK REPAIR TABLE {qualified(database, table)}")

    def replace_bucketed(self, database: str, name: str, source: tuple[str, str], location_base: str,
                         bucket_column: str, bucket_count: int, comment: str, writers: int = 0,
                         file_options: dict[str, str] | None = None) -> None:
        column, count = quote(bucket_column), positive(bucket_count, "BUCKET_COUNT", 100_000)
        writers = positive(writers or count, "writers", count)
        for key, value in (file_options or {}).items():
            if key not in BUCKET_FILE_OPTIONS:
                raise FlywheelInputError(f"parquet option {key!r} is not one of {', '.join(sorted(BUCKET_FILE_OPTIONS))}")
            if value not in BUCKET_FILE_OPTIONS[key]:
                raise FlywheelInputError(f"{key} {value!r} is not one of {', '.join(sorted(BUCKET_FILE_OPTIONS[key]))}")
        options = ", ".join(f"'{key}' = '{value}'" for key, value in (file_options or {}).items())
        # hash-partitioning into a divisor of the bucket count: each bucket in one task, one file
        self._replace(database, name, location_base, comment,
                      f"USING PARQUET CLUSTERED BY ({column}) INTO {count} BUCKETS",
                      f"SELECT /*+ REPARTITION({writers}, {column}) */ * FROM {qualified(*source)}",
                      lambda existing: (existing.bucket_columns, existing.num_buckets) == ([bucket_column], count),
                      write_options=f"OPTIONS ({options})" if options else "")

    def replace_identity_table(self, database: str, name: str, source: tuple[str, str], snapshot: str,
                               location_base: str, comment: str) -> None:
        self._replace(database, name, location_base, comment, "USING PARQUET",
                      f"SELECT DISTINCT customer_user_id AS row_id, customer_user_id FROM {qualified(*source)} "
                      f"WHERE snapshot_dt = '{partition_value(snapshot)}' AND customer_user_id IS NOT NULL",
                      lambda existing: not existing.num_buckets)

    def _replace(self, database: str, name: str, location_base: str, comment: str, storage_clause: str,
                 select: str, same_layout, write_options: str = "") -> None:
        """Build the table from ``select`` into a fresh folder under ``location_base``, then point
        the table at it; the previous version's folder is kept for readers still on it.
        ``write_options`` apply to this build's files only, not to the table's definition."""
        from pyspark.errors import AnalysisException

        final = qualified(database, name)
        staging_name = identifier(f"{name}__staging")
        staging = qualified(database, staging_name)
        new_location = location(storage.join(location_base, f"v{time.strftime('%Y%m%dT%H%M%S')}_{uuid.uuid4().hex[:8]}"))
        build = f"CREATE TABLE {staging} {storage_clause} {write_options} LOCATION '{new_location}' AS {select}"
        try:
            try:
                self.sql(build)
            except AnalysisException as exc:  # refused before writing: a failed build's leftover holds the name
                if exc.getCondition() != "TABLE_OR_VIEW_ALREADY_EXISTS":
                    raise
                self.sql(f"DROP TABLE {staging}")
                self.sql(build)
        except Exception:
            self.sql(f"DROP TABLE IF EXISTS {staging}")
            storage.delete_tree(new_location)
            raise
        # every statement costs the server ~25 ms: both tables in one listing, not a DESCRIBE each
        tables = self._extended(database, f"{name}|{staging_name}")
        built, existing = tables[staging_name], tables.get(name)
        if existing is not None and existing.columns == built.columns and same_layout(existing):
            # one metastore update: readers see the old files or the new ones
            self.sql(f"ALTER TABLE {final} SET LOCATION '{new_location}'")
        else:  # the schema changed: a short window without the table, noted in the README
            self.sql(f"DROP TABLE IF EXISTS {final}")
            self.sql(f"CREATE TABLE {final} ({_columns_sql(built.columns)}) {storage_clause} LOCATION '{new_location}'")
        self.sql(f"ALTER TABLE {final} SET TBLPROPERTIES ('comment' = '{comment_text(comment)}')")
        self.sql(f"DROP TABLE {staging}")
        keep = {new_location, existing.location if existing else None}
        for entry in storage.list_dir(location_base):
            old = location(storage.join(location_base, entry.name))
            if entry.is_dir and entry.name.startswith("v") and old not in keep:
                storage.delete_tree(old)

    dialect: ClassVar[str] = "spark"

    def current_rows(self, sql: str) -> list[tuple]:
        # On a session of its own, stopped after: a new session has cached no table's file
        # listing, so it reads the files as they are now without a REFRESH per table (the
        # monitor's 57: `flywheel monitor` 17.3 -> 14.4 s), and its settings need no putting back.
        # A bucketed scan reads each of a table's 256 bucket files in its own task; counting needs
        # no bucket layout, so let the files share tasks, and charge each small file 64 KB instead
        # of 4 MB when packing them (on 2 cores, a sample table's 256 files in 2 tasks instead of
        # 8; `flywheel monitor` 25 -> 21 s).
        session = _new_session(self.server.url(), self.server.log_path())
        try:
            for key, value in KEY_STATS_CONF.items():
                session.conf.set(key, value)
            return [tuple(row) for row in session.sql(sql).collect()]
        finally:
            stop_quietly(session)

    def query(self, sql: str) -> tuple[list[str], list[tuple]]:
        if self.spark.catalog.databaseExists(identifier(self.database)):
            self.spark.catalog.setCurrentDatabase(self.database)
        df = self.sql(sql)
        return list(df.columns), [tuple(r) for r in df.collect()]
