"""The built-in sample data lake, shaped like production and deterministic for a given seed.

What production really feeds the pipelines (../shared/reference/REAL_INPUTS.md), with synthetic
content:
- the infobase mapping in the production format: header
  ``OMC_FLYWHEEL_TABLE,OMC_FLYWHEEL_COLUMN,FUNCTION_DESCRIPTION,OPUS_COLUMN,ELEMENT_NUMBER``, UTF-8
  BOM, CRLF, quoted descriptions with commas, mis-encoded and empty descriptions; the key row first
  in every table but one (``IBE_04_B``); the production table names and column counts (27 tables,
  ``MIACS_02_A`` at exactly MAX_COLS = 100); the same file at both pipelines' mapping paths;
- a wide infobase snapshot: ``Customer_User_id`` plus every mapped column under its uppercase OPUS
  name (mixed types, some nulls), plus a few oddly named columns no table takes (``Spend $``);
- the addressable-ids sources of both pipelines (no mapping, as in production), landing a day
  before the infobase: each source has its own latest ``snapshot_dt``.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from flywheel_assets import settings
from flywheel_assets.core.mapping import KEY_COLUMN

# Production's infobase tables and their column counts, key included (REAL_INPUTS.md).
PRODUCTION_TABLES = (
    ("IBE_01", 97), ("IBE_01_A", 65), ("IBE_02", 93), ("IBE_02_A", 85), ("IBE_03", 96), ("IBE_03_A", 76),
    ("IBE_04", 87), ("IBE_04_A", 86), ("IBE_04_B", 15), ("IBE_05", 95), ("IBE_05_A", 81), ("IBE_06", 62),
    ("IBE_06_A", 51), ("IBE_08", 3), ("IBE_09", 87), ("MIACS_01", 93), ("MIACS_01_A", 12), ("MIACS_02", 98),
    ("MIACS_02_A", 100), ("MIACS_02_B", 4), ("MIACS_03", 79), ("MIACS_03_A", 95), ("MIACS_03_B", 29),
    ("MIACS_04", 23), ("NEW_BORROWERS", 18), ("N_A", 88), ("N_A_A", 50),
)
KEYLESS_TABLES = ("IBE_04_B",)  # production lists no key row for it; the split adds the key
ODD_COLUMNS = ("Spend $", "Record Source", "ibe_legacy_flag")  # in the source, in no table
HEADER = ["OMC_FLYWHEEL_TABLE", "OMC_FLYWHEEL_COLUMN", "FUNCTION_DESCRIPTION", "OPUS_COLUMN", "ELEMENT_NUMBER"]
DESCRIPTIONS = ["Buying Activity - Dollars Spent - Total Last 1 Year", "Super Category - Automotive, Auto Parts and Accessories",
                "Buying Activity - Number of Orders - Home D\u221a\u00a9cor", "", "Credit Card Use - Visa - Premium",
                "Buying Activity - Weeks Since Last Order - $1,000+ Range", "Geo State Upper House District Code"]
TYPES = ["string", "int", "double", "date", "bool"]
FIRST_SNAPSHOT = dt.date(2024, 1, 15)


@dataclass(frozen=True)
class DemoSpec:
    rows: int = 1000
    tables: tuple = PRODUCTION_TABLES  # (table, columns with the key)
    keyless: tuple = KEYLESS_TABLES
    odd_columns: tuple = ODD_COLUMNS
    snapshots: int = 2
    files_per_snapshot: int = 2
    seed: int = 7
    addressable_lag_days: int = 1  # the addressable sources land this many days before the infobase
    first_snapshot: str = FIRST_SNAPSHOT.isoformat()  # the oldest monthly snapshot (a 15th)

    @property
    def attributes(self) -> int:
        return sum(n - 1 for _, n in self.tables)


def snapshot_dates(count: int, first: str = FIRST_SNAPSHOT.isoformat()) -> list[str]:
    """Monthly infobase snapshots on the 15th, oldest first."""
    start, out = dt.date.fromisoformat(first), []
    for i in range(count):
        month = start.month - 1 + i
        out.append(dt.date(start.year + month // 12, month % 12 + 1, 15).isoformat())
    return out


def recent_first_snapshot(count: int, today: dt.date) -> str:
    """The first of ``count`` monthly snapshots whose last is the newest 15th on or before ``today``
    (so a fresh sample lake passes the data monitor's freshness check)."""
    months = today.year * 12 + today.month - 1 - (0 if today.day >= 15 else 1) - (count - 1)
    return dt.date(months // 12, months % 12 + 1, 15).isoformat()


def addressable_dates(spec: DemoSpec) -> list[str]:
    lag = dt.timedelta(days=spec.addressable_lag_days)
    return [(dt.date.fromisoformat(d) - lag).isoformat() for d in snapshot_dates(spec.snapshots, spec.first_snapshot)]


def opus_name(table: str, i: int, n: int) -> str:
    """An OPUS-style source column name (uppercase): column ``i`` of ``table``, ``n`` counting all."""
    if table.startswith("MIACS"):
        return f"MIACS_{n // 100 + 11:02d}_{n % 100:03d}"
    if table == "NEW_BORROWERS":
        return f"NB_{i:03d}"
    return f"IBE{1800 + n}" + (f"_{i % 7 + 1:02d}" if i % 3 == 0 else "")


def mapping_rows(spec: DemoSpec) -> list[tuple[str, str]]:
    """(table, source column) in file order, the key first where the table lists it."""
    rows, n = [], 0
    for table, count in spec.tables:
        if table not in spec.keyless:
            rows.append((table, "Customer_User_id"))
        for i in range(1, count):
            rows.append((table, opus_name(table, i, n)))
            n += 1
    return rows


def attribute_names(spec: DemoSpec) -> list[str]:
    """The source's attribute columns (not the key): every mapped column, then the odd ones."""
    return [c for _, c in mapping_rows(spec) if c != "Customer_User_id"] + list(spec.odd_columns)


def mapping_csv(spec: DemoSpec) -> bytes:
    """The production mapping format: BOM, CRLF, quoted fields with commas, free text."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(HEADER)
    for i, (table, column) in enumerate(mapping_rows(spec)):
        if column == "Customer_User_id":
            writer.writerow([table, KEY_COLUMN, "Customer User ID", "CUSTOMER_USER_ID", "CUSTOMER_BASE_ID"])
        else:
            element = "" if i % 11 == 0 else column.lstrip("IBE")
            writer.writerow([table, column.lower(), DESCRIPTIONS[i % len(DESCRIPTIONS)], column, element])
    return out.getvalue().encode("utf-8-sig")


def _customer_ids(rng: np.random.Generator, rows: int) -> pa.Array:
    ids = rng.choice(rows * 4, size=rows, replace=False)
    return pa.array([f"CU{n:010d}" for n in ids], pa.string())


def _column(rng: np.random.Generator, kind: str, rows: int) -> pa.Array:
    nulls = rng.random(rows) < 0.05
    if kind == "string":
        values = np.array(list("ABCDEFGHIJK"), dtype=object)[rng.integers(0, 11, rows)]
        return pa.array(values, pa.string(), mask=nulls)
    if kind == "int":
        return pa.array(rng.integers(0, 100_000, rows), pa.int64(), mask=nulls)
    if kind == "double":
        return pa.array(rng.random(rows) * 1000, pa.float64(), mask=nulls)
    if kind == "date":
        return pa.array(rng.integers(0, 20_000, rows).astype("int32"), pa.int32(), mask=nulls).cast(pa.date32())
    return pa.array(rng.random(rows) < 0.5, pa.bool_(), mask=nulls)


def infobase_table(spec: DemoSpec, snapshot_index: int) -> pa.Table:
    rng = np.random.default_rng([spec.seed, snapshot_index])
    columns = {"Customer_User_id": _customer_ids(rng, spec.rows)}
    for i, name in enumerate(attribute_names(spec)):
        columns[name] = _column(rng, TYPES[i % len(TYPES)], spec.rows)
    return pa.table(columns)


def addressable_table(spec: DemoSpec, snapshot_index: int, infobase_ids: pa.Array) -> pa.Table:
    rng = np.random.default_rng([spec.seed, snapshot_index, 1])
    rows = len(infobase_ids)
    kinds = np.array(["MAID", "HEM", "IP"], dtype=object)
    return pa.table({
        "Customer_User_id": infobase_ids,
        "Hashed_Email": pa.array([f"{n:064x}" for n in rng.integers(0, 2**62, rows)]),
        "MAID": pa.array([f"{n:032x}" for n in rng.integers(0, 2**62, rows)]),
        "Ip_Address": pa.array([f"10.{a}.{b}.{c}" for a, b, c in rng.integers(0, 255, (rows, 3))]),
        "Id_Type": pa.array(kinds[rng.integers(0, 3, rows)], pa.string()),
        "Last_Seen": pa.array(rng.integers(19_000, 20_000, rows).astype("int32"), pa.int32()).cast(pa.date32()),
    })


def write_snapshot(table: pa.Table, folder: Path, files: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    step = -(-table.num_rows // files)
    for i in range(files):
        part = table.slice(i * step, step)
        pq.write_table(part, folder / f"part-{i:05d}.snappy.parquet", compression="snappy")
    (folder / "_SUCCESS").write_text("")


def write_demo_lake(root: str | Path, spec: DemoSpec = DemoSpec()) -> dict:
    root = Path(root)
    dates, late = snapshot_dates(spec.snapshots, spec.first_snapshot), addressable_dates(spec)
    for i, (date, addressable_date) in enumerate(zip(dates, late)):
        infobase = infobase_table(spec, i)
        write_snapshot(infobase, root / settings.INFOBASE_RAW / f"snapshot_dt={date}", spec.files_per_snapshot)
        addressable = addressable_table(spec, i, infobase.column("Customer_User_id").combine_chunks())
        for source in (settings.ADDRESSABLE_COMPACTION, settings.ADDRESSABLE_RAW):
            write_snapshot(addressable, root / source / f"snapshot_dt={addressable_date}", spec.files_per_snapshot)
    mapping = mapping_csv(spec)
    for path in (settings.INFOBASE_BUCKET_MAPPING, settings.INFOBASE_PART_MAPPING):
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_bytes(mapping)
    return {"root": str(root), "snapshots": dates, "addressable_snapshots": late, "rows": spec.rows,
            "tables": len(spec.tables), "attributes": spec.attributes + len(spec.odd_columns)}
