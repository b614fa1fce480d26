"""Configuration from the environment, with defaults that work (see the README's configuration table)."""

from __future__ import annotations

import datetime as dt
import math
import os
from pathlib import Path

from tick_assets.tardis.datatypes import DATA_TYPES
from tick_assets.tardis.errors import InvalidRequestError
from tick_assets.tardis.urls import (
    DEFAULT_API_URL,
    DEFAULT_DATASETS_URL,
    normalize_symbol,
    validate_exchange,
    validate_symbol,
)

DEFAULT_INSTRUMENTS = "binance-futures:BTCUSDT,deribit:BTC-PERPETUAL"
DEFAULT_START_DATE = "2024-01-01"
#: Every Tardis data type by default: a data type an instrument lacks is an empty "not offered" partition.
DEFAULT_DATA_TYPES = (
    "trades,book_snapshot_25,book_snapshot_5,quotes,book_ticker,derivative_ticker,liquidations,"
    "incremental_book_L2,options_chain"
)
DEFAULT_BACKFILL_DAYS_PER_RUN = 31
# Dagster forbids these in static partition keys.
_FORBIDDEN_KEY_CHARS = set("|[],")


def data_dir() -> Path:
    """TICK_ASSETS_DATA_DIR: cache, lake, warehouse, reports and limiter state (default ./data)."""
    return Path(os.environ.get("TICK_ASSETS_DATA_DIR", "data")).absolute()


def datasets_url() -> str:
    """TARDIS_DATASETS_URL: the Datasets API base."""
    return os.environ.get("TARDIS_DATASETS_URL", DEFAULT_DATASETS_URL)


def api_url() -> str:
    """TARDIS_API_URL: the exchange metadata API base."""
    return os.environ.get("TARDIS_API_URL", DEFAULT_API_URL)


def validate_instrument(key: str) -> str:
    """Return an `exchange:SYMBOL` instrument key, or raise ValueError saying what is wrong with it.

    Keys become Dagster partition keys, URLs and directory names: path, control and Dagster's reserved
    characters are refused here, before any definition is built.
    """
    exchange, sep, symbol = key.partition(":")
    if not sep or not exchange or not symbol or _FORBIDDEN_KEY_CHARS & set(key):
        raise ValueError(
            f"TICK_ASSETS_INSTRUMENTS entry {key!r} is not 'exchange:SYMBOL' (e.g. binance-futures:BTCUSDT; "
            "the characters | [ ] , are not allowed)."
        )
    try:
        validate_exchange(exchange)
        validate_symbol(symbol)
    except InvalidRequestError as exc:
        raise ValueError(f"TICK_ASSETS_INSTRUMENTS entry {key!r}: {exc}") from None
    if normalize_symbol(symbol) != symbol:
        raise ValueError(
            f"TICK_ASSETS_INSTRUMENTS entry {key!r}: write the symbol as Tardis ids it, "
            f"{exchange}:{normalize_symbol(symbol)} (upper case, '-' for '/' and ':')."
        )
    return key


def instruments() -> list[str]:
    """TICK_ASSETS_INSTRUMENTS: comma-separated `exchange:SYMBOL` instrument partition keys."""
    raw = os.environ.get("TICK_ASSETS_INSTRUMENTS", DEFAULT_INSTRUMENTS)
    keys = [k.strip() for k in raw.split(",") if k.strip()]
    for key in keys:
        validate_instrument(key)
    if len(set(keys)) != len(keys) or not keys:
        raise ValueError(f"TICK_ASSETS_INSTRUMENTS={raw!r} must list distinct instruments, at least one.")
    return keys


def start_date() -> dt.date:
    """TICK_ASSETS_START_DATE: the first daily partition (YYYY-MM-DD)."""
    raw = os.environ.get("TICK_ASSETS_START_DATE", DEFAULT_START_DATE)
    try:
        return dt.date.fromisoformat(raw)
    except ValueError:
        raise ValueError(f"TICK_ASSETS_START_DATE={raw!r} is not a date; use YYYY-MM-DD.") from None


#: The catalog of views over the lake, in the data dir.
WAREHOUSE_FILE = "warehouse.duckdb"


def warehouse_path(data: Path | str | None = None) -> Path:
    """The DuckDB warehouse (a catalog of views over the lake): DATA_DIR/warehouse.duckdb."""
    return Path(data or data_dir()).absolute() / WAREHOUSE_FILE


def lake_url(data: Path | str | None = None) -> str:
    """TICK_ASSETS_LAKE: the lake root, a folder or `s3://bucket/prefix` (default DATA_DIR/lake)."""
    return os.environ.get("TICK_ASSETS_LAKE") or str(Path(data or data_dir()).absolute() / "lake")


