"""Run alerts: a failed and a successful run reach moto's SNS (read back through an SQS
subscription) and a webhook receiver on loopback; an unreachable target is logged, not raised."""

from __future__ import annotations

import json

import boto3
from dagster import (
    DagsterEventType,
    DagsterInstance,
    Failure,
    asset,
    build_run_status_sensor_context,
    materialize,
)

from flywheel_assets import alerts
from flywheel_assets.partitions import snapshot_partitions


@asset(partitions_def=snapshot_partitions)
def flaky_split(context) -> None:
    if context.partition_key == "2024-02-15":
        raise Failure("infobase_split_and_bucket failed: mapping.csv, line 3: 1 fields, the header has 5")


def finished_run(snapshot: str):
    instance = DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("snapshot_dt", [snapshot])
    result = materialize([flaky_split], partition_key=snapshot, instance=instance, raise_on_error=False)
    kind = DagsterEventType.RUN_SUCCESS if result.success else DagsterEventType.RUN_FAILURE
    event = instance.get_records_for_run(result.run_id, of_type=kind).records[0].event_log_entry.dagster_event
    run = instance.get_run_by_id(result.run_id)
    return build_run_status_sensor_context(sensor_name="alert", dagster_event=event, dagster_instance=instance,
                                           dagster_run=run)


def sns_with_queue():
    sns, sqs = boto3.client("sns"), boto3.client("sqs")
    topic = sns.create_topic(Name="flywheel-alerts")["TopicArn"]
    queue = sqs.create_queue(QueueName="alerts")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn)
    return topic, lambda: [json.loads(m["Body"]) for m in sqs.receive_message(
        QueueUrl=queue, MaxNumberOfMessages=10).get("Messages", [])]


def test_failed_run_names_snapshot_asset_error_and_run_link(aws_env, receiver):
    url, received = receiver
    topic, messages = sns_with_queue()
    targets = alerts.AlertTargets(sns_topic_arn=topic, webhook_url=url, ui_url="http://dagster.internal:3000")
    context = finished_run("2024-02-15").for_run_failure()
    assert alerts.alert(context, targets) == ["sns", "webhook"]
    [sns_message] = messages()
    assert sns_message["Subject"] == "flywheel FAILED: __ephemeral_asset_job__ snapshot_dt=2024-02-15"
    text = sns_message["Message"]
    assert f"run: http://dagster.internal:3000/runs/{context.dagster_run.run_id}" in text
    assert "failed asset flaky_split: infobase_split_and_bucket failed: mapping.csv, line 3: 1 fields" in text
    [hook] = received
    assert hook["text"] == text and hook["snapshot_dt"] == "2024-02-15" and hook["status"] == "FAILURE"
    assert list(hook["failed_assets"]) == ["flaky_split"]


def test_success_alert_and_unreachable_targets_are_logged_not_raised(aws_env, receiver, caplog):
    url, received = receiver
    context = finished_run("2024-03-15")
    assert alerts.alert(context, alerts.AlertTargets(webhook_url=url)) == ["webhook"]
    assert received[0]["status"] == "SUCCESS" and received[0]["failed_assets"] == {}
    dead = alerts.AlertTargets(sns_topic_arn="arn:aws:sns:us-east-1:123456789012:no-such-topic",
                               webhook_url="http://127.0.0.1:9/closed")
    assert alerts.alert(context, dead) == []  # nothing raised
    logged = " ".join(r.getMessage() for r in caplog.records)
    assert "not sent" in logged and "no-such-topic" in logged and "127.0.0.1:9" in logged
    assert "/closed" not in logged  # a webhook URL's path is its secret: never logged
    assert alerts.alert(context, alerts.AlertTargets()) == []  # no target configured: nothing to do
