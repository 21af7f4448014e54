"""The Glue + Athena catalog against moto's HTTP server (and botocore's Stubber where moto is silent)."""

from __future__ import annotations

import io
import re

import boto3
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from botocore.stub import Stubber
from dagster import AssetKey, DagsterInstance, materialize

from flywheel_assets.catalog.aws import AthenaQueryError, GlueAthenaCatalog
from flywheel_assets.catalog.names import Column, TableSpec
from flywheel_assets.pipelines import build_assets
from flywheel_assets.tables import TableSet
from flywheel_assets_tests.conftest import step
from flywheel_assets.resources import Lake
from flywheel_assets.core.errors import FlywheelInputError

BUCKET = "flywheel-test-lake"
DB = "omc_flywheel_prod"


@pytest.fixture
def aws(aws_env):
    boto3.client("s3").create_bucket(Bucket=BUCKET)
    return GlueAthenaCatalog(database=DB, results_s3=f"s3://{BUCKET}/athena-results/", poll_interval_sec=0.01)


def glue():
    return boto3.client("glue")


def route(monkeypatch, service: str, client) -> None:
    """Make every GlueAthenaCatalog (also the copies Dagster makes) use ``client`` for ``service``."""
    original = GlueAthenaCatalog._client
    monkeypatch.setattr(GlueAthenaCatalog, "_client",
                        lambda self, name: client if name == service else original(self, name))


def spec(**overrides):
    args = dict(database=DB, name="part_ibe_01_a", location=f"s3://{BUCKET}/split_part/infobase_attributes/ibe_01_a",
                columns=[Column("customer_user_id", "string"), Column("attr_a", "bigint")],
                comment="part; snapshot_dt=2024-01-15", partition_keys=[Column("snapshot_dt", "string")])
    return TableSpec(**{**args, **overrides})


def test_apply_table_creates_then_leaves_then_updates_keeping_partitions(aws):
    assert aws.apply_table(spec()) == "created"
    table = glue().get_table(DatabaseName=DB, Name="part_ibe_01_a")["Table"]
    sd = table["StorageDescriptor"]
    assert sd["Location"] == f"s3://{BUCKET}/split_part/infobase_attributes/ibe_01_a/"
    assert sd["Columns"] == [{"Name": "customer_user_id", "Type": "string"}, {"Name": "attr_a", "Type": "bigint"}]
    assert sd["SerdeInfo"]["SerializationLibrary"] == "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"
    assert table["PartitionKeys"] == [{"Name": "snapshot_dt", "Type": "string"}]
    assert table["TableType"] == "EXTERNAL_TABLE"
    assert table["Parameters"]["comment"] == "part; snapshot_dt=2024-01-15"
    aws.add_partitions(DB, "part_ibe_01_a", [("2024-01-15", sd["Location"] + "snapshot_dt=2024-01-15")])
    assert aws.apply_table(spec()) == "unchanged"
    wider = spec(columns=[*spec().columns, Column("attr_new", "string")], comment="part; snapshot_dt=2024-02-15")
    assert aws.apply_table(wider) == "updated"
    info = aws.describe(DB, "part_ibe_01_a")
    assert [c.name for c in info.columns] == ["customer_user_id", "attr_a", "attr_new"]
    assert info.partitions == 1 and info.snapshot == "2024-02-15"


def test_catalog_locations_must_be_s3(aws):
    with pytest.raises(FlywheelInputError, match="must be s3:// URIs"):
        aws.apply_table(spec(location="/tmp/local/path"))


