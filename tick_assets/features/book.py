"""features/book: the whole order book rebuilt from incremental_book_L2, sampled on the UTC grid of features/depth.

Row t is the book after every message received at or before t (`local_timestamp`): its top N levels, the touch,
depth and notional at 1/5/10/25/50/N levels, depth within 5/10/25/50/100 bps of the mid over the *whole* book,
imbalances, the multi-level order-flow imbalance since the previous row at those level counts, levels per side,
staleness, messages applied in (t - step, t], and crossed/locked flags. Before the day's first snapshot a row has no
book (NULL features). No Dagster imports.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa

from tick_assets.book import BookReplay, BookSamples, replay_lake_file
from tick_assets.book.replay import DEFAULT_BANDS_BPS, DEFAULT_DEPTH
from tick_assets.features.grid import MICROS_PER_DAY, DaySlice
from tick_assets.lake.errors import LakeError
from tick_assets.lake.store import Lake, as_lake

L2_DATASET = "raw/incremental_book_L2"
DEPTH_LEVELS = (1, 5, 10, 25, 50)
SIDES = ("bid", "ask")


def depth_levels(depth: int) -> tuple[int, ...]:
    """The level counts whose depth and notional are reported: 1/5/10/25/50 up to `depth`, and `depth`."""
    return tuple(sorted({k for k in DEPTH_LEVELS if k <= depth} | {depth}))


def grid_times(day: DaySlice) -> np.ndarray:
    """The grid of the day in epoch microseconds (as DaySlice.grid_sql)."""
    return np.arange(day.start_us, day.start_us + MICROS_PER_DAY, day.step_us, dtype=np.int64)


def replay_day(
    con: duckdb.DuckDBPyConnection,
    lake: Lake | Path,
    day: DaySlice,
    sample_ts: np.ndarray | None = None,
    depth: int = DEFAULT_DEPTH,
    bands_bps: tuple[int, ...] = DEFAULT_BANDS_BPS,
) -> tuple[BookSamples, BookReplay]:
    """Rebuild one day's book from its lake incremental_book_L2 partition, sampled at `sample_ts` (the grid)."""
    if day.grouped:
        raise LakeError(
            f"{day.instrument} is a grouped dataset: its incremental_book_L2 rows belong to many instruments, and "
            "a book is one instrument's. Add the members you want (e.g. binance:BTCUSDT) to TICK_ASSETS_INSTRUMENTS."
        )
    lake = as_lake(lake)
    uri = lake.require(
        day.partition(L2_DATASET).relpath, f"materialize {L2_DATASET} for {day.day} {day.instrument}"
    )
    replay = BookReplay(grid_times(day) if sample_ts is None else sample_ts, depth=depth, bands_bps=bands_bps)
    samples = replay_lake_file(con, uri, replay, end_ts=day.start_us + MICROS_PER_DAY)
    return samples, replay


def cumulative_order_flow(price: np.ndarray, size: np.ndarray, has: np.ndarray) -> np.ndarray:
    """Multi-level order-flow imbalance (Xu, Gould & Howison 2018) between consecutive samples, summed over the
    first k levels, as a (samples, levels) array whose column k - 1 is the k-level OFI.

    Per level m: q_b 1[P_b >= P_b'] - q_b' 1[P_b <= P_b'] - q_a 1[P_a <= P_a'] + q_a' 1[P_a >= P_a'] (' the
    previous sample). `price`/`size` are (samples, side, level), NaN where a side has fewer levels; an absent
    level is a bid at -inf or an ask at +inf of size 0, the usual convention (a vanishing best bid of size q
    adds -q). 0 at a day's first sample with a book, NaN where there is no book. One side at a time: a few
    (samples, levels) temporaries, not (samples, side, levels) ones."""
    total = np.zeros(price.shape[::2], dtype=np.float64)
    for s, absent in ((0, -np.inf), (1, np.inf)):
        p = np.where(np.isnan(price[:, s, :]), absent, price[:, s, :])
        q = np.nan_to_num(size[:, s, :])
        p0, q0 = np.full_like(p, absent), np.zeros_like(q)
        p0[1:], q0[1:] = p[:-1], q[:-1]
        up, down = p >= p0, p <= p0
        if s == 0:  # bids: a higher or same bid adds its size, a lower or same one takes the old size
            total += np.where(up, q, 0.0)
            total -= np.where(down, q0, 0.0)
        else:  # asks: a lower or same ask takes its size, a higher or same one adds back the old size
            total += np.where(up, q0, 0.0)
            total -= np.where(down, q, 0.0)
    np.cumsum(total, axis=1, out=total)
    previous = np.zeros_like(has)
    previous[1:] = has[:-1]
    total[has & ~previous] = 0.0
    total[~has] = np.nan
    return total


def multi_level_ofi(price: np.ndarray, size: np.ndarray, has: np.ndarray, levels: int) -> np.ndarray:
    """The `levels`-level order-flow imbalance between consecutive samples (see cumulative_order_flow)."""
    if not 1 <= levels <= price.shape[2]:
        raise ValueError(f"levels must be between 1 and the {price.shape[2]} levels given, got {levels}")
    return cumulative_order_flow(price[:, :, :levels], size[:, :, :levels], has)[:, levels - 1]


