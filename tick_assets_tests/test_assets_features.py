"""Raw -> features -> analytics with checks, in one ranged run against the emulator; checks fail on bad data."""

from __future__ import annotations

import dagster as dg
import duckdb
from dagster_duckdb import DuckDBResource
from dagster_duckdb_pandas import DuckDBPandasIOManager

from tick_assets.assets.analytics import build_analytics_assets
from tick_assets.assets.checks import build_feature_checks, build_raw_checks
from tick_assets.assets.features import build_feature_assets
from tick_assets.assets.partitions import build_partitions
from tick_assets.assets.raw import build_raw_asset
from tick_assets.assets.resources import FeatureSettings
from tick_assets_tests.test_assets_raw import RANGE_END, RANGE_START, resources

BTC = "binance-futures:BTCUSDT"
PARTITIONS = build_partitions("2024-01-01", [BTC, "deribit:BTC-PERPETUAL"])
POLICY = dg.BackfillPolicy.multi_run(31)


def _platform(server, data_dir, grid_ms: int = 1000):
    book, trades = build_raw_asset("book_snapshot_25", PARTITIONS), build_raw_asset("trades", PARTITIONS)
    depth, bars = build_feature_assets(book, trades, PARTITIONS, POLICY)
    analytics = build_analytics_assets(depth, bars, PARTITIONS, POLICY)
    checks = build_raw_checks(book, trades, PARTITIONS) + build_feature_checks(depth, bars, PARTITIONS)
    warehouse = str(data_dir / "warehouse.duckdb")
    res = {
        **resources(server, data_dir),
        "features": FeatureSettings(grid_step_ms=grid_ms),
        "duckdb": DuckDBResource(database=warehouse),
        "warehouse_io": DuckDBPandasIOManager(database=warehouse),
    }
    return [book, trades, depth, bars, *analytics, *checks], res


def test_ranged_run_flows_from_raw_to_analytics_with_passing_checks(start_emulator, tmp_path) -> None:
    # A realistic book rate (20k snapshots a day) so no minute-long silences trip the warning check.
    assets, res = _platform(start_emulator(scale=20_000), tmp_path)
    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize(
        assets,
        resources=res,
        instance=instance,
        tags={RANGE_START: f"2024-01-02|{BTC}", RANGE_END: f"2024-01-03|{BTC}"},
    )
    assert result.success
    evaluations = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert evaluations == {
        "book_not_crossed": True,
        "local_timestamp_in_order": True,
        "local_after_exchange_timestamp": True,
        "longest_silence": True,
        "trade_values_valid": True,
        "no_duplicate_trade_ids": True,
        "grid_complete": True,
    }
    with duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True) as con:
        con.execute("SET TimeZone = 'UTC'")
        per_day = con.sql(
            "SELECT ts::DATE, count(*), count(mid) FROM features.depth GROUP BY ALL ORDER BY ALL"
        ).fetchall()
        assert [(str(d), n) for d, n, _ in per_day] == [("2024-01-02", 86400), ("2024-01-03", 86400)]
        minutes = con.sql(
            "SELECT count(*), count(DISTINCT instrument) FROM analytics.microstructure_1m"
        ).fetchall()[0]
        assert minutes == (2 * 1440, 1)
        summary = con.sql(
            "SELECT instrument, date::DATE, trades FROM analytics.daily_summary ORDER BY 2"
        ).fetchall()
    assert [(i, str(d)) for i, d, _ in summary] == [(BTC, "2024-01-02"), (BTC, "2024-01-03")]
    chart = tmp_path / "reports" / "daily_summary" / "binance-futures-BTCUSDT" / "2024-01-02.png"
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
