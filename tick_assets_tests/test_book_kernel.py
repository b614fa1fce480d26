"""The compiled book kernel against the plain-Python reference on random streams, and its edge cases."""

from __future__ import annotations

import itertools

import duckdb
import numpy as np
import pyarrow as pa
import pytest

from tick_assets.book import BookReplay, BookReplayError
from tick_assets.book.reference import reference_replay
from tick_assets.book.replay import L2_COLUMNS_SQL, feed_batches

BANDS = (5, 10, 25, 50, 100)


def _random_stream(seed: int, n: int = 3_000) -> list[tuple[int, bool, bool, float, float]]:
    """Messages of 1-6 rows around a drifting mid; pre-snapshot rows, re-snapshots (one with an empty side),
    deletes of absent levels, zero amounts, crossing updates, a few invalid rows."""
    rng = np.random.default_rng(seed)
    rows: list[tuple[int, bool, bool, float, float]] = []
    ts = 1_000_000
    for _ in range(int(rng.integers(0, 5))):  # updates before the first snapshot
        rows.append((ts, False, bool(rng.integers(2)), 100.0 + int(rng.integers(-5, 5)) * 0.5, 1.0))
    mid = 1000
    messages = n // 3
    snapshot_at = {0, messages // 3, 2 * messages // 3}
    for m in range(messages):
        ts += int(rng.integers(1, 4_000))
        if m in snapshot_at or rng.random() < 0.002:
            empty_side = 1 if m == messages // 3 else -1
            for side in (0, 1):
                if side == empty_side:
                    continue
                for k in range(int(rng.integers(5, 60))):
                    price = (mid - 1 - k) if side == 0 else (mid + 1 + k)
                    rows.append((ts, True, side == 1, price * 0.5, float(rng.integers(1, 50))))
            continue
        mid += int(rng.integers(-2, 3))
        for _ in range(int(rng.integers(1, 7))):
            side = int(rng.integers(2))
            dist = int(rng.geometric(0.15)) - (
                1 if rng.random() < 0.05 else 0
            )  # now and then at or over the mid
            price = (mid - dist) * 0.5 if side == 0 else (mid + dist) * 0.5
            amount = 0.0 if rng.random() < 0.3 else float(np.round(rng.exponential(10), 3))
            if rng.random() < 0.002:
                amount = float("nan")
            rows.append((ts, False, side == 1, price, amount))
    return rows


def _arrays(rows):
    cols = list(zip(*rows, strict=True))
    return [
        np.array(cols[0], dtype=np.int64),
        np.array(cols[1]),
        np.array(cols[2]),
        np.array(cols[3]),
        np.array(cols[4]),
    ]


def _kernel(rows, sample_ts, depth, splits=(), end_ts=None, capacity=4):
    replay = BookReplay(sample_ts, depth=depth, bands_bps=BANDS, capacity=capacity)
    arrays = _arrays(rows)
    edges = [0, *sorted(splits), len(rows)]
    for lo, hi in itertools.pairwise(edges):
        replay.feed(*(a[lo:hi] for a in arrays))
    return replay.finish(end_ts), replay


def _assert_same(ours, ref) -> None:
    for name in ("top_price", "top_size", "band_depth", "levels", "last_ts", "messages"):
        np.testing.assert_array_equal(getattr(ours, name), getattr(ref, name), err_msg=name)
    assert ours.stats == ref.stats


@pytest.mark.parametrize("seed", range(12))
def test_the_kernel_equals_the_plain_python_book_on_random_streams(seed) -> None:
    rows = _random_stream(seed)
    rng = np.random.default_rng(1000 + seed)
    first, last = rows[0][0], rows[-1][0]
    sample_ts = np.sort(rng.integers(first - 10_000, last + 10_000, 400))
    sample_ts = np.concatenate([sample_ts, [r[0] for r in rows[::97]]])  # exactly at message times too
    sample_ts.sort()
    splits = rng.integers(1, len(rows), 7)  # chunk boundaries anywhere, inside messages too
    depth = int(rng.integers(1, 30))
    ours, _ = _kernel(rows, sample_ts, depth, splits, end_ts=last + 5_000)
    ref = reference_replay(rows, sample_ts, depth, BANDS, end_ts=last + 5_000)
    _assert_same(ours, ref)
    stats = ours.stats
    assert stats.snapshots >= 3 and stats.absent_deletes > 0 and stats.crossed_us + stats.locked_us > 0


def test_a_snapshot_split_across_chunks_and_a_reconnect_replace_the_book() -> None:
    rows = [
        (10, False, False, 99.0, 1.0),  # before the first snapshot: counted, skipped
        (20, True, False, 100.0, 5.0),
        (20, True, True, 101.0, 6.0),
        (20, True, True, 102.0, 7.0),
        (30, False, True, 101.0, 0.0),  # delete
        (30, False, False, 98.0, 0.0),  # delete of an absent level
        (40, True, False, 90.0, 1.0),  # reconnect: a new snapshot with an empty ask side
    ]
    for split in range(1, len(rows)):
        samples, replay = _kernel(rows, [15, 20, 25, 30, 39, 40, 50], depth=3, splits=[split])
        np.testing.assert_array_equal(
            samples.levels, [[-1, -1], [1, 2], [1, 2], [1, 1], [1, 1], [1, 0], [1, 0]]
        )
        np.testing.assert_array_equal(samples.top_price[2, 1], [101.0, 102.0, np.nan])
        np.testing.assert_array_equal(samples.top_price[3, 1], [102.0, np.nan, np.nan])
        np.testing.assert_array_equal(samples.top_price[6, 0], [90.0, np.nan, np.nan])
        assert (samples.band_depth[6] == 0).all()  # one-sided: no mid, empty bands
        assert np.isnan(samples.band_depth[0]).all()  # no book yet
        assert samples.stats.pre_snapshot_rows == 1 and samples.stats.snapshots == 2
        assert samples.stats.absent_deletes == 1 and samples.stats.resnapshots == 1
        bids, asks = replay.book()
        assert bids.tolist() == [[90.0, 1.0]] and asks.shape == (0, 2)


def test_the_book_grows_past_its_capacity_and_reads_the_whole_book() -> None:
    rows = [(1, True, False, float(p), 1.0) for p in range(1, 5_001)] + [
        (1, True, True, float(p), 2.0) for p in range(5_001, 6_001)
    ]
    samples, replay = _kernel(rows, [1], depth=60, capacity=8)
    assert samples.levels.tolist() == [[5_000, 1_000]]
    assert samples.top_price[0, 0, 0] == 5_000.0 and samples.top_price[0, 1, 0] == 5_001.0
    mid = 5_000.5
    assert samples.band_depth[0, 0, -1] == sum(1.0 for p in range(1, 5_001) if p >= mid - mid * 0.01)
    assert replay.book()[0].shape == (5_000, 2)


def test_rows_going_backwards_and_a_day_without_snapshot_fail_with_what_to_do() -> None:
    with pytest.raises(BookReplayError, match="goes backwards at row 2"):
        _kernel([(1, True, False, 1.0, 1.0), (5, False, False, 1.0, 2.0), (4, False, False, 1.0, 3.0)], [], 1)
    with pytest.raises(BookReplayError, match="no snapshot in 2 incremental_book_L2 rows"):
        _kernel([(1, False, False, 1.0, 1.0), (5, False, False, 1.0, 2.0)], [], 1)
    empty = BookReplay([1, 2]).finish()
    assert empty.levels.tolist() == [[-1, -1], [-1, -1]] and empty.stats.rows == 0


def _batch(rows: list[tuple]) -> pa.RecordBatch:
    """Rows as the lake query gives them (nulls allowed): local_timestamp, is_snapshot, is_ask, price, amount."""
    cols = list(zip(*rows, strict=True))
    types = [pa.int64(), pa.bool_(), pa.bool_(), pa.float64(), pa.float64()]
    names = ["local_timestamp", "is_snapshot", "is_ask", "price", "amount"]
    return pa.record_batch([pa.array(c, type=t) for c, t in zip(cols, types, strict=True)], names=names)


def test_rows_without_a_side_are_skipped_as_invalid_and_without_a_time_fail_with_what_to_do() -> None:
    snapshot = [(1, True, False, 100.0, 1.0), (1, True, True, 101.0, 1.0)]
    replay = BookReplay([10])
    feed_batches(replay, [_batch([*snapshot, (5, False, None, 102.0, 7.0), (6, None, False, 99.0, 2.0)])])
    done = replay.finish()
    # neither row became a bid (a NULL side is not a bid): the book is the snapshot's
    assert done.stats.invalid_rows == 2 and done.stats.rows == 2
    assert done.top_price[0, :, 0].tolist() == [100.0, 101.0] and done.levels[0].tolist() == [1, 1]
    # a row of unknown is_snapshot inside the snapshot neither ends it nor starts another one
    replay = BookReplay([10])
    rows = [(1, True, False, 100.0, 1.0), (1, True, False, 99.0, 1.0), (1, None, True, 101.5, 1.0)]
    feed_batches(replay, [_batch([*rows, (1, True, True, 101.0, 1.0), (1, True, True, 102.0, 1.0)])])
    done = replay.finish()
    assert done.stats.snapshots == 1 and done.stats.invalid_rows == 1 and done.levels[0].tolist() == [2, 2]
    with pytest.raises(BookReplayError, match="row 3 has no local_timestamp"):
        feed_batches(
            BookReplay([]),
            [_batch(snapshot), _batch([(2, False, False, 1.0, 1.0), (None, False, False, 1.0, 1.0)])],
        )


def test_the_lake_query_reads_an_unknown_side_as_no_side() -> None:
    with duckdb.connect() as con:
        got = con.sql(
            f"SELECT {L2_COLUMNS_SQL} FROM (VALUES (1, true, 'ask', 1.0, 1.0), (1, true, 'bid', 1.0, 1.0), "
            "(2, false, 'sell', 1.0, 1.0)) t(local_timestamp, is_snapshot, side, price, amount)"
        ).fetchall()
    assert [r[2] for r in got] == [True, False, None]


def test_crossed_time_is_counted_only_up_to_the_end_of_the_day() -> None:
    # crossed from t=10 (a bid above the ask) until a row received after the day's end at t=100
    rows = [(1, True, False, 100.0, 1.0), (1, True, True, 101.0, 1.0), (10, False, False, 102.0, 1.0)]
    rows.append((150, False, False, 102.0, 0.0))
    replay = BookReplay([])
    replay.account_until(100)
    arrays = _arrays(rows)
    replay.feed(*arrays)
    assert replay.finish(100).stats.crossed_us == 90
    assert _kernel(rows, [], 1)[0].stats.crossed_us == 140  # without an end: up to the last message
