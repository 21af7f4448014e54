"""Data-quality checks on a split job's result, reported through Pipes as asset checks.

Names and severities here match the asset's check specs (pipelines/split.py): the first three
are blocking (downstream tables are not built from wrong data), file sizing only warns.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flywheel_assets.spark_jobs.split import SplitResult

BLOCKING = ("row_count", "columns", "key_not_null")
WARNING = ("file_sizing", "tables_skipped")


@dataclass
class Check:
    name: str
    passed: bool
    severity: str  # "ERROR" | "WARN"
    metadata: dict


def split_checks(result: "SplitResult") -> list[Check]:
    wrong_rows = {t.name: t.rows for t in result.tables if t.rows != result.source_rows}
    wrong_columns = {t.name: {"expected": t.expected_columns, "written": t.written_columns}
                     for t in result.tables if t.written_columns != t.expected_columns}
    off_size = {t.name: {"files": t.files, "planned": t.planned_files}
                for t in result.tables if t.files != t.planned_files}
    return [
        Check("row_count", not wrong_rows, "ERROR",
              {"source_rows": result.source_rows, "tables_with_other_counts": wrong_rows or "none"}),
        Check("columns", not wrong_columns, "ERROR",
              {"tables_checked": len(result.tables), "mismatches": wrong_columns or "none"}),
        # Within the configured tolerance a null key warns (published, and alerted) instead of blocking.
        Check("key_not_null", result.bad_keys == 0, "ERROR" if result.bad_keys > result.bad_keys_allowed else "WARN",
              {"null_or_blank_keys": result.bad_keys, "tolerated": result.bad_keys_allowed}),
        Check("file_sizing", not off_size, "WARN", {"tables_off_plan": off_size or "none"}),
        Check("tables_skipped", not result.skipped_tables, "WARN",
              {"skipped_tables": result.skipped_tables or "none"}),
    ]


def blocking_failures(result: "SplitResult") -> list[str]:
    """Names of the blocking checks the result fails: the split job does not publish it."""
    return [c.name for c in split_checks(result) if c.severity == "ERROR" and not c.passed]
