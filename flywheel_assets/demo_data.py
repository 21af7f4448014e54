"""The built-in sample data lake, in the run book's layout, deterministic for a given seed.

- a wide infobase snapshot: ``Customer_User_id`` plus N mixed-case attribute columns of mixed
  types (strings, ints, doubles, dates, booleans, some nulls), under ``snapshot_dt=YYYY-MM-DD/``;
- the addressable-ids sources of both pipelines;
- the three mapping CSVs (``IBE_01``... for the bucketed pipeline, ``ibe_01_a``... for the part one).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from flywheel_assets import settings

WORDS = ["Income", "Age", "HOH", "Home", "Auto", "Travel", "Pet", "Sports", "Tech", "Finance",
         "Health", "Garden", "Music", "Media", "Donor", "Credit", "Outdoor", "Fashion", "Food", "Wine"]
TYPES = ["string", "int", "double", "date", "bool"]
FIRST_SNAPSHOT = dt.date(2024, 1, 15)


@dataclass(frozen=True)
class DemoSpec:
    rows: int = 5000
    attributes: int = 300
    tables: int = 26
    unmapped: int = 8  # attribute columns no table takes, reported by the split job
    snapshots: int = 2
    files_per_snapshot: int = 2
    seed: int = 7


def snapshot_dates(count: int) -> list[str]:
    """Monthly snapshots on the 15th, oldest first."""
    out = []
    for i in range(count):
        month = FIRST_SNAPSHOT.month - 1 + i
        out.append(dt.date(FIRST_SNAPSHOT.year + month // 12, month % 12 + 1, 15).isoformat())
    return out


def attribute_names(count: int) -> list[str]:
    names = []
    for i in range(count):
        word = WORDS[i % len(WORDS)]
        style = i % 3
        word = word.upper() if style == 0 else word.lower() if style == 1 else word
        names.append(f"Attr_{word}_{i:03d}")
    return names


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
    for i, name in enumerate(attribute_names(spec.attributes)):
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


def mapping_rows(spec: DemoSpec, names: list[str], table_name) -> list[tuple[str, str]]:
    mapped = names[: len(names) - spec.unmapped]
    return [(table_name(i * spec.tables // len(mapped) + 1), col.lower()) for i, col in enumerate(mapped)]


def write_csv(path: Path, rows: list[tuple[str, str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["table_name,column_name"] + [f"{t},{c}" for t, c in rows]
    path.write_text("\n".join(lines) + "\n")


def write_demo_lake(root: str | Path, spec: DemoSpec = DemoSpec()) -> dict:
    root = Path(root)
    names = attribute_names(spec.attributes)
    dates = snapshot_dates(spec.snapshots)
    for i, date in enumerate(dates):
        infobase = infobase_table(spec, i)
        write_snapshot(infobase, root / settings.INFOBASE_RAW / f"snapshot_dt={date}", spec.files_per_snapshot)
        addressable = addressable_table(spec, i, infobase.column("Customer_User_id").combine_chunks())
        for source in (settings.ADDRESSABLE_COMPACTION, settings.ADDRESSABLE_RAW):
            write_snapshot(addressable, root / source / f"snapshot_dt={date}", spec.files_per_snapshot)
    write_csv(root / settings.INFOBASE_BUCKET_MAPPING, mapping_rows(spec, names, lambda n: f"IBE_{n:02d}"))
    write_csv(root / settings.INFOBASE_PART_MAPPING, mapping_rows(spec, names, lambda n: f"ibe_{n:02d}_a"))
    write_csv(
        root / settings.ADDRESSABLE_PART_MAPPING,
        [("addressable_ids", c) for c in ("hashed_email", "maid", "ip_address", "id_type", "last_seen")],
    )
    return {"root": str(root), "snapshots": dates, "rows": spec.rows, "attributes": spec.attributes}