def test_partition_registration_chunks_of_100_and_is_idempotent(aws, monkeypatch):
    aws.apply_table(spec())
    calls = []
    client = glue()
    client.meta.events.register("provide-client-params.glue.BatchCreatePartition",
                                lambda params, **_: calls.append(len(params["PartitionInputList"])))
    days = [f"20{y:02d}-{m:02d}-15" for y in range(10, 40) for m in range(1, 13)][:250]
    parts = [(d, f"s3://{BUCKET}/split_part/infobase_attributes/ibe_01_a/snapshot_dt={d}") for d in days]
    route(monkeypatch, "glue", client)
    aws.add_partitions(DB, "part_ibe_01_a", parts)
    assert calls == [100, 100, 50]
    aws.add_partitions(DB, "part_ibe_01_a", parts[:3])  # already there: no error, no duplicates
    assert aws.describe(DB, "part_ibe_01_a").partitions == 250
    assert aws.has_partition(DB, "part_ibe_01_a", days[7]) and not aws.has_partition(DB, "part_ibe_01_a", "1999-01-01")
    got = glue().get_partition(DatabaseName=DB, TableName="part_ibe_01_a", PartitionValues=[days[0]])["Partition"]
    assert got["StorageDescriptor"]["Location"] == parts[0][1] + "/"

    # a re-published snapshot: the partition is pointed at its version, columns and format kept
    assert aws.partition_location(DB, "part_ibe_01_a", days[0]) == parts[0][1] + "/"
    aws.set_partition_location(DB, "part_ibe_01_a", days[0], parts[0][1] + "/_v0123456789ab")
    got = glue().get_partition(DatabaseName=DB, TableName="part_ibe_01_a", PartitionValues=[days[0]])["Partition"]
    assert aws.partition_location(DB, "part_ibe_01_a", days[0]) == parts[0][1] + "/_v0123456789ab/"
    assert got["StorageDescriptor"]["Columns"] == glue().get_partition(
        DatabaseName=DB, TableName="part_ibe_01_a", PartitionValues=[days[1]])["Partition"]["StorageDescriptor"]["Columns"]
    assert aws.partition_location(DB, "part_ibe_01_a", "1999-01-01") is None


def put_parquet(key: str, table: pa.Table) -> None:
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    boto3.client("s3").put_object(Bucket=BUCKET, Key=key, Body=buffer.getvalue())


# The tables of these tests' lake (it has no mapping files on S3).
ASSETS = build_assets(TableSet({"infobase_split_and_bucket": ("IBE_01",), "addressable_bucket": ("addressable_ids",),
                                "infobase_split_and_part": ("IBE_01_A",), "addressable_split_part": ()} | {
                                "addressable_split_and_part": ("addressable_ids",)}))


def materialize_on_aws(aws, steps, snapshot, config=None, selection=None):
    instance = DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("snapshot_dt", [snapshot])
    return materialize([step(ASSETS, s) for s in steps], partition_key=snapshot, instance=instance,
                       run_config=config or {}, selection=selection,
                       resources={"lake": Lake(data_root=f"s3://{BUCKET}"), "catalog": aws})


def test_part_tables_published_from_s3_register_exactly_the_new_snapshot(aws):
    for snap in ("2024-01-15", "2024-02-15"):
        put_parquet(f"omc_cleanroom_data/split_part/infobase_attributes/ibe_01_a/snapshot_dt={snap}/part-0.parquet",
                    pa.table({"customer_user_id": ["a", "b"], "attr_a": [1, 2]}))
        put_parquet(f"omc_cleanroom_data/split_part/addressable_ids/snapshot_dt={snap}/part-0.parquet",
                    pa.table({"customer_user_id": ["a"], "maid": ["m"]}))
    materialize_on_aws(aws, ["part_tables"], "2024-02-15")
    tables = {t.name: t for t in aws.list_tables(DB, "part_")}
    assert set(tables) == {"part_ibe_01_a", "part_addressable_ids"}
    assert tables["part_addressable_ids"].location == f"s3://{BUCKET}/omc_cleanroom_data/split_part/addressable_ids/"
    assert [c.name for c in tables["part_addressable_ids"].columns] == ["customer_user_id", "maid"]
    assert all(t.partitions == 1 for t in tables.values())  # only the snapshot being published
    values = glue().get_partitions(DatabaseName=DB, TableName="part_ibe_01_a")["Partitions"]
    assert [p["Values"] for p in values] == [["2024-02-15"]]


def athena_ctas_stand_in(aws_catalog):
    """moto accepts Athena queries without running them; do what Athena's CTAS would do in Glue,
    reading the statement with the same SQL parser the SQL tests use."""
    from flywheel_assets_tests.test_athena_sql import ctas_parts

    seen = []

    def on_start(params, **_):
        sql = params["QueryString"]
        seen.append(params)
        if sql.startswith("CREATE TABLE"):
            parts = ctas_parts(sql)
            db, table = parts["table"]
            glue().create_table(DatabaseName=db, TableInput={
                "Name": table, "TableType": "EXTERNAL_TABLE", "Parameters": {"has_encrypted_data": "false"},
                "StorageDescriptor": {"Columns": [{"Name": c, "Type": "string"} for c in parts["columns"]],
                                      "Location": parts["external_location"],
                                      "BucketColumns": parts.get("bucketed_by", []),
                                      "NumberOfBuckets": parts.get("bucket_count", 0)}})
            key = parts["external_location"].split(f"s3://{BUCKET}/", 1)[1] + "00000_0.parquet"
            put_parquet(key, pa.table({"customer_user_id": ["a"]}))
    return seen, on_start


