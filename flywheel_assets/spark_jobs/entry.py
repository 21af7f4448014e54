"""The body of every entrypoint script: parse run-book arguments, run the job, report."""

from __future__ import annotations

import json
import sys
import time

from flywheel_assets.core.errors import FlywheelInputError
from flywheel_assets.core.jobs import JOBS
from flywheel_assets.core.mapping import load_mapping
from flywheel_assets.core.snapshots import AT_OR_BEFORE, EXACT, LATEST
from flywheel_assets.spark_jobs.checks import split_checks
from flywheel_assets.spark_jobs.runtime import open_pipes, parse_args, positive_int, release, spark_session
from flywheel_assets.spark_jobs.split import (
    DEFAULT_WRITE_PARALLELISM,
    FAIL,
    SKIP_TABLE,
    SplitResult,
    TableResult,
    run_split,
)

ARGUMENTS = {
    "SNAPSHOT_DT": LATEST,
    "SOURCE_PATH": None,
    "TARGET_PATH": None,
    "CSV_FILE": None,
    "TARGET_FILE_MB": "128",
    "WRITE_PARALLELISM": str(DEFAULT_WRITE_PARALLELISM),
    "SNAPSHOT_MATCH": None,  # exact | at_or_before (default: the job's, see split.JOBS)
    "MISSING_COLUMNS": FAIL,  # fail | skip_table
    "MAX_BAD_KEYS": "0",  # null/blank keys tolerated: a count or a fraction (0.001, 0.1%)
    "TABLES": None,  # comma-separated tables to write (default: every table of the mapping)
    # The names the production Glue jobs were deployed with (their Terraform default arguments):
    "TARGET_BUCKET": None,  # = TARGET_PATH (a full s3:// path despite its name)
    "CSV_PATH": None,  # = CSV_FILE
    "BUCKET_COUNT": None,  # accepted and checked; the split jobs do not bucket
}
ALIASES = {"TARGET_BUCKET": "TARGET_PATH", "CSV_PATH": "CSV_FILE"}


def table_list(value: str | None) -> list[str] | None:
    return None if value is None else value.split(",")


def job_arguments(argv: list[str]) -> dict:
    """Run-book arguments, with the deployed jobs' names accepted for the same thing; arguments
    Glue itself adds (--JOB_NAME, --TempDir, --spark.* ...) are ignored."""
    args = parse_args(argv, ARGUMENTS)
    for alias, name in ALIASES.items():
        value = args.pop(alias)
        if value and args[name] and value != args[name]:
            raise FlywheelInputError(f"--{alias} ({value}) and --{name} ({args[name]}) name different paths; give one")
        args[name] = args[name] or value
    for name, allowed in (("SNAPSHOT_MATCH", (EXACT, AT_OR_BEFORE)), ("MISSING_COLUMNS", (FAIL, SKIP_TABLE))):
        if args[name] is not None and args[name] not in allowed:
            raise FlywheelInputError(f"--{name} must be one of {', '.join(allowed)}, got {args[name]!r}")
    if args["BUCKET_COUNT"] is not None:
        positive_int(args["BUCKET_COUNT"], "BUCKET_COUNT")
    return args


def _value(value) -> dict:
    kind = ("bool" if isinstance(value, bool) else "int" if isinstance(value, int) else
            "float" if isinstance(value, float) else "json" if isinstance(value, (dict, list)) else "text")
    return {"raw_value": value, "type": kind}


def table_metadata(result: SplitResult, table: TableResult | None, seconds: float) -> dict:
    """One table's materialization: Dagster's standard keys (row count, schema, location) so the
    Catalog shows them, plus the snapshot and the job's figures."""
    meta = {
        "snapshot_dt": _value(result.snapshot),
        "source_snapshot_dt": _value(result.source_snapshot),
        "published": _value(result.published and table is not None),
        "source_rows": _value(result.source_rows),
        "null_or_blank_keys": _value(result.bad_keys),
        "unmapped_source_columns": _value(len(result.unmapped_columns)),
        "unmapped_columns": _value(result.unmapped_columns[:100]),  # source columns no table takes
        "job_seconds": _value(round(seconds, 3)),  # the whole job's Spark work, from session to result
    }
    if table is None:
        return meta
    return {
        "dagster/row_count": _value(table.rows),
        "dagster/uri": _value(table.path),
        "dagster/column_schema": {"raw_value": {"columns": [
            {"name": c, "type": t} for c, t in zip(table.written_columns, table.column_types)]}, "type": "table_schema"},
        **meta,
        "files": _value(table.files),
        "planned_files": _value(table.planned_files),
        "bytes": _value(table.bytes),
    }


def report(pipes, result: SplitResult, seconds: float) -> None:
    """One materialization and the checks per table, on the step's asset whose key ends with the
    table's name (lowercase). Outside Dagster (the no-op context) nothing is sent."""
    try:
        keys = {k.rsplit("/", 1)[-1]: k for k in pipes.asset_keys}
    except Exception:  # noqa: BLE001 - run by hand: dagster-pipes' stand-in has no keys
        keys = {}
    tables = {t.name: t for t in result.tables}
    for name in [*tables, *result.skipped_tables]:
        key = keys.get(name.lower())
        if keys and key is None:
            pipes.log.warning(f"{name} is not an asset of this step (the mapping changed since the definitions "
                              "were loaded?); reload them to see it")
            continue
        pipes.report_asset_materialization(asset_key=key, metadata=table_metadata(result, tables.get(name), seconds))
        for check in split_checks(result, name, tables.get(name)):
            pipes.report_asset_check(asset_key=key, check_name=check.name, passed=check.passed,
                                     severity=check.severity,
                                     metadata={k: _value(v) for k, v in check.metadata.items()})


def main(job_name: str, argv: list[str] | None = None) -> SplitResult:
    job = JOBS[job_name]
    with open_pipes() as pipes:
        try:
            args = job_arguments(argv if argv is not None else sys.argv[1:])
            for required in ("SOURCE_PATH", "TARGET_PATH"):
                if not args[required]:
                    raise FlywheelInputError(f"--{required} is required")
            target_bytes = positive_int(args["TARGET_FILE_MB"], "TARGET_FILE_MB") * 1024 * 1024
            mapping = load_mapping(args["CSV_FILE"]) if args["CSV_FILE"] and job.mapping != "none" else None
            started = time.perf_counter()
            spark = spark_session(f"flywheel-{job_name}")
            try:
                result = run_split(
                    spark, job, args["SOURCE_PATH"], args["TARGET_PATH"], args["SNAPSHOT_DT"],
                    mapping, target_bytes, log=pipes.log,
                    write_parallelism=positive_int(args["WRITE_PARALLELISM"], "WRITE_PARALLELISM"),
                    snapshot_match=args["SNAPSHOT_MATCH"], missing_columns_policy=args["MISSING_COLUMNS"],
                    max_bad_keys=args["MAX_BAD_KEYS"], tables=table_list(args["TABLES"]),
                )
            finally:
                release(spark)
        except FlywheelInputError as exc:
            pipes.log.error(str(exc))
            print(f"flywheel: {exc}", file=sys.stderr)
            raise
        report(pipes, result, time.perf_counter() - started)
    print(json.dumps({"job": job_name, "snapshot_dt": result.snapshot, "tables": len(result.tables),
                      "rows": result.source_rows}))
    return result
