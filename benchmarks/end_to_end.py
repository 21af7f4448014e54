"""Benchmark 4: `flywheel run` on the default sample lake, and where its time goes.

The run is the README's: `flywheel demo-data` then `flywheel run --snapshot latest`, each in a fresh
FLYWHEEL_HOME, against the benchmark's Spark server: its first run of the graph (the server has run
benchmarks 1-3), then, after one more, a run on a server warm for the graph, as a developer's
long-lived local server is from its third run on. From the warm run's event log:
- per asset, the step's time, and the Spark work in it (split assets: the job's own `job_seconds`
  from session to result; catalog assets: the whole step is catalog/Spark SQL work);
- step overhead: step time minus Spark work (job process start, imports, Pipes);
- outside steps: wall time when no step was running (CLI start, run start, step processes).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.harness import Bench, table

SPLIT = ("infobase_split", "addressable_bucket", "infobase_split_part", "addressable_split_part")


# Before issue 17's local server change: Hadoop's own local file system, which (without its
# native library, as in pip's PySpark) runs a chmod process for every file and folder it creates.
RAW_LOCAL_FS = {"spark.hadoop.fs.file.impl": "org.apache.hadoop.fs.RawLocalFileSystem"}


def flywheel(home: Path, url: str, *args: str) -> float:
    env = {**os.environ, "FLYWHEEL_HOME": str(home), "FLYWHEEL_SPARK_REMOTE": url, "FLYWHEEL_ENV": "local",
           "FLYWHEEL_DATABASE": "bench_" + home.name.replace("-", "_")}  # runs share the server's metastore
    env.pop("DAGSTER_HOME", None)
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "flywheel_assets.cli", *args], env=env, capture_output=True,
                          text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"flywheel {' '.join(args)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return time.perf_counter() - started


def union_seconds(intervals: list[tuple[float, float]]) -> float:
    total, end = 0.0, None
    for a, b in sorted(intervals):
        if end is None or a > end:
            total += b - a
            end = b
        elif b > end:
            total += b - end
            end = b
    return total


def breakdown(home: Path) -> tuple[list[list], dict]:
    from dagster import DagsterEventType, DagsterInstance

    instance = DagsterInstance.from_config(str(home / "dagster"))
    run = instance.get_runs(limit=1)[0]
    stats = {s.step_key: s for s in instance.get_run_step_stats(run.run_id)}
    work = {s: stats[s].end_time - stats[s].start_time for s in stats}
    for record in instance.get_records_for_run(run.run_id, of_type=DagsterEventType.ASSET_MATERIALIZATION).records:
        step = record.event_log_entry.dagster_event.step_key
        if step in SPLIT:  # every table of a split step carries the job's own Spark time
            work[step] = record.asset_materialization.metadata["job_seconds"].value
    rows = []
    for step in sorted(stats, key=lambda s: stats[s].start_time):
        seconds = stats[step].end_time - stats[step].start_time
        rows.append([step, f"{seconds:.1f}", f"{work[step]:.1f}", f"{seconds - work[step]:.1f}"])
    intervals = [(s.start_time, s.end_time) for s in stats.values()]
    totals = {"steps_union": union_seconds(intervals), "step_seconds": sum(b - a for a, b in intervals),
              "work_seconds": sum(work.values()), "run_seconds": run_duration(instance, run.run_id)}
    return rows, totals


def run_duration(instance, run_id: str) -> float:
    record = instance.get_run_record_by_id(run_id)
    return record.end_time - record.start_time


def timed_run(url: str, work: Path, label: str) -> tuple[float, Path]:
    home = work / f"e2e-{label}"
    flywheel(home, url, "demo-data")
    return flywheel(home, url, "run", "--snapshot", "latest"), home


# The JIT of a server is warm for the graph from its third run on: runs 1-4 of a fresh server took
# 99, 57, 48, 44 s, then 43-49 s (docs/benchmarks.md, issue 17's ninth session).
WARM_UP_RUNS = 2


def run_before(work: Path) -> float:
    """The same run on a server writing through RawLocalFileSystem, after as many untimed runs as
    the warm run below."""
    from flywheel_assets.local_spark import SparkServer

    server = SparkServer(work / "spark-raw-local-fs", "local[2]", "4g", conf=RAW_LOCAL_FS)
    watchdog = server.stop_with_caller()  # noqa: F841 (held until the run ends)
    url = server.ensure()
    try:
        for i in range(WARM_UP_RUNS):
            timed_run(url, work, f"before-warm-up-{i}")
        return timed_run(url, work, "before")[0]
    finally:
        server.stop()


def run(bench: Bench, work: Path) -> tuple[str, dict]:
    first_wall, _ = timed_run(bench.url, work, "first")
    for i in range(1, WARM_UP_RUNS):
        timed_run(bench.url, work, f"warm-up-{i}")
    wall, home = timed_run(bench.url, work, "after")
    before_wall = run_before(work)
    rows, totals = breakdown(home)
    outside = wall - totals["steps_union"]
    overhead = totals["step_seconds"] - totals["work_seconds"]
    figures = {"wall": wall, "first_wall": first_wall, "before_wall": before_wall, **totals, "outside_steps": outside,
               "step_overhead": overhead, "work_share": totals["work_seconds"] / totals["step_seconds"]}
    body = table(["step (in start order)", "step (s)", "Spark/catalog work (s)", "overhead in step (s)"], rows)
    body += "\n\n" + table(["whole run", "seconds"], [
        [f"`flywheel run --snapshot latest` wall time, the server's run {WARM_UP_RUNS + 1} of the graph (warm; "
         "the steps above)", f"**{wall:.1f}**"],
        ["same, the server's first run of the graph (its JIT warm from benchmarks 1-3 only)", f"{first_wall:.1f}"],
        [f"same as the warm run on a server writing through Hadoop's RawLocalFileSystem (a chmod process per file "
         f"created, as before issue 17), its run {WARM_UP_RUNS + 1}", f"{before_wall:.1f} ({before_wall / wall:.2f}x)"],
        ["Dagster run (start to end)", f"{totals['run_seconds']:.1f}"],
        ["time with at least one step running", f"{totals['steps_union']:.1f}"],
        ["outside any step (CLI and Python start-up, run and step process start)", f"{outside:.1f}"],
        ["sum of steps / of which Spark or catalog work", f"{totals['step_seconds']:.1f} / {totals['work_seconds']:.1f}"],
        ["step overhead (job process start, imports, Pipes)", f"{overhead:.1f}"],
    ])
    return body, figures