@pytest.fixture(autouse=True)
def every_athena_statement_parses(monkeypatch):
    """Every statement the catalog sends to Athena in these tests goes through the Athena-dialect
    parser first (moto runs none of them)."""
    from flywheel_assets_tests.test_athena_sql import assert_athena_sql

    original = GlueAthenaCatalog.run_sql

    def checked(self, sql, *args, **kwargs):
        assert_athena_sql(sql)
        return original(self, sql, *args, **kwargs)
    monkeypatch.setattr(GlueAthenaCatalog, "run_sql", checked)


def test_bucketed_tables_ctas_then_atomic_swap(aws, monkeypatch):
    aws.apply_table(spec(name="ext_ibe_01", location=f"s3://{BUCKET}/split_cluster/infobase_attributes/IBE_01",
                         partition_keys=[], comment="ext; snapshot_dt=2024-02-15"))
    athena = boto3.client("athena")
    seen, on_start = athena_ctas_stand_in(aws)
    athena.meta.events.register("provide-client-params.athena.StartQueryExecution", on_start)
    route(monkeypatch, "athena", athena)
    for _ in range(2):  # a rebuild swaps the table to fresh files
        materialize_on_aws(aws, ["bucketed_tables"], "2024-02-15", selection=[AssetKey("bucketed_ibe_01")])
    ctas = [p for p in seen if p["QueryString"].startswith("CREATE TABLE")]
    assert len(ctas) == 2
    assert re.fullmatch(
        r'CREATE TABLE "omc_flywheel_prod"\."bucketed_ibe_01__staging_[0-9a-f]{8}" WITH \(format = \'PARQUET\', '
        r"parquet_compression = 'SNAPPY', "
        rf"external_location = 's3://{BUCKET}/omc_cleanroom_data/cleanroom_tables/bucketed/ibe_01/v\d{{8}}T\d{{6}}_[0-9a-f]{{8}}/', "
        r"bucketed_by = ARRAY\['customer_user_id'\], bucket_count = 256\) AS SELECT \"customer_user_id\", \"attr_a\" "
        r"FROM \"omc_flywheel_prod\"\.\"ext_ibe_01\"",
        ctas[0]["QueryString"])
    assert ctas[0]["WorkGroup"] == "primary"
    assert ctas[0]["ResultConfiguration"] == {"OutputLocation": f"s3://{BUCKET}/athena-results/"}
    assert ctas[0]["QueryExecutionContext"] == {"Database": DB}
    final = aws.describe(DB, "bucketed_ibe_01")
    assert (final.bucket_columns, final.num_buckets) == (["customer_user_id"], 256)
    assert final.snapshot == "2024-02-15"
    assert final.location == re.search(r"external_location = '([^']+)'", ctas[1]["QueryString"]).group(1)
    assert [t.name for t in aws.list_tables(DB, "bucketed_")] == ["bucketed_ibe_01"]  # staging tables dropped


def stubbed_athena(aws, monkeypatch, states, reason=None):
    client = boto3.client("athena")
    stub = Stubber(client)
    qid = "3f1c2b9e-8a8c-4a9b-9d55-0c8a1f1e2d3c"
    stub.add_response("start_query_execution", {"QueryExecutionId": qid})
    for state in states:
        status = {"State": state}
        if reason and state in ("FAILED", "CANCELLED"):
            status["StateChangeReason"] = reason
        stub.add_response("get_query_execution", {"QueryExecution": {"QueryExecutionId": qid, "Status": status}})
    route(monkeypatch, "athena", client)
    return stub, qid


def test_athena_failure_reaches_the_user_with_athenas_reason(aws, monkeypatch):
    stub, qid = stubbed_athena(aws, monkeypatch, ["QUEUED", "RUNNING", "FAILED", "FAILED"],
                               reason="SYNTAX_ERROR: line 1:15: Table 'omc_flywheel_prod.nope' does not exist")
    with stub, pytest.raises(AthenaQueryError) as err:
        aws.run_sql("SELECT * FROM nope", DB)
    assert f"Athena query {qid} FAILED: SYNTAX_ERROR: line 1:15: Table 'omc_flywheel_prod.nope' does not exist" in str(err.value)
    stub.assert_no_pending_responses()


