"""The Clean Rooms readiness report: AWS (moto for Glue and S3, Stubber for Clean Rooms and Entity
Resolution, with several pages, every not-ready reason and an access-denied section) and local."""

from __future__ import annotations

import csv
import io
import json

import boto3
import pyarrow as pa
import pyarrow.parquet as pq
from botocore.stub import Stubber
from dagster import DagsterInstance, materialize

from flywheel_assets.catalog.aws import GlueAthenaCatalog
from flywheel_assets.catalog.names import Column, TableSpec
from flywheel_assets.cleanrooms import IDENTITY_CSV_HEADER, TABLES_CSV_HEADER
from flywheel_assets.pipelines.reporting import cleanrooms_report_asset
from flywheel_assets.tables import TableSet

# The report reads the catalog; which part tables it is downstream of does not change what it reads.
cleanrooms_report = cleanrooms_report_asset(TableSet({"addressable_split_and_part": ("addressable_ids",)}))
from flywheel_assets.resources import CleanRoomsReporting

LAKE, ANALYSIS, DB = "report-lake", "report-analysis", "omc_flywheel_prod"
IDS = {name: f"{i:08d}-0000-4000-8000-000000000000" for i, name in enumerate(
    ["ct_ready", "ct_noassoc", "ct_norule", "ct_ghost", "ct_empty", "membership", "assoc1", "assoc2", "assoc3",
     "ct_noprovider", "ct_wide", "assoc4", "assoc5"])}
WIDE = [Column("customer_user_id", "string")] + [Column(f"miacs_11_{i:03d}", "string") for i in range(99)]


def put_parquet(key: str) -> None:
    buffer = io.BytesIO()
    pq.write_table(pa.table({"customer_user_id": ["a"]}), buffer)
    boto3.client("s3").put_object(Bucket=LAKE, Key=key, Body=buffer.getvalue())


def glue_tables(catalog: GlueAthenaCatalog) -> None:
    """part_ready, part_noassoc, part_norule, part_unconfigured, part_noprovider: data in every
    partition; part_empty: one registered partition without data; part_elsewhere: location holds
    no data; part_wide: 100 columns plus the partition key (production's part_miacs_02_a);
    part_addressable_ids and part_addressable_ids_er: identity tables, listed apart."""
    for name in ("part_ready", "part_noassoc", "part_norule", "part_unconfigured", "part_empty", "part_elsewhere",
                 "part_noprovider", "part_wide", "part_addressable_ids", "part_addressable_ids_er"):
        root = f"s3://{LAKE}/split_part/{name}" if name != "part_elsewhere" else f"s3://{LAKE}/wrong/{name}"
        columns = WIDE if name == "part_wide" else [Column("customer_user_id", "string")]
        catalog.apply_table(TableSpec(DB, name, root, columns, comment="part",
                                      partition_keys=[Column("snapshot_dt", "string")]))
        days = ["2024-01-15", "2024-02-15"]
        for day in days:
            if name != "part_elsewhere" and not (name == "part_empty" and day == "2024-02-15"):
                put_parquet(f"split_part/{name}/snapshot_dt={day}/part-0.parquet")
        catalog.add_partitions(DB, name, [(d, f"{root}/snapshot_dt={d}") for d in days])


def configured(key: str, table: str, rules: list[str]) -> dict:
    return {"configuredTable": {
        "id": IDS[key], "arn": f"arn:aws:cleanrooms:us-east-1:123456789012:configuredtable/{IDS[key]}",
        "name": f"cfg_{table}", "tableReference": {"glue": {"databaseName": DB, "tableName": table}},
        "createTime": "2024-01-01T00:00:00Z", "updateTime": "2024-01-01T00:00:00Z",
        "analysisRuleTypes": rules, "analysisMethod": "DIRECT_QUERY", "allowedColumns": ["customer_user_id"]}}


def summary(key: str, table: str) -> dict:
    return {"id": IDS[key], "arn": f"arn:aws:cleanrooms:us-east-1:123456789012:configuredtable/{IDS[key]}",
            "name": f"cfg_{table}", "createTime": "2024-01-01T00:00:00Z", "updateTime": "2024-01-01T00:00:00Z",
            "analysisRuleTypes": [], "analysisMethod": "DIRECT_QUERY"}


