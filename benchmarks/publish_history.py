"""Publishing snapshot N+1 as history grows: default mode (register exactly the new partition)
against MSCK REPAIR TABLE, with 1, 30 and 300 snapshots already registered.

    python -m benchmarks.publish_history [--history 1,30,300] [--trials 5]

Runs on the local Spark server of a temporary home (or FLYWHEEL_SPARK_REMOTE) and appends its
table to docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from flywheel_assets.catalog.local import LocalCatalog, close_sessions
from flywheel_assets.catalog.names import Column, TableSpec
from flywheel_assets.local_spark import LocalSpark, SparkServer

DOCS = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"


def dates(start: dt.date, count: int) -> list[str]:
    return [(start + dt.timedelta(days=i)).isoformat() for i in range(count)]


def write_partition(root: Path, day: str) -> str:
    folder = root / f"snapshot_dt={day}"
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({"customer_user_id": ["a", "b"], "v": [1, 2]}), folder / "part-0.parquet")
    return str(folder)


def measure(catalog: LocalCatalog, root: Path, history: int, trials: int) -> tuple[float, float]:
    table = f"part_bench_{root.name}"
    catalog.apply_table(TableSpec(catalog.database, table, str(root), [Column("customer_user_id", "string"), Column("v", "bigint")],
                                  comment="bench", partition_keys=[Column("snapshot_dt", "string")]))
    old = dates(dt.date(2020, 1, 1), history)
    catalog.add_partitions(catalog.database, table, [(d, write_partition(root, d)) for d in old])
    add_times, msck_times = [], []
    for i, day in enumerate(dates(dt.date(2030, 1, 1), trials * 2)):
        location = write_partition(root, day)
        started = time.perf_counter()
        if i % 2 == 0:  # default mode: exactly the new partition
            catalog.add_partitions(catalog.database, table, [(day, location)])
            assert catalog.has_partition(catalog.database, table, day)
            add_times.append(time.perf_counter() - started)
        else:
            catalog.repair(catalog.database, [table], 1, 0)
            assert catalog.has_partition(catalog.database, table, day)
            msck_times.append(time.perf_counter() - started)
    return statistics.median(add_times), statistics.median(msck_times)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--history", default="1,30,300")
    parser.add_argument("--trials", type=int, default=5)
    args = parser.parse_args(argv)
    histories = [int(h) for h in args.history.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        remote = os.environ.get("FLYWHEEL_SPARK_REMOTE", "")
        server = None if remote else SparkServer(Path(tmp) / "spark")
        catalog = LocalCatalog(database="bench_publish", server=LocalSpark(home=str(Path(tmp) / "spark"), remote=remote))
        try:
            catalog.ensure_database(catalog.database)
            measure(catalog, Path(tmp) / "warmup", 1, 2)  # JIT and metastore caches warm for every cell
            results = {h: measure(catalog, Path(tmp) / f"data_{h}", h, args.trials) for h in histories}
        finally:
            close_sessions()
            if server:
                server.stop()
    base_add = results[histories[0]][0]
    lines = [
        "## Publishing snapshot N+1 as history grows (local catalog)",
        "",
        f"`python -m benchmarks.publish_history` on {platform.machine()}, {os.cpu_count()} cores; "
        f"median of {args.trials} publications per cell; baseline: default mode with {histories[0]} snapshot(s) registered.",
        "",
        "| snapshots registered | default mode (s) | vs baseline | MSCK REPAIR (s) | MSCK / default |",
        "|---:|---:|---:|---:|---:|",
    ]
    for h in histories:
        add, msck = results[h]
        lines.append(f"| {h} | {add:.3f} | {add / base_add:.2f}x | {msck:.3f} | {msck / add:.1f}x |")
    text = "\n".join(lines) + "\n"
    print(text)
    DOCS.parent.mkdir(exist_ok=True)
    existing = DOCS.read_text() if DOCS.exists() else "# Benchmarks\n\n"
    marker = "## Publishing snapshot N+1"
    if marker in existing:
        head, _, rest = existing.partition(marker)
        tail = rest.split("\n## ", 1)
        existing = head + (("## " + tail[1]) if len(tail) > 1 else "")
    DOCS.write_text(existing.rstrip() + "\n\n" + text)


if __name__ == "__main__":
    main()
