"""Validation of dataset coordinates, Datasets API URLs and the official client's cache file names."""

from __future__ import annotations

import datetime as dt
import re
import urllib.parse

from tick_assets.tardis.datatypes import DATA_TYPES
from tick_assets.tardis.errors import InvalidRequestError

DEFAULT_DATASETS_URL = "https://datasets.tardis.dev/v1"
DEFAULT_API_URL = "https://api.tardis.dev/v1"

_EXCHANGE_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")
# Characters the official client replaces with '-' in file names (tardis_dev.download_datasets).
_UNSAFE_FILE_CHARS = re.compile(r'[:\\/?*<>|"]')


def normalize_symbol(symbol: str) -> str:
    """Normalise a symbol like the official clients: ':' and '/' become '-', then upper case."""
    return symbol.replace(":", "-").replace("/", "-").upper()


def validate_exchange(exchange: str) -> str:
    """Return the exchange id if well formed, else raise InvalidRequestError."""
    if not isinstance(exchange, str) or not _EXCHANGE_RE.match(exchange):
        raise InvalidRequestError(
            f"Invalid exchange {exchange!r}: use a Tardis exchange id such as 'binance-futures' or 'deribit' "
            "(lower case letters, digits and '-'; see https://api.tardis.dev/v1/exchanges)."
        )
    return exchange


def validate_data_type(data_type: str) -> str:
    """Return the data type if Tardis serves it as a dataset, else raise InvalidRequestError."""
    if data_type not in DATA_TYPES:
        raise InvalidRequestError(f"Unknown data type {data_type!r}: use one of {', '.join(DATA_TYPES)}.")
    return data_type


def validate_symbol(symbol: str) -> str:
    """Return the normalised symbol, or raise if it is empty or could escape the cache directory."""
    if not isinstance(symbol, str) or not symbol.strip():
        raise InvalidRequestError(
            "Empty symbol: use a dataset symbol id such as 'BTCUSDT' or 'BTC-PERPETUAL'."
        )
    normalized = normalize_symbol(symbol)
    sanitized = sanitize_for_file_name(normalized)
    if (
        normalized != normalized.strip()
        or any(ord(c) < 32 or ord(c) == 127 for c in normalized)
        or sanitized.strip(".") == ""
        or "\\" in normalized
        or ".." in normalized
        or len(normalized) > 128
    ):
        raise InvalidRequestError(
            f"Invalid symbol {symbol!r}: it contains path or control characters or is too long; "
            "use a dataset symbol id from /v1/exchanges/<exchange> (datasets.symbols[].id)."
        )
    return normalized


def parse_date(value: str | dt.date | dt.datetime) -> dt.date:
    """Parse a YYYY-MM-DD string (or a date) into a date, or raise InvalidRequestError."""
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            pass
    raise InvalidRequestError(f"Malformed date {value!r}: use YYYY-MM-DD, e.g. '2024-03-01'.")


def sanitize_for_file_name(symbol: str) -> str:
    """Replace the characters the official client replaces in file names with '-'."""
    return _UNSAFE_FILE_CHARS.sub("-", symbol)


def dataset_url(base_url: str, exchange: str, data_type: str, day: dt.date, symbol: str) -> str:
    """Build the Datasets API URL exactly like tardis-dev (symbol normalised, then percent-encoded)."""
    return (
        f"{base_url.rstrip('/')}/{exchange}/{data_type}/{day:%Y/%m/%d}/"
        f"{urllib.parse.quote(normalize_symbol(symbol), safe='')}.csv.gz"
    )


def cache_file_name(exchange: str, data_type: str, day: dt.date, symbol: str) -> str:
    """Return the official client's file name: {exchange}_{data_type}_{YYYY-MM-DD}_{SYMBOL}.csv.gz."""
    return f"{exchange}_{data_type}_{day:%Y-%m-%d}_{sanitize_for_file_name(normalize_symbol(symbol))}.csv.gz"
