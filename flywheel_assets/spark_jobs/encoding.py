"""Which columns Spark's parquet writer would store without a dictionary, predicted from the source.

parquet-mr dictionary-encodes every column it can, then, when the first page is written, drops the
dictionary if the dictionary plus the values' ids is not smaller than the plain values (mostly
distinct values: keys, amounts, dates) and re-encodes the page plainly. Building and dropping those
dictionaries was about a quarter of the split job's CPU (hash maps and id encoding in a profile of
benchmark 1). The first page holds at most ``FIRST_PAGE_ROWS`` rows, so the same test run on the
first rows of the source tells which dictionaries would be dropped; the job turns them off
(``parquet.enable.dictionary#<column>``), and the files it writes are the same bytes.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from flywheel_assets.core import storage

FIRST_PAGE_ROWS = 20_000  # parquet-mr's page.row.count.limit: a page holds at most this many rows
REPEAT_SHARE = 0.1  # more values repeating their predecessor than this: ids may run-length encode; keep
FIXED_WIDTH = {"int8": 4, "int16": 4, "int32": 4, "date32[day]": 4, "float": 4, "int64": 8, "double": 8}
THREADS = 2
TEXT = {"string", "large_string", "binary", "large_binary"}


def dropped_dictionaries(files: list[str], columns: list[str], types: dict) -> set[str]:
    """Source ``columns`` (names as in ``types``, their arrow types) whose dictionary parquet-mr would drop."""
    import pyarrow.parquet as pq

    candidates = [c for c in dict.fromkeys(columns) if str(types[c]) in FIXED_WIDTH or str(types[c]) in TEXT]
    if not candidates:
        return set()
    batches, rows = [], 0
    for uri in files:
        filesystem, path = storage.filesystem_of(uri)
        with filesystem.open_input_file(path) as f:
            source = pq.ParquetFile(f)
            schema = source.schema_arrow
            if any(c not in schema.names or schema.field(c).type != types[c] for c in candidates):
                break  # a file unlike the first (Spark reads it with the first's schema): sample what came before
            batch = next(source.iter_batches(batch_size=FIRST_PAGE_ROWS - rows, columns=candidates), None)
            if batch is not None:  # the file's first rows, up to what the sample still needs
                batches.append(batch)
                rows += batch.num_rows
        if rows >= FIRST_PAGE_ROWS:
            break
    if not batches:
        return set()
    import pyarrow as pa

    sample = pa.Table.from_batches(batches)
    with ThreadPoolExecutor(THREADS) as pool:  # pyarrow's kernels release the GIL
        dropped = pool.map(lambda c: _dictionary_dropped(sample.column(c)), candidates)
    return {c for c, d in zip(candidates, dropped) if d}


def _dictionary_dropped(values) -> bool:
    """parquet-mr's test (``DictionaryValuesWriter.isCompressionSatisfying``) on one first page."""
    import pyarrow.compute as pc

    values = values.drop_null()  # nulls are definition levels, outside the dictionary test
    n = len(values)
    if n < 2:
        return False
    repeats = pc.sum(pc.equal(values.slice(1), values.slice(0, n - 1))).as_py() or 0
    if repeats > REPEAT_SHARE * n:
        return False
    distinct = values.unique()
    width = FIXED_WIDTH.get(str(values.type))
    if width:
        raw, dictionary = n * width, len(distinct) * width
    else:  # a text value is its length (4 bytes) and its bytes, plain and in the dictionary alike
        raw = 4 * n + pc.sum(pc.binary_length(values)).as_py()
        dictionary = 4 * len(distinct) + (pc.sum(pc.binary_length(distinct)).as_py() or 0)
    ids = n * max(1, (len(distinct) - 1).bit_length()) // 8  # bit-packed ids
    return dictionary + ids >= raw
