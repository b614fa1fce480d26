"""End to end like a user: `tick-assets demo` (webserver + daemon headless, a GraphQL backfill of every asset for
2 days of a spot pair, a perpetual and the grouped deribit:OPTIONS against the emulator), then every partition
and warehouse table is checked, and the data types Tardis does not offer are green "not offered" (slow)."""

from __future__ import annotations

import datetime as dt
import gzip
import socket
from pathlib import Path

import duckdb
import pytest

from tick_assets import settings
from tick_assets.stack.demo import run_demo

pytestmark = pytest.mark.slow
DAYS = 2
GRID_ROWS_PER_DAY = 86_400
INSTRUMENTS = "binance:BTCUSDT,deribit:BTC-PERPETUAL,deribit:OPTIONS"
#: Instruments per data type that Tardis (and so the emulator) does not offer it for, of the three above.
NOT_OFFERED = {
    "trades": 0,
    "book_snapshot_25": 1,  # OPTIONS
    "book_snapshot_5": 1,
    "quotes": 0,
    "book_ticker": 2,  # only Binance publishes it
    "derivative_ticker": 2,  # spot and OPTIONS
    "liquidations": 2,
    "incremental_book_L2": 1,
    "options_chain": 2,  # only OPTIONS
}


def _served_rows(cache: Path, data_type: str) -> int:
    """Rows of every csv.gz of `data_type` the emulator served (the client's download cache)."""
    total = 0
    for path in cache.glob(f"*_{data_type}_*.csv.gz"):
        with gzip.open(path, "rb") as f:
            total += max(sum(1 for _ in f) - 1, 0)
    return total


@pytest.mark.timeout(1200)
def test_demo_backfills_every_asset_through_the_daemon(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("TARDIS_API_KEY", raising=False)
    monkeypatch.setenv("TICK_ASSETS_INSTRUMENTS", INSTRUMENTS)  # the demo and its daemon both read it
    data_dir = tmp_path / "data"
    result = run_demo(dt.date(2024, 1, 2), DAYS, 4000, data_dir, port=0, say=lambda _: None)
    partitions = DAYS * len(settings.instruments())

    assert result.backfill_status == "COMPLETED_SUCCESS"
    assert result.ok, result.partitions
    expected_assets = {f"raw/{t}" for t in settings.raw_data_types()} | {
        "features/depth",
        "features/trade_bars",
        "features/book",
        "analytics/microstructure_1m",
        "analytics/book_1m",
        "analytics/daily_summary",
    }
    assert set(result.partitions) == expected_assets
    assert set(result.partitions.values()) == {partitions}
    # Not offered is green and says so: every raw asset has all its partitions, the not-offered ones empty.
    assert {t: result.not_offered[f"raw/{t}"] for t in settings.raw_data_types()} == {
        t: n * DAYS for t, n in NOT_OFFERED.items()
    }
    # Every process the demo started is gone: nothing listens on the webserver's port any more.
    port = int(result.url.rsplit(":", 1)[1])
    with socket.socket() as s, pytest.raises(OSError):
        s.connect(("127.0.0.1", port))

    with duckdb.connect(str(data_dir / "warehouse.duckdb"), read_only=True) as con:
        con.execute("SET TimeZone = 'UTC'")
        for data_type in settings.raw_data_types():
            in_views = con.execute(f'SELECT count(*) FROM raw."{data_type}"').fetchone()[0]
            served = _served_rows(data_dir / "tardis", data_type)
            # The views, the materialization metadata and what the emulator served agree row for row.
            assert in_views == result.rows[f"raw/{data_type}"] == served > 0, data_type
        for table in ("features.depth", "features.trade_bars", "features.book"):
            per_partition = con.execute(
                f"SELECT count(*) FROM {table} GROUP BY instrument, ts::DATE"
            ).fetchall()
            assert sorted(n for (n,) in per_partition) == [GRID_ROWS_PER_DAY] * partitions, table
        assert con.execute("SELECT count(*) FROM features.depth WHERE mid IS NOT NULL").fetchone()[0] > 0
        assert con.execute("SELECT count(*) FROM features.book WHERE mid IS NOT NULL").fetchone()[0] > 0
        minutes = con.execute("SELECT count(*) FROM analytics.microstructure_1m").fetchone()[0]
        assert minutes == result.rows["analytics/microstructure_1m"] == 1440 * partitions
        days = con.execute(
            "SELECT count(*), count(DISTINCT (instrument, date)) FROM analytics.daily_summary"
        ).fetchone()
        assert days == (partitions, partitions)
        # the daily summary carries the whole book's depth: within 100 bps far beyond the 25 snapshot levels
        deep = con.execute(
            "SELECT min(depth_100bps_mean / depth_25_levels_mean) FROM analytics.daily_summary"
        ).fetchone()[0]
        assert deep > 1.5  # 2.3 on deribit's coarser ticks at this scale, far more on binance-futures
        assert con.execute("SELECT count(*) FROM analytics.book_1m").fetchone()[0] == 1440 * partitions
    charts = sorted((data_dir / "reports" / "daily_summary").glob("*/*.png"))
    assert len(charts) == partitions
