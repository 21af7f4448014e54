"""The AWS catalog: Glue Data Catalog through boto3, SQL through Athena."""

from __future__ import annotations

import time
import uuid
from concurrent.futures import ThreadPoolExecutor

from dagster import Failure

from flywheel_assets.catalog import athena_sql
from flywheel_assets.catalog.base import Catalog, chunks
from flywheel_assets.catalog.names import (
    Column,
    TableInfo,
    TableSpec,
    column_name,
    identifier,
    location,
    partition_value,
    positive,
)
from flywheel_assets.core import storage
from flywheel_assets.core.errors import FlywheelInputError

PARQUET_SD = {
    "InputFormat": "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat",
    "OutputFormat": "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat",
    "SerdeInfo": {
        "SerializationLibrary": "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe",
        "Parameters": {"serialization.format": "1"},
    },
}


class AthenaQueryError(Exception):
    pass


def _glue_columns(columns: list[Column]) -> list[dict]:
    return [{"Name": c.name, "Type": c.type} for c in columns]


def _s3_location(uri: str) -> str:
    loc = location(uri)
    if not loc.startswith("s3://"):
        raise FlywheelInputError(f"catalog locations on AWS must be s3:// URIs, got {uri!r}")
    return loc


class GlueAthenaCatalog(Catalog):
    region: str = "us-east-1"
    workgroup: str = "primary"  # --ATHENA_WORKGROUP / --WORKGROUP
    results_s3: str  # --ATHENA_RESULTS_S3 / --RESULTS_S3
    poll_interval_sec: float = 2.0  # --POLL_INTERVAL_SEC
    max_polls: int = 1800

    def engine(self) -> str:
        return f"AWS Glue Data Catalog + Athena (workgroup {self.workgroup}, {self.region})"

    def _client(self, service: str):
        return storage.aws_client(service, self.region)

    # --- Glue -----------------------------------------------------------------------------
    def ensure_database(self, database: str) -> None:
        glue = self._client("glue")
        try:
            glue.get_database(Name=identifier(database, "database"))
        except glue.exceptions.EntityNotFoundException:
            try:
                glue.create_database(DatabaseInput={"Name": database})
            except glue.exceptions.AlreadyExistsException:
                pass

    def _table_input(self, spec: TableSpec) -> dict:
        return {
            "Name": spec.name,
            "Description": spec.comment,
            "TableType": "EXTERNAL_TABLE",
            "Parameters": {"EXTERNAL": "TRUE", "classification": "parquet", "comment": spec.comment, **spec.properties},
            "StorageDescriptor": {"Columns": _glue_columns(spec.columns), "Location": _s3_location(spec.location),
                                  **PARQUET_SD},
            "PartitionKeys": _glue_columns(spec.partition_keys),
        }

    def apply_table(self, spec: TableSpec) -> str:
        self.ensure_database(spec.database)
        glue = self._client("glue")
        table_input = self._table_input(spec)
        try:
            existing = glue.get_table(DatabaseName=spec.database, Name=spec.name)["Table"]
        except glue.exceptions.EntityNotFoundException:
            try:
                glue.create_table(DatabaseName=spec.database, TableInput=table_input)
                return "created"
            except glue.exceptions.AlreadyExistsException:  # a concurrent run created it first
                existing = glue.get_table(DatabaseName=spec.database, Name=spec.name)["Table"]
        info = self._info(spec.database, existing, partitions=False)
        if (info.columns, info.location, info.partition_keys, info.comment) == (
            spec.columns, table_input["StorageDescriptor"]["Location"], [c.name for c in spec.partition_keys], spec.comment
        ):
            return "unchanged"
        glue.update_table(DatabaseName=spec.database, TableInput=table_input)  # one atomic change; partitions kept
        return "updated"

    def _partition_count(self, database: str, table: str) -> int:
        paginator = self._client("glue").get_paginator("get_partitions")
        return sum(len(page["Partitions"]) for page in
                   paginator.paginate(DatabaseName=database, TableName=table, ExcludeColumnSchema=True))

    def _info(self, database: str, table: dict, partitions: bool = True) -> TableInfo:
        sd = table.get("StorageDescriptor", {})
        keys = [k["Name"] for k in table.get("PartitionKeys", [])]
        return TableInfo(
            database=database,
            name=table["Name"],
            location=sd.get("Location", "").rstrip("/") + "/",
            columns=[Column(c["Name"], c["Type"]) for c in sd.get("Columns", [])],
            comment=table.get("Parameters", {}).get("comment", table.get("Description", "")),
            partition_keys=keys,
            partitions=self._partition_count(database, table["Name"]) if keys and partitions else 0,
            bucket_columns=sd.get("BucketColumns", []),
            num_buckets=max(0, sd.get("NumberOfBuckets", 0) or 0),
            external=table.get("TableType") == "EXTERNAL_TABLE",
            parquet="parquet" in " ".join([sd.get("InputFormat", ""), sd.get("SerdeInfo", {}).get(
                "SerializationLibrary", ""), table.get("Parameters", {}).get("classification", "")]).lower(),
        )

    def drop_table(self, database: str, table: str) -> bool:
        glue = self._client("glue")
        try:
            glue.delete_table(DatabaseName=identifier(database, "database"), Name=identifier(table, "table"))
        except glue.exceptions.EntityNotFoundException:
            return False
        return True

    def describe(self, database: str, table: str, partitions: bool = True) -> TableInfo | None:
        glue = self._client("glue")
        try:
            found = glue.get_table(DatabaseName=identifier(database, "database"), Name=identifier(table, "table"))
        except glue.exceptions.EntityNotFoundException:
            return None
        return self._info(database, found["Table"], partitions)

    def list_tables(self, database: str, prefix: str = "", partitions: bool = True) -> list[TableInfo]:
        glue = self._client("glue")
        if prefix:
            column_name(prefix, "table prefix")
        try:
            pages = list(glue.get_paginator("get_tables").paginate(DatabaseName=identifier(database, "database")))
        except glue.exceptions.EntityNotFoundException:
            return []
        tables = [t for page in pages for t in page["TableList"] if t["Name"].startswith(prefix)]
        return sorted((self._info(database, t, partitions) for t in tables), key=lambda t: t.name)

    def add_partitions(self, database: str, table: str, partitions: list[tuple[str, str]]) -> None:
        glue = self._client("glue")
        sd = glue.get_table(DatabaseName=identifier(database, "database"), Name=identifier(table, "table"))["Table"]["StorageDescriptor"]
        for chunk in chunks(partitions):  # Glue takes at most 100 partitions per call
            inputs = [{"Values": [partition_value(v)], "StorageDescriptor": {**sd, "Location": _s3_location(loc)}}
                      for v, loc in chunk]
            errors = glue.batch_create_partition(DatabaseName=database, TableName=table,
                                                 PartitionInputList=inputs).get("Errors", [])
            real = [e for e in errors if e["ErrorDetail"]["ErrorCode"] != "AlreadyExistsException"]
            if real:
                detail = "; ".join(f"{e['PartitionValues']}: {e['ErrorDetail']['ErrorMessage']}" for e in real[:5])
                raise Failure(f"Glue refused {len(real)} partition(s) of {database}.{table}: {detail}")

    def _partition(self, database: str, table: str, value: str) -> dict | None:
        glue = self._client("glue")
        try:
            return glue.get_partition(DatabaseName=identifier(database, "database"), TableName=identifier(table, "table"),
                                      PartitionValues=[partition_value(value)])["Partition"]
        except glue.exceptions.EntityNotFoundException:
            return None

    def has_partition(self, database: str, table: str, value: str) -> bool:
        return self._partition(database, table, value) is not None

    def partition_location(self, database: str, table: str, value: str) -> str | None:
        found = self._partition(database, table, value)
        return found["StorageDescriptor"]["Location"] if found else None

    def set_partition_location(self, database: str, table: str, value: str, location: str) -> None:
        found = self._partition(database, table, value)
        if found is None:
            raise Failure(f"{database}.{table} has no partition snapshot_dt={value} to point at {location}")
        sd = {**found["StorageDescriptor"], "Location": _s3_location(location)}
        self._client("glue").update_partition(  # one atomic change
            DatabaseName=database, TableName=table, PartitionValueList=[value],
            PartitionInput={"Values": [value], "StorageDescriptor": sd, "Parameters": found.get("Parameters", {})})

    def partitions(self, database: str, table: str) -> list[tuple[str, str]]:
        paginator = self._client("glue").get_paginator("get_partitions")
        pages = paginator.paginate(DatabaseName=identifier(database, "database"), TableName=identifier(table, "table"))
        return sorted((p["Values"][0], p["StorageDescriptor"]["Location"]) for page in pages for p in page["Partitions"])

    # --- Athena ---------------------------------------------------------------------------
    def run_sql(self, sql: str, database: str | None = None, poll_interval: float | None = None) -> str:
        """Run one statement on Athena to completion; returns the query execution id."""
        from dagster_aws.athena.resources import AthenaClient, AthenaError, AthenaTimeout

        athena = self._client("athena")
        params = {"QueryString": sql, "WorkGroup": self.workgroup,
                  "ResultConfiguration": {"OutputLocation": _s3_location(self.results_s3)}}
        if database:
            params["QueryExecutionContext"] = {"Database": identifier(database, "database")}
        query_id = athena.start_query_execution(**params)["QueryExecutionId"]
        poller = AthenaClient(athena, self.workgroup,
                              self.poll_interval_sec if poll_interval is None else poll_interval, self.max_polls)
        try:
            poller._poll(query_id)  # dagster-aws's poll loop: QUEUED/RUNNING until a final state
        except AthenaTimeout:
            athena.stop_query_execution(QueryExecutionId=query_id)
            raise AthenaQueryError(f"Athena query {query_id} still running after {self.max_polls} polls; stopped it")
        except (AthenaError, KeyError):
            status = athena.get_query_execution(QueryExecutionId=query_id)["QueryExecution"]["Status"]
            reason = status.get("StateChangeReason") or status.get("AthenaError", {}).get("ErrorMessage", "")
            raise AthenaQueryError(f"Athena query {query_id} {status['State']}: {reason or 'no reason given'} "
                                   f"(SQL: {sql[:200]})")
        return query_id

    def repair(self, database: str, tables: list[str], max_concurrency: int, poll_interval: float) -> None:
        statements = [athena_sql.msck_repair(database, t) for t in tables]
        with ThreadPoolExecutor(max_workers=positive(max_concurrency, "MAX_CONCURRENCY", 50)) as pool:
            list(pool.map(lambda sql: self.run_sql(sql, database, poll_interval), statements))

    def replace_bucketed(self, database: str, name: str, source: tuple[str, str], location_base: str,
                         bucket_column: str, bucket_count: int, comment: str, writers: int = 0,
                         file_options: dict[str, str] | None = None) -> None:
        staged = self.describe(source[0], source[1], partitions=False)
        if staged is None:
            raise AthenaQueryError(f"{source[0]}.{source[1]} does not exist: materialize ext_tables first")
        columns = [c.name for c in staged.columns]
        self._replace(database, name, location_base, comment, lambda staging, new_location: athena_sql.bucketed_ctas(
            database, staging, new_location, source, columns, bucket_column, bucket_count))

    def replace_identity_table(self, database: str, name: str, source: tuple[str, str], snapshot: str,
                               location_base: str, comment: str) -> None:
        self._replace(database, name, location_base, comment, lambda staging, new_location: athena_sql.identity_ctas(
            database, staging, new_location, source, snapshot))

    def _replace(self, database: str, name: str, location_base: str, comment: str, ctas) -> None:
        """Athena CTAS (``ctas(staging table, location)``) into an empty, fresh location, then one
        Glue update points the table at it; the previous version's folder is kept for its readers."""
        glue = self._client("glue")
        staging = identifier(f"{name}__staging_{uuid.uuid4().hex[:8]}", "table")
        new_location = _s3_location(storage.join(location_base, f"v{time.strftime('%Y%m%dT%H%M%S')}_{uuid.uuid4().hex[:8]}"))
        existing = None
        try:
            self.run_sql(ctas(staging, new_location), database)
            built = glue.get_table(DatabaseName=database, Name=staging)["Table"]
            sd = {**built["StorageDescriptor"], "Location": new_location}
            table_input = {"Name": name, "Description": comment, "TableType": "EXTERNAL_TABLE",
                           "Parameters": {**built.get("Parameters", {}), "EXTERNAL": "TRUE", "comment": comment},
                           "StorageDescriptor": sd, "PartitionKeys": built.get("PartitionKeys", [])}
            existing = self.describe(database, name, partitions=False)
            if existing:
                glue.update_table(DatabaseName=database, TableInput=table_input)  # atomic swap
            else:
                glue.create_table(DatabaseName=database, TableInput=table_input)
        except Exception:
            storage.delete_tree(new_location)  # the previous table and its files are untouched
            raise
        finally:
            try:
                glue.delete_table(DatabaseName=database, Name=staging)  # external: files stay
            except glue.exceptions.EntityNotFoundException:
                pass
        keep = {new_location, existing.location if existing else None}
        for entry in storage.list_dir(location_base):
            old = storage.join(location_base, entry.name) + "/"
            if entry.is_dir and entry.name.startswith("v") and old not in keep:
                storage.delete_tree(old)

    def query(self, sql: str) -> tuple[list[str], list[tuple]]:
        query_id = self.run_sql(sql, self.database)
        athena = self._client("athena")
        columns, rows = [], []
        for page in athena.get_paginator("get_query_results").paginate(QueryExecutionId=query_id):
            columns = columns or [c["Name"] for c in page["ResultSet"]["ResultSetMetadata"]["ColumnInfo"]]
            for row in page["ResultSet"]["Rows"]:
                rows.append(tuple(cell.get("VarCharValue") for cell in row["Data"]))
        if rows and list(rows[0]) == columns:  # SELECT results repeat the header as the first row
            rows = rows[1:]
        return columns, rows
