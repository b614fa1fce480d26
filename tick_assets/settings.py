"""Configuration from the environment, with defaults that work (see the README's configuration table)."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

from tick_assets.tardis.urls import DEFAULT_API_URL, DEFAULT_DATASETS_URL

DEFAULT_INSTRUMENTS = "binance-futures:BTCUSDT,deribit:BTC-PERPETUAL"
DEFAULT_START_DATE = "2024-01-01"


def data_dir() -> Path:
    """TICK_ASSETS_DATA_DIR: cache, lake, warehouse, reports and limiter state (default ./data)."""
    return Path(os.environ.get("TICK_ASSETS_DATA_DIR", "data")).absolute()


def datasets_url() -> str:
    """TARDIS_DATASETS_URL: the Datasets API base."""
    return os.environ.get("TARDIS_DATASETS_URL", DEFAULT_DATASETS_URL)


def api_url() -> str:
    """TARDIS_API_URL: the exchange metadata API base."""
    return os.environ.get("TARDIS_API_URL", DEFAULT_API_URL)


def instruments() -> list[str]:
    """TICK_ASSETS_INSTRUMENTS: comma-separated `exchange:SYMBOL` instrument partition keys."""
    raw = os.environ.get("TICK_ASSETS_INSTRUMENTS", DEFAULT_INSTRUMENTS)
    keys = [k.strip() for k in raw.split(",") if k.strip()]
    for key in keys:
        exchange, sep, symbol = key.partition(":")
        if not sep or not exchange or not symbol:
            raise ValueError(
                f"TICK_ASSETS_INSTRUMENTS entry {key!r} is not 'exchange:SYMBOL' (e.g. binance-futures:BTCUSDT)."
            )
    return keys


def start_date() -> dt.date:
    """TICK_ASSETS_START_DATE: the first daily partition (YYYY-MM-DD)."""
    raw = os.environ.get("TICK_ASSETS_START_DATE", DEFAULT_START_DATE)
    try:
        return dt.date.fromisoformat(raw)
    except ValueError:
        raise ValueError(f"TICK_ASSETS_START_DATE={raw!r} is not a date; use YYYY-MM-DD.") from None
