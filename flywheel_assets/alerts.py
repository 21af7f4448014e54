"""Run alerts, as the replaced system's SNS messages: every failed run, and on request every
successful one, to an SNS topic and/or a Slack-compatible webhook (settings FLYWHEEL_ALERT_*).

A message names the snapshot, the failed assets with their errors and links to the run page. An
alert target that cannot be reached is logged and never fails anything. The sensors run in the
Dagster daemon (``dagster dev`` runs one), so they see runs launched from the UI, the raw-snapshot
sensor and backfills.
"""

from __future__ import annotations

import json
import logging
import urllib.parse
import urllib.request
from dataclasses import dataclass

from dagster import (
    DagsterEventType,
    DagsterInstance,
    DagsterRun,
    DagsterRunStatus,
    DefaultSensorStatus,
    RunFailureSensorContext,
    RunStatusSensorContext,
    run_failure_sensor,
    run_status_sensor,
)

from flywheel_assets.messages import step_error_message
from flywheel_assets.settings import get_settings
from flywheel_assets.core import storage

MAX_ERROR = 1500  # characters of each step's error in a message
LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class AlertTargets:
    sns_topic_arn: str = ""
    webhook_url: str = ""
    on_success: bool = False
    ui_url: str = "http://127.0.0.1:3000"
    region: str = "us-east-1"

    @property
    def any(self) -> bool:
        return bool(self.sns_topic_arn or self.webhook_url)


def targets_from_settings() -> AlertTargets:
    s = get_settings()
    return AlertTargets(s.alert_sns_topic_arn, s.alert_webhook_url, s.alert_on_success, s.ui_url, s.aws_region)


def run_message(instance: DagsterInstance, run: DagsterRun, targets: AlertTargets) -> dict:
    """subject and text for one finished run."""
    snapshot = run.tags.get("dagster/partition", "-")
    failed = {}
    for record in instance.get_records_for_run(run.run_id, of_type=DagsterEventType.STEP_FAILURE).records:
        event = record.event_log_entry.dagster_event
        failed[event.step_key] = step_error_message(event.step_failure_data.error)[:MAX_ERROR]
    ok = run.status == DagsterRunStatus.SUCCESS
    subject = f"flywheel {'succeeded' if ok else 'FAILED'}: {run.job_name} snapshot_dt={snapshot}"
    lines = [subject, f"run: {targets.ui_url.rstrip('/')}/runs/{run.run_id}"]
    lines += [f"failed {failed_tables(instance, run.run_id, step)}: {error}" for step, error in failed.items()]
    if not ok and not failed:
        lines.append("no step failed: the run itself failed or was canceled (see the run page)")
    return {"subject": subject[:100], "text": "\n".join(lines), "snapshot_dt": snapshot, "run_id": run.run_id,
            "status": run.status.value, "failed_assets": failed}


def failed_tables(instance: DagsterInstance, run_id: str, step: str, shown: int = 5) -> str:
    """The assets (tables) a failed step was to materialize and did not: ``asset a, b`` or, for a
    step of many tables, ``step ext_tables (27 tables: ext_ibe_01, ...)``."""
    planned = instance.get_records_for_run(run_id, of_type=DagsterEventType.ASSET_MATERIALIZATION_PLANNED).records
    done = instance.get_records_for_run(run_id, of_type=DagsterEventType.ASSET_MATERIALIZATION).records
    made = {r.event_log_entry.dagster_event.asset_key for r in done}
    keys = [r.event_log_entry.dagster_event.asset_key for r in planned
            if r.event_log_entry.dagster_event.step_key == step]
    names = [k.to_user_string() for k in keys if k not in made] or [step]
    if len(names) <= shown:
        return f"asset {', '.join(names)}"
    return f"step {step} ({len(names)} tables: {', '.join(names[:shown])}, ...)"


def send(targets: AlertTargets, message: dict, log=None) -> list[str]:
    """Deliver to every configured target; returns the targets reached. Failures are logged only
    (to this module's logger and to ``log``, the sensor's)."""
    reached = []

    def warn(text: str) -> None:
        LOG.warning(text)
        if log is not None:
            log.warning(text)
    if targets.sns_topic_arn:
        try:
            storage.aws_client("sns", targets.region).publish(
                TopicArn=targets.sns_topic_arn, Subject=message["subject"], Message=message["text"])
            reached.append("sns")
        except Exception as exc:  # an alert must never fail the run it reports
            warn(f"alert to SNS topic {targets.sns_topic_arn} not sent: {exc}")
    if targets.webhook_url:
        body = json.dumps({"text": message["text"], **{k: message[k] for k in ("snapshot_dt", "run_id", "status",
                                                                             "failed_assets")}}).encode()
        request = urllib.request.Request(targets.webhook_url, data=body, method="POST",
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                response.read()
            reached.append("webhook")
        except Exception as exc:
            host = urllib.parse.urlsplit(targets.webhook_url).netloc  # the path of a webhook URL is its secret
            warn(f"alert to webhook at {host} not sent: {type(exc).__name__}: {getattr(exc, 'reason', exc)}")
    return reached


def alert(context: RunStatusSensorContext, targets: AlertTargets | None = None) -> list[str]:
    targets = targets or targets_from_settings()
    if not targets.any:
        return []
    return send(targets, run_message(context.instance, context.dagster_run, targets), context.log)


# How often the daemon looks for finished runs: at most 30 s, sooner if the sensors are set to tick faster.
INTERVAL = min(30, get_settings().sensor_interval_seconds)


@run_failure_sensor(name="alert_on_failure", monitor_all_code_locations=True, default_status=DefaultSensorStatus.RUNNING,
                    minimum_interval_seconds=INTERVAL,
                    description="Every failed run to FLYWHEEL_ALERT_SNS_TOPIC_ARN / FLYWHEEL_ALERT_WEBHOOK_URL.")
def alert_on_failure(context: RunFailureSensorContext):
    alert(context)


@run_status_sensor(run_status=DagsterRunStatus.SUCCESS, name="alert_on_success", monitor_all_code_locations=True,
                   minimum_interval_seconds=INTERVAL,
                   default_status=DefaultSensorStatus.RUNNING,
                   description="Every successful run, when FLYWHEEL_ALERT_ON_SUCCESS=true.")
def alert_on_success(context: RunStatusSensorContext):
    targets = targets_from_settings()
    if targets.on_success:
        alert(context, targets)


sensors = [alert_on_failure, alert_on_success]