def custom_rule(key: str, providers: list[str]) -> dict:
    return {"analysisRule": {
        "configuredTableId": IDS[key], "configuredTableArn": f"arn:aws:cleanrooms:::configuredtable/{IDS[key]}",
        "type": "CUSTOM", "createTime": "2024-01-01T00:00:00Z", "updateTime": "2024-01-01T00:00:00Z",
        "policy": {"v1": {"custom": {"allowedAnalyses": ["ANY_QUERY"], "allowedAnalysisProviders": providers}}}}}


def association(key: str, ct: str) -> dict:
    return {"configuredTableId": IDS[ct], "membershipId": IDS["membership"],
            "membershipArn": "arn:aws:cleanrooms:::membership/m", "name": f"assoc_{ct}", "id": IDS[key],
            "arn": f"arn:aws:cleanrooms:::configuredtableassociation/{IDS[key]}",
            "createTime": "2024-01-01T00:00:00Z", "updateTime": "2024-01-01T00:00:00Z"}


def stub_cleanrooms(scoped: bool = False) -> tuple:
    client = boto3.client("cleanrooms", region_name="us-east-1")
    stub = Stubber(client)
    stub.add_response("list_configured_tables", {"configuredTableSummaries": [
        summary("ct_ready", "part_ready"), summary("ct_noassoc", "part_noassoc")], "nextToken": "page2"})
    stub.add_response("list_configured_tables", {"configuredTableSummaries": [
        summary("ct_norule", "part_norule"), summary("ct_ghost", "part_ghost"), summary("ct_empty", "part_empty"),
        summary("ct_noprovider", "part_noprovider"), summary("ct_wide", "part_wide")]})
    for key, table, rules, providers in (("ct_ready", "part_ready", ["CUSTOM"], ["123456789012"]),
                                         ("ct_noassoc", "part_noassoc", ["CUSTOM"], ["123456789012"]),
                                         ("ct_norule", "part_norule", [], None),
                                         ("ct_ghost", "part_ghost", ["CUSTOM"], ["210987654321"]),
                                         ("ct_empty", "part_empty", ["CUSTOM"], ["123456789012"]),
                                         ("ct_noprovider", "part_noprovider", ["CUSTOM"], []),
                                         ("ct_wide", "part_wide", ["CUSTOM"], ["123456789012"])):
        stub.add_response("get_configured_table", configured(key, table, rules))
        if providers is not None:
            stub.add_response("get_configured_table_analysis_rule", custom_rule(key, providers))
    membership = {
        "id": IDS["membership"], "arn": "arn:aws:cleanrooms:::membership/m", "collaborationArn": "arn:c",
        "collaborationId": IDS["membership"], "collaborationCreatorAccountId": "123456789012",
        "collaborationCreatorDisplayName": "omc", "collaborationName": "acx-collab",
        "createTime": "2024-01-01T00:00:00Z", "updateTime": "2024-01-01T00:00:00Z", "status": "ACTIVE",
        "memberAbilities": ["CAN_QUERY"], "paymentConfiguration": {"queryCompute": {"isResponsible": True}}}
    if scoped:  # one membership asked for by id
        stub.add_response("get_membership", {"membership": {**membership, "queryLogStatus": "DISABLED"}},
                          {"membershipIdentifier": IDS["membership"]})
    else:
        stub.add_response("list_memberships", {"membershipSummaries": [membership]})
    stub.add_response("list_configured_table_associations", {"configuredTableAssociationSummaries": [
        association("assoc1", "ct_ready")], "nextToken": "p2"})
    stub.add_response("list_configured_table_associations", {"configuredTableAssociationSummaries": [
        association("assoc2", "ct_norule"), association("assoc3", "ct_empty"), association("assoc4", "ct_noprovider"),
        association("assoc5", "ct_wide")]})
    return client, stub


