"""Where lake partitions live: <root>/<data_type>/exchange_id=<exchange>/symbol_id=<SYMBOL>/date=<YYYY-MM-DD>/.

The directory keys are not `exchange`/`symbol`: hive partitioning would then shadow the per-row Tardis columns
of those names, and grouped datasets (symbol ids `PERPETUALS`, `OPTIONS`, ...) carry the real instrument in
each row's `symbol`.
"""

from __future__ import annotations

import datetime as dt
import urllib.parse
from pathlib import Path

from tick_assets.lake.errors import LakeError
from tick_assets.tardis.urls import parse_date, validate_data_type, validate_exchange, validate_symbol

#: The one file of a partition; a re-run replaces it atomically, so a partition never has two.
PARTITION_FILE_NAME = "data.parquet"
#: Suffix of in-progress writes; the warehouse glob (`data.parquet`) never matches it.
TEMP_SUFFIX = ".tmp"
#: Hive keys of the partition directories (read back as columns by the warehouse views).
EXCHANGE_KEY, SYMBOL_KEY, DATE_KEY = "exchange_id", "symbol_id", "date"
_GLOB_CHARS = frozenset("*?[]{}")


def hive_value(value: str) -> str:
    """Percent-encode a directory value (DuckDB decodes it back), so '/', '=', '?' cannot break the layout."""
    return urllib.parse.quote(value, safe="")


def partition_dir(root: Path, data_type: str, exchange: str, symbol: str, day: str | dt.date) -> Path:
    """Return the hive-style directory of one (data_type, exchange, symbol, day) partition."""
    validate_data_type(data_type)
    validate_exchange(exchange)
    return (
        Path(root)
        / data_type
        / f"{EXCHANGE_KEY}={exchange}"
        / f"{SYMBOL_KEY}={hive_value(validate_symbol(symbol))}"
        / f"{DATE_KEY}={parse_date(day):%Y-%m-%d}"
    )


def partition_file(root: Path, data_type: str, exchange: str, symbol: str, day: str | dt.date) -> Path:
    """Return the Parquet file of one partition."""
    return partition_dir(root, data_type, exchange, symbol, day) / PARTITION_FILE_NAME


def partition_glob(data_type: str) -> str:
    """Glob, relative to the lake root, of every partition file of a data type."""
    return (
        f"{validate_data_type(data_type)}/{EXCHANGE_KEY}=*/{SYMBOL_KEY}=*/{DATE_KEY}=*/{PARTITION_FILE_NAME}"
    )


def data_type_glob(root: Path, data_type: str) -> str:
    """Absolute glob of every partition file of a data type (for read_parquet with hive partitioning)."""
    root = Path(root)
    if _GLOB_CHARS & set(str(root)):
        raise LakeError(
            f"The lake path {root} contains one of {' '.join(sorted(_GLOB_CHARS))}, which DuckDB reads as a file "
            "pattern: choose a TICK_ASSETS_DATA_DIR without them."
        )
    return str(root / partition_glob(data_type))
