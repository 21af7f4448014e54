"""Benchmark 3: publishing snapshot N+1 as history grows: default mode (register exactly the new
partition) against MSCK REPAIR TABLE, with 1, 30 and 365 snapshots already registered, on the
local catalog."""

from __future__ import annotations

import datetime as dt
import statistics
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from benchmarks.harness import table
from flywheel_assets.catalog.local import LocalCatalog
from flywheel_assets.catalog.names import Column, TableSpec


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


def run(bench, work: Path, histories=(1, 30, 365), trials: int = 5) -> tuple[str, dict]:
    catalog = bench.catalog("bench_publish")
    catalog.ensure_database(catalog.database)
    measure(catalog, work / "publish_warmup", 1, 2)  # JIT and metastore caches warm for every cell
    results = {h: measure(catalog, work / f"publish_{h}", h, trials) for h in histories}
    base = results[histories[0]][0]
    rows = [[h, f"{add:.3f}", f"{add / base:.2f}x", f"{msck:.3f}", f"{msck / add:.1f}x"]
            for h, (add, msck) in results.items()]
    body = table(["snapshots registered", "default mode (s)", "vs baseline", "MSCK REPAIR (s)", "MSCK / default"], rows)
    x = ", ".join(str(h) for h in histories)
    body += (f"\n\nMedian of {trials} publications per cell; baseline: default mode with {histories[0]} snapshot "
             "registered.\n\n```mermaid\nxychart-beta\n    title \"seconds to make snapshot N+1 queryable\"\n"
             f"    x-axis \"snapshots already registered\" [{x}]\n    y-axis \"seconds\"\n"
             f"    line [{', '.join(f'{results[h][0]:.3f}' for h in histories)}]\n"
             f"    line [{', '.join(f'{results[h][1]:.3f}' for h in histories)}]\n```\n\n"
             "Lower line: default mode (`ALTER TABLE ... ADD PARTITION` of exactly the new snapshot); upper: "
             "`MSCK REPAIR TABLE`, which lists every partition folder.")
    return body, {f"add_{h}": a for h, (a, _) in results.items()} | {f"msck_{h}": m for h, (_, m) in results.items()}
