"""The Clean Rooms readiness report (run book: "Generate Cleanrooms Report").

Collects the catalog's ``part_`` tables, AWS Clean Rooms configured tables, analysis rules and
associations (of one membership, or of every membership), and Entity Resolution ID namespaces and
schema mappings; decides per table whether it is ready for analysis; writes one JSON and two CSV
files. A section whose service refuses or fails is marked failed with the reason; locally the AWS
sections are marked not queried.

Ready means: a configured table over it, an analysis rule, an association (in the membership
reported on), for a CUSTOM rule at least one allowed analysis provider (a table without one was
once invisible to analysis in production), every registered partition with data, the table
location being the data directory, and at most 100 columns (Clean Rooms' limit per configured
table). Identity tables (``part_addressable_ids``, ``*_er``) are listed apart, never counted.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from dataclasses import dataclass, field

from flywheel_assets.catalog.base import Catalog
from flywheel_assets.core import sizing, storage
from flywheel_assets.core.snapshots import list_snapshots

TABLES_CSV_HEADER = ["table_name", "database", "location", "partitions", "latest_snapshot", "configured_table",
                     "analysis_method", "analysis_rule_types", "analysis_providers", "associations",
                     "ready_for_analysis", "reason", "collaboration"]
IDENTITY_CSV_HEADER = ["id_namespace", "id_namespace_type", "input_source_database", "input_source_region",
                       "input_source_table", "schema_mapping", "unique_id", "input_field", "field_type", "match_key",
                       "group_name", "collaboration"]
MAX_COLUMNS = 100  # Clean Rooms: columns per configured table
IDENTITY_TABLES = ("part_addressable_ids",)  # and every *_er table: identity inputs, not analysed directly


def is_identity_table(name: str) -> bool:
    return name in IDENTITY_TABLES or name.endswith("_er")


@dataclass
class Section:
    status: str = "ok"  # ok | failed | not_queried
    reason: str = ""
    items: list = field(default_factory=list)


def _pages(client, operation: str, key: str, **kwargs) -> list:
    return [item for page in client.get_paginator(operation).paginate(**kwargs) for item in page.get(key, [])]


def _guard(section_fn) -> Section:
    try:
        return Section(items=section_fn())
    except Exception as exc:  # AccessDenied, throttling after retries, service errors: report, don't hide
        code = getattr(exc, "response", {}).get("Error", {}).get("Code") if hasattr(exc, "response") else None
        return Section(status="failed", reason=f"{code + ': ' if code else ''}{exc}")


def catalog_tables(catalog: Catalog, database: str, prefix: str) -> list[dict]:
    out = []
    for t in catalog.list_tables(database, prefix, partitions=False):
        partitions = catalog.partition_locations(database, t.name, t.location) if t.partition_keys else []
        empty = [v for v, loc in partitions if not sizing.data_files(loc)]
        out.append({"table_name": t.name, "database": database, "location": t.location,
                    "columns": [c.name for c in t.columns] + list(t.partition_keys), "partitions": len(partitions),
                    "latest_snapshot": max((v for v, _ in partitions), default=t.snapshot),
                    "partitions_without_data": empty,
                    # Clean Rooms reads the table location itself: it must be the data directory
                    "location_is_data_dir": bool(list_snapshots(t.location)) if t.partition_keys else True})
    return out


def configured_tables(cleanrooms) -> list[dict]:
    out = []
    for summary in _pages(cleanrooms, "list_configured_tables", "configuredTableSummaries"):
        table = cleanrooms.get_configured_table(configuredTableIdentifier=summary["id"])["configuredTable"]
        rules = {}
        for rule_type in table.get("analysisRuleTypes", []):
            rule = cleanrooms.get_configured_table_analysis_rule(
                configuredTableIdentifier=summary["id"], analysisRuleType=rule_type)["analysisRule"]
            custom = rule.get("policy", {}).get("v1", {}).get("custom", {})
            rules[rule_type] = {"allowedAnalysisProviders": custom.get("allowedAnalysisProviders", [])}
        glue = table.get("tableReference", {}).get("glue", {})
        out.append({"id": table["id"], "name": table["name"], "database": glue.get("databaseName"),
                    "table": glue.get("tableName"), "allowed_columns": table.get("allowedColumns", []),
                    "analysis_method": table.get("analysisMethod"),
                    "analysis_rule_types": table.get("analysisRuleTypes", []), "analysis_rules": rules})
    return out


def memberships(cleanrooms, membership_id: str | None) -> list[dict]:
    """The membership reported on (its collaboration named), or every membership."""
    if membership_id:
        found = cleanrooms.get_membership(membershipIdentifier=membership_id)["membership"]
        return [{"id": found["id"], "collaborationName": found.get("collaborationName")}]
    return _pages(cleanrooms, "list_memberships", "membershipSummaries")


def associations(cleanrooms, members: list[dict]) -> list[dict]:
    out = []
    for membership in members:
        for assoc in _pages(cleanrooms, "list_configured_table_associations",
                            "configuredTableAssociationSummaries", membershipIdentifier=membership["id"]):
            out.append({"membership_id": membership["id"], "collaboration": membership.get("collaborationName"),
                        "association": assoc["name"], "configured_table_id": assoc["configuredTableId"]})
    return out


def id_namespaces(er) -> list[dict]:
    out = []
    for summary in _pages(er, "list_id_namespaces", "idNamespaceSummaries"):
        ns = er.get_id_namespace(idNamespaceName=summary["idNamespaceName"])
        out.append({"name": ns["idNamespaceName"], "type": ns.get("type"),
                    "input_sources": [{"arn": s.get("inputSourceARN"), "schema_mapping": s.get("schemaName"),
                                       **glue_table_of(s.get("inputSourceARN") or "")}
                                      for s in ns.get("inputSourceConfig", [])]})
    return out


def schema_mappings(er) -> list[dict]:
    out = []
    for summary in _pages(er, "list_schema_mappings", "schemaList"):
        mapping = er.get_schema_mapping(schemaName=summary["schemaName"])
        out.append({"name": mapping["schemaName"], "fields": [
            {"field": f["fieldName"], "type": f["type"], "match_key": f.get("matchKey"), "group": f.get("groupName")}
            for f in mapping.get("mappedInputFields", [])]})
    return out


def glue_table_of(arn: str) -> dict:
    """database, region and table of a Glue table ARN (arn:aws:glue:<region>:<account>:table/<db>/<table>)."""
    parts = arn.split(":", 5)
    if len(parts) == 6 and parts[2] == "glue" and parts[5].startswith("table/") and parts[5].count("/") == 2:
        _, database, table = parts[5].split("/")
        return {"database": database, "region": parts[3], "table": table}
    return {"database": "", "region": "", "table": ""}


def verdict(table: dict, configured: Section, assocs: Section) -> tuple[str, str, dict | None]:
    """('yes'|'no'|'unknown'|'excluded', reason, the configured table referencing it)."""
    if is_identity_table(table["table_name"]):
        return "excluded", "identity table: Entity Resolution input, not analysed directly (listed apart)", None
    if configured.status != "ok" or assocs.status != "ok":
        status = "not queried" if "not_queried" in (configured.status, assocs.status) else "failed"
        return "unknown", f"Clean Rooms {status}", None
    match = next((c for c in configured.items
                  if (c["database"], c["table"]) == (table["database"], table["table_name"])), None)
    if table.get("glue_missing"):
        return "no", "Glue table missing", match
    reasons = []
    if match is None:
        reasons.append("no configured table")
    else:
        if not any(a["configured_table_id"] == match["id"] for a in assocs.items):
            reasons.append("no association")
        if not match["analysis_rule_types"]:
            reasons.append("no analysis rule")
        custom = match["analysis_rules"].get("CUSTOM")
        if custom is not None and not custom["allowedAnalysisProviders"]:
            reasons.append("no allowed analysis provider in its CUSTOM rule")
    if over := columns_over_limit(table["columns"]):
        reasons.append(over)
    if not table["location_is_data_dir"]:
        reasons.append(f"Glue table location {table['location']} is not the data directory (no snapshot_dt= folders)")
    if table["partitions_without_data"]:
        reasons.append(f"registered partitions without data: {', '.join(table['partitions_without_data'])}")
    return ("no" if reasons else "yes"), "; ".join(reasons), match


def columns_over_limit(columns: list[str]) -> str | None:
    """Why a table cannot be configured in Clean Rooms as it is (None: it can): more than its
    columns-per-configured-table limit, partition key included, and the columns that would be cut."""
    if len(columns) <= MAX_COLUMNS:
        return None
    return (f"{len(columns)} columns, over Clean Rooms' {MAX_COLUMNS} per configured table (partition key "
            f"included): would cut {', '.join(columns[MAX_COLUMNS:])}")


def build_report(catalog: Catalog, database: str, prefix: str, cleanrooms=None, er=None,
                 now: dt.datetime | None = None, membership_id: str | None = None) -> dict:
    now = now or dt.datetime.now(dt.timezone.utc)
    tables = _guard(lambda: catalog_tables(catalog, database, prefix))
    skipped = Section(status="not_queried", reason="local environment: AWS Clean Rooms and Entity Resolution "
                      "are not available here and were not queried")
    configured = _guard(lambda: configured_tables(cleanrooms)) if cleanrooms else skipped
    members = _guard(lambda: memberships(cleanrooms, membership_id)) if cleanrooms else skipped
    assocs = _guard(lambda: associations(cleanrooms, members.items)) if members.status == "ok" else members
    # scoped to one membership: its collaboration names every row
    collaboration = (members.items[0].get("collaborationName") or "") if membership_id and members.items else ""
    namespaces = _guard(lambda: id_namespaces(er)) if er else skipped
    mappings = _guard(lambda: schema_mappings(er)) if er else skipped
    known = {(t["database"], t["table_name"]) for t in tables.items}
    missing = [{"table_name": c["table"], "database": c["database"], "location": "", "columns": [], "partitions": 0,
                "latest_snapshot": "", "partitions_without_data": [], "location_is_data_dir": False, "glue_missing": True}
               for c in (configured.items if configured.status == "ok" and tables.status == "ok" else [])
               if c["table"].startswith(prefix) and (c["database"], c["table"]) not in known]
    rows = []
    for t in [*tables.items, *missing]:
        ready, reason, match = verdict(t, configured, assocs)
        rules = match["analysis_rules"] if match else {}
        rows.append({
            "table_name": t["table_name"], "database": t["database"], "location": t["location"],
            "partitions": t["partitions"], "latest_snapshot": t["latest_snapshot"] or "",
            "configured_table": match["name"] if match else "",
            "analysis_method": (match or {}).get("analysis_method") or "",
            "analysis_rule_types": ";".join(match["analysis_rule_types"]) if match else "",
            "analysis_providers": ";".join(sorted({p for r in rules.values() for p in r["allowedAnalysisProviders"]})),
            "associations": ";".join(a["association"] for a in assocs.items if match and a["configured_table_id"] == match["id"]),
            "ready_for_analysis": ready, "reason": reason,
            "collaboration": collaboration or ";".join(sorted({a["collaboration"] or "" for a in assocs.items
                                                               if match and a["configured_table_id"] == match["id"]})),
        })
    sections = {"tables": tables, "configured_tables": configured, "associations": assocs,
                "id_namespaces": namespaces, "schema_mappings": mappings}
    return {
        "generated_at": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "database": database, "table_prefix": prefix,
        "membership_id": membership_id or "all", "collaboration": collaboration,
        "excluded_tables": [r["table_name"] for r in rows if r["ready_for_analysis"] == "excluded"],
        "sections": {k: {"status": s.status, "reason": s.reason, "items": s.items} for k, s in sections.items()},
        "tables_report": rows,
        "identity_resolution_report": identity_rows(namespaces, mappings, collaboration),
    }


def identity_rows(namespaces: Section, mappings: Section, collaboration: str = "") -> list[dict]:
    by_name = {m["name"]: m for m in mappings.items}
    rows = []
    for ns in namespaces.items:
        for source in ns["input_sources"] or [{"schema_mapping": None, "database": "", "region": "", "table": ""}]:
            mapping = by_name.get(source["schema_mapping"])
            fields = mapping["fields"] if mapping else []
            unique = next((f["field"] for f in fields if f["type"] == "UNIQUE_ID"), "")
            for f in fields or [{"field": "", "type": "", "match_key": "", "group": ""}]:
                rows.append({"id_namespace": ns["name"], "id_namespace_type": ns["type"] or "",
                             "input_source_database": source["database"], "input_source_region": source["region"],
                             "input_source_table": source["table"],
                             "schema_mapping": source["schema_mapping"] or "", "unique_id": unique,
                             "input_field": f["field"], "field_type": f["type"], "match_key": f["match_key"] or "",
                             "group_name": f["group"] or "", "collaboration": collaboration})
    return rows


def _csv(header: list[str], rows: list[dict]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=header, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def write_report(report: dict, analysis_root: str) -> dict[str, str]:
    stamp = dt.datetime.strptime(report["generated_at"], "%Y-%m-%dT%H:%M:%SZ").strftime("%Y%m%d_%H%M%S")
    base = storage.join(analysis_root, "cleanrooms-reports", f"ACX_Cleanroom_Report_{stamp}")
    files = {"json": f"{base}.json", "tables_csv": f"{base}_Tables.csv",
             "identity_csv": f"{base}_IdentityResolution.csv"}
    storage.write_text(files["json"], json.dumps(report, indent=2, default=str) + "\n")
    storage.write_text(files["tables_csv"], _csv(TABLES_CSV_HEADER, report["tables_report"]))
    storage.write_text(files["identity_csv"], _csv(IDENTITY_CSV_HEADER, report["identity_resolution_report"]))
    return files
