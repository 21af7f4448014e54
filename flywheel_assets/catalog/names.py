"""Validation of everything that goes into SQL text or catalog API calls, and type mapping.

Nothing reaches a statement unless it passed one of these checks.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Optional

from flywheel_assets.core.errors import FlywheelInputError
from flywheel_assets.core.mapping import COLUMN_NAME

IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,127}$")
# Locations: local absolute paths or s3:// URIs made of safe characters only (no quotes, spaces, ..).
LOCATION = re.compile(r"^(s3://[a-z0-9][a-z0-9.-]{1,62}|/)[A-Za-z0-9_./=+-]*$")
DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def identifier(name: str, what: str = "name") -> str:
    if not isinstance(name, str) or not IDENTIFIER.match(name):
        raise FlywheelInputError(
            f"{what} {name!r} is not a valid identifier (lowercase letters, digits and _, starting with a letter or _)"
        )
    return name


def column_name(name: str, what: str = "column") -> str:
    if not isinstance(name, str) or not COLUMN_NAME.match(name):
        raise FlywheelInputError(f"{what} {name!r} is not a valid column name (lowercase letters, digits and _)")
    return name


def location(uri: str) -> str:
    if not isinstance(uri, str) or not LOCATION.match(uri) or "/../" in uri or uri.endswith("/.."):
        raise FlywheelInputError(f"location {uri!r} is not an allowed path (absolute path or s3:// URI, no quotes or ..)")
    return uri.rstrip("/") + "/"


def partition_value(value: str) -> str:
    if not isinstance(value, str) or not DATE.match(value):
        raise FlywheelInputError(f"partition value {value!r} is not a YYYY-MM-DD date")
    return value


def positive(value, name: str, maximum: Optional[int] = None) -> int:
    try:
        number = int(str(value).strip())
    except ValueError:
        raise FlywheelInputError(f"{name} must be a positive whole number, got {value!r}")
    if number <= 0 or (maximum is not None and number > maximum):
        bound = f" up to {maximum}" if maximum else ""
        raise FlywheelInputError(f"{name} must be a positive whole number{bound}, got {value!r}")
    return number


def table_filter(value: Optional[str]) -> Optional[list[str]]:
    """TABLES_FILTER: comma-separated table names (without prefix), e.g. addressable_ids,ibe_01."""
    if value is None or not str(value).strip():
        return None
    return [identifier(part.strip().lower(), "TABLES_FILTER entry") for part in str(value).split(",")]


def quote(name: str) -> str:
    """Backquoted name; it must pass the column-name check (which identifiers also pass)."""
    return f"`{column_name(name, 'name')}`"


def qualified(database: str, table: str) -> str:
    return f"`{identifier(database, 'database')}`.`{identifier(table, 'table')}`"


def comment_text(text: str) -> str:
    if "'" in text or "\\" in text or "\n" in text:
        raise FlywheelInputError(f"comment {text!r} contains quotes, backslashes or newlines")
    return text


@dataclass(frozen=True)
class Column:
    name: str
    type: str


@dataclass
class TableSpec:
    """An external parquet table as the catalog should hold it."""

    database: str
    name: str
    location: str
    columns: list[Column]
    comment: str = ""
    partition_keys: list[Column] = field(default_factory=list)
    properties: dict[str, str] = field(default_factory=dict)

    def __post_init__(self):
        identifier(self.database, "database")
        identifier(self.name, "table")
        self.location = location(self.location)
        comment_text(self.comment)
        for col in [*self.columns, *self.partition_keys]:
            column_name(col.name, f"column of {self.name}")


@dataclass
class TableInfo:
    database: str
    name: str
    location: str
    columns: list[Column]
    comment: str
    partition_keys: list[str]
    partitions: int
    bucket_columns: list[str]
    num_buckets: int
    external: Optional[bool] = None  # the table's files are not the catalog's (None: not read)
    parquet: Optional[bool] = None  # stored as parquet (None: not read)

    @property
    def snapshot(self) -> Optional[str]:
        return comment_date(self.comment, "snapshot_dt")

    @property
    def source_snapshot(self) -> Optional[str]:
        """The source snapshot the data was read from (older than ``snapshot`` for a source that
        landed earlier); the snapshot itself where the comment does not say."""
        return comment_date(self.comment, "source_snapshot_dt") or self.snapshot


def comment_date(comment: Optional[str], key: str) -> Optional[str]:
    match = re.search(rf"(?<![a-z_]){key}=(\d{{4}}-\d{{2}}-\d{{2}})", comment or "")
    return match.group(1) if match else None


def snapshot_comment(kind: str, snapshot: str, source_snapshot: Optional[str] = None) -> str:
    """``kind; snapshot_dt=D`` plus ``; source_snapshot_dt=S`` when the data was read from an earlier source snapshot."""
    text = f"{kind}; snapshot_dt={partition_value(snapshot)}"
    if source_snapshot and source_snapshot != snapshot:
        text += f"; source_snapshot_dt={partition_value(source_snapshot)}"
    return text


def hive_type(arrow_type) -> str:
    """The Hive/Glue type for a parquet column read by pyarrow."""
    import pyarrow as pa
    import pyarrow.types as t

    simple = [
        (t.is_string, "string"), (t.is_large_string, "string"), (t.is_boolean, "boolean"),
        (t.is_int8, "tinyint"), (t.is_int16, "smallint"), (t.is_int32, "int"), (t.is_int64, "bigint"),
        (t.is_float32, "float"), (t.is_float64, "double"), (t.is_date32, "date"),
        (t.is_timestamp, "timestamp"), (t.is_binary, "binary"), (t.is_large_binary, "binary"),
    ]
    for check, name in simple:
        if check(arrow_type):
            return name
    if t.is_decimal(arrow_type):
        return f"decimal({arrow_type.precision},{arrow_type.scale})"
    if t.is_list(arrow_type):
        return f"array<{hive_type(arrow_type.value_type)}>"
    if t.is_struct(arrow_type):
        fields = ",".join(f"{column_name(f.name)}:{hive_type(f.type)}" for f in arrow_type)
        return f"struct<{fields}>"
    if isinstance(arrow_type, pa.MapType):
        return f"map<{hive_type(arrow_type.key_type)},{hive_type(arrow_type.item_type)}>"
    raise FlywheelInputError(f"parquet type {arrow_type} has no catalog type")
