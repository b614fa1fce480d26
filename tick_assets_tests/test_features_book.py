"""features/book: the book rebuilt from emulator incremental_book_L2 days, sampled on the grid, and its proof."""

from __future__ import annotations

import datetime as dt
import gzip
from pathlib import Path

import numpy as np
import pytest

from tick_assets.emulator.synth import write_dataset
from tick_assets.features import microstructure
from tick_assets.features.book import book_features, depth_levels, multi_level_ofi, replay_day
from tick_assets.features.book_proof import proof_figures
from tick_assets.features.grid import DaySlice
from tick_assets.lake import LakeError, LocalLake, connect, partition_file, write_partition
from tick_assets_tests.helpers.real_l2 import REAL_BOOK_SNAPSHOT_25, write_l2_from_snapshots

DAY = dt.date(2024, 1, 2)
INSTRUMENT = ("binance-futures", "BTCUSDT")


def _store(lake: Path, data_type: str, day: dt.date, scale: int = 20_000) -> None:
    src = lake.parent / f"{data_type}-{day}.csv.gz"
    write_dataset(*INSTRUMENT, data_type, day, scale, src)
    write_partition(src, partition_file(lake, f"raw/{data_type}", *INSTRUMENT, day), data_type)


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two emulator days of L2 and the first day's book_snapshot_25."""
    root = tmp_path_factory.mktemp("book") / "lake"
    for day in (DAY, DAY + dt.timedelta(days=1)):
        _store(root, "incremental_book_L2", day)
    _store(root, "book_snapshot_25", DAY)
    return root


def test_the_book_on_the_grid_has_every_feature_and_holds_together(lake) -> None:
    day = DaySlice(*INSTRUMENT, DAY)
    with connect(LocalLake(lake)) as con:
        table, samples = book_features(con, lake, day, depth=50)
    frame = table.to_pandas()
    assert len(frame) == 86_400 and frame["ts"].is_monotonic_increasing
    for k in depth_levels(50):
        assert {f"bid_depth_{k}", f"ask_notional_{k}", f"imbalance_{k}"} <= set(frame.columns)
    for bps in (5, 10, 25, 50, 100):
        assert {f"bid_depth_{bps}bps", f"ask_depth_{bps}bps", f"imbalance_{bps}bps"} <= set(frame.columns)
    before = frame["book_ts"].isna()
    assert 0 < before.sum() < 1_000 and frame.loc[before, "mid"].isna().all()  # no book before the snapshot
    book = frame[~before]
    assert (book["staleness_ms"] >= 0).all() and (book["book_ts"] <= book["ts"]).all()
    assert frame["messages"].sum() == samples.stats.messages
    assert (book["bid_depth_50"] >= book["bid_depth_25"]).all() and (
        book["ask_depth_100bps"] >= book["ask_depth_5bps"]
    ).all()
    assert np.allclose(book["mid"], (book["best_bid"] + book["best_ask"]) / 2)
    assert not book["crossed"].any()
    first = book.iloc[0]
    assert first["bid_price"][0] == first["best_bid"] and len(first["ask_amount"]) == min(
        50, first["ask_levels"]
    )
    # the emulator's book is deep: the bands see what 25 or 50 levels cannot
    assert (book["bid_levels"] > 300).all() and (book["ask_levels"] > 300).all()
    assert (book["bid_depth_100bps"] > 2 * book["bid_depth_50"]).mean() > 0.99
    assert (book["ask_depth_25bps"] > book["ask_depth_25"]).mean() > 0.99
    assert np.all(np.diff(first["bid_price"]) < 0) and np.all(np.diff(first["ask_price"]) > 0)


def test_the_books_order_flow_at_one_level_is_the_analytics_level_1_ofi_and_deeper_levels_add_flow(
    lake,
) -> None:
    with connect(LocalLake(lake)) as con:
        frame = book_features(con, lake, DaySlice(*INSTRUMENT, DAY), depth=50)[0].to_pandas()
    book = frame[frame["mid"].notna()].reset_index(drop=True)
    # two implementations: the book's (samples, side, level) arrays and the analytics' touch columns
    assert np.allclose(book["ofi_1"], microstructure.order_flow_imbalance(book))
    assert frame.loc[frame["mid"].isna(), "ofi_50"].isna().all() and book["ofi_50"].iloc[0] == 0
    assert (
        book["ofi_50"].abs().sum() > 3 * book["ofi_1"].abs().sum()
    )  # the deep book's flow, unseen at the touch
    moved = book[book["messages"] > 0]
    assert (moved["ofi_10"] != moved["ofi_1"]).mean() > 0.5