def stub_entity_resolution(denied: bool) -> tuple:
    client = boto3.client("entityresolution", region_name="us-east-1")
    stub = Stubber(client)
    if denied:
        stub.add_client_error("list_id_namespaces", service_error_code="AccessDeniedException",
                              service_message="User is not authorized to perform entityresolution:ListIdNamespaces",
                              http_status_code=403)
    else:
        stub.add_response("list_id_namespaces", {"idNamespaceSummaries": [{
            "idNamespaceName": "acx_ns", "idNamespaceArn": "arn:ns", "type": "SOURCE",
            "createdAt": "2024-01-01T00:00:00Z", "updatedAt": "2024-01-01T00:00:00Z"}]})
        stub.add_response("get_id_namespace", {
            "idNamespaceName": "acx_ns", "idNamespaceArn": "arn:ns", "type": "SOURCE",
            "inputSourceConfig": [{"inputSourceARN": "arn:aws:glue:us-east-1:123456789012:table/omc_flywheel_prod/"
                                                     "part_addressable_ids_er",
                                   "schemaName": "acx_schema"}],
            "createdAt": "2024-01-01T00:00:00Z", "updatedAt": "2024-01-01T00:00:00Z"})
    stub.add_response("list_schema_mappings", {"schemaList": [{
        "schemaName": "acx_schema", "schemaArn": "arn:s", "createdAt": "2024-01-01T00:00:00Z",
        "updatedAt": "2024-01-01T00:00:00Z", "hasWorkflows": True}], "nextToken": "p2"})
    stub.add_response("list_schema_mappings", {"schemaList": []})
    stub.add_response("get_schema_mapping", {
        "schemaName": "acx_schema", "schemaArn": "arn:s", "hasWorkflows": True,
        "createdAt": "2024-01-01T00:00:00Z", "updatedAt": "2024-01-01T00:00:00Z",
        "mappedInputFields": [{"fieldName": "customer_user_id", "type": "UNIQUE_ID"},
                              {"fieldName": "hashed_email", "type": "EMAIL_ADDRESS", "matchKey": "EMAIL",
                               "groupName": "contact"}]})
    return client, stub


def read_csv(uri: str) -> list[list[str]]:
    bucket, key = uri[5:].split("/", 1)
    body = boto3.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read().decode()
    return list(csv.reader(io.StringIO(body)))


def run_report(monkeypatch, denied: bool, membership_id: str | None = None):
    for bucket in (LAKE, ANALYSIS):
        boto3.client("s3").create_bucket(Bucket=bucket)
    catalog = GlueAthenaCatalog(database=DB, results_s3=f"s3://{ANALYSIS}/q/")
    glue_tables(catalog)
    clients = {"cleanrooms": stub_cleanrooms(scoped=bool(membership_id)), "entityresolution": stub_entity_resolution(denied)}
    monkeypatch.setattr(CleanRoomsReporting, "client", lambda self, service: clients[service][0])
    instance = DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("snapshot_dt", ["2024-02-15"])
    for _, stub in clients.values():
        stub.activate()
    result = materialize([cleanrooms_report], partition_key="2024-02-15", instance=instance,
                         resources={"catalog": catalog, "reporting": CleanRoomsReporting(
                             analysis_root=f"s3://{ANALYSIS}", query_aws=True, membership_id=membership_id or "")})
    for _, stub in clients.values():
        stub.assert_no_pending_responses()
    return result


def test_report_lands_in_the_analysis_bucket_with_every_verdict(aws_env, monkeypatch):
    result = run_report(monkeypatch, denied=False)
    mat = result.asset_materializations_for_node("cleanrooms_report")[0]
    meta = {k: v.value for k, v in mat.metadata.items()}
    assert (meta["tables"], meta["ready"], meta["not_ready"]) == (9, 1, 8)  # identity tables not counted
    assert meta["excluded_identity_tables"] == ["part_addressable_ids", "part_addressable_ids_er"]
    assert (meta["membership"], meta["collaboration"]) == ("all", "")
    assert meta["json"].startswith(f"s3://{ANALYSIS}/cleanrooms-reports/ACX_Cleanroom_Report_")
    tables = read_csv(meta["tables_csv"])
    assert tables[0] == TABLES_CSV_HEADER
    rows = {r[0]: dict(zip(tables[0], r)) for r in tables[1:]}
    assert rows["part_ready"]["ready_for_analysis"] == "yes" and rows["part_ready"]["reason"] == ""
    assert rows["part_ready"]["analysis_providers"] == "123456789012"
    assert rows["part_ready"]["associations"] == "assoc_ct_ready"
    assert rows["part_ready"]["partitions"] == "2" and rows["part_ready"]["latest_snapshot"] == "2024-02-15"
    assert rows["part_noassoc"]["reason"] == "no association"
    assert rows["part_norule"]["reason"] == "no analysis rule"
    assert rows["part_unconfigured"]["reason"] == "no configured table"
    assert rows["part_ghost"]["reason"] == "Glue table missing"
    assert rows["part_empty"]["reason"] == "registered partitions without data: 2024-02-15"
    assert rows["part_elsewhere"]["reason"].startswith(f"no configured table; Glue table location s3://{LAKE}/wrong/")
    # a table without an allowed analysis provider was once invisible to analysis in production
    assert rows["part_noprovider"]["reason"] == "no allowed analysis provider in its CUSTOM rule"
    assert rows["part_wide"]["reason"] == ("101 columns, over Clean Rooms' 100 per configured table (partition key "
                                           "included): would cut snapshot_dt")
    for name in ("part_addressable_ids", "part_addressable_ids_er"):
        assert rows[name]["ready_for_analysis"] == "excluded" and rows[name]["reason"].startswith("identity table")
    assert rows["part_ready"]["collaboration"] == "acx-collab" and rows["part_unconfigured"]["collaboration"] == ""
    identity = read_csv(meta["identity_csv"])
    source = ["omc_flywheel_prod", "us-east-1", "part_addressable_ids_er"]
    assert identity == [IDENTITY_CSV_HEADER,
                        ["acx_ns", "SOURCE", *source, "acx_schema", "customer_user_id", "customer_user_id",
                         "UNIQUE_ID", "", "", ""],
                        ["acx_ns", "SOURCE", *source, "acx_schema", "customer_user_id", "hashed_email",
                         "EMAIL_ADDRESS", "EMAIL", "contact", ""]]
    check = result.get_asset_check_evaluations()[0]
    assert check.passed


