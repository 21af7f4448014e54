"""Transient AWS faults are retried by botocore (one retry configuration for every client)."""

from __future__ import annotations

import json

import boto3
import pytest
from botocore.awsrequest import AWSResponse

from flywheel_assets.catalog.aws import GlueAthenaCatalog
from flywheel_assets.catalog.names import Column, TableSpec
from flywheel_assets.core import storage


class Body:
    def __init__(self, data: bytes):
        self.data = data

    def stream(self, **_):
        yield self.data


@pytest.fixture
def throttled(aws_env, monkeypatch):
    """aws_client() whose ``operation`` calls answer ``times`` throttling errors before reaching moto."""
    calls = []

    def arm(service: str, operation: str, times: int):
        original = storage.aws_client

        def client(name, region=None):
            made = original(name, region)
            if name == service:
                made.meta.events.register(f"before-send.{service}.{operation}", answer)
            return made

        def answer(request, **_):
            calls.append(operation)
            if len(calls) > times:
                return None  # through to moto
            if service == "s3":
                body = b"<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>"
                return AWSResponse(request.url, 503, {}, Body(body))
            body = json.dumps({"__type": "ThrottlingException", "message": "Rate exceeded"}).encode()
            return AWSResponse(request.url, 400, {"x-amzn-ErrorType": "ThrottlingException"}, Body(body))

        monkeypatch.setattr(storage, "aws_client", client)
        monkeypatch.setattr(storage, "_s3_clients", {})
        return calls
    return arm


def test_s3_slowdown_is_retried_and_the_listing_completes(throttled):
    boto3.client("s3").create_bucket(Bucket="lake")
    boto3.client("s3").put_object(Bucket="lake", Key="raw/snapshot_dt=2024-01-15/part-0.parquet", Body=b"x")
    calls = throttled("s3", "ListObjectsV2", times=2)
    assert [e.name for e in storage.list_dir("s3://lake/raw")] == ["snapshot_dt=2024-01-15"]
    assert len(calls) == 3


def test_glue_throttling_is_retried_and_the_table_is_created(throttled):
    catalog = GlueAthenaCatalog(database="db", results_s3="s3://lake/athena/", poll_interval_sec=0.01)
    calls = throttled("glue", "CreateTable", times=3)
    spec = TableSpec("db", "ext_ibe_01", "s3://lake/split/IBE_01", [Column("customer_user_id", "string")],
                     comment="ext; snapshot_dt=2024-01-15")
    assert catalog.apply_table(spec) == "created"
    assert len(calls) == 4
    assert catalog.describe("db", "ext_ibe_01").snapshot == "2024-01-15"
