"""Where lake partitions live: <root>/<dataset>/exchange_id=<exchange>/symbol_id=<SYMBOL>/date=<YYYY-MM-DD>/.

A dataset is the asset's key path: `raw/trades`, `features/depth`, `analytics/daily_summary`, or a user's own
`signals/my_signal`. Every partition is one file, `data.parquet`.

The directory keys are not `exchange`/`symbol`: hive partitioning would then shadow the per-row Tardis columns
of those names, and grouped datasets (symbol ids `PERPETUALS`, `OPTIONS`, ...) carry the real instrument in
each row's `symbol`.
"""

from __future__ import annotations

import datetime as dt
import re
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
#: The dataset prefix of the raw Tardis data types (`raw/trades`).
RAW = "raw"
_SEGMENT_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
_GLOB_CHARS = frozenset("*?[]{}")


def raw_dataset(data_type: str) -> str:
    """The lake dataset of a Tardis data type: `trades` -> `raw/trades`."""
    return f"{RAW}/{validate_data_type(data_type)}"


def raw_data_type(dataset: str) -> str | None:
    """The Tardis data type of a raw dataset (`raw/trades` -> `trades`), None for any other dataset."""
    schema, *rest = dataset.split("/")
    return rest[0] if schema == RAW and len(rest) == 1 else None


def validate_dataset(dataset: str) -> str:
    """Return the dataset path (`features/depth`) if its segments are plain names, else raise LakeError."""
    segments = dataset.split("/") if isinstance(dataset, str) else []
    if len(segments) < 2 or not all(_SEGMENT_RE.match(s) for s in segments):
        raise LakeError(
            f"Invalid lake dataset {dataset!r}: use an asset key path of two or more plain names, such as "
            "'raw/trades' or 'features/depth' (letters, digits, '_', '-', '.')."
        )
    if segments[0] == RAW and len(segments) == 2:
        validate_data_type(segments[1])
    return dataset


def hive_value(value: str) -> str:
    """Percent-encode a directory value (DuckDB decodes it back), so '/', '=', '?' cannot break the layout."""
    return urllib.parse.quote(value, safe="")


def partition_relpath(dataset: str, exchange: str, symbol: str, day: str | dt.date) -> str:
    """The partition file of one (dataset, exchange, symbol, day), relative to the lake root, with '/'."""
    validate_exchange(exchange)
    return (
        f"{validate_dataset(dataset)}/{EXCHANGE_KEY}={exchange}/{SYMBOL_KEY}={hive_value(validate_symbol(symbol))}"
        f"/{DATE_KEY}={parse_date(day):%Y-%m-%d}/{PARTITION_FILE_NAME}"
    )


def partition_dir(root: Path, dataset: str, exchange: str, symbol: str, day: str | dt.date) -> Path:
    """Return the hive-style directory of one (dataset, exchange, symbol, day) partition under a local root."""
    return partition_file(root, dataset, exchange, symbol, day).parent


def partition_file(root: Path, dataset: str, exchange: str, symbol: str, day: str | dt.date) -> Path:
    """Return the Parquet file of one partition under a local root."""
    return Path(root) / partition_relpath(dataset, exchange, symbol, day)


def partition_glob(dataset: str) -> str:
    """Glob, relative to the lake root, of every partition file of a dataset."""
    return f"{validate_dataset(dataset)}/{EXCHANGE_KEY}=*/{SYMBOL_KEY}=*/{DATE_KEY}=*/{PARTITION_FILE_NAME}"


def check_glob_safe(root: str) -> str:
    """Return `root` if DuckDB can glob under it, else raise LakeError (it reads `*?[]{}` as patterns)."""
    if _GLOB_CHARS & set(root):
        raise LakeError(
            f"The lake path {root} contains one of {' '.join(sorted(_GLOB_CHARS))}, which DuckDB reads as a file "
            "pattern: choose a TICK_ASSETS_DATA_DIR (or TICK_ASSETS_LAKE) without them."
        )
    return root
