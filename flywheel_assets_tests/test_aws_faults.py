"""Transient AWS faults are retried: by botocore for the AWS APIs (one retry configuration for every
client), by pyarrow's S3 client (the AWS SDK's) for storage."""

from __future__ import annotations

import http.client
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

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


class SlowDownProxy(ThreadingHTTPServer):
    """moto behind a proxy that answers S3's 503 SlowDown to the first ``times`` listings: storage
    goes through pyarrow's S3 client, not botocore, so the fault is injected on the wire."""

    def __init__(self, upstream: str, times: int):
        self.upstream, self.times, self.listings = urlsplit(upstream), times, 0
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def relay(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if "list-type=2" in self.path:
                    proxy.listings += 1
                    if proxy.listings <= proxy.times:
                        error = b"<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>"
                        self.send_response(503)
                        self.send_header("Content-Length", str(len(error)))
                        self.end_headers()
                        self.wfile.write(error)
                        return
                conn = http.client.HTTPConnection(proxy.upstream.hostname, proxy.upstream.port)
                conn.request(self.command, self.path, body, dict(self.headers))
                answer = conn.getresponse()
                data = answer.read()
                self.send_response(answer.status)
                for name, value in answer.getheaders():
                    if name.lower() not in ("content-length", "transfer-encoding", "connection"):
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_PUT = do_HEAD = do_POST = do_DELETE = relay

        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


def test_s3_slowdown_is_retried_and_the_listing_completes(aws_env, monkeypatch):
    boto3.client("s3").create_bucket(Bucket="lake")
    boto3.client("s3").put_object(Bucket="lake", Key="raw/snapshot_dt=2024-01-15/part-0.parquet", Body=b"x")
    proxy = SlowDownProxy(aws_env, times=2)
    try:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
        assert [e.name for e in storage.list_dir("s3://lake/raw")] == ["snapshot_dt=2024-01-15"]
        assert proxy.listings == 3  # two SlowDowns, then through to moto
    finally:
        proxy.shutdown()


def test_glue_throttling_is_retried_and_the_table_is_created(throttled):
    catalog = GlueAthenaCatalog(database="db", results_s3="s3://lake/athena/", poll_interval_sec=0.01)
    calls = throttled("glue", "CreateTable", times=3)
    spec = TableSpec("db", "ext_ibe_01", "s3://lake/split/IBE_01", [Column("customer_user_id", "string")],
                     comment="ext; snapshot_dt=2024-01-15")
    assert catalog.apply_table(spec) == "created"
    assert len(calls) == 4
    assert catalog.describe("db", "ext_ibe_01").snapshot == "2024-01-15"
