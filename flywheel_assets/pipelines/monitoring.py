"""The data monitor as Dagster checks on every table asset (monitor.py says what it checks).

Two checks per table, ``snapshot_freshness`` and ``data_monitor``, shown on the table's asset. They
run at the end of every snapshot run (the job selects every asset's checks) and daily by
``daily_data_monitor``; each evaluation writes ACX_Data_Monitor_Report_<YYYYMMDD>.json/.csv and,
when something fails, sends the run alert (alerts.py) if one is configured.
"""

from typing import Optional

from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetKey,
    AssetSelection,
    Config,
    DefaultScheduleStatus,
    MetadataValue,
    RunRequest,
    ScheduleEvaluationContext,
    define_asset_job,
    multi_asset_check,
    schedule,
)
from pydantic import Field

from flywheel_assets import alerts
from flywheel_assets.catalog.base import Catalog
from flywheel_assets.catalog.names import identifier, positive
from flywheel_assets.monitor import Limits, as_of_date, run_monitor, write_report
from flywheel_assets.pipelines.bucketed import current_snapshot_tables
from flywheel_assets.pipelines.partitioned import ER_TABLE, snapshot_folder_tables
from flywheel_assets.resources import CleanRoomsReporting
from flywheel_assets.settings import get_settings
from flywheel_assets.tables import TableSet

FRESHNESS = "snapshot_freshness"
SOUNDNESS = "data_monitor"
CHECK_NAMES = (FRESHNESS, SOUNDNESS)
JOB = "data_monitor_job"


class MonitorConfig(Config):
    database: Optional[str] = Field(default=None, description="catalog database (default: the catalog's)")
    freshness_days: Optional[int] = Field(
        default=None, description="a table's snapshot may be this many days old (default FLYWHEEL_FRESHNESS_DAYS, 45)")
    max_null_keys: int = Field(default=0, description="rows without customer_user_id allowed per table")
    max_duplicate_keys: int = Field(default=0, description="duplicate customer_user_id values allowed per table")
    bucket_count: Optional[int] = Field(
        default=None, description="the bucket count every bucketed_ table must have (default: the same count in all)")
    as_of: Optional[str] = Field(default=None, description="judge freshness as of this date (YYYY-MM-DD; default today)")


def monitored(tables: TableSet) -> tuple[list[str], list[str], bool]:
    """The tables the monitor covers: bucketed ones, part ones, and whether there is an ER table."""
    part = [(job, t.lower()) for job, t in snapshot_folder_tables(tables)]
    return ([t.lower() for _, t in current_snapshot_tables(tables)], [t for _, t in part],
            any(job.single_table == "addressable_ids" for job, _ in part))


def asset_key(table: str) -> AssetKey:
    return AssetKey(table)  # the catalog tables' assets are named after them


def monitor_check(tables: TableSet):
    bucket, part, er = monitored(tables)
    names = [f"bucketed_{t}" for t in bucket] + [f"part_{t}" for t in part] + ([ER_TABLE] if er else [])
    specs = [AssetCheckSpec(FRESHNESS, asset=asset_key(n), description="the table's snapshot is at most "
                            "FLYWHEEL_FRESHNESS_DAYS (45) days old") for n in names]
    specs += [AssetCheckSpec(SOUNDNESS, asset=asset_key(n), description="keys without nulls or duplicates, row counts "
                             "equal to the files it was built from, partitions registered with data, table contract")
              for n in names]

    @multi_asset_check(specs=specs, name="data_monitor", can_subset=True, description="The daily data monitor: freshness, keys, row "
                       "counts, partitions and contract of every table; writes ACX_Data_Monitor_Report_<YYYYMMDD>.json/.csv "
                       "under <analysis root>/data-monitor/.")
    def data_monitor(context: AssetCheckExecutionContext, config: MonitorConfig, catalog: Catalog,
                     reporting: CleanRoomsReporting):
        settings = get_settings()
        limits = Limits(freshness_days=positive(config.freshness_days or settings.freshness_days, "freshness_days"),
                        max_null_keys=config.max_null_keys, max_duplicate_keys=config.max_duplicate_keys,
                        bucket_count=config.bucket_count)
        database = identifier(config.database or catalog.database, "database")
        # A run of some tables (`flywheel run --select bucketed_ibe_01`) checks those; the day's
        # report file is written by runs that check every table.
        selected = {k.asset_key.to_user_string() for k in context.selected_asset_check_keys}
        everything = len(selected) == len(names)
        report = run_monitor(catalog, database, [t for t in bucket if f"bucketed_{t}" in selected],
                             [t for t in part if f"part_{t}" in selected], er and ER_TABLE in selected, limits,
                             as_of_date(config.as_of))
        path = write_report(report, reporting.analysis_root)["json"] if everything else None
        context.log.info(f"data monitor: {report['status']}, {len(report['alerts'])} of {len(report['tables'])} "
                         f"tables failing" + (f"; report {path}" if path else " (some tables: no report file)"))
        if report["alerts"]:
            notify(context, report, path)
        for row in report["tables"]:
            key = asset_key(row["table"])
            yield AssetCheckResult(
                asset_key=key, check_name=FRESHNESS, passed=not row["stale"], severity=AssetCheckSeverity.ERROR,
                description=row["stale"], metadata={"snapshot_dt": row["snapshot"] or "none",
                                                    "age_days": row["age_days"] if row["age_days"] is not None else -1,
                                                    "limit_days": limits.freshness_days, "as_of": report["as_of"]})
            problems = row["problems"]
            counts = {k: row[k] for k in ("rows", "expected_rows", "null_keys", "duplicate_keys",
                                          "partitions_registered", "partitions_on_storage") if row[k] is not None}
            yield AssetCheckResult(
                asset_key=key, check_name=SOUNDNESS, passed=not problems, severity=AssetCheckSeverity.ERROR,
                description="; ".join(problems)[:2000] or None,
                metadata={**counts, "problems": "; ".join(problems) or "none",
                          **({"warnings": "; ".join(row["warnings"])} if row["warnings"] else {}),
                          **({"report": MetadataValue.path(path)} if path else {})})

    return data_monitor


def notify(context: AssetCheckExecutionContext, report: dict, path: str | None) -> None:
    targets = alerts.targets_from_settings()
    if not targets.any:
        return
    subject = f"flywheel data monitor: {len(report['alerts'])} table(s) failing in {report['database']}"
    lines = [subject, f"run: {targets.ui_url.rstrip('/')}/runs/{context.run.run_id}", f"report: {path or 'none (some tables checked)'}",
             *report["alerts"][:50]]
    alerts.send(targets, {"subject": subject[:100], "text": "\n".join(lines), "snapshot_dt": context.run.tags.get(
        "dagster/partition", "-"), "run_id": context.run.run_id, "status": "MONITOR_FAILED",
        "failed_assets": {a.split(":")[0]: a for a in report["alerts"][:50]}}, context.log)


def monitor_job(check):
    return define_asset_job(JOB, selection=AssetSelection.checks(check),
                            description="The data monitor on what the catalog serves now (no partition).")


def daily_schedule(job):
    @schedule(job=job, cron_schedule="0 7 * * *", default_status=DefaultScheduleStatus.RUNNING,
              description="The daily data monitor (07:00 UTC), as the replaced system's.")
    def daily_data_monitor(context: ScheduleEvaluationContext):
        return RunRequest(run_key=f"monitor-{context.scheduled_execution_time:%Y-%m-%d}")

    return daily_data_monitor

