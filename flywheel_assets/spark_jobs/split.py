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

from flywheel_assets.core import publish, sizing, storage
from flywheel_assets.spark_jobs.checks import blocking_failures
from flywheel_assets.spark_jobs.encoding import dropped_dictionaries
from flywheel_assets.core.errors import FlywheelInputError
from flywheel_assets.core.mapping import COLUMN_NAME, KEY_COLUMN, Mapping, missing_columns, normalize
from flywheel_assets.spark_jobs.runtime import spark_path
from flywheel_assets.core.jobs import CURRENT_SNAPSHOT, JOBS, REQUIRED, SNAPSHOT_FOLDERS, SplitJob  # noqa: F401 (JOBS re-exported)
from flywheel_assets.core.snapshots import list_snapshots, resolve_snapshot, snapshot_path

DEFAULT_WRITE_PARALLELISM = 8  # tables written at once
FAIL, SKIP_TABLE = "fail", "skip_table"  # what a mapped column missing from the source does


@dataclass
class TablePlan:
    name: str
    columns: list[str]  # output names, lowercase, key first
    sources: list[str]  # the source's own names of those columns (any case)
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
    column_types: list[str] = field(default_factory=list)  # arrow types, as written_columns


@dataclass
class SplitResult:
    job: str
    snapshot: str  # the partition: the date the output is published under
    source: str
    target: str
    source_rows: int
    source_bytes: int
    unmapped_columns: list[str]
    source_snapshot: str = ""  # the source snapshot read (at or before ``snapshot``)
    bad_keys: int = 0  # rows whose customer_user_id is null or blank
    bad_keys_allowed: int = 0  # tolerance: more than this fails the blocking check
    skipped_tables: dict[str, str] = field(default_factory=dict)  # table -> why (missing_columns: skip_table)
    published: bool = False  # committed: staged for the catalog switch, or in place (not when a blocking check failed)
    tables: list[TableResult] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def source_files(folder: str) -> list[tuple[str, int]]:
    files = sizing.data_files(folder)
    if not files:
        raise FlywheelInputError(f"snapshot {folder} is empty: no data files")
    return files


def by_output_name(columns: list[str]) -> dict[str, list[str]]:
    """Source names by output name (trimmed, lowercased): production sources are uppercase."""
    out: dict[str, list[str]] = {}
    for col in columns:
        out.setdefault(normalize(col), []).append(col)
    return out


def resolve_columns(names: dict[str, list[str]], wanted: list[str], where: str) -> dict[str, str]:
    """output name -> source name for the columns a job uses. Only those are checked: a used
    column must be a valid catalog name and match exactly one source column case-insensitively."""
    problems, out = [], {}
    for name in wanted:
        found = names.get(name, [])
        if not COLUMN_NAME.match(name):
            problems.append(f"{', '.join(map(repr, found))} (letters, digits and _ only)")
        elif len(found) > 1:
            problems.append(f"{' and '.join(map(repr, found))} collide after lowercasing")
        elif found:
            out[name] = found[0]
    if problems:
        raise FlywheelInputError(f"{where}: columns not usable: {'; '.join(problems[:10])}")
    return out


def snapshot_dataframe(spark, folder: str):
    # We match names case-insensitively ourselves, only for the columns used; Spark's own
    # case-insensitive mode would refuse a source holding e.g. 'Dup' and 'DUP' even when unused.
    spark.conf.set("spark.sql.caseSensitive", "true")
    try:
        return spark.read.parquet(spark_path(folder))
    except Exception as exc:  # Spark's own message names the corrupt file
        raise FlywheelInputError(f"cannot read snapshot {folder} as parquet: {_first_line(exc)}") from exc


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0][:500] if str(exc).strip() else type(exc).__name__


def source_column(name: str):
    """A column by its source name, whatever characters it has (``Spend $``)."""
    from pyspark.sql import functions as F  # noqa: N812

    return F.col("`" + name.replace("`", "``") + "`")


