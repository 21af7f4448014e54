"""Benchmark 1: the split job against its physical floor.

The same snapshot is split (a) by the Spark job (``run_split``, on the local Spark server, as
`flywheel run` does) and (b) by a single-pass pyarrow program that reads the source once and
writes the same tables, same columns, same format and compression (parquet, snappy), one table
per core at a time. Spark's stage metrics give the bytes it read and shuffled.
"""

from __future__ import annotations

import math
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pyarrow.parquet as pq

from benchmarks.harness import Bench, table, timed

MB = 1024 * 1024


def make_lake(root: Path, rows: int, files: int = 8) -> Path:
    """The production-shaped sample lake (27 tables, 1,741 mapped + 3 odd columns), one snapshot."""
    from flywheel_assets.demo_data import DemoSpec, write_demo_lake

    if not (root / "_complete").exists():
        shutil.rmtree(root, ignore_errors=True)
        write_demo_lake(root, DemoSpec(rows=rows, snapshots=1, files_per_snapshot=files))
        (root / "_complete").write_text("")
    return root


def pyarrow_split(source: Path, mapping, target: Path, threads: int) -> None:
    """The floor: read every column once, write each table (a projection) as one snappy parquet file."""
    import pyarrow.parquet as pq

    from flywheel_assets.core.mapping import KEY_COLUMN

    data = pq.read_table(source)
    original = {c.strip().lower(): c for c in data.column_names}

    def write(item):
        name, columns = item
        columns = [KEY_COLUMN, *columns]
        out = data.select([original[c] for c in columns]).rename_columns(columns)
        (target / name).mkdir(parents=True, exist_ok=True)
        pq.write_table(out, target / name / "part-00000.snappy.parquet", compression="snappy")

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(write, mapping.tables.items()))


def plain_spark_split(spark, source: Path, mapping, target: Path, threads: int) -> None:
    """The same tables by the plainest PySpark: read, select, one file per table, ``threads``
    tables at a time; no key pass, no checks, no statistics, no publication records."""
    from pyspark.sql import functions as F  # noqa: N812

    from flywheel_assets.core.mapping import KEY_COLUMN

    spark.conf.set("spark.sql.caseSensitive", "true")  # as the job: the source has names differing in case only
    df = spark.read.parquet(str(source))
    original = {c.strip().lower(): c for c in df.columns}

    def write(item):
        name, columns = item
        columns = [KEY_COLUMN, *columns]
        out = df.select(*[F.col(f"`{original[c]}`").alias(c) for c in columns]).coalesce(1)
        out.write.mode("overwrite").parquet(str(target / name))

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(write, mapping.tables.items()))


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and not p.name.startswith(("_", ".")))


