"""Where lake partitions live: <root>/<data_type>/exchange=<exchange>/symbol=<SYMBOL>/date=<YYYY-MM-DD>/."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from tick_assets.tardis.urls import (
    parse_date,
    sanitize_for_file_name,
    validate_data_type,
    validate_exchange,
    validate_symbol,
)

#: The one file of a partition; a re-run replaces it atomically, so a partition never has two.
PARTITION_FILE_NAME = "data.parquet"
#: Suffix of in-progress writes; the warehouse glob (`*.parquet`) never matches it.
TEMP_SUFFIX = ".tmp"


def partition_dir(root: Path, data_type: str, exchange: str, symbol: str, day: str | dt.date) -> Path:
    """Return the hive-style directory of one (data_type, exchange, symbol, day) partition."""
    validate_data_type(data_type)
    validate_exchange(exchange)
    safe_symbol = sanitize_for_file_name(validate_symbol(symbol))
    return (
        Path(root)
        / data_type
        / f"exchange={exchange}"
        / f"symbol={safe_symbol}"
        / f"date={parse_date(day):%Y-%m-%d}"
    )


def partition_file(root: Path, data_type: str, exchange: str, symbol: str, day: str | dt.date) -> Path:
    """Return the Parquet file of one partition."""
    return partition_dir(root, data_type, exchange, symbol, day) / PARTITION_FILE_NAME


def data_type_glob(root: Path, data_type: str) -> str:
    """Glob matching every partition file of a data type (for read_parquet with hive partitioning)."""
    return str(
        Path(root) / validate_data_type(data_type) / "exchange=*" / "symbol=*" / "date=*" / "*.parquet"
    )