def selected_tables(tables: dict[str, list[str]], selected: Optional[list[str]], where: str) -> dict[str, list[str]]:
    """The tables ``--TABLES`` selects (any case; None: all of them)."""
    if selected is None:
        return tables
    wanted = {t.strip().lower() for t in selected if t.strip()}
    unknown = sorted(wanted - {t.lower() for t in tables})
    if unknown or not wanted:
        raise FlywheelInputError(
            f"--TABLES names {', '.join(unknown) or 'no table'}, which {where} does not have (it has: "
            f"{', '.join(tables)}); if the mapping changed, reload the Dagster definitions")
    return {t: cols for t, cols in tables.items() if t.lower() in wanted}


def table_columns(job: SplitJob, mapping: Optional[Mapping], names: dict[str, list[str]], folder: str,
                  missing_policy: str, selected: Optional[list[str]] = None) -> tuple[dict[str, list[str]], dict[str, str]]:
    """table -> non-key output columns, and the tables skipped for missing columns; only the
    tables ``selected`` (None: all)."""
    if KEY_COLUMN not in names:
        raise FlywheelInputError(f"{folder}: key column {KEY_COLUMN!r} missing (any case; columns: "
                                 f"{', '.join(c for cols in list(names.values())[:10] for c in cols)}...)")
    if mapping is None:
        return selected_tables({job.single_table: [c for c in names if c != KEY_COLUMN]}, selected, job.name), {}
    tables = dict(mapping.tables)
    if job.single_table:
        if len(tables) != 1:
            raise FlywheelInputError(
                f"{mapping.source}: {job.name} writes one table ({job.single_table}); "
                f"the mapping names {len(tables)}: {', '.join(tables)}"
            )
        tables = {job.single_table: next(iter(tables.values()))}
    tables = selected_tables(tables, selected, mapping.source)
    missing = missing_columns(mapping, set(names))
    if not job.single_table:  # the columns of tables not selected are not needed
        missing.by_table = {t: cols for t, cols in missing.by_table.items() if t in tables}
    if not missing.by_table:
        return tables, {}
    count = sum(len(c) for c in missing.by_table.values())
    if missing_policy != SKIP_TABLE:
        raise FlywheelInputError(
            f"{mapping.source}: {count} mapped column(s) not in the source snapshot {folder}: {missing.describe()} "
            f"(set missing_columns: skip_table to publish the other tables)")
    skipped = {t: "missing " + ", ".join(f"{c} (line {n})" for c, n in cols) for t, cols in missing.by_table.items()}
    if job.single_table:
        skipped = {job.single_table: next(iter(skipped.values()))}
    tables = {t: cols for t, cols in tables.items() if t not in skipped}
    if not tables:
        raise FlywheelInputError(f"{mapping.source}: every table lacks source columns: {missing.describe()}")
    return tables, skipped


def plan(job, tables, sources: dict[str, str], column_sizes, target, snapshot, target_file_bytes) -> list[TablePlan]:
    plans = []
    for table, cols in tables.items():
        columns = [KEY_COLUMN, *cols]
        estimate = sum(column_sizes.get(sources[c], 0) for c in columns)
        plans.append(
            TablePlan(
                name=table,
                columns=columns,
                sources=[sources[c] for c in columns],
                path=job.table_folder(target, table, snapshot),
                estimated_bytes=estimate,
                files=sizing.file_count(estimate, target_file_bytes),
            )
        )
    return plans


def check_drift(job: SplitJob, plans: list[TablePlan], snapshot: str, source_types: dict) -> None:
    """Snapshot-folder layout: a column's type must not change between snapshots of one table (its catalog
    table has one type per column); compared with the newest other snapshot written."""
    if job.layout != SNAPSHOT_FOLDERS:
        return
    for p in plans:
        table_root = p.path.rsplit("/", 1)[0]
        others = [d for d in list_snapshots(table_root) if d != snapshot]
        files = sizing.data_files(publish.data_folder(snapshot_path(table_root, others[-1]))) if others else []
        if not files:
            continue
        old = {f.name: f.type for f in sizing.footer(files[0][0]).schema.to_arrow_schema()}
        changed = [f"{c} ({old[c]} -> {source_types[s]})" for c, s in zip(p.columns, p.sources)
                   if c in old and old[c] != source_types[s]]
        if changed:
            raise FlywheelInputError(
                f"{table_root}: column types changed since snapshot_dt={others[-1]}: {', '.join(changed)}; "
                "fix the source or write this snapshot to a new table"
            )