def _list_column(prices: np.ndarray, has: np.ndarray) -> pa.ListArray:
    """Per row the values that are present (levels are contiguous from the best), NULL where there is no book."""
    present = ~np.isnan(prices)
    offsets = np.concatenate([[0], np.cumsum(present.sum(axis=1))]).astype(np.int32)
    return pa.ListArray.from_arrays(pa.array(offsets), pa.array(prices[present]), mask=pa.array(~has))


def _nullable(values: np.ndarray, valid: np.ndarray) -> pa.Array:
    return pa.array(values, mask=~valid | (np.isnan(values) if values.dtype.kind == "f" else False))


def book_table(samples: BookSamples, day: DaySlice) -> pa.Table:
    """The features/book rows of one day from its samples."""
    has = samples.has_book
    n = samples.sample_ts.size
    price, size = samples.top_price, samples.top_size
    depth = price.shape[2]
    cols: dict[str, pa.Array] = {
        "instrument": pa.array([day.instrument] * n),
        "ts": pa.array(samples.sample_ts, type=pa.timestamp("us", tz="UTC")),
        "book_ts": pa.array(samples.last_ts, type=pa.timestamp("us", tz="UTC"), mask=~has),
        "staleness_ms": _nullable((samples.sample_ts - samples.last_ts) / 1000.0, has),
        "messages": pa.array(np.diff(samples.messages, prepend=0)),
    }
    best_bid, best_ask = price[:, 0, 0], price[:, 1, 0]
    bid_size, ask_size = size[:, 0, 0], size[:, 1, 0]
    with np.errstate(invalid="ignore", divide="ignore"):
        mid = (best_bid + best_ask) / 2
        top = {
            "best_bid": best_bid,
            "best_ask": best_ask,
            "bid_size": bid_size,
            "ask_size": ask_size,
            "mid": mid,
            "spread": best_ask - best_bid,
            "spread_bps": (best_ask - best_bid) / mid * 1e4,
            "microprice": (best_ask * bid_size + best_bid * ask_size) / (bid_size + ask_size),
        }
        cols |= {name: _nullable(values, has) for name, values in top.items()}
        filled_size = np.where(np.isnan(size), 0.0, size)
        notional = np.where(np.isnan(price), 0.0, price * filled_size)
        cum_size, cum_notional = np.cumsum(filled_size, axis=2), np.cumsum(notional, axis=2)
        ofi = cumulative_order_flow(price, size, has)
        for k in depth_levels(depth):
            bid_k, ask_k = cum_size[:, 0, k - 1], cum_size[:, 1, k - 1]
            cols[f"bid_depth_{k}"] = _nullable(bid_k, has)
            cols[f"ask_depth_{k}"] = _nullable(ask_k, has)
            cols[f"bid_notional_{k}"] = _nullable(cum_notional[:, 0, k - 1], has)
            cols[f"ask_notional_{k}"] = _nullable(cum_notional[:, 1, k - 1], has)
            cols[f"imbalance_{k}"] = _nullable((bid_k - ask_k) / (bid_k + ask_k), has)
            cols[f"ofi_{k}"] = _nullable(ofi[:, k - 1], has)
        for b, bps in enumerate(samples.bands_bps):
            bid_b, ask_b = samples.band_depth[:, 0, b], samples.band_depth[:, 1, b]
            cols[f"bid_depth_{bps}bps"] = _nullable(bid_b, has)
            cols[f"ask_depth_{bps}bps"] = _nullable(ask_b, has)
            cols[f"imbalance_{bps}bps"] = _nullable((bid_b - ask_b) / (bid_b + ask_b), has)
    cols["bid_levels"] = pa.array(samples.levels[:, 0], mask=~has)
    cols["ask_levels"] = pa.array(samples.levels[:, 1], mask=~has)
    two_sided = has & ~np.isnan(best_bid) & ~np.isnan(best_ask)
    cols["crossed"] = pa.array(best_bid > best_ask, mask=~two_sided)
    cols["locked"] = pa.array(best_bid == best_ask, mask=~two_sided)
    for s, side in enumerate(SIDES):
        cols[f"{side}_price"] = _list_column(price[:, s, :], has)
        cols[f"{side}_amount"] = _list_column(np.where(np.isnan(price[:, s, :]), np.nan, size[:, s, :]), has)
    return pa.table(cols)


def book_features(
    con: duckdb.DuckDBPyConnection,
    lake: Lake | Path,
    day: DaySlice,
    depth: int = DEFAULT_DEPTH,
    bands_bps: tuple[int, ...] = DEFAULT_BANDS_BPS,
) -> tuple[pa.Table, BookSamples]:
    """One day of features/book (and the samples with the replay's statistics)."""
    samples, _ = replay_day(con, lake, day, depth=depth, bands_bps=bands_bps)
    return book_table(samples, day), samples


def grid_table(
    con: duckdb.DuckDBPyConnection, lake: Lake | Path, day: DaySlice, depth: int = DEFAULT_DEPTH
) -> pa.Table:
    """The features/book rows of a day; a grouped dataset gets the grid without a book, as in features/depth
    (its rows mix instruments; `replay_day` refuses it)."""
    if day.grouped:
        return book_table(BookReplay(grid_times(day), depth=depth).finish(), day)
    return book_features(con, lake, day, depth=depth)[0]
