"""How lake files are laid out as Parquet: compression, row groups, encodings (one owner for every writer).

The choices below are measured in docs/STORAGE.md (bench/lake_storage.py: lake bytes against the Tardis .csv.gz
bytes and conversion time, per data type, against the layout used before).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Final

from tick_assets.lake.schema import BOOK_LEVELS, LAYOUT, LAYOUTS, LEGACY_LAYOUT

#: Raw data types written as Parquet V2, which makes DuckDB encode int64 columns that miss the dictionary (the
#: timestamps) as DELTA_BINARY_PACKED, such strings (trade ids) as DELTA_LENGTH_BYTE_ARRAY and such doubles as
#: BYTE_STREAM_SPLIT. The others stay V1 (PLAIN where the dictionary does not pay): derivative_ticker and
#: options_chain, whose many distinct decimal doubles (funding rates, greeks, marks) zstd packs better PLAIN than
#: byte-stream-split; liquidations, whose days are a few thousand rows, where the same holds; and every non-raw
#: dataset (features, analytics: not measured).
V2_DATA_TYPES: Final = frozenset(
    {"trades", "book_snapshot_25", "book_snapshot_5", "quotes", "book_ticker", "incremental_book_L2"}
)

PARQUET_VERSIONS: Final = ("auto", "V1", "V2")

#: Book snapshots (levels stored as lists) are written PLAIN (V1, no dictionary): zstd then sees each row's
#: levels next to the previous row's, which is where a book snapshot's redundancy is (0.66x the gzip for
#: book_snapshot_25 against 1.27x with dictionaries and byte-stream-split, docs/STORAGE.md).
PLAIN_DATA_TYPES: Final = frozenset(BOOK_LEVELS)
#: Row groups of those types are capped at 32,768 rows: a book_snapshot_25 row is ~8x a trade's width, and
#: 131,072-row groups cost 10% more conversion time and ~1 GB peak RSS for the same size on disk (0.66x vs 0.67x).
PLAIN_ROW_GROUP_SIZE: Final = 32_768
#: Row groups of derived files (features, analytics, stored frames) are about 16,384 rows (DuckDB closes a group at
#: the first chunk boundary past it). A 1 s feature day is 86,400 rows, and DuckDB writes row groups in parallel,
#: so one 131,072-row group writes on one thread (features/depth, 86,400 x 44: 0.28 s in one group, 0.18 s in
#: 16,384-row groups; 12.1 MB either way).
DERIVED_ROW_GROUP_SIZE: Final = 16_384


@dataclass(frozen=True)
class ConversionOptions:
    """How DuckDB converts: its threads and memory cap per conversion, and the Parquet layout."""

    # Two threads parse and write in parallel while keeping the file's row order (which the depth features rely
    # on), but only with a memory limit of about 2 GB: below it DuckDB writes the ordered Parquet serially
    # (2M-row book day: 7.8 s at 2 GB, 13.9 s at 1.5 GB). The limit is a cap, not a use: peak RSS is ~600 MB with
    # 65,536-row row groups and ~880 MB with 131,072 for a 2M-row book_snapshot_25 day (docs/STORAGE.md).
    threads: int = 2
    memory_limit: str = "2GB"
    #: Rows per row group: 131,072 gives dictionaries and zstd twice the rows of 65,536 (book_snapshot_25 -6%);
    #: 262,144 saves 3% more there for ~400 MB more RSS per conversion, and fewer row groups to read in parallel.
    row_group_size: int = 131_072
    #: zstd level 5 would take book_snapshot_25 another 8% down for 3-10% more conversion CPU; level 3 keeps the
    #: conversion as fast as before.
    zstd_level: int = 3
    temp_directory: Path | None = None
    preview_rows: int = 5
    #: "V1", "V2", or "auto": V2 for the data types in V2_DATA_TYPES, V1 for the others.
    parquet_version: str = "auto"
    #: DuckDB writes a bloom filter per dictionary-encoded column chunk by default (~10% of a book_snapshot_25
    #: file); lake queries select by partition and time range (zone maps), not by point lookups, so they are off.
    bloom_filters: bool = False
    #: The columns of raw files (lake/schema.py): lake-v3 (book levels as lists, no stored `*_utc`) or lake-v2.
    layout: str = LAYOUT

    def __post_init__(self) -> None:
        if self.parquet_version not in PARQUET_VERSIONS:
            raise ValueError(
                f"parquet_version must be one of {PARQUET_VERSIONS}, got {self.parquet_version!r}"
            )
        if self.layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {LAYOUTS}, got {self.layout!r}")


#: The lake files before issue 14 (wide book levels and stored `*_utc` columns, DuckDB's default V1 encodings and
#: bloom filters, 65,536-row row groups, zstd level 3), kept so bench/lake_storage.py can compare against it.
LEGACY_OPTIONS: Final = {
    "row_group_size": 65_536,
    "zstd_level": 3,
    "parquet_version": "V1",
    "bloom_filters": True,
    "layout": LEGACY_LAYOUT,
}


def legacy_options(**overrides: object) -> ConversionOptions:
    """ConversionOptions with the pre-issue-14 files (other fields as given, or the defaults)."""
    return ConversionOptions(**{**LEGACY_OPTIONS, **overrides})  # type: ignore[arg-type]


def parquet_version(options: ConversionOptions, data_type: str | None = None) -> str:
    """The Parquet format version a file of `data_type` (None: not a raw data type) is written with."""
    if options.parquet_version != "auto":
        return options.parquet_version
    if _plain(options, data_type):
        return "V1"
    return "V2" if data_type in V2_DATA_TYPES else "V1"


def _plain(options: ConversionOptions, data_type: str | None) -> bool:
    return options.layout == LAYOUT and options.parquet_version == "auto" and data_type in PLAIN_DATA_TYPES


def copy_options(options: ConversionOptions, data_type: str | None = None) -> str:
    """The option list of a DuckDB `COPY ... TO 'x.parquet' (...)` for a lake file (of `data_type`, if raw)."""
    # A one-byte dictionary limit makes DuckDB write every column PLAIN (it has no per-column switch).
    plain = _plain(options, data_type)
    rows = min(options.row_group_size, PLAIN_ROW_GROUP_SIZE) if plain else options.row_group_size
    return (
        f"FORMAT parquet, COMPRESSION zstd, COMPRESSION_LEVEL {options.zstd_level}, "
        f"ROW_GROUP_SIZE {rows}, PARQUET_VERSION {parquet_version(options, data_type)}, "
        f"WRITE_BLOOM_FILTER {'true' if options.bloom_filters else 'false'}{', DICTIONARY_SIZE_LIMIT 1' if plain else ''}"
    )


def derived_options(options: ConversionOptions) -> ConversionOptions:
    """`options` for a derived (non-raw) file: row groups of at most about DERIVED_ROW_GROUP_SIZE rows."""
    return replace(options, row_group_size=min(options.row_group_size, DERIVED_ROW_GROUP_SIZE))