def run(bench: Bench, work: Path, lake: Path, target_mb: int = 128) -> tuple[str, dict]:
    from flywheel_assets import settings
    from flywheel_assets.core.mapping import load_mapping
    from flywheel_assets.core.snapshots import list_snapshots
    from flywheel_assets.spark_jobs.split import DEFAULT_WRITE_PARALLELISM, JOBS, run_split

    source_root = lake / settings.INFOBASE_RAW
    snapshot = list_snapshots(str(source_root))[-1]
    source = source_root / f"snapshot_dt={snapshot}"
    source_bytes = folder_bytes(source)
    mapping = load_mapping(str(lake / settings.INFOBASE_BUCKET_MAPPING))
    rows = sum(f.metadata.num_rows for f in map(pq.ParquetFile, sorted(source.glob("*.parquet"))))
    attributes, tables = len(mapping.columns()), len(mapping.tables)
    spark = bench.session()
    job = JOBS["infobase_split_and_bucket"]
    target = lake / settings.SPLIT_CLUSTER_INFOBASE  # left in place for the join benchmark

    # warm the server (JIT, class loading) as a long-lived server is: two untimed runs (the second
    # run of a fresh server is still about 1.5x slower than the third)
    for _ in range(2):
        run_split(spark, job, str(source_root), str(work / "out-warmup"), snapshot, mapping, target_mb * MB)
        shutil.rmtree(work / "out-warmup")

    serial_s, _ = timed(run_split, spark, job, str(source_root), str(target), snapshot, mapping, target_mb * MB,
                        write_parallelism=1)  # the job as it was: one table at a time
    plain_s, _ = timed(plain_spark_split, spark, source, mapping, work / "out-plain", DEFAULT_WRITE_PARALLELISM)
    plain_out = folder_bytes(work / "out-plain")
    shutil.rmtree(work / "out-plain")
    spark.conf.set("parquet.enable.dictionary", "false")
    try:
        no_dict_s, _ = timed(run_split, spark, job, str(source_root), str(work / "out-nodict"), snapshot, mapping,
                             target_mb * MB)
    finally:
        spark.conf.unset("parquet.enable.dictionary")
    no_dict_out = folder_bytes(work / "out-nodict")
    shutil.rmtree(work / "out-nodict")
    before = bench.stage_totals()
    spark_s, result = timed(run_split, spark, job, str(source_root), str(target), snapshot, mapping, target_mb * MB)
    metrics = {k: v - before[k] for k, v in bench.stage_totals().items()}
    floor_s, _ = timed(pyarrow_split, source, mapping, work / "out-floor", 2)

    ideal = {t.name: max(1, math.ceil(t.bytes / (target_mb * MB))) for t in result.tables}
    at_ideal = sum(1 for t in result.tables if t.files == ideal[t.name])
    # the target keeps each run's version folder until a switch: count the timed run's files only
    spark_out, floor_out = sum(t.bytes for t in result.tables), folder_bytes(work / "out-floor")
    shutil.rmtree(work / "out-floor")
    figures = {
        "spark_s": spark_s, "floor_s": floor_s, "ratio": spark_s / floor_s, "serial_s": serial_s,
        "source_bytes": source_bytes, "read_bytes": metrics["readBytes"],
        "read_ratio": metrics["readBytes"] / source_bytes, "shuffle_bytes": metrics["shuffleWriteBytes"],
        "plain_s": plain_s, "plain_out": plain_out, "no_dict_s": no_dict_s, "no_dict_out": no_dict_out,
        "tables": len(result.tables), "at_ideal": at_ideal,
        "max_files": max(t.files for t in result.tables), "spark_out": spark_out, "floor_out": floor_out,
    }
    body = table(
        ["measure", "value"],
        [
            ["snapshot", f"{rows:,} rows x {attributes} mapped attribute columns (+3 unmapped) in {tables} tables, "
                         f"{source_bytes / MB:.0f} MB parquet in 8 files"],
            [f"Spark split job (run_split on the local server, {DEFAULT_WRITE_PARALLELISM} tables at a time)",
             f"{spark_s:.1f} s"],
            ["same, one table at a time (`write_parallelism: 1`)", f"{serial_s:.1f} s ({serial_s / spark_s:.2f}x)"],
            [f"plain PySpark write of the same tables ({DEFAULT_WRITE_PARALLELISM} at a time; no key pass, checks, "
             "statistics or records)", f"{plain_s:.1f} s ({plain_s / spark_s:.2f}x of the job; {plain_out / MB:.1f} MB)"],
            ["the job with parquet dictionary encoding off (`parquet.enable.dictionary=false`)",
             f"{no_dict_s:.1f} s ({no_dict_s / spark_s:.2f}x of the job; {no_dict_out / MB:.1f} MB)"],
            ["pyarrow single pass (floor)", f"{floor_s:.1f} s"],
            ["**Spark / floor**", f"**{spark_s / floor_s:.2f}x**"],
            ["bytes the Spark JVM read / source size", f"{metrics['readBytes'] / source_bytes:.2f}"],
            ["shuffle bytes written", f"{metrics['shuffleWriteBytes']:,}"],
            ["tables with the ideal file count (ceil(size / target_file_mb))", f"{at_ideal} / {len(result.tables)}"],
            ["output size, Spark / pyarrow", f"{spark_out / MB:.1f} MB / {floor_out / MB:.1f} MB"],
        ],
    )
    return body, figures
