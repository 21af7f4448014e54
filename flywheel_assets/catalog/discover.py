"""What the split stage left on storage: table folders, their snapshot, their parquet schema."""

from __future__ import annotations

from flywheel_assets.catalog.names import Column, column_name, hive_type
from flywheel_assets.core import sizing, storage
from flywheel_assets.core.errors import FlywheelInputError
from flywheel_assets.core.snapshots import list_snapshots

METADATA_DIR = "metadata"


def table_folders(root: str) -> list[str]:
    """Sub-folders of a split root that hold a table (not metadata/, _temporary/, .hidden/)."""
    return sorted(
        e.name for e in storage.list_dir(root)
        if e.is_dir and e.name != METADATA_DIR and not storage.is_hidden(e.name) and "=" not in e.name
    )


def parquet_columns(folder: str) -> list[Column]:
    """Columns of the first data file's schema (the split jobs write one schema per folder)."""
    files = sizing.data_files(folder)
    if not files:
        raise FlywheelInputError(f"{folder} has no data files")
    schema = sizing.footer(files[0][0]).schema.to_arrow_schema()
    return [Column(column_name(f.name, f"column in {folder}"), hive_type(f.type)) for f in schema]


def part_datasets(root: str) -> dict[str, str]:
    """Partitioned datasets under the split_part root: table name -> table folder.

    ``<root>/<dataset>/snapshot_dt=.../`` is one table named after the dataset (addressable_ids);
    ``<root>/<dataset>/<table>/snapshot_dt=.../`` is one table per sub-folder (infobase tables).
    """
    tables = {}
    for dataset in table_folders(root):
        folder = storage.join(root, dataset)
        if list_snapshots(folder):
            tables[dataset.lower()] = folder
            continue
        for table in table_folders(folder):
            tables[table.lower()] = storage.join(folder, table)
    return tables
