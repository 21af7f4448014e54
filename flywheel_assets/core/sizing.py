"""Dynamic file sizing and file statistics, from parquet footers (no data is read).

The file count of an output table follows from its estimated size, the sum of the source's
compressed column-chunk sizes for its columns, and a target file size.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass

from flywheel_assets.core import storage
from flywheel_assets.core.errors import FlywheelInputError


@dataclass(frozen=True)
class FileStats:
    files: int
    bytes: int
    rows: int
    columns: list[str]  # top-level columns of the first file


def data_files(folder: str) -> list[tuple[str, int]]:
    """(uri, size) of the data files directly in ``folder``.

    Like Spark, names starting with ``_`` or ``.`` (``_SUCCESS``, CRCs) are not data; other
    writers (Athena, Glue) write parquet without the ``.parquet`` suffix, so none is required.
    """
    return sorted(
        (storage.join(folder, e.name), e.size)
        for e in storage.list_dir(folder)
        if not e.is_dir and not storage.is_hidden(e.name)
    )


def footer(uri: str):
    import pyarrow.parquet as pq

    filesystem, path = storage.filesystem_of(uri)
    try:
        with filesystem.open_input_file(path) as f:
            return pq.ParquetFile(f).metadata
    except Exception as exc:  # pyarrow says what is wrong (no magic bytes, truncated footer)
        raise FlywheelInputError(f"{uri} is not a readable parquet file: {exc}") from exc


def column_bytes(files: list[str]) -> dict[str, int]:
    """Compressed bytes per top-level column over all row groups of ``files``."""
    sizes: dict[str, int] = defaultdict(int)
    for uri in files:
        meta = footer(uri)
        for g in range(meta.num_row_groups):
            group = meta.row_group(g)
            for c in range(group.num_columns):
                chunk = group.column(c)
                sizes[chunk.path_in_schema.split(".")[0]] += chunk.total_compressed_size
    return dict(sizes)


def file_count(estimated_bytes: int, target_bytes: int) -> int:
    return max(1, math.ceil(estimated_bytes / max(1, target_bytes)))


def folder_stats(folder: str) -> FileStats:
    files = data_files(folder)
    footers = [footer(uri) for uri, _ in files]  # one listing, each footer read once
    columns = footers[0].schema.to_arrow_schema().names if footers else []
    return FileStats(files=len(files), bytes=sum(size for _, size in files),
                     rows=sum(f.num_rows for f in footers), columns=columns)


def bucket_writers(table_bytes: int, bucket_count: int, target_bytes: int = 128 * 1024 * 1024) -> int:
    """Tasks that write a bucketed table: about one per target size of input, and a power of two
    dividing ``bucket_count`` so that every bucket lands in exactly one task (one file per bucket).
    Small tables get one task instead of ``bucket_count`` near-empty ones."""
    wanted = min(file_count(table_bytes, target_bytes), bucket_count)
    writers = 1
    while writers * 2 <= wanted and bucket_count % (writers * 2) == 0:
        writers *= 2
    return writers


def bucket_file_options(table_bytes: int, bucket_count: int, min_bucket_bytes: int = 16 * 1024) -> dict[str, str]:
    """Parquet writer options for a bucketed table's files. A bucket of a few kilobytes is a few
    rows per column page, which neither snappy nor a dictionary shrinks (the sample lake's 256
    buckets of 1,000 rows: 6.41 MB snappy, 6.38 MB uncompressed, 6.32 MB without dictionaries
    too) but both cost per page and per column of every file: a compressor stream per page was
    0.3 of a 1.0 s build, the dictionaries 14% of what was left (docs/benchmarks.md). Larger
    buckets stay snappy with dictionaries, as on Glue (75,000 rows: uncompressed 16% larger)."""
    if table_bytes < min_bucket_bytes * bucket_count:
        return {"compression": "uncompressed", "parquet.enable.dictionary": "false"}
    return {"compression": "snappy"}