def test_athena_cancelled_without_reason_is_reported(aws, monkeypatch):
    stub, qid = stubbed_athena(aws, monkeypatch, ["RUNNING", "CANCELLED", "CANCELLED"])
    with stub, pytest.raises(AthenaQueryError, match=f"Athena query {qid} CANCELLED: no reason given"):
        aws.run_sql("MSCK REPAIR TABLE `omc_flywheel_prod`.`part_x`", DB)


def test_query_results_are_paged_and_the_header_row_dropped(aws, monkeypatch):
    stub, qid = stubbed_athena(aws, monkeypatch, ["SUCCEEDED"])
    meta = {"ColumnInfo": [{"Name": "snapshot_dt", "Type": "varchar"}, {"Name": "n", "Type": "bigint"}]}
    row = lambda *v: {"Data": [{"VarCharValue": x} for x in v]}  # noqa: E731
    stub.add_response("get_query_results", {"ResultSet": {"Rows": [row("snapshot_dt", "n"), row("2024-01-15", "5")],
                                                          "ResultSetMetadata": meta}, "NextToken": "t2"})
    stub.add_response("get_query_results", {"ResultSet": {"Rows": [row("2024-02-15", "7")], "ResultSetMetadata": meta}})
    with stub:
        columns, rows = aws.query("SELECT snapshot_dt, count(*) n FROM part_addressable_ids GROUP BY 1")
    assert columns == ["snapshot_dt", "n"]
    assert rows == [("2024-01-15", "5"), ("2024-02-15", "7")]


def test_msck_repair_mode_submits_one_statement_per_table(aws, monkeypatch):
    for name in ("part_a", "part_b", "part_c"):
        aws.apply_table(spec(name=name, location=f"s3://{BUCKET}/split_part/x/{name}"))
    athena = boto3.client("athena")
    submitted = []
    athena.meta.events.register("provide-client-params.athena.StartQueryExecution",
                                lambda params, **_: submitted.append(params["QueryString"]))
    route(monkeypatch, "athena", athena)
    aws.repair(DB, ["part_a", "part_b", "part_c"], max_concurrency=2, poll_interval=0.01)
    assert sorted(submitted) == [f"MSCK REPAIR TABLE `{DB}`.`part_{x}`" for x in "abc"]


def test_entity_resolution_table_ctas_then_atomic_swap(aws, monkeypatch):
    put_parquet("omc_cleanroom_data/split_part/addressable_ids/snapshot_dt=2024-02-15/part-0.parquet",
                pa.table({"customer_user_id": ["a", "a", "b"], "maid": ["m1", "m2", "m3"]}))
    materialize_on_aws(aws, ["part_tables"], "2024-02-15", selection=[AssetKey("part_addressable_ids")])
    athena = boto3.client("athena")
    seen, on_start = athena_ctas_stand_in(aws)
    athena.meta.events.register("provide-client-params.athena.StartQueryExecution", on_start)
    route(monkeypatch, "athena", athena)
    locations = []
    for _ in range(2):
        materialize_on_aws(aws, ["part_addressable_ids_er"], "2024-02-15")
        locations.append(aws.describe(DB, "part_addressable_ids_er").location)
    from flywheel_assets_tests.test_athena_sql import ctas_parts

    ctas = [ctas_parts(p["QueryString"]) for p in seen if p["QueryString"].startswith("CREATE TABLE")]
    assert [(c["columns"], c["source"], c["distinct"], c["where"]) for c in ctas] == [(
        ["row_id", "customer_user_id"], (DB, "part_addressable_ids"), True,
        "\"snapshot_dt\" = '2024-02-15' AND NOT \"customer_user_id\" IS NULL")] * 2
    assert locations[0] != locations[1] and all(
        loc.startswith(f"s3://{BUCKET}/omc_cleanroom_data/identity/acx_ids_cur/v") for loc in locations)
    info = aws.describe(DB, "part_addressable_ids_er")
    assert info.snapshot == "2024-02-15" and [c.name for c in info.columns] == ["row_id", "customer_user_id"]
    assert [t.name for t in aws.list_tables(DB, "part_addressable_ids_er")] == ["part_addressable_ids_er"]  # no staging
