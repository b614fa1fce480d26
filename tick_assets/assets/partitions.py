"""Partitions of the raw and feature assets: UTC day x instrument (`exchange:SYMBOL`), from configuration."""

from __future__ import annotations

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


def split_instrument(instrument: str) -> tuple[str, str]:
    """`binance-futures:BTCUSDT` -> (`binance-futures`, `BTCUSDT`)."""
    exchange, _, symbol = instrument.partition(":")
    return exchange, symbol


def day_requests(
    partitions_def: dg.MultiPartitionsDefinition, partition_keys: list[str], data_type: str
) -> list[DayRequest]:
    """One lake request per partition key of the run (a single key or a whole ranged backfill run)."""
    requests = []
    for key in partition_keys:
        dims = partitions_def.get_partition_key_from_str(key).keys_by_dimension
        exchange, symbol = split_instrument(dims[INSTRUMENT])
        requests.append(DayRequest(data_type, exchange, symbol, parse_date(dims[DATE]), key=key))
    return requests


def day_slices(
    partitions_def: dg.MultiPartitionsDefinition, partition_keys: list[str], step_ms: int = 1000
) -> list[tuple[str, DaySlice]]:
    """(partition key, grid slice) for every partition key of the run."""
    slices = []
    for key in partition_keys:
        dims = partitions_def.get_partition_key_from_str(key).keys_by_dimension
        exchange, symbol = split_instrument(dims[INSTRUMENT])
        slices.append((key, DaySlice(exchange, symbol, parse_date(dims[DATE]), step_ms)))
    return slices