def allowed_bad_keys(tolerance: str, rows: int) -> int:
    """``--MAX_BAD_KEYS``: a count (``100``) or a fraction of the rows (``0.001`` or ``0.1%``)."""
    text = str(tolerance).strip()
    try:
        if text.endswith("%"):
            value = float(text[:-1]) / 100
        elif "." in text or "e" in text.lower():
            value = float(text)
        else:
            count = int(text)
            if count < 0:
                raise ValueError
            return count
        if not 0 <= value <= 1:
            raise ValueError
    except ValueError:
        raise FlywheelInputError(f"--MAX_BAD_KEYS must be a count (e.g. 100) or a fraction of the rows "
                                 f"(e.g. 0.001 or 0.1%), got {tolerance!r}") from None
    return int(value * rows)


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
    snapshot_match: Optional[str] = None,
    missing_columns_policy: str = FAIL,
    max_bad_keys: str = "0",
    tables: Optional[list[str]] = None,
) -> SplitResult:
    """``tables``: write only these (``--TABLES``, any case; None: every table of the mapping)."""
    from pyspark.sql import functions as F  # noqa: N812

    lock = threading.Lock()  # tables report from several threads

    def say(msg: str) -> None:
        if log:
            with lock:
                log.info(msg)
    if job.mapping == REQUIRED and mapping is None:
        raise FlywheelInputError(f"{job.name} needs a mapping file (--CSV_FILE)")
    snapshot, source_snapshot = resolve_snapshot(source, requested_snapshot, snapshot_match or job.snapshot_match)
    folder = snapshot_path(source, source_snapshot)
    files = source_files(folder)
    column_sizes = sizing.column_bytes([uri for uri, _ in files])  # also vets every footer
    names = by_output_name(list(column_sizes))
    selected = tables
    tables, skipped = table_columns(job, mapping, names, folder, missing_columns_policy, selected)
    # In the current-snapshot layout every table holds the same snapshot: a run of some tables only
    # may rewrite them for the snapshot the target already holds, never move them to another one.
    every = selected is None or job.single_table is not None or (
        {t.lower() for t in selected} >= {t.lower() for t in mapping.tables})
    if job.layout == CURRENT_SNAPSHOT and not every:
        latest = publish.latest(target)
        held = latest.snapshot_dt if latest else None
        if held != snapshot:
            raise FlywheelInputError(
                f"{target} holds snapshot_dt={held}: writing only {', '.join([*tables, *skipped])} for "
                f"snapshot_dt={snapshot} would mix snapshots in a layout that holds one; select every table "
                f"of {job.name}, or rebuild tables of snapshot_dt={held}")
    used = [KEY_COLUMN, *dict.fromkeys(c for cols in tables.values() for c in cols)]
    if job.layout == SNAPSHOT_FOLDERS and "snapshot_dt" in used:
        raise FlywheelInputError(f"{folder}: a data column named snapshot_dt clashes with the partition column")
    sources = resolve_columns(names, used, folder)
    mapped = set(sources) | (mapping.columns() if mapping else set())
    unmapped = [c for c in column_sizes if normalize(c) not in mapped]
    plans = plan(job, tables, sources, column_sizes, target, snapshot, target_file_bytes)
    schema = sizing.footer(files[0][0]).schema.to_arrow_schema()
    source_types = {f.name: f.type for f in schema}
    check_drift(job, plans, snapshot, source_types)
    df = snapshot_dataframe(spark, folder)
    say(f"{job.name}: snapshot_dt={snapshot} from source snapshot {source_snapshot}, {len(files)} source files, "
        f"{len(plans)} tables, {len(unmapped)} unmapped columns"
        + (f", skipped (missing columns): {', '.join(skipped)}" if skipped else ""))

    # One pass over the key column only (parquet is columnar): row count and null/blank keys. Meanwhile
    # the driver samples the source for the columns parquet would write without a dictionary.
    key = source_column(sources[KEY_COLUMN])
    counts = df.select(key).agg(F.count(F.lit(1)).alias("rows"),
                                F.sum(F.when(key.isNull() | (F.trim(key.cast("string")) == ""), 1).otherwise(0)).alias("bad"))
    with ThreadPoolExecutor(1) as sampling:
        sampled = sampling.submit(dropped_dictionaries, [uri for uri, _ in files], [s for p in plans for s in p.sources],
                                source_types)
        counts = counts.collect()[0]
    source_rows, bad_keys = counts["rows"], counts["bad"] or 0
    if source_rows == 0:
        raise FlywheelInputError(f"snapshot {folder} is empty: 0 rows")
    plain = sampled.result()
    say(f"{len(plain)} of {len(used)} columns written without a dictionary (parquet would build and drop theirs)")
    result = SplitResult(job.name, snapshot, source, target, source_rows, sum(s for _, s in files), unmapped,
                         source_snapshot, bad_keys, allowed_bad_keys(max_bad_keys, source_rows), skipped)
    # Nothing a reader sees changes until every table is written and the blocking checks pass,
    # and no data file is moved after it is written (see publish.py).
    current = job.layout == CURRENT_SNAPSHOT
    record = publish.Publication(snapshot, source_snapshot, skipped, {} if current else {
        relative(target, job.table_folder(target, t, snapshot).rsplit("/", 1)[0]): why for t, why in skipped.items()})
    if current:
        publish.remove_orphans(target, say)
        version = publish.new_version(snapshot)
        run, written = None, {p.name: storage.join(p.path, version) for p in plans}
    else:
        publish.recover(target, snapshot, say)
        run, version = publish.new_run(target, snapshot), publish.new_part_version()
        # a snapshot folder that does not exist yet is written where it stays; one that does gets a version
        written = {p.name: p.path if not storage.folder_exists(p.path) else storage.join(p.path, version)
                   for p in plans}
        publish.claim(run, [relative(target, f) for f in written.values()])

    def write(p: TablePlan) -> TableResult:
        # Each table reads only its own columns from the source (no cache: the tables split the
        # columns, so the source is read about once in all). One file: no shuffle; several: a
        # round-robin shuffle makes them even-sized.
        out = df.select(*[source_column(s).alias(c) for c, s in zip(p.columns, p.sources)])
        out = out.coalesce(1) if p.files == 1 else out.repartition(p.files)
        folder = written[p.name]
        writer = out.write.mode("overwrite")
        for c, s in zip(p.columns, p.sources):
            if s in plain:  # parquet would build the dictionary and drop it (encoding.py)
                writer = writer.option(f"parquet.enable.dictionary#{c}", "false")
        writer.parquet(spark_path(folder))
        storage.write_text(storage.join(folder, publish.RECORD), record.folder_json())
        stats = sizing.folder_stats(folder)
        say(f"{p.name}: {stats.rows} rows, {stats.files} files, {stats.bytes} bytes")
        return TableResult(p.name, folder, stats.rows, stats.files, stats.bytes,
                           len(p.columns), p.files, stats.columns, p.columns, [str(source_types[c]) for c in p.sources])

    def abandon() -> None:
        if current:
            for folder in written.values():
                storage.delete_tree(folder)
        else:
            publish.discard(target, run)

    try:
        # Tables are written concurrently: a one-file table is one task, so one at a time would
        # leave every other core (or Glue worker) idle. Largest first, so the tables still
        # running when the others are done are small ones.
        largest_first = sorted(plans, key=lambda p: -p.estimated_bytes)
        with ThreadPoolExecutor(max_workers=write_parallelism) as pool:
            done = {p.name: t for p, t in zip(largest_first, pool.map(write, largest_first))}
        result.tables = [done[p.name] for p in plans]
        failed = blocking_failures(result)
        if failed:
            say(f"not published: blocking checks failed: {', '.join(failed)}; {target} keeps what it had")
            abandon()
        elif current:
            record.tables = {p.name: relative(target, written[p.name]) for p in plans}
            publish.stage(target, record, whole_target=every)
            say(f"staged snapshot_dt={snapshot} in {target}: readers switch to it when ext_tables runs")
            result.published = True
        else:
            publish.commit(target, run, {relative(target, p.path): version for p in plans if written[p.name] != p.path},
                           record)
            result.published = True
    except BaseException:
        abandon()
        raise
    return result


def relative(root: str, path: str) -> str:
    """``path`` below ``root`` ("" for root itself)."""
    return path[len(root.rstrip("/")) + 1:]
