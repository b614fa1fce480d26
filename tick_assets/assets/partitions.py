"""Partitions of the raw and feature assets: UTC day x instrument (`exchange:SYMBOL`), from configuration."""

from __future__ import annotations

import datetime as dt

import dagster as dg

from tick_assets import settings
from tick_assets.features.grid import DaySlice
from tick_assets.lake import DayRequest
from tick_assets.tardis.urls import parse_date

DATE = "date"
INSTRUMENT = "instrument"


def build_partitions(start_date: str, instruments: list[str]) -> dg.MultiPartitionsDefinition:
    """Daily UTC partitions from `start_date` (up to yesterday) crossed with the instrument keys (validated)."""
    for instrument in instruments:
        settings.validate_instrument(instrument)
    return dg.MultiPartitionsDefinition(
        {
            DATE: dg.DailyPartitionsDefinition(start_date=start_date, timezone="UTC"),
            INSTRUMENT: dg.StaticPartitionsDefinition(instruments),
        }
    )


def configured_partitions() -> dg.MultiPartitionsDefinition:
    """The partitions of TICK_ASSETS_START_DATE x TICK_ASSETS_INSTRUMENTS."""
    return build_partitions(settings.start_date().isoformat(), settings.instruments())


#: Dagster run tags of a ranged run (its first and last partition key).
RANGE_START = "dagster/asset_partition_range_start"
RANGE_END = "dagster/asset_partition_range_end"


#: Ranged backfill runs of at most 31 partitions: what `configured_backfill_policy` gives by default.
DEFAULT_BACKFILL_POLICY = dg.BackfillPolicy.multi_run(settings.DEFAULT_BACKFILL_DAYS_PER_RUN)


def configured_backfill_policy() -> dg.BackfillPolicy:
    """Ranged backfill runs of at most TICK_ASSETS_BACKFILL_DAYS_PER_RUN partitions (0: one run per range)."""
    days_per_run = settings.backfill_days_per_run()
    return dg.BackfillPolicy.multi_run(days_per_run) if days_per_run else dg.BackfillPolicy.single_run()


def split_instrument(instrument: str) -> tuple[str, str]:
    """`binance-futures:BTCUSDT` -> (`binance-futures`, `BTCUSDT`)."""
    exchange, _, symbol = instrument.partition(":")
    return exchange, symbol


def partition_key(day: dt.date | str, instrument: str) -> str:
    """The partition key of a day and an instrument: `2024-01-02|binance-futures:BTCUSDT`."""
    return f"{parse_date(day):%Y-%m-%d}|{instrument}"


def parse_partition_key(key: str) -> tuple[dt.date, str]:
    """`2024-01-02|binance-futures:BTCUSDT` -> (date(2024, 1, 2), `binance-futures:BTCUSDT`)."""
    day, sep, instrument = key.partition("|")
    if not sep or not instrument:
        raise ValueError(f"partition key {key!r} is not `YYYY-MM-DD|exchange:SYMBOL`")
    return parse_date(day), instrument


def day_requests(partition_keys: list[str], data_type: str) -> list[DayRequest]:
    """One lake request per partition key of the run (a single key or a whole ranged backfill run)."""
    requests = []
    for key in partition_keys:
        day, instrument = parse_partition_key(key)
        exchange, symbol = split_instrument(instrument)
        requests.append(DayRequest(data_type, exchange, symbol, day, key=key))
    return requests


def day_slices(partition_keys: list[str], step_ms: int = 1000) -> list[tuple[str, DaySlice]]:
    """(partition key, grid slice) for every partition key of the run."""
    slices = []
    for key in partition_keys:
        day, instrument = parse_partition_key(key)
        exchange, symbol = split_instrument(instrument)
        slices.append((key, DaySlice(exchange, symbol, day, step_ms)))
    return slices
