"""Environment configuration: defaults that work, and clear errors naming the variable."""

from __future__ import annotations

import pytest

from tick_assets import settings


def test_defaults(monkeypatch) -> None:
    for name in ("TICK_ASSETS_DATA_TYPES", "TICK_ASSETS_INSTRUMENTS", "TICK_ASSETS_BACKFILL_DAYS_PER_RUN"):
        monkeypatch.delenv(name, raising=False)
    assert settings.instruments() == ["binance-futures:BTCUSDT", "deribit:BTC-PERPETUAL"]
    assert settings.raw_data_types()[:2] == ["trades", "book_snapshot_25"]
    assert settings.backfill_days_per_run() == 31


@pytest.mark.parametrize(
    "name, value, message",
    [
        ("TICK_ASSETS_DATA_TYPES", "trades,orderbook", r"unknown \['orderbook'\]"),
        ("TICK_ASSETS_DATA_TYPES", " , ", "TICK_ASSETS_DATA_TYPES"),
        ("TICK_ASSETS_INSTRUMENTS", "BTCUSDT", "not 'exchange:SYMBOL'"),
        ("TICK_ASSETS_INSTRUMENTS", "deribit:BTC|USD", "not 'exchange:SYMBOL'"),
        ("TICK_ASSETS_INSTRUMENTS", "deribit:X,deribit:X", "distinct"),
        ("TICK_ASSETS_INSTRUMENTS", "binance-futures:btcusdt", "binance-futures:BTCUSDT"),
        ("TICK_ASSETS_BACKFILL_DAYS_PER_RUN", "-3", "whole number"),
        ("TICK_ASSETS_START_DATE", "2024-13-01", "YYYY-MM-DD"),
        ("TICK_ASSETS_EXECUTOR", "dask", "multiprocess, celery, k8s"),
        ("TICK_ASSETS_CELERY_VISIBILITY_TIMEOUT", "0", "number > 0"),
        ("TICK_ASSETS_REQUESTS_PER_SECOND", "fast", "number > 0"),
        ("TICK_ASSETS_REQUEST_BURST", "1.5", "whole number > 0"),
        ("TICK_ASSETS_LIMITER_LEASE_TTL", "-1", "number > 0"),
    ],
)
def test_bad_values_name_the_variable(monkeypatch, name, value, message) -> None:
    monkeypatch.setenv(name, value)
    getter = {
        "TICK_ASSETS_DATA_TYPES": settings.raw_data_types,
        "TICK_ASSETS_INSTRUMENTS": settings.instruments,
        "TICK_ASSETS_BACKFILL_DAYS_PER_RUN": settings.backfill_days_per_run,
        "TICK_ASSETS_START_DATE": settings.start_date,
        "TICK_ASSETS_EXECUTOR": settings.executor_name,
        "TICK_ASSETS_CELERY_VISIBILITY_TIMEOUT": settings.celery_visibility_timeout,
        "TICK_ASSETS_REQUESTS_PER_SECOND": settings.requests_per_second,
        "TICK_ASSETS_REQUEST_BURST": settings.request_burst,
        "TICK_ASSETS_LIMITER_LEASE_TTL": settings.limiter_lease_ttl,
    }[name]
    with pytest.raises(ValueError, match=message):
        getter()