def test_report_scoped_to_one_membership_names_its_collaboration(aws_env, monkeypatch):
    result = run_report(monkeypatch, denied=False, membership_id=IDS["membership"])
    meta = {k: v.value for k, v in result.asset_materializations_for_node("cleanrooms_report")[0].metadata.items()}
    assert (meta["membership"], meta["collaboration"]) == (IDS["membership"], "acx-collab")
    bucket, key = meta["json"][5:].split("/", 1)
    report = json.loads(boto3.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read())
    assert (report["membership_id"], report["collaboration"]) == (IDS["membership"], "acx-collab")
    tables = read_csv(meta["tables_csv"])
    assert {r[-1] for r in tables[1:]} == {"acx-collab"}  # every row names the collaboration reported on
    assert {r[-1] for r in read_csv(meta["identity_csv"])[1:]} == {"acx-collab"}


def test_access_denied_section_is_marked_failed_and_flagged(aws_env, monkeypatch):
    result = run_report(monkeypatch, denied=True)
    mat = result.asset_materializations_for_node("cleanrooms_report")[0]
    bucket, key = mat.metadata["json"].value[5:].split("/", 1)
    report = json.loads(boto3.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read())
    section = report["sections"]["id_namespaces"]
    assert section["status"] == "failed" and section["reason"].startswith("AccessDeniedException")
    assert report["sections"]["schema_mappings"]["status"] == "ok"
    assert report["identity_resolution_report"] == []
    check = result.get_asset_check_evaluations()[0]
    assert not check.passed and "id_namespaces" in check.metadata["failed"].value


def test_local_report_says_what_was_not_queried(spark, lake, catalog, tmp_path):
    from flywheel_assets_tests.test_catalog_local import materialize_catalog, publish_split
    from flywheel_assets_tests.test_split_jobs import LATEST
    publish_split(spark, lake, LATEST)
    materialize_catalog(lake, catalog, LATEST, selection=["part_tables"])
    instance = DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("snapshot_dt", [LATEST])
    result = materialize([cleanrooms_report], partition_key=LATEST, instance=instance,
                         resources={"catalog": catalog, "reporting": CleanRoomsReporting(analysis_root=str(tmp_path))})
    files = sorted((tmp_path / "cleanrooms-reports").iterdir())
    import re

    suffixes = [re.fullmatch(r"ACX_Cleanroom_Report_\d{8}_\d{6}(.*)", f.name).group(1) for f in files]
    assert suffixes == [".json", "_IdentityResolution.csv", "_Tables.csv"]
    report = json.loads(files[0].read_text())
    for name in ("configured_tables", "associations", "id_namespaces", "schema_mappings"):
        assert report["sections"][name]["status"] == "not_queried"
        assert "not available here and were not queried" in report["sections"][name]["reason"]
    rows = list(csv.DictReader(files[2].open()))
    assert {r["table_name"] for r in rows} == {t.name for t in catalog.list_tables(catalog.database, "part_")}
    assert {(r["ready_for_analysis"], r["reason"], r["partitions"]) for r in rows if r["table_name"] != "part_addressable_ids"} == {
        ("unknown", "Clean Rooms not queried", "1")}
    assert next(r for r in rows if r["table_name"] == "part_addressable_ids")["ready_for_analysis"] == "excluded"
    assert list(csv.reader(files[1].open())) == [IDENTITY_CSV_HEADER]
    assert result.get_asset_check_evaluations()[0].passed