def test_multi_level_order_flow_imbalance_by_hand() -> None:
    nan = np.nan
    # samples x side (bid, ask) x level: bid 100/99 then the bid ticks up to 101 (new level 0); then the second ask
    # level goes and so does the whole bid side
    price = np.array(
        [
            [[100, 99], [102, 103]],
            [[101, 100], [102, 103]],
            [[101, 100], [102, nan]],
            [[nan, nan], [102, nan]],
        ],
        dtype=float,
    )
    size = np.array(
        [[[5, 7], [4, 6]], [[2, 5], [1, 6]], [[2, 6], [1, nan]], [[nan, nan], [1, nan]]], dtype=float
    )
    has = np.array([True, True, True, True])
    # row 1: bid up: +q_b = 2; ask same price: q_a' - q_a = 4 - 1 = 3. Row 2: nothing at level 1. Row 3: the best
    # bid (size 2) vanishes: a bid at -inf, -q_b' = -2.
    assert multi_level_ofi(price, size, has, 1).tolist() == [0.0, 5.0, 0.0, -2.0]
    # level 2, row 1: bid 99 -> 100 up: +5; ask 103 same: 6 - 6 = 0. Row 2: bid 100 same: 6 - 5 = +1; the ask at
    # 103 (size 6) goes: an ask at +inf, +q_a' = +6. Row 3: the second bid (size 6) goes too: -6 more.
    assert multi_level_ofi(price, size, has, 2).tolist() == [0.0, 10.0, 7.0, -8.0]
    no_first = np.array([False, True, True, True])
    assert np.isnan(multi_level_ofi(price, size, no_first, 2)).tolist() == [True, False, False, False]
    assert multi_level_ofi(price, size, no_first, 2)[1] == 0.0  # the first sample with a book
    with pytest.raises(ValueError, match="between 1 and the 2 levels"):
        multi_level_ofi(price, size, has, 3)


def test_the_rebuilt_top_25_equals_book_snapshot_25_and_the_day_reconciles_with_the_next(lake) -> None:
    with connect(LocalLake(lake)) as con:
        figures = proof_figures(con, lake, DaySlice(*INSTRUMENT, DAY))
        following = proof_figures(con, lake, DaySlice(*INSTRUMENT, DAY + dt.timedelta(days=1)))
    assert figures["snapshots_compared"] > 10_000
    assert figures["snapshots_matched"] == figures["snapshots_compared"] and figures["match_rate"] == 1.0
    assert figures["next_day"] == str(DAY + dt.timedelta(days=1))
    # the next day opens with the book this one closed with (the emulator carries it over midnight)
    assert figures["bid_top25_overlap"] == 1.0 and figures["bid_same_size_share"] == 1.0
    assert figures["ask_same_size_share"] == 1.0 and abs(figures["mid_change_bps"]) < 5
    assert figures["crossed_seconds"] == 0 and figures["invalid_rows"] == 0
    assert following["snapshots_compared"] is None and following["next_day"] is None  # nothing to compare to


def test_a_grouped_dataset_is_refused_with_what_to_do(lake) -> None:
    with (
        connect(LocalLake(lake)) as con,
        pytest.raises(LakeError, match="grouped dataset.*TICK_ASSETS_INSTRUMENTS"),
    ):
        replay_day(con, lake, DaySlice("binance", "SPOT", DAY))


def test_a_next_day_without_data_is_not_compared(lake, tmp_path) -> None:
    """An empty next-day L2 partition (no data, or not offered) is no evidence against the day's book."""
    empty = tmp_path / "empty.csv.gz"
    empty.write_bytes(gzip.compress(b""))
    day = DAY + dt.timedelta(days=2)
    root = tmp_path / "lake2"
    _store(root, "incremental_book_L2", day - dt.timedelta(days=1))
    write_partition(
        empty, partition_file(root, "raw/incremental_book_L2", *INSTRUMENT, day), "incremental_book_L2"
    )
    with connect(LocalLake(root)) as con:
        figures = proof_figures(con, root, DaySlice(*INSTRUMENT, day - dt.timedelta(days=1)))
    assert figures["next_day"] is None and "bid_top25_overlap" not in figures


def test_the_book_rebuilt_from_real_snapshot_values_equals_every_real_snapshot(tmp_path) -> None:
    """Real prices and sizes (the binance-futures head): an L2 stream derived from it, rebuilt, equals each row."""
    lake = tmp_path / "lake"
    real_day = dt.date(2020, 9, 1)
    l2 = tmp_path / "l2.csv.gz"
    rows = write_l2_from_snapshots(REAL_BOOK_SNAPSHOT_25, l2)
    write_partition(
        l2, partition_file(lake, "raw/incremental_book_L2", *INSTRUMENT, real_day), "incremental_book_L2"
    )
    snapshots = tmp_path / "book_snapshot_25.csv.gz"
    snapshots.write_bytes(gzip.compress(REAL_BOOK_SNAPSHOT_25.read_bytes()))
    write_partition(
        snapshots, partition_file(lake, "raw/book_snapshot_25", *INSTRUMENT, real_day), "book_snapshot_25"
    )
    with connect(LocalLake(lake)) as con:
        figures = proof_figures(con, lake, DaySlice(*INSTRUMENT, real_day))
    assert figures["l2_rows"] == rows > 50 and figures["messages"] == 10
    assert figures["snapshots_compared"] == 10 and figures["match_rate"] == 1.0
    assert figures["crossed_seconds"] == 0 and figures["absent_deletes"] == 0
