"""The daily sensor: requests each instrument's newly exported day, catches up missed days, never repeats."""

from __future__ import annotations

import datetime as dt

import dagster as dg
import pytest
import requests

from tick_assets.assets.partitions import build_partitions
from tick_assets.assets.raw import build_raw_asset
from tick_assets.assets.resources import TardisResource
from tick_assets.assets.sensors.daily_exports import build_daily_sensor, days_to_request

D = dt.date


@pytest.mark.parametrize(
    ("exported", "requested", "expected"),
    [
        (None, None, []),  # exchange without exports
        (D(2024, 1, 5), None, [D(2024, 1, 5)]),  # first tick: the newest day only, history is a backfill
        (D(2024, 1, 5), D(2024, 1, 5), []),  # nothing new
        (
            D(2024, 1, 8),
            D(2024, 1, 5),
            [D(2024, 1, 6), D(2024, 1, 7), D(2024, 1, 8)],
        ),  # missed days caught up
        (D(2023, 12, 30), None, []),  # before the partitions start
        (
            D(2024, 1, 3),
            D(2023, 12, 1),
            [D(2024, 1, 1), D(2024, 1, 2), D(2024, 1, 3)],
        ),  # clipped to the start
    ],
)
def test_days_to_request(exported, requested, expected) -> None:
    assert days_to_request(exported, requested, D(2024, 1, 1)) == expected


def _tick(sensor, server, instance, cursor, data_dir):
    tardis = TardisResource(datasets_url=server.datasets_url, api_url=server.api_url, data_dir=str(data_dir))
    with dg.build_sensor_context(instance=instance, cursor=cursor, resources={"tardis": tardis}) as context:
        result = sensor(context)
    if isinstance(result, dg.SkipReason):
        return [], cursor, result.skip_message
    return sorted(r.partition_key for r in result.run_requests), result.cursor, ""


def test_sensor_follows_exported_until_and_catches_up(start_emulator, tmp_path) -> None:
    instruments = ["binance-futures:BTCUSDT", "deribit:BTC-PERPETUAL"]
    partitions = build_partitions("2024-01-01", instruments)
    raw = [build_raw_asset(t, partitions_def=partitions) for t in ("trades", "book_snapshot_25")]
    sensor = build_daily_sensor(raw, partitions_def=partitions)
    assert sensor.default_status == dg.DefaultSensorStatus.STOPPED
    instance = dg.DagsterInstance.ephemeral()

    # exportedUntil 2024-01-05T00:00Z: 2024-01-04 is the newest whole day.
    requested, cursor, _ = _tick(
        sensor, start_emulator(exported_until=D(2024, 1, 5)), instance, None, tmp_path
    )
    assert requested == [f"2024-01-04|{i}" for i in instruments]
    # Same export state: nothing again.
    requested, cursor, skip = _tick(
        sensor, start_emulator(exported_until=D(2024, 1, 5)), instance, cursor, tmp_path
    )
    assert requested == [] and "exported through 2024-01-04" in skip
    # The sensor was off for two days: both are requested, none skipped.
    requested, cursor, _ = _tick(
        sensor, start_emulator(exported_until=D(2024, 1, 7)), instance, cursor, tmp_path
    )
    assert requested == [f"{d}|{i}" for d in ("2024-01-05", "2024-01-06") for i in instruments]


def test_sensor_stops_at_an_expired_symbols_last_day_on_the_real_metadata_shape(
    start_emulator, tmp_path
) -> None:
    # The real API: an active symbol's availableTo equals exportedUntil; an expired future's ends earlier.
    instruments = ["deribit:BTC-PERPETUAL", "deribit:BTC-29MAR24"]
    partitions = build_partitions("2024-03-01", instruments)
    sensor = build_daily_sensor(
        [build_raw_asset("trades", partitions_def=partitions)], partitions_def=partitions
    )
    server = start_emulator(exported_until=D(2024, 4, 2))
    body = requests.get(f"{server.api_url}/exchanges/deribit", timeout=5).json()
    ends = {s["id"]: s["availableTo"] for s in body["datasets"]["symbols"]}
    assert ends["BTC-PERPETUAL"] == body["datasets"]["exportedUntil"] == "2024-04-02T00:00:00.000Z"
    assert ends["BTC-29MAR24"] == "2024-03-30T00:00:00.000Z"
    cursor = '{"deribit:BTC-29MAR24": "2024-03-27", "deribit:BTC-PERPETUAL": "2024-03-30"}'
    requested, _, _ = _tick(sensor, server, dg.DagsterInstance.ephemeral(), cursor, tmp_path)
    assert requested == [
        "2024-03-28|deribit:BTC-29MAR24",
        "2024-03-29|deribit:BTC-29MAR24",  # its last day: nothing after the expiry
        "2024-03-31|deribit:BTC-PERPETUAL",
        "2024-04-01|deribit:BTC-PERPETUAL",
    ]
