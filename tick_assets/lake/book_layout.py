"""The per-second sample of a book snapshot day: `data.seconds` (Parquet) beside the raw partition's `data.parquet`.

A grid reader (features/depth) needs, per grid point t, the book as of t: file row `count(rows with
local_timestamp <= t) - 1` (Tardis files are ordered by `local_timestamp`). For every grid whose step is a whole
number of seconds, those rows are among the rows the 1 s grid picks, so the conversion writes them once: for each
distinct second s = ceil(local_timestamp / 1 s) of the day's rows, the raw row at file position
`count(rows with second <= s) - 1`: its `local_timestamp` and level lists, with `second`, `received` (the rows of
that second) and `file_row`. On a 500k-row day that is ~86,400 rows instead of every row's 100 level values (docs/PERFORMANCE.md).

The file is an index, not a partition: no `*.parquet` glob (the warehouse views, `Lake.files`) reads it, and it is only trusted
while it belongs to its raw file: its Parquet key-value metadata holds the raw file's footer fingerprint (row
count, file size, every column chunk's compressed size and min/max). A raw file rewritten without it (an older
writer, a conversion that failed between the two files) no longer matches, and readers fall back
to the raw file; a lake without the files reads as before.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from tick_assets.lake.parquet import PLAIN_ROW_GROUP_SIZE, ConversionOptions
from tick_assets.lake.schema import LAYOUT, sql_string
from tick_assets.lake.store import Lake

#: The file beside a raw partition's `data.parquet`.
SECONDS_FILE_NAME: Final = "data.seconds"
#: The raw data types whose conversion writes it (features/depth reads book_snapshot_25).
SECONDS_DATA_TYPES: Final = frozenset({"book_snapshot_25"})
#: The raw columns it keeps: what a grid reader of the book needs.
SECONDS_COLUMNS: Final = ("local_timestamp", "asks_price", "asks_amount", "bids_price", "bids_amount")
#: The key of the raw file's fingerprint in the file's Parquet key-value metadata.
FINGERPRINT_KEY: Final = "tick_assets_raw_fingerprint"
SECOND_US: Final = 1_000_000


def seconds_relpath(relpath: str) -> str:
    """The per-second file of a raw partition file (`.../date=2024-01-02/data.parquet` -> `.../data.seconds`)."""
    folder, _, _ = relpath.rpartition("/")
    return f"{folder}/{SECONDS_FILE_NAME}" if folder else SECONDS_FILE_NAME


def writes_seconds(data_type: str, options: ConversionOptions) -> bool:
    """True if a conversion of `data_type` with `options` writes the per-second file."""
    return data_type in SECONDS_DATA_TYPES and options.layout == LAYOUT


def fingerprint(con: duckdb.DuckDBPyConnection, uri: str) -> str:
    """The footer fingerprint of a Parquet file: an md5 over its size, rows and every column chunk's size and
    statistics (one footer read)."""
    src = sql_string(uri)
    return con.execute(
        f"""
        SELECT md5(f.num_rows || '/' || f.file_size_bytes || '/' || coalesce(m.chunks, ''))
        FROM parquet_file_metadata({src}) AS f,
             (SELECT string_agg(row_group_id || ':' || column_id || ':' || num_values || ':' || total_compressed_size
                                || ':' || coalesce(stats_min, '') || ':' || coalesce(stats_max, ''), ','
                                ORDER BY row_group_id, column_id) AS chunks
              FROM parquet_metadata({src})) AS m
        """
    ).fetchall()[0][0]


def seconds_table(raw: Path | str) -> pa.Table:
    """The per-second rows of the local raw file `raw`: `second`, `received`, `file_row`, then SECONDS_COLUMNS.

    One row group at a time, so memory stays at a row group's levels whatever the day's size."""
    source = pq.ParquetFile(raw)
    local_ts = np.asarray(source.read(columns=["local_timestamp"]).column(0).combine_chunks(), dtype=np.int64)
    second = -(-local_ts // SECOND_US) * SECOND_US  # ceil to the second
    if len(second) and np.all(second[1:] >= second[:-1]):  # in order (Tardis files are): the last of each run
        file_row = np.flatnonzero(np.append(second[1:] != second[:-1], True))
        seconds, received = second[file_row], np.diff(np.append(-1, file_row))
    else:  # out of order: the grid's rows are still count(second <= s) - 1 (features/depth refuses the day)
        seconds, received = np.unique(second, return_counts=True)
        file_row = np.cumsum(received) - 1
    parts, start = [], 0
    for group in range(source.num_row_groups):
        end = start + source.metadata.row_group(group).num_rows
        lo, hi = np.searchsorted(file_row, [start, end])  # file_row is increasing
        if hi > lo:
            rows = source.read_row_group(group, columns=list(SECONDS_COLUMNS))
            parts.append(rows.take(pa.array(file_row[lo:hi] - start, type=pa.int64())))
        start = end
    picked = (
        pa.concat_tables(parts) if parts else source.schema_arrow.empty_table().select(list(SECONDS_COLUMNS))
    )
    head = [pa.array(a, type=pa.int64()) for a in (seconds, received, file_row)]
    return pa.table(head + picked.columns, names=["second", "received", "file_row", *picked.column_names])


def write_seconds(
    con: duckdb.DuckDBPyConnection,
    lake: Lake,
    relpath: str,
    raw: Path,
    data_type: str,
    options: ConversionOptions | None = None,
) -> str | None:
    """Write the per-second file of the raw partition `relpath` from its freshly written local file `raw`
    (before `raw` is published), published whole; returns its URI, or None if `data_type` has none."""
    options = options or ConversionOptions()
    if not writes_seconds(data_type, options):
        return None
    mark = fingerprint(con, str(raw))
    target = seconds_relpath(relpath)
    table = seconds_table(raw).replace_schema_metadata({FINGERPRINT_KEY: mark})
    with lake.writing(target) as tmp:
        # the raw file's encodings (PLAIN lists, zstd): see parquet.py
        pq.write_table(
            table,
            tmp,
            compression="zstd",
            compression_level=options.zstd_level,
            use_dictionary=False,
            row_group_size=PLAIN_ROW_GROUP_SIZE,
        )
    return lake.uri(target)


def valid_seconds(con: duckdb.DuckDBPyConnection, lake: Lake, relpath: str) -> str | None:
    """The URI of the raw partition's per-second file if it exists and belongs to the raw file, else None."""
    target = seconds_relpath(relpath)
    if not lake.exists(target):
        return None
    uri = lake.uri(target)
    try:
        stored = con.execute(
            f"SELECT decode(value) FROM parquet_kv_metadata({sql_string(uri)}) "
            f"WHERE decode(key) = {sql_string(FINGERPRINT_KEY)}"
        ).fetchall()
        current = fingerprint(con, lake.uri(relpath))
    except duckdb.Error:
        return None  # unreadable (half-copied by hand, vanished): the raw file is the truth
    return uri if stored and stored[0][0] == current else None
