"""features/book as a Dagster asset: a ranged run from raw L2 and book snapshots to the book grid, and its proof
checks, one verdict per partition."""

from __future__ import annotations

import dagster as dg
import duckdb

from tick_assets.assets.checks import build_book_checks
from tick_assets.assets.features import build_book_asset
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
