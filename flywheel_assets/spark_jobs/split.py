"""The split jobs of both pipelines: one wide source snapshot -> narrow per-table parquet.

Pure in the sense of the platform: (source, snapshot, mapping, target, sizing) -> files on disk
plus per-table statistics. Everything that can be wrong with the input is checked before the
first byte is written.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Optional

from flywheel_assets.spark_jobs import publish, sizing, storage
from flywheel_assets.spark_jobs.checks import blocking_failures
from flywheel_assets.spark_jobs.errors import FlywheelInputError
from flywheel_assets.spark_jobs.mapping import COLUMN_NAME, KEY_COLUMN, Mapping, check_against_source, normalize
from flywheel_assets.spark_jobs.runtime import spark_path
from flywheel_assets.spark_jobs.snapshots import list_snapshots, resolve_snapshot, snapshot_path

BUCKET, PART = "bucket", "part"
DEFAULT_WRITE_PARALLELISM = 8  # tables written at once


@dataclass(frozen=True)
class SplitJob:
    """How one run-book job lays out its output."""

    name: str
    layout: str  # BUCKET: <target>/<table>/ ; PART: <target>/<table>/snapshot_dt=<d>/
    mapping: str  # "required" | "optional" | "none"
    single_table: Optional[str] = None  # all (mapped) columns in one table with this name


JOBS = {
    job.name: job
    for job in (
        SplitJob("infobase_split_and_bucket", BUCKET, "required"),
        SplitJob("addressable_bucket", BUCKET, "none", single_table="addressable_ids"),
        SplitJob("infobase_split_and_part", PART, "required"),
        SplitJob("addressable_split_and_part", PART, "optional", single_table="addressable_ids"),
    )
}


@dataclass
class TablePlan:
    name: str
    columns: list[str]  # key first
    path: str  # the folder the data files of this snapshot end up in
    estimated_bytes: int
    files: int


@dataclass
class TableResult:
    name: str
    path: str
    rows: int
    files: int
    bytes: int
    columns: int
    planned_files: int
    written_columns: list[str] = field(default_factory=list)
    expected_columns: list[str] = field(default_factory=list)


@dataclass
class SplitResult:
    job: str
    snapshot: str
    source: str
    target: str
    source_rows: int
    source_bytes: int
    unmapped_columns: list[str]
    bad_keys: int = 0  # rows whose customer_user_id is null or blank
    published: bool = False  # moved into place (not when a blocking check failed)
    tables: list[TableResult] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def source_files(folder: str) -> list[tuple[str, int]]:
    files = sizing.data_files(folder)
    if not files:
        raise FlywheelInputError(f"snapshot {folder} is empty: no data files")
    return files


def normalized_names(columns: list[str], where: str) -> list[str]:
    """Trimmed, lowercased column names; two that collide fail with both names."""
    seen: dict[str, str] = {}
    out = []
    bad = [c for c in columns if not COLUMN_NAME.match(normalize(c))]
    if bad:
        raise FlywheelInputError(
            f"{where}: column names must be letters, digits and _ only; not allowed: {', '.join(map(repr, bad[:10]))}"
        )
    for col in columns:
        name = normalize(col)
        if name in seen:
            raise FlywheelInputError(
                f"{where}: columns {seen[name]!r} and {col!r} collide after lowercasing"
            )
        seen[name] = col
        out.append(name)
    return out


def read_snapshot(spark, folder: str):
    """The snapshot as a DataFrame with normalized column names, plus the original names."""
    try:
        df = spark.read.parquet(spark_path(folder))
        original = df.columns
    except Exception as exc:  # Spark's own message names the corrupt file
        raise FlywheelInputError(f"cannot read snapshot {folder} as parquet: {_first_line(exc)}") from exc
    names = normalized_names(original, folder)
    if KEY_COLUMN not in names:
        raise FlywheelInputError(
            f"{folder}: key column {KEY_COLUMN!r} missing (columns: {', '.join(original[:10])}...)"
        )
    if "snapshot_dt" in names:
        raise FlywheelInputError(f"{folder}: a data column named snapshot_dt clashes with the partition column")
    return df.toDF(*names), original


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0][:500] if str(exc).strip() else type(exc).__name__


def table_columns(job: SplitJob, mapping: Optional[Mapping], names: list[str]) -> tuple[dict[str, list[str]], list[str]]:
    """table -> non-key columns, and the source columns no table takes."""
    if mapping is None:
        return {job.single_table: [c for c in names if c != KEY_COLUMN]}, []
    unmapped = check_against_source(mapping, names)
    tables = mapping.tables
    if job.single_table:
        if len(tables) != 1:
            raise FlywheelInputError(
                f"{mapping.source}: {job.name} writes one table ({job.single_table}); "
                f"the mapping names {len(tables)}: {', '.join(tables)}"
            )
        tables = {job.single_table: next(iter(tables.values()))}
    return dict(tables), unmapped


def output_folder(job: SplitJob, target: str, table: str, snapshot: str) -> str:
    if job.layout == BUCKET:
        return storage.join(target, table)
    base = target if job.single_table else storage.join(target, table)
    return storage.join(base, f"snapshot_dt={snapshot}")


def plan(job, tables, original_by_name, column_sizes, target, snapshot, target_file_bytes) -> list[TablePlan]:
    plans = []
    for table, cols in tables.items():
        columns = [KEY_COLUMN, *cols]
        estimate = sum(column_sizes.get(original_by_name[c], 0) for c in columns)
        plans.append(
            TablePlan(
                name=table,
                columns=columns,
                path=output_folder(job, target, table, snapshot),
                estimated_bytes=estimate,
                files=sizing.file_count(estimate, target_file_bytes),
            )
        )
    return plans


def check_drift(job: SplitJob, plans: list[TablePlan], target: str, snapshot: str, source_types: dict) -> None:
    """Part layout: a column's type must not change between snapshots of one table (its catalog
    table has one type per column); compared with the newest other snapshot written."""
    if job.layout != PART:
        return
    for p in plans:
        table_root = p.path.rsplit("/", 1)[0]
        others = [d for d in list_snapshots(table_root) if d != snapshot]
        files = sizing.data_files(snapshot_path(table_root, others[-1])) if others else []
        if not files:
            continue
        old = {f.name: f.type for f in sizing.footer(files[0][0]).schema.to_arrow_schema()}
        changed = [f"{c} ({old[c]} -> {source_types[c]})" for c in p.columns if c in old and old[c] != source_types[c]]
        if changed:
            raise FlywheelInputError(
                f"{table_root}: column types changed since snapshot_dt={others[-1]}: {', '.join(changed)}; "
                "fix the source or write this snapshot to a new table"
            )


def run_split(
    spark,
    job: SplitJob,
    source: str,
    target: str,
    requested_snapshot: str,
    mapping: Optional[Mapping],
    target_file_bytes: int,
    log=None,
    write_parallelism: int = DEFAULT_WRITE_PARALLELISM,
) -> SplitResult:
    from pyspark.sql import functions as F  # noqa: N812

    lock = threading.Lock()  # tables report from several threads

    def say(msg: str) -> None:
        if log:
            with lock:
                log.info(msg)
    if job.mapping == "required" and mapping is None:
        raise FlywheelInputError(f"{job.name} needs a mapping file (--CSV_FILE)")
    snapshot = resolve_snapshot(source, requested_snapshot)
    folder = snapshot_path(source, snapshot)
    files = source_files(folder)
    column_sizes = sizing.column_bytes([uri for uri, _ in files])  # also vets every footer
    normalized_names(list(column_sizes), folder)  # before Spark, whose own error names one column
    df, original = read_snapshot(spark, folder)
    names = list(df.columns)
    tables, unmapped = table_columns(job, mapping, names)
    plans = plan(job, tables, dict(zip(names, original)), column_sizes, target, snapshot, target_file_bytes)
    schema = sizing.footer(files[0][0]).schema.to_arrow_schema()
    check_drift(job, plans, target, snapshot, {normalize(f.name): f.type for f in schema})
    say(f"{job.name}: snapshot {snapshot}, {len(files)} source files, {len(plans)} tables, "
        f"{len(unmapped)} unmapped columns")

    # One pass over the key column only (parquet is columnar): row count and null/blank keys.
    key = F.col(KEY_COLUMN)
    counts = df.select(key).agg(F.count(F.lit(1)).alias("rows"),
                                F.sum(F.when(key.isNull() | (F.trim(key.cast("string")) == ""), 1).otherwise(0)).alias("bad"))
    counts = counts.collect()[0]
    source_rows, bad_keys = counts["rows"], counts["bad"] or 0
    if source_rows == 0:
        raise FlywheelInputError(f"snapshot {folder} is empty: 0 rows")
    result = SplitResult(job.name, snapshot, source, target, source_rows, sum(s for _, s in files), unmapped, bad_keys)
    # Every table is written aside and moved into place only when all are written and the blocking
    # checks pass: a failed or killed run leaves what was published as it was (see publish.py).
    publish.recover(target, None if job.layout == BUCKET else snapshot, say)
    run = publish.new_run(target, snapshot)

    def write(p: TablePlan) -> TableResult:
        # Each table reads only its own columns from the source (no cache: the tables split the
        # columns, so the source is read about once in all). One file: no shuffle; several: a
        # round-robin shuffle makes them even-sized.
        out = df.select(*p.columns)
        out = out.coalesce(1) if p.files == 1 else out.repartition(p.files)
        written = storage.join(run, relative(target, p.path))
        out.write.mode("overwrite").parquet(spark_path(written))
        stats = sizing.folder_stats(written)
        say(f"{p.name}: {stats.rows} rows, {stats.files} files, {stats.bytes} bytes")
        return TableResult(p.name, p.path, stats.rows, stats.files, stats.bytes, len(p.columns), p.files,
                           stats.columns, p.columns)

    try:
        # Tables are written concurrently: a one-file table is one task, so one at a time would
        # leave every other core (or Glue worker) idle.
        with ThreadPoolExecutor(max_workers=write_parallelism) as pool:
            result.tables = list(pool.map(write, plans))
        failed = blocking_failures(result)
        if failed:
            say(f"not published: blocking checks failed: {', '.join(failed)}; {target} keeps what it had")
            publish.discard(run)
        else:
            publish.commit(target, run, [relative(target, p.path) for p in plans], snapshot,
                           whole_target=job.layout == BUCKET)
            result.published = True
    except BaseException:
        publish.discard(run)
        raise
    return result


def relative(root: str, path: str) -> str:
    return path[len(root.rstrip("/")) + 1:]