#: The environment variable with the shared limiter's server URL (several machines); unset: one machine.
LIMITER_URL_VAR = "TICK_ASSETS_LIMITER_URL"


def limiter_url() -> str | None:
    """The shared limiter's server (TICK_ASSETS_LIMITER_URL, e.g. postgresql://...), or None for the SQLite file."""
    return os.environ.get(LIMITER_URL_VAR) or None


#: Which engine runs the steps: `multiprocess` (default, processes on the run's machine), `celery` (Celery
#: workers on any machine, through a broker) or `k8s` (a Kubernetes Job per step).
EXECUTOR_VAR = "TICK_ASSETS_EXECUTOR"
EXECUTORS = ("multiprocess", "celery", "k8s")
#: The Celery broker and result backend URLs (may hold a password: read from the environment, never stored).
CELERY_BROKER_VAR = "TICK_ASSETS_CELERY_BROKER"
CELERY_BACKEND_VAR = "TICK_ASSETS_CELERY_BACKEND"


def executor_name() -> str:
    """TICK_ASSETS_EXECUTOR: the step executor of the code location, one of EXECUTORS (default multiprocess)."""
    name = os.environ.get(EXECUTOR_VAR, "multiprocess").strip() or "multiprocess"
    if name not in EXECUTORS:
        raise ValueError(f"{EXECUTOR_VAR}={name!r}: use one of {', '.join(EXECUTORS)}.")
    return name


def celery_visibility_timeout() -> float:
    """TICK_ASSETS_CELERY_VISIBILITY_TIMEOUT: seconds after which the broker hands a step whose worker vanished
    (kill -9, a lost host) to another worker (default 3600). Keep it above the longest step: a step still running
    past it is started a second time elsewhere."""
    return _positive("TICK_ASSETS_CELERY_VISIBILITY_TIMEOUT", "3600")


def _positive(name: str, default: str, kind: type = float) -> float:
    raw = os.environ.get(name, default)
    try:
        value = kind(raw)
    except ValueError:
        value = -1
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name}={raw!r}: give a {'whole ' if kind is int else ''}number > 0.")
    return value


def requests_per_second() -> float:
    """TICK_ASSETS_REQUESTS_PER_SECOND: the account's request rate, shared by every process and machine (20)."""
    return _positive("TICK_ASSETS_REQUESTS_PER_SECOND", "20")


def request_burst() -> int:
    """TICK_ASSETS_REQUEST_BURST: requests that may go at once after a quiet spell (5)."""
    return int(_positive("TICK_ASSETS_REQUEST_BURST", "5", int))


def limiter_lease_ttl() -> float:
    """TICK_ASSETS_LIMITER_LEASE_TTL: seconds a request's limiter lease lives unless renewed (default 60): how soon a
    killed process's or lost machine's in-flight slots come back."""
    return _positive("TICK_ASSETS_LIMITER_LEASE_TTL", "60")


def cache_retention() -> str:
    """TICK_ASSETS_CACHE_RETENTION: `keep` every downloaded csv.gz (default), or `delete` it once stored."""
    return os.environ.get("TICK_ASSETS_CACHE_RETENTION", "keep")


def raw_data_types() -> list[str]:
    """TICK_ASSETS_DATA_TYPES: the Tardis data types that get a raw/<data_type> asset."""
    raw = os.environ.get("TICK_ASSETS_DATA_TYPES", DEFAULT_DATA_TYPES)
    chosen = [t.strip() for t in raw.split(",") if t.strip()]
    unknown = [t for t in chosen if t not in DATA_TYPES]
    if unknown or not chosen:
        raise ValueError(
            f"TICK_ASSETS_DATA_TYPES={raw!r}: unknown {unknown}; use a comma-separated subset of {', '.join(DATA_TYPES)}."
        )
    return list(dict.fromkeys(chosen))


def backfill_days_per_run() -> int:
    """TICK_ASSETS_BACKFILL_DAYS_PER_RUN: days per ranged backfill run of the raw assets (0: one run per range)."""
    raw = os.environ.get("TICK_ASSETS_BACKFILL_DAYS_PER_RUN", str(DEFAULT_BACKFILL_DAYS_PER_RUN))
    if not raw.isdigit():
        raise ValueError(
            f"TICK_ASSETS_BACKFILL_DAYS_PER_RUN={raw!r} must be a whole number (0 = the whole range in one run)."
        )
    return int(raw)


def daily_sensor_on() -> bool:
    """TICK_ASSETS_DAILY_SENSOR=on starts the daily export sensor by default (the demo does); default off."""
    raw = os.environ.get("TICK_ASSETS_DAILY_SENSOR", "off").strip().lower()
    if raw not in ("on", "off"):
        raise ValueError(f"TICK_ASSETS_DAILY_SENSOR={raw!r}: use on or off")
    return raw == "on"
