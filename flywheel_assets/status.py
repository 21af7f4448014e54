"""``flywheel status``: which snapshot is live where, is it fresh and sound, can Clean Rooms use it.

Read from what is already recorded, so it answers in well under a second without starting Spark:
the Dagster instance (the last materialization of every table asset, the latest result of every
check, the runs) and the newest data-monitor and Clean Rooms reports under the analysis root.
"""

from __future__ import annotations

import datetime as dt

from dagster import AssetCheckKey, DagsterInstance, DagsterRunStatus, RunsFilter
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus

from flywheel_assets.core import storage
from flywheel_assets.monitor import PIPELINES, latest_report, newest_json
from flywheel_assets.settings import Settings

SNAPSHOT_JOB = "flywheel_snapshot"
# Every check name the definitions give a table asset (test_status checks this list against them).
CHECK_NAMES = ("row_count", "columns", "key_not_null", "file_sizing", "not_skipped", "catalog_matches_storage",
               "bucket_spec", "partitions_match_data", "written_partitions_registered", "built_for_snapshot",
               "all_sections_queried", "snapshot_freshness", "data_monitor")
MONITOR_OVERDUE_DAYS = 2  # the monitor runs daily: a report older than this is itself a finding


def pipeline_of(asset: str) -> str | None:
    if asset.startswith("bucketed_"):
        return "bucketed"
    if asset.startswith("part_"):
        return "partitioned"
    return None


def live_from_instance(records) -> dict[str, dict[str, str]]:
    """pipeline -> {table: snapshot} from each catalog table's last materialization."""
    out: dict[str, dict[str, str]] = {p: {} for p in PIPELINES}
    for record in records:
        name = record.asset_entry.asset_key.to_user_string()
        event = record.asset_entry.last_materialization
        pipeline = pipeline_of(name)
        if pipeline and event and event.asset_materialization:
            meta = event.asset_materialization.metadata
            snapshot = meta["snapshot_dt"].value if "snapshot_dt" in meta else event.asset_materialization.partition
            if snapshot:
                out[pipeline][name] = snapshot
    return out


def check_findings(instance: DagsterInstance, asset_keys) -> tuple[list[str], list[str]]:
    """(failing ERROR checks, failing WARN checks) by their latest evaluation, one query for all."""
    keys = [AssetCheckKey(k, n) for k in asset_keys for n in CHECK_NAMES]
    latest = instance.event_log_storage.get_latest_asset_check_execution_by_key(keys)
    errors, warnings = [], []
    for key, record in sorted(latest.items(), key=lambda kv: (kv[0].asset_key.to_user_string(), kv[0].name)):
        # PLANNED: running, or never run because its run failed first (that run is reported itself)
        if record.status != AssetCheckExecutionRecordStatus.FAILED:
            continue
        evaluation = record.evaluation
        text = f"{key.asset_key.to_user_string()}: {key.name}" + (f" ({evaluation.description})" if evaluation.description else "")
        (warnings if evaluation.severity.value == "WARN" else errors).append(text)
    return errors, warnings


def last_run(instance: DagsterInstance, snapshot: str | None):
    filters = RunsFilter(job_name=SNAPSHOT_JOB, tags={"dagster/partition": snapshot} if snapshot else {})
    runs = instance.get_runs(filters, limit=1)
    return runs[0] if runs else None


