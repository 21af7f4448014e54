"""Mapping files: which source column goes into which output table.

A CSV whose header has ``table_name`` and ``column_name`` (case-insensitive, spaces ignored,
other columns ignored); one row puts one column into one table. ``customer_user_id`` is the key
and goes into every table without being listed.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field

from flywheel_assets.spark_jobs import storage
from flywheel_assets.spark_jobs.errors import FlywheelInputError

KEY_COLUMN = "customer_user_id"
# Table names become folders and catalog tables: Spark and Hive skip folders starting with _ .
TABLE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_]{0,99}$")
RESERVED_TABLES = ("metadata",)  # <target>/metadata/ holds the bucket layout's snapshot_dt.txt
# Output column names go into catalog DDL: after lowercasing, only these characters.
COLUMN_NAME = re.compile(r"^[a-z0-9_]{1,128}$")
RESERVED_COLUMNS = ("snapshot_dt",)  # the partition column of the part layout


@dataclass
class Mapping:
    source: str
    tables: dict[str, list[str]] = field(default_factory=dict)  # table -> columns, in file order
    lines: dict[tuple[str, str], int] = field(default_factory=dict)  # (table, column) -> line

    def columns(self) -> set[str]:
        return {c for cols in self.tables.values() for c in cols}


def normalize(name: str) -> str:
    return name.strip().lower()


def parse_mapping(text: str, source: str) -> Mapping:
    """Parse and check a mapping file's text; ``source`` names it in errors."""
    if not text or not text.strip():
        raise FlywheelInputError(f"{source}: mapping file is empty")
    reader = csv.reader(io.StringIO(text))
    header = next(reader)
    index = {normalize(h): i for i, h in enumerate(header)}
    missing = [h for h in ("table_name", "column_name") if h not in index]
    if missing:
        raise FlywheelInputError(
            f"{source}, line 1: header must contain table_name and column_name; "
            f"missing {', '.join(missing)} (header: {', '.join(header)})"
        )
    t_i, c_i = index["table_name"], index["column_name"]
    mapping = Mapping(source)
    for row in reader:
        line = reader.line_num
        if not any(cell.strip() for cell in row):
            continue
        if len(row) <= max(t_i, c_i):
            raise FlywheelInputError(f"{source}, line {line}: expected table_name and column_name, got {row}")
        table, column = row[t_i].strip(), normalize(row[c_i])
        if not TABLE_NAME.match(table):
            raise FlywheelInputError(
                f"{source}, line {line}: table name {table!r} is not allowed "
                "(letters, digits and _, starting with a letter or digit)"
            )
        if table.lower() in RESERVED_TABLES:
            raise FlywheelInputError(f"{source}, line {line}: table name {table!r} is reserved")
        if not column:
            raise FlywheelInputError(f"{source}, line {line}: empty column_name for table {table}")
        if column in RESERVED_COLUMNS:
            raise FlywheelInputError(f"{source}, line {line}: column {column!r} is reserved for partitioning")
        if (table, column) in mapping.lines:
            raise FlywheelInputError(
                f"{source}, line {line}: column {column!r} listed twice for table {table} "
                f"(first on line {mapping.lines[(table, column)]})"
            )
        mapping.lines[(table, column)] = line
        if column != KEY_COLUMN:
            mapping.tables.setdefault(table, []).append(column)
        else:
            mapping.tables.setdefault(table, [])
    if not mapping.tables:
        raise FlywheelInputError(f"{source}: mapping file has a header but no rows")
    _check_case_clashes(mapping)
    return mapping


def _check_case_clashes(mapping: Mapping) -> None:
    # Table names become folders and catalog tables; IBE_01 and ibe_01 would overwrite each other.
    seen: dict[str, str] = {}
    for table in mapping.tables:
        other = seen.setdefault(table.lower(), table)
        if other != table:
            raise FlywheelInputError(
                f"{mapping.source}: tables {other!r} and {table!r} differ only in case"
            )


def load_mapping(uri: str) -> Mapping:
    text = storage.read_text(uri)
    if text is None:
        raise FlywheelInputError(f"mapping file not found: {uri}")
    return parse_mapping(text, uri)


def check_against_source(mapping: Mapping, source_columns: list[str]) -> list[str]:
    """Fail on mapped columns the snapshot lacks; return the source columns no table takes."""
    available = set(source_columns)
    for (table, column), line in mapping.lines.items():
        if column not in available:
            raise FlywheelInputError(
                f"{mapping.source}, line {line}: column {column!r} (table {table}) "
                f"is not in the source snapshot"
            )
    used = mapping.columns() | {KEY_COLUMN}
    return [c for c in source_columns if c not in used]
