"""Benchmark 5: one tick of the raw-snapshot sensor as history grows, on local disk and on S3 (moto).

Each of the three raw sources holds N snapshot folders, all already handled (in the cursor and
registered as partitions), plus one new complete snapshot: the tick must find that one and
request its run. Median of several ticks; baseline: 10 folders on local disk.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import statistics
import time
from pathlib import Path

from benchmarks.harness import table

SOURCES_N = 3


def dates(count: int) -> list[str]:
    start = dt.date(2000, 1, 1)
    return [(start + dt.timedelta(days=i)).isoformat() for i in range(count)]


def populate(put, count: int) -> tuple[list[str], str]:
    from flywheel_assets import settings

    old, new = dates(count), "2099-01-01"
    for source in (settings.INFOBASE_RAW, settings.ADDRESSABLE_COMPACTION, settings.ADDRESSABLE_RAW):
        for day in [*old, new]:
            put(f"{source}snapshot_dt={day}/_SUCCESS")
    return old, new


def tick_seconds(data_root: str, handled: list[str], new: str, trials: int) -> float:
    from dagster import DagsterInstance, build_sensor_context

    from flywheel_assets.definitions import defs
    from flywheel_assets.resources import Lake

    sensor = defs.resolve_sensor_def("raw_snapshot_sensor")
    instance = DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("snapshot_dt", handled)
    times = []
    for _ in range(trials):
        context = build_sensor_context(cursor=json.dumps(handled), instance=instance,
                                       resources={"lake": Lake(data_root=data_root)},
                                       repository_def=defs.get_repository_def())
        started = time.perf_counter()
        result = sensor(context)
        times.append(time.perf_counter() - started)
        assert [r.partition_key for r in result.run_requests] == [new], result
    return statistics.median(times)


def run(work: Path, counts=(10, 1000), trials: int = 5) -> tuple[str, dict]:
    import logging

    import boto3
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's request log
    results = {}
    for count in counts:
        root = work / f"sensor-lake-{count}"

        def put_local(key: str) -> None:
            path = root / key
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"")

        handled, new = populate(put_local, count)
        results[("local", count)] = tick_seconds(str(root), handled, new, trials)

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    saved = {k: os.environ.get(k) for k in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                                             "AWS_DEFAULT_REGION")}
    try:
        host, port = server.get_host_and_port()
        os.environ.update({"AWS_ENDPOINT_URL": f"http://{host}:{port}", "AWS_ACCESS_KEY_ID": "bench",
                           "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1"})
        s3 = boto3.client("s3")
        for count in counts:
            bucket = f"sensor-lake-{count}"
            s3.create_bucket(Bucket=bucket)
            handled, new = populate(lambda key: s3.put_object(Bucket=bucket, Key=key, Body=b""), count)
            results[("s3", count)] = tick_seconds(f"s3://{bucket}", handled, new, trials)
    finally:
        server.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    base = results[("local", counts[0])]
    rows = [[f"{count:,} per source ({SOURCES_N * count:,} in all)",
             f"{results[('local', count)] * 1000:.0f} ms ({results[('local', count)] / base:.1f}x)",
             f"{results[('s3', count)] * 1000:.0f} ms ({results[('s3', count)] / base:.1f}x)"] for count in counts]
    body = table(["snapshot folders already handled", "local disk", "S3 (moto server)"], rows)
    body += (f"\n\nMedian of {trials} ticks, each finding the one new snapshot; ratios against {counts[0]} folders "
             "on local disk. moto runs in this process over HTTP, so S3 figures are request-count bound, not "
             "network bound.")
    return body, {f"{where}_{count}": s for (where, count), s in results.items()}
