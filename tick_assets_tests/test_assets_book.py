"""features/book as a Dagster asset: a ranged run from raw L2 and book snapshots to the book grid, and its proof
checks, one verdict per partition."""

from __future__ import annotations

import struct
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from tick_assets.assets.analytics import build_analytics_assets
from tick_assets.assets.checks import build_book_checks
from tick_assets.assets.features import build_book_asset, build_feature_assets
from tick_assets.assets.partitions import RANGE_END, RANGE_START, build_partitions
from tick_assets.assets.raw import build_raw_asset
from tick_assets.assets.resources import FeatureSettings
from tick_assets_tests.helpers.runs import resources

BTC = "binance-futures:BTCUSDT"
PARTITIONS = build_partitions("2024-01-01", [BTC, "deribit:BTC-PERPETUAL"])
POLICY = dg.BackfillPolicy.multi_run(31)


def test_a_ranged_run_rebuilds_each_days_book_and_proves_it(start_emulator, tmp_path) -> None:
    l2 = build_raw_asset("incremental_book_L2", partitions_def=PARTITIONS)
    snapshots = build_raw_asset("book_snapshot_25", partitions_def=PARTITIONS)
    book = build_book_asset(l2, partitions_def=PARTITIONS, backfill_policy=POLICY)
    checks = build_book_checks(book, partitions_def=PARTITIONS)
    keys = [f"2024-01-02|{BTC}", f"2024-01-03|{BTC}"]
    result = dg.materialize(
        [l2, snapshots, book, *checks],
        resources={**resources(start_emulator(scale=20_000), tmp_path), "features": FeatureSettings()},
        instance=dg.DagsterInstance.ephemeral(),
        tags={RANGE_START: keys[0], RANGE_END: keys[1]},
    )
    assert result.success
    verdicts = sorted((e.check_name, e.partition, e.passed) for e in result.get_asset_check_evaluations())
    names = ("book_matches_snapshot_25", "book_reconciles_with_next_day", "book_replay_sane", "grid_complete")
    assert verdicts == [(n, k, True) for n in names for k in keys]
    by = {(e.check_name, e.partition): e.metadata for e in result.get_asset_check_evaluations()}
    matched = by[("book_matches_snapshot_25", keys[0])]
    assert matched["match_rate"].value == 1.0 and matched["snapshots_compared"].value > 10_000
    assert by[("book_reconciles_with_next_day", keys[0])]["next_day"].text == "2024-01-03"
    assert "next_day" not in by[("book_reconciles_with_next_day", keys[1])]  # the next day is not in the lake
    meta = {
        m.partition: m.metadata
        for m in result.asset_materializations_for_node("features__book")
        if m.partition is not None
    }
    assert (
        meta[keys[0]]["dagster/row_count"].value == 86_400 and meta[keys[0]]["rows_with_book"].value > 86_000
    )
    with duckdb.connect() as con:
        rows = con.sql(
            f"SELECT count(*), count(mid), max(bid_levels) FROM read_parquet('{tmp_path}/lake/features/book/*/*/*/*.parquet')"
        ).fetchall()[0]
    assert rows[0] == 2 * 86_400 and rows[1] > 170_000 and rows[2] > 0


def test_the_analytics_show_what_25_levels_could_not(start_emulator, tmp_path) -> None:
    raw = {
        t: build_raw_asset(t, partitions_def=PARTITIONS)
        for t in ("incremental_book_L2", "book_snapshot_25", "trades")
    }
    depth, bars = build_feature_assets(
        raw["book_snapshot_25"], raw["trades"], partitions_def=PARTITIONS, backfill_policy=POLICY
    )
    book = build_book_asset(raw["incremental_book_L2"], partitions_def=PARTITIONS, backfill_policy=POLICY)
    analytics = build_analytics_assets(depth, bars, book, partitions_def=PARTITIONS, backfill_policy=POLICY)
    assert [a.key.to_user_string() for a in analytics] == [
        "analytics/microstructure_1m",
        "analytics/book_1m",
        "analytics/daily_summary",
    ]
    key = f"2024-01-02|{BTC}"
    result = dg.materialize(
        [*raw.values(), depth, bars, book, *analytics],
        resources={**resources(start_emulator(scale=20_000), tmp_path), "features": FeatureSettings()},
        instance=dg.DagsterInstance.ephemeral(),
        partition_key=key,
    )
    assert result.success
    minutes = result.output_for_node("analytics__book_1m")
    assert len(minutes) == 1_440 and minutes["depth_100bps_mean"].notna().sum() > 1_430
    # the whole book: within 100 bps of the mid lies many times what the 25 snapshot levels hold
    with_book = minutes.dropna(subset=["depth_100bps_mean"])
    assert (with_book["depth_100bps_mean"] > 3 * with_book["depth_25_levels_mean"]).all()
    assert (with_book["depth_25bps_mean"] > with_book["depth_25_levels_mean"]).mean() > 0.99
    assert (with_book["levels_mean"] > 300).all() and with_book["crossed_or_locked_share"].max() == 0
    summary = result.output_for_node("analytics__daily_summary")
    row = summary.iloc[0]
    assert row["depth_100bps_mean"] == pytest.approx(with_book["depth_100bps_mean"].mean())
    assert row["book_ofi_50"] == pytest.approx(minutes["ofi_50"].sum())
    meta = result.asset_materializations_for_node("analytics__daily_summary")[0].metadata
    assert meta["depth_100bps_mean"].value > 3 * meta["depth_25_levels_mean"].value
    png = Path(meta["chart_path"].path).read_bytes()
    assert png.startswith(b"\x89PNG") and struct.unpack(">II", png[16:24]) == (800, 960)  # six panels