def run_fact(run) -> dict | None:
    if run is None:
        return None
    return {"run_id": run.run_id, "status": run.status.value, "snapshot_dt": run.tags.get("dagster/partition"),
            "ended": dt.datetime.fromtimestamp(run.end_time, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
            if getattr(run, "end_time", None) else None}


def cleanrooms_summary(analysis_root: str) -> dict | None:
    found = newest_json(storage.join(analysis_root, "cleanrooms-reports"), "ACX_Cleanroom_Report_")
    if found is None:
        return None
    path, report = found
    rows = report.get("tables_report", [])
    verdicts = [r["ready_for_analysis"] for r in rows]
    return {"report": path, "generated_at": report.get("generated_at"), "ready": verdicts.count("yes"),
            "not_ready": {r["table_name"]: r["reason"] for r in rows if r["ready_for_analysis"] == "no"},
            "unknown": verdicts.count("unknown"), "excluded": verdicts.count("excluded"),
            "membership": report.get("membership_id"), "collaboration": report.get("collaboration")}


def gather(settings: Settings, as_of: dt.date | None = None) -> dict:
    """Everything ``flywheel status`` shows; ``needs_attention`` empty when nobody has to act."""
    as_of = as_of or dt.datetime.now(dt.timezone.utc).date()
    attention: list[str] = []
    instance = DagsterInstance.from_config(str(settings.dagster_home))
    records = instance.get_asset_records()
    live = live_from_instance(records)
    found = latest_report(settings.analysis_root)
    monitor = found[1] if found else None
    pipelines = {}
    for pipeline in PIPELINES:
        tables = live[pipeline]
        if monitor:  # the catalog as the monitor last saw it; the instance for what it has not seen
            tables = {**tables, **{t["table"]: t["snapshot"] for t in monitor["tables"]
                                   if t["pipeline"] == pipeline and t["snapshot"]}}
        snapshot = max(tables.values()) if tables else None
        age = (as_of - dt.date.fromisoformat(snapshot)).days if snapshot else None
        run = last_run(instance, snapshot) if snapshot else None
        facts = {"live_snapshot": snapshot, "age_days": age, "tables": len(tables),
                 "tables_behind": sorted(t for t, s in tables.items() if s != snapshot),
                 "last_run": run_fact(run)}
        if monitor:
            parts = [t for t in monitor["tables"] if t["pipeline"] == pipeline and t["partitions_registered"] is not None]
            if parts:
                facts["partitions_registered"] = sum(t["partitions_registered"] for t in parts)
                facts["partitions_on_storage"] = sum(t["partitions_on_storage"] for t in parts)
        pipelines[pipeline] = facts
        if snapshot is None:
            attention.append(f"{pipeline}: no snapshot published yet")
            continue
        if age > settings.freshness_days:
            attention.append(f"{pipeline}: live snapshot_dt={snapshot} is {age} days old (limit {settings.freshness_days}); "
                             f"stale: {', '.join(sorted(t for t, s in tables.items() if (as_of - dt.date.fromisoformat(s)).days > settings.freshness_days))}")
        if run and run.status != DagsterRunStatus.SUCCESS:
            attention.append(f"{pipeline}: the last run for snapshot_dt={snapshot} ({run.run_id}) is {run.status.value}")
    newest = last_run(instance, None)
    if newest and newest.status == DagsterRunStatus.FAILURE and all(
            (p["last_run"] or {}).get("run_id") != newest.run_id for p in pipelines.values()):
        attention.append(f"the newest run ({newest.run_id}, snapshot_dt={newest.tags.get('dagster/partition')}) FAILED")
    errors, warnings = check_findings(instance, [r.asset_entry.asset_key for r in records])
    # freshness is judged above, as of now; the monitor's other findings are its data_monitor checks
    attention += [f"check failing: {e}" for e in errors if ": snapshot_freshness" not in e]
    monitor_facts = None
    if monitor is None:
        attention.append("the data monitor has not run yet (flywheel monitor)")
    else:
        generated = dt.date.fromisoformat(monitor["generated_at"][:10])
        overdue = (dt.datetime.now(dt.timezone.utc).date() - generated).days > MONITOR_OVERDUE_DAYS
        monitor_facts = {"report": found[0], "generated_at": monitor["generated_at"], "status": monitor["status"],
                         "failing": monitor["alerts"]}
        if overdue:
            attention.append(f"the data monitor last ran {monitor['generated_at']} (it runs daily)")
    cleanrooms = cleanrooms_summary(settings.analysis_root)
    if cleanrooms and cleanrooms["not_ready"]:
        attention += [f"Clean Rooms: {t} not ready ({why})" for t, why in cleanrooms["not_ready"].items()]
    return {"as_of": as_of.isoformat(), "healthy": not attention, "needs_attention": attention, "pipelines": pipelines,
            "checks": {"failing": errors, "warning": warnings}, "monitor": monitor_facts, "cleanrooms": cleanrooms}


def render(status: dict) -> str:
    lines = [f"{'pipeline':<12} {'live snapshot':<13} {'age':>5} {'tables':>6} {'partitions':>10}  last run for it"]
    for name, p in status["pipelines"].items():
        run = p["last_run"]
        parts = f"{p['partitions_registered']}/{p['partitions_on_storage']}" if "partitions_registered" in p else "-"
        lines.append(f"{name:<12} {p['live_snapshot'] or '-':<13} {'-' if p['age_days'] is None else str(p['age_days']) + 'd':>5} "
                     f"{p['tables']:>6} {parts:>10}  " + (f"{run['status']} {run['run_id'][:8]}" if run else "-"))
        if p["tables_behind"]:
            lines.append(f"  behind the live snapshot: {', '.join(p['tables_behind'])}")
    m = status["monitor"]
    lines.append("data monitor: " + (f"{m['status']} ({len(m['failing'])} tables failing), {m['generated_at']}: {m['report']}"
                                     if m else "not run yet"))
    c = status["cleanrooms"]
    lines.append("Clean Rooms: " + (f"{c['ready']} ready, {len(c['not_ready'])} not ready, {c['unknown']} not queried, "
                                    f"{c['excluded']} identity tables apart ({c['report']})" if c else "no report yet"))
    if status["checks"]["warning"]:
        lines.append(f"warnings ({len(status['checks']['warning'])}):")
        lines += [f"  {w}" for w in status["checks"]["warning"][:20]]
    if status["needs_attention"]:
        lines.append(f"NEEDS ATTENTION ({len(status['needs_attention'])}):")
        lines += [f"  {a}" for a in status["needs_attention"]]
    else:
        lines.append("all good")
    return "\n".join(lines)
