"""The body of every entrypoint script: parse run-book arguments, run the job, report."""

from __future__ import annotations

import json
import sys
import time

from flywheel_assets.spark_jobs.checks import split_checks
from flywheel_assets.spark_jobs.errors import FlywheelInputError
from flywheel_assets.spark_jobs.mapping import load_mapping
from flywheel_assets.spark_jobs.runtime import open_pipes, parse_args, positive_int, spark_session
from flywheel_assets.spark_jobs.snapshots import LATEST
from flywheel_assets.spark_jobs.split import (
    AT_OR_BEFORE,
    DEFAULT_WRITE_PARALLELISM,
    EXACT,
    FAIL,
    JOBS,
    SKIP_TABLE,
    SplitResult,
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
    # The names the production Glue jobs were deployed with (their Terraform default arguments):
    "TARGET_BUCKET": None,  # = TARGET_PATH (a full s3:// path despite its name)
    "CSV_PATH": None,  # = CSV_FILE
    "BUCKET_COUNT": None,  # accepted and checked; the split jobs do not bucket
}
ALIASES = {"TARGET_BUCKET": "TARGET_PATH", "CSV_PATH": "CSV_FILE"}


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


def materialization_metadata(result: SplitResult, seconds: float) -> dict:
    tables = result.tables
    rows = "\n".join(
        f"| {t.name} | {t.rows} | {t.files} | {t.planned_files} | {t.bytes} | {t.columns} |" for t in tables
    )
    summary = "| table | rows | files | planned files | bytes | columns |\n|---|---|---|---|---|---|\n" + rows
    return {
        "snapshot_dt": {"raw_value": result.snapshot, "type": "text"},
        "source_snapshot_dt": {"raw_value": result.source_snapshot, "type": "text"},
        "null_or_blank_keys": {"raw_value": result.bad_keys, "type": "int"},
        "skipped_tables": {"raw_value": result.skipped_tables, "type": "json"},
        "published": {"raw_value": result.published, "type": "bool"},
        "job_seconds": {"raw_value": round(seconds, 3), "type": "float"},  # Spark work, from session to result
        "source_rows": {"raw_value": result.source_rows, "type": "int"},
        "source_bytes": {"raw_value": result.source_bytes, "type": "int"},
        "tables_written": {"raw_value": len(tables), "type": "int"},
        "rows": {"raw_value": sum(t.rows for t in tables), "type": "int"},
        "files": {"raw_value": sum(t.files for t in tables), "type": "int"},
        "bytes": {"raw_value": sum(t.bytes for t in tables), "type": "int"},
        "unmapped_columns_count": {"raw_value": len(result.unmapped_columns), "type": "int"},
        "unmapped_columns": {"raw_value": result.unmapped_columns, "type": "json"},
        "target_path": {"raw_value": result.target, "type": "path"},
        "tables": {"raw_value": [t.__dict__ for t in tables], "type": "json"},
        "summary": {"raw_value": summary, "type": "md"},
    }


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
            result = run_split(
                spark, job, args["SOURCE_PATH"], args["TARGET_PATH"], args["SNAPSHOT_DT"],
                mapping, target_bytes, log=pipes.log,
                write_parallelism=positive_int(args["WRITE_PARALLELISM"], "WRITE_PARALLELISM"),
                snapshot_match=args["SNAPSHOT_MATCH"], missing_columns_policy=args["MISSING_COLUMNS"],
                max_bad_keys=args["MAX_BAD_KEYS"],
            )
        except FlywheelInputError as exc:
            pipes.log.error(str(exc))
            print(f"flywheel: {exc}", file=sys.stderr)
            raise
        pipes.report_asset_materialization(metadata=materialization_metadata(result, time.perf_counter() - started))
        for check in split_checks(result):
            pipes.report_asset_check(check_name=check.name, passed=check.passed, severity=check.severity,
                                     metadata={k: {"raw_value": v, "type": "json" if isinstance(v, (dict, list)) else
                                                   "int" if isinstance(v, int) else "text"}
                                               for k, v in check.metadata.items()})
    print(json.dumps({"job": job_name, "snapshot_dt": result.snapshot, "tables": len(result.tables),
                      "rows": result.source_rows}))
    return result
