"""Data-quality checks on a split job's result, reported through Pipes as asset checks.

Names and severities here match the asset's check specs (pipelines/split.py): the first three
are blocking (downstream tables are not built from wrong data), file sizing and a table skipped
for missing source columns only warn. Each table (asset) gets its own results.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flywheel_assets.spark_jobs.split import SplitResult, TableResult

BLOCKING = ("row_count", "columns", "key_not_null")
WARNING = ("file_sizing", "not_skipped")


@dataclass
class Check:
    name: str
    passed: bool
    severity: str  # "ERROR" | "WARN"
    metadata: dict


def split_checks(result: "SplitResult", name: str, table: "TableResult | None") -> list[Check]:
    """The checks of one table of the result; ``table`` is None when the job skipped it."""
    skipped = result.skipped_tables.get(name)
    # Within the configured tolerance a null key warns (published, and alerted) instead of blocking.
    keys = Check("key_not_null", result.bad_keys == 0, "ERROR" if result.bad_keys > result.bad_keys_allowed else "WARN",
                 {"null_or_blank_keys": result.bad_keys, "tolerated": result.bad_keys_allowed})
    if table is None:
        why = {"skipped": skipped or "not written"}
        return [Check("row_count", False, "WARN", why), Check("columns", False, "WARN", why), keys,
                Check("file_sizing", False, "WARN", why), Check("not_skipped", False, "WARN", why)]
    return [
        Check("row_count", table.rows == result.source_rows, "ERROR",
              {"rows": table.rows, "source_rows": result.source_rows}),
        Check("columns", table.written_columns == table.expected_columns, "ERROR",
              {"written": table.written_columns, "expected": table.expected_columns}),
        keys,
        Check("file_sizing", table.files == table.planned_files, "WARN",
              {"files": table.files, "planned": table.planned_files}),
        Check("not_skipped", True, "WARN", {"skipped": "no"}),
    ]


def blocking_failures(result: "SplitResult") -> list[str]:
    """``table: check`` for every blocking check a written table fails: the job does not publish."""
    return [f"{t.name}: {c.name}" for t in result.tables for c in split_checks(result, t.name, t)
            if c.severity == "ERROR" and not c.passed]
