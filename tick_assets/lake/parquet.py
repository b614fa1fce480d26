"""How lake files are laid out as Parquet: compression, row groups, encodings (one owner for every writer)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ConversionOptions:
    """How DuckDB converts: its threads and memory cap per conversion, and the Parquet layout."""

    # Two threads parse and write in parallel while keeping the file's row order (which the depth features rely
    # on), but only with a memory limit of about 2 GB: below it DuckDB writes the ordered Parquet serially
    # (2M-row book day: 7.8 s at 2 GB, 13.9 s at 1.5 GB). The limit is a cap, not a use: peak RSS stays ~600 MB.
    threads: int = 2
    memory_limit: str = "2GB"
    row_group_size: int = 65_536
    zstd_level: int = 3
    temp_directory: Path | None = None
    preview_rows: int = 5


def copy_options(options: ConversionOptions, data_type: str | None = None) -> str:
    """The option list of a DuckDB `COPY ... TO 'x.parquet' (...)` for a lake file (of `data_type`, if raw)."""
    return (
        f"FORMAT parquet, COMPRESSION zstd, COMPRESSION_LEVEL {options.zstd_level}, "
        f"ROW_GROUP_SIZE {options.row_group_size}"
    )
