"""The catalog interface the assets use; ``local.py`` and ``aws.py`` implement it."""

from __future__ import annotations

from typing import ClassVar

from dagster import ConfigurableResource

from flywheel_assets.catalog import athena_sql
from flywheel_assets.catalog.names import Column, TableInfo, TableSpec

# (database, table, key column, snapshot_dt partition or None): see Catalog.key_stats
KeyQuery = tuple[str, str, str, "str | None"]

PARTITION_CHUNK = 100  # Glue's batch_create_partition limit; used locally too


def chunks(items: list, size: int = PARTITION_CHUNK):
    for i in range(0, len(items), size):
        yield items[i:i + size]


def column_change(existing: list[Column], wanted: list[Column]) -> str:
    """'same', 'added' (wanted = existing + new columns at the end) or 'incompatible'."""
    if existing == wanted:
        return "same"
    if wanted[: len(existing)] == existing:
        return "added"
    return "incompatible"


class Catalog(ConfigurableResource):
    """External parquet tables, partitions, bucketed tables and SQL on one engine."""

    database: str = "omc_flywheel_prod"  # the run book's DATABASE/STAGED_DB/FINAL_DB default

    def engine(self) -> str:
        raise NotImplementedError

    def ensure_database(self, database: str) -> None:
        raise NotImplementedError

    def apply_table(self, spec: TableSpec) -> str:
        """Create or update the table to match ``spec``; returns created/updated/unchanged/recreated."""
        raise NotImplementedError

    def replace_identity_table(self, database: str, name: str, source: tuple[str, str], snapshot: str,
                               location_base: str, comment: str) -> None:
        """Rebuild the Entity Resolution input table (``row_id``, ``customer_user_id``: each key of
        ``source``'s partition ``snapshot`` once) into a fresh folder, then swap it in atomically."""
        raise NotImplementedError

    def apply_tables(self, specs: list[TableSpec]) -> dict[str, str]:
        """``apply_table`` for each spec; table name -> action. Engines override it to batch."""
        return {spec.name: self.apply_table(spec) for spec in specs}

    def drop_table(self, database: str, table: str) -> bool:
        """Remove an external table's definition (its files stay); False if there was none."""
        raise NotImplementedError

    def describe(self, database: str, table: str) -> TableInfo | None:
        raise NotImplementedError

    def list_tables(self, database: str, prefix: str = "", partitions: bool = True) -> list[TableInfo]:
        raise NotImplementedError

    def add_partitions(self, database: str, table: str, partitions: list[tuple[str, str]]) -> None:
        """Register ``snapshot_dt`` partitions given as (value, location); existing ones are kept."""
        raise NotImplementedError

    def has_partition(self, database: str, table: str, value: str) -> bool:
        raise NotImplementedError

    def partitions(self, database: str, table: str) -> list[tuple[str, str]]:
        """Every registered ``snapshot_dt`` partition as (value, location)."""
        raise NotImplementedError

    def partition_location(self, database: str, table: str, value: str) -> str | None:
        """Where one registered partition's files are (None: not registered)."""
        raise NotImplementedError

    def set_partition_location(self, database: str, table: str, value: str, location: str) -> None:
        """Point a registered partition at other files: one catalog update, readers see the old
        files or the new ones."""
        raise NotImplementedError

    def partition_locations(self, database: str, table: str, table_location: str) -> list[tuple[str, str]]:
        """Like ``partitions``, for reports over many tables: engines where reading each partition's
        location is a round trip each may derive them from the table's location (see local.py)."""
        return self.partitions(database, table)

    def partition_values(self, database: str, table: str) -> list[str]:
        """Every registered ``snapshot_dt`` value, without locations (one call, however many)."""
        return [value for value, _ in self.partitions(database, table)]

    def repair(self, database: str, tables: list[str], max_concurrency: int, poll_interval: float) -> None:
        """MSCK REPAIR TABLE: discover every partition folder (explicit repair mode)."""
        raise NotImplementedError

    def replace_bucketed(self, database: str, name: str, source: tuple[str, str], location: str,
                         bucket_column: str, bucket_count: int, comment: str, writers: int = 0,
                         file_options: dict[str, str] | None = None) -> None:
        """(Re)build ``name`` from ``source`` into fresh files under ``location``; readers see the
        old table until the new one is complete, and a failure leaves the old one as it was.
        ``writers`` (tasks writing it) and ``file_options`` (parquet writer options) apply locally
        (see sizing.bucket_writers, sizing.bucket_file_options); engines that plan their own ignore them."""
        raise NotImplementedError

    def query(self, sql: str) -> tuple[list[str], list[tuple]]:
        raise NotImplementedError

    dialect: ClassVar[str] = "athena"  # of the statements ``query`` takes (athena_sql.key_stats)

    def current_rows(self, sql: str) -> list[tuple]:
        """The rows of a statement over tables' files as they are now (engines that cache file
        listings override it)."""
        return self.query(sql)[1]

    def key_stats(self, queries: list[KeyQuery]) -> list[tuple[int, int, int] | str]:
        """(rows, non-null keys, distinct keys) for each query, or why it failed: one statement for
        all of them; when that fails, one per query, so one unreadable table is named instead of
        hiding the others."""
        try:
            return self._key_stats(queries)
        except Exception:  # noqa: BLE001 - isolate the table that failed
            out = []
            for query in queries:
                try:
                    out += self._key_stats([query])
                except Exception as exc:  # noqa: BLE001 - reported per table
                    out.append(f"{type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}")
            return out

    def _key_stats(self, queries: list[KeyQuery]) -> list[tuple[int, int, int]]:
        rows = self.current_rows(athena_sql.key_stats(queries, self.dialect))
        found = {int(r[0]): (int(r[1]), int(r[2]), int(r[3])) for r in rows}
        return [found.get(i, (0, 0, 0)) for i in range(len(queries))]  # no row: no rows in that table
