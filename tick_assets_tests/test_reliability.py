"""Reliability under faults: a backfill of the whole graph through Dagster against a faulty emulator lands the
same data as a fault-free one (slow)."""

from __future__ import annotations

import datetime as dt

import pytest

from tick_assets import settings
from tick_assets.emulator.faults import FaultConfig
from tick_assets.emulator.server import EmulatorConfig
from tick_assets.stack.soak import compare, run_backfill

pytestmark = pytest.mark.slow
INSTRUMENTS = ["binance-futures:BTCUSDT", "deribit:BTC-PERPETUAL"]
#: Every transient fault kind, with stalls longer than the read timeout below (seed chosen so each kind occurs).
SOAK_FAULTS = FaultConfig(
    throttle=0.1, server_error=0.1, reset=0.05, truncate=0.05, stall=0.05, stall_seconds=4, seed=7
)


@pytest.mark.timeout(600)
def test_a_faulty_backfill_lands_the_same_data_as_a_clean_one(synth_cache, tmp_path) -> None:
    days, first = 2, dt.date(2024, 1, 2)
    types = settings.raw_data_types()
    clean = run_backfill(
        EmulatorConfig(cache_dir=synth_cache, scale=2000), tmp_path / "clean", first, days, INSTRUMENTS, types
    )
    faulty = run_backfill(
        EmulatorConfig(cache_dir=synth_cache, scale=2000, faults=SOAK_FAULTS),
        tmp_path / "faulty",
        first,
        days,
        INSTRUMENTS,
        types,
        read_timeout_seconds=1.5,
    )
    # The faults really happened, every kind of them.
    assert set(faulty.faults) == {"throttle", "server_error", "reset", "truncate", "stall"}, faulty.faults
    assert faulty.emulator["dataset_requests"] > clean.emulator["dataset_requests"]
    for run in (clean, faulty):
        assert run.failed_runs == 0
        assert set(run.partitions.values()) == {days * len(INSTRUMENTS)}, run.partitions
    # Same files and tables, same rows, same values: nothing lost, nothing duplicated, nothing half-written.
    # One file per partition of each raw type and of features/depth, trade_bars, analytics/microstructure_1m,
    # daily_summary, and of features/book and analytics/book_1m where incremental_book_L2 is one of the types.
    derived = 4 + 2 * ("incremental_book_L2" in types)
    lake_files = days * len(INSTRUMENTS) * (len(types) + derived)
    assert sum(k.startswith("lake/") for k in clean.fingerprint) == lake_files
    assert compare(clean.fingerprint, faulty.fingerprint) == {
        "items": lake_files,
        "rows_compared": sum(r for r, _ in clean.fingerprint.values()),
        "rows_lost": 0,
        "rows_extra": 0,
        "items_differing": 0,
    }
    assert not list((tmp_path / "faulty").rglob("*.tmp")) and not list(
        (tmp_path / "faulty").rglob("*.unconfirmed")
    )
