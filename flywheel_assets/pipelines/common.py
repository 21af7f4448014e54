"""Pieces the catalog assets of both pipelines share."""

from dagster import MetadataValue, TableColumn, TableSchema

from flywheel_assets.catalog.names import TableInfo, TableSpec


def table_metadata(table: TableSpec | TableInfo, rows: int | None) -> dict:
    """Dagster's standard table metadata, so the Catalog shows the table, its schema, location and
    row-count history."""
    meta = {
        "dagster/table_name": f"{table.database}.{table.name}",
        "dagster/uri": MetadataValue.text(table.location),
        "dagster/column_schema": TableSchema(columns=[TableColumn(c.name, c.type) for c in table.columns]),
    }
    if rows is not None:
        meta["dagster/row_count"] = MetadataValue.int(rows)
    return meta
