"""Pieces the catalog assets of both pipelines share."""

from dagster import MetadataValue

from flywheel_assets.catalog.names import TableSpec


def catalog_metadata(database: str, specs: list[TableSpec], actions: dict[str, str]) -> dict:
    rows = "\n".join(
        f"| {s.name} | {len(s.columns)} | {actions[s.name]} | {s.location} |" for s in specs
    )
    return {
        "database": database,
        "table_count": len(specs),
        "tables": [s.name for s in specs],
        "changed": sorted(n for n, a in actions.items() if a != "unchanged"),
        "summary": MetadataValue.md("| table | columns | action | location |\n|---|---|---|---|\n" + rows),
    }
