"""The Clean Rooms readiness report (run book: "Reporting & Monitoring")."""

from typing import Optional

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetsDefinition,
    AssetSelection,
    Config,
    DefaultScheduleStatus,
    MaterializeResult,
    MetadataValue,
    RunRequest,
    ScheduleEvaluationContext,
    SkipReason,
    asset,
    define_asset_job,
    schedule,
)
from pydantic import Field

from flywheel_assets.catalog.base import Catalog
from flywheel_assets.catalog.names import identifier
from flywheel_assets.cleanrooms import build_report, write_report
from flywheel_assets.partitions import snapshot_partitions
from flywheel_assets.pipelines.keys import catalog_key
from flywheel_assets.pipelines.partitioned import ER_TABLE, snapshot_folder_tables
from flywheel_assets.tables import TableSet
from flywheel_assets.resources import CleanRoomsReporting

GROUP = "reporting"


class ReportConfig(Config):
    database: Optional[str] = Field(default=None, description="catalog database (default: the catalog's)")
    table_prefix: str = Field(default="part_", description="tables to report on")
    membership_id: Optional[str] = Field(
        default=None, description="--membership-id: the Clean Rooms membership reported on "
        "(default: FLYWHEEL_CLEANROOMS_MEMBERSHIP_ID, or every membership)")


def generate(catalog: Catalog, reporting: CleanRoomsReporting, database: str, prefix: str,
             membership_id: str | None = None) -> tuple[dict, dict]:
    report = build_report(catalog, identifier(database, "database"), prefix,
                          cleanrooms=reporting.client("cleanrooms"), er=reporting.client("entityresolution"),
                          membership_id=membership_id or reporting.membership_id or None)
    return report, write_report(report, reporting.analysis_root)


def summary_markdown(report: dict) -> str:
    lines = ["| table | partitions | latest snapshot | ready | reason |", "|---|---:|---|---|---|"]
    lines += [f"| {r['table_name']} | {r['partitions']} | {r['latest_snapshot']} | {r['ready_for_analysis']} | "
              f"{r['reason']} |" for r in report["tables_report"]]
    sections = [f"- {name}: {s['status']}{' (' + s['reason'] + ')' if s['reason'] else ''}"
                for name, s in report["sections"].items()]
    return "\n".join(lines) + "\n\nSections:\n" + "\n".join(sections)


def cleanrooms_report_asset(tables: TableSet) -> AssetsDefinition:
    @asset(
        partitions_def=snapshot_partitions,
        group_name=GROUP,
        # every part_ table it reports on, the Entity Resolution input included
    deps=[*(catalog_key(job, t) for job, t in snapshot_folder_tables(tables)),
          *([ER_TABLE] if any(job.single_table == "addressable_ids" for job, _ in snapshot_folder_tables(tables)) else [])],
        kinds={"cleanrooms", "json", "csv"},
        check_specs=[AssetCheckSpec("all_sections_queried", asset="cleanrooms_report",
                                    description="no report section failed (access denied, service error)")],
        description="Which part_ tables are ready for analysis in AWS Clean Rooms, and how identity resolution is "
        "configured: ACX_Cleanroom_Report_<ts>.json, _Tables.csv and _IdentityResolution.csv under "
        "<analysis root>/cleanrooms-reports/.",
    )
    def cleanrooms_report(context: AssetExecutionContext, config: ReportConfig, catalog: Catalog,
                          reporting: CleanRoomsReporting) -> MaterializeResult:
        report, files = generate(catalog, reporting, config.database or catalog.database, config.table_prefix,
                                 config.membership_id)
        failed = {k: s["reason"] for k, s in report["sections"].items() if s["status"] == "failed"}
        for name, reason in failed.items():
            context.log.warning(f"report section {name} failed: {reason}")
        verdicts = [r["ready_for_analysis"] for r in report["tables_report"]]
        return MaterializeResult(
            metadata={
                "tables": len(verdicts) - verdicts.count("excluded"), "ready": verdicts.count("yes"),
                "not_ready": verdicts.count("no"), "unknown": verdicts.count("unknown"),
                "excluded_identity_tables": report["excluded_tables"],
                "membership": report["membership_id"], "collaboration": report["collaboration"],
                "identity_resolution_rows": len(report["identity_resolution_report"]),
                "json": MetadataValue.path(files["json"]), "tables_csv": MetadataValue.path(files["tables_csv"]),
                "identity_csv": MetadataValue.path(files["identity_csv"]),
                "sections": {k: s["status"] for k, s in report["sections"].items()},
                "summary": MetadataValue.md(summary_markdown(report)),
            },
            check_results=[AssetCheckResult(check_name="all_sections_queried", passed=not failed,
                                            severity=AssetCheckSeverity.WARN, metadata={"failed": failed or "none"})],
        )

    return cleanrooms_report


report_job = define_asset_job("cleanrooms_report_job", selection=AssetSelection.assets("cleanrooms_report"),
                              partitions_def=snapshot_partitions)


@schedule(job=report_job, cron_schedule="0 6 1 * *", default_status=DefaultScheduleStatus.STOPPED,
          description="Monthly audit: the report for the newest snapshot (off by default).")
def monthly_cleanrooms_report(context: ScheduleEvaluationContext):
    keys = context.instance.get_dynamic_partitions(snapshot_partitions.name)
    if not keys:
        return SkipReason("no snapshot_dt partitions yet")
    latest = max(keys)
    return RunRequest(partition_key=latest, run_key=f"monthly-{context.scheduled_execution_time:%Y-%m}-{latest}")

