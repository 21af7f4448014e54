"""Mapping files: which source column goes into which output table.

Two header formats are accepted (names case-insensitive, surrounding spaces ignored):
- production: ``OMC_FLYWHEEL_TABLE,OMC_FLYWHEEL_COLUMN,FUNCTION_DESCRIPTION,OPUS_COLUMN,ELEMENT_NUMBER``
  (UTF-8 BOM, CRLF line ends, quoted descriptions containing commas);
- short: ``table_name,column_name``.
Only the table and column fields are read; every other field is free text, ignored whatever its
content or encoding. ``customer_user_id`` is the key: listed or not, it is every table's first
column. A damaged file (a field running over lines, a row with the wrong number of fields) is
refused with every problem listed, never read as fewer columns.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field

from flywheel_assets.core import storage
from flywheel_assets.core.errors import FlywheelInputError

KEY_COLUMN = "customer_user_id"
# Table names become folders and catalog tables: Spark and Hive skip folders starting with _ .
TABLE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_]{0,99}$")
RESERVED_TABLES = ("metadata",)  # <target>/metadata/ holds the current-snapshot layout's snapshot_dt.txt
# Output column names go into catalog DDL: after lowercasing, only these characters.
COLUMN_NAME = re.compile(r"^[a-z0-9_]{1,128}$")
RESERVED_COLUMNS = ("snapshot_dt",)  # the partition column of the snapshot-folder layout
# (table field, column field) of each accepted header, lowercased
HEADERS = (("omc_flywheel_table", "omc_flywheel_column"), ("table_name", "column_name"))
MAX_LISTED = 50  # problems listed in one error


@dataclass
class Mapping:
    source: str
    tables: dict[str, list[str]] = field(default_factory=dict)  # table -> non-key columns, in file order
    lines: dict[tuple[str, str], int] = field(default_factory=dict)  # (table, column) -> line

    def columns(self) -> set[str]:
        return {c for cols in self.tables.values() for c in cols}


def normalize(name: str) -> str:
    return name.strip().lower()


def decode(data: bytes) -> str:
    """The file's text: UTF-8 with or without BOM; undecodable bytes (mis-encoded descriptions)
    become U+FFFD, which no table or column name can contain, so they cannot slip into a name."""
    return data.decode("utf-8-sig", errors="replace")


def _header(row: list[str]) -> tuple[int, int] | None:
    index = {normalize(h).lstrip("\ufeff"): i for i, h in enumerate(row)}
    for table, column in HEADERS:
        if table in index and column in index:
            return index[table], index[column]
    return None


def parse_mapping(text: str, source: str) -> Mapping:
    """Parse and check a mapping file's text; ``source`` names it in errors. Every problem found
    is reported in one FlywheelInputError."""
    if not text or not text.strip():
        raise FlywheelInputError(f"{source}: mapping file is empty")
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff"), newline=""))
    header = next(reader)
    found = _header(header)
    if found is None:
        accepted = " or ".join(",".join(n.upper() if pair[0].startswith("omc") else n for n in pair) for pair in HEADERS)
        raise FlywheelInputError(
            f"{source}, line 1: no recognisable header; expected one with {accepted} "
            f"(any case, other columns allowed), got: {','.join(header)[:200]}"
        )
    t_i, c_i = found
    width = len(header)
    mapping = Mapping(source)
    problems: list[str] = []
    last_line = reader.line_num
    for row in reader:
        first, last_line = last_line + 1, reader.line_num
        line = first
        if last_line > first and any("\n" in cell or "\r" in cell for cell in row):
            problems.append(f"line {first}: a quoted field runs over lines {first}-{last_line} "
                            "(unbalanced quote?)")
            continue
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != width:
            problems.append(f"line {line}: {len(row)} fields, the header has {width} "
                            "(an unquoted comma, or a cut row?)")
            continue
        problem = _add_row(mapping, row[t_i].strip(), normalize(row[c_i]), line)
        if problem:
            problems.append(f"line {line}: {problem}")
    if not problems and not mapping.tables:
        raise FlywheelInputError(f"{source}: mapping file has a header but no rows")
    problems += _case_clashes(mapping)
    if problems:
        listed = problems[:MAX_LISTED]
        more = f"\n  ... and {len(problems) - MAX_LISTED} more" if len(problems) > MAX_LISTED else ""
        if len(problems) == 1:
            raise FlywheelInputError(f"{source}, {problems[0]}")
        raise FlywheelInputError(f"{source}: {len(problems)} problems:\n  " + "\n  ".join(listed) + more)
    return mapping


def _add_row(mapping: Mapping, table: str, column: str, line: int) -> str | None:
    """Add one row; the problem with it, if any."""
    if not TABLE_NAME.match(table):
        return (f"table name {table!r} is not allowed "
                "(letters, digits and _, starting with a letter or digit)")
    if table.lower() in RESERVED_TABLES:
        return f"table name {table!r} is reserved"
    if not column:
        return f"empty column name for table {table}"
    if not COLUMN_NAME.match(column):
        return f"column {column!r} (table {table}) is not allowed (letters, digits and _ only)"
    if column in RESERVED_COLUMNS:
        return f"column {column!r} is reserved for partitioning"
    if (table, column) in mapping.lines:
        return f"column {column!r} listed twice for table {table} (first on line {mapping.lines[(table, column)]})"
    mapping.lines[(table, column)] = line
    columns = mapping.tables.setdefault(table, [])
    if column != KEY_COLUMN:
        columns.append(column)
    return None


def _case_clashes(mapping: Mapping) -> list[str]:
    # Table names become folders and catalog tables; IBE_01 and ibe_01 would overwrite each other.
    seen: dict[str, str] = {}
    problems = []
    for table in mapping.tables:
        other = seen.setdefault(table.lower(), table)
        if other != table:
            problems.append(f"tables {other!r} and {table!r} differ only in case")
    return problems


def load_mapping(uri: str, quick: bool = False) -> Mapping:
    """``quick``: give up on an unreachable S3 within seconds (see storage.read_bytes)."""
    data = storage.read_bytes(uri, quick=quick)
    if data is None:
        raise FlywheelInputError(f"mapping file not found: {uri}")
    return parse_mapping(decode(data), uri)


@dataclass
class Missing:
    """Mapped columns the source lacks, per table, with their lines in the mapping file."""

    source: str
    by_table: dict[str, list[tuple[str, int]]] = field(default_factory=dict)

    def describe(self) -> str:
        return "; ".join(f"{t}: " + ", ".join(f"{c} (line {n})" for c, n in cols)
                         for t, cols in self.by_table.items())


def missing_columns(mapping: Mapping, available: set[str]) -> Missing:
    """Mapped columns (lowercase) not in ``available`` (the source's lowercased names)."""
    missing = Missing(mapping.source)
    for (table, column), line in mapping.lines.items():
        if column != KEY_COLUMN and column not in available:
            missing.by_table.setdefault(table, []).append((column, line))
    return missing
