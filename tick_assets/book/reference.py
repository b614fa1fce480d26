"""The same book rebuilt the obvious way: a dict per side and a loop per row, in plain Python.

The oracle the compiled kernel is tested against (tick_assets_tests/test_book_kernel.py) and the baseline of its
benchmark. Same contract as tick_assets/book/kernel.py, written to be read rather than to be fast.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from tick_assets.book.replay import BookSamples, BookStats


def reference_replay(
    rows: Sequence[tuple[int, bool, bool, float, float]],
    sample_ts: Sequence[int],
    depth: int,
    bands_bps: Sequence[int],
    end_ts: int | None = None,
) -> BookSamples:
    """Replay (local_timestamp, is_snapshot, is_ask, price, amount) rows; sample the book at each time."""
    bands = sorted(bands_bps)
    s = len(sample_ts)
    top_price = np.full((s, 2, depth), np.nan)
    top_size = np.full((s, 2, depth), np.nan)
    band_depth = np.full((s, 2, len(bands)), np.nan)
    levels = np.full((s, 2), -1, dtype=np.int64)
    last_ts = np.full(s, -1, dtype=np.int64)
    messages = np.zeros(s, dtype=np.int64)
    book: list[dict[float, float]] = [{}, {}]  # bids, asks
    seen = prev_snapshot = False
    current = None
    counts = dict(rows=0, messages=0, pre=0, snapshots=0, absent=0, invalid=0, crossed=0, locked=0)
    cursor = 0

    def best() -> tuple[float, float]:
        return (max(book[0]) if book[0] else math.nan, min(book[1]) if book[1] else math.nan)

    def account(until: int) -> None:
        if seen and current is not None and until > current:
            bid, ask = best()
            if bid > ask:
                counts["crossed"] += until - current
            elif bid == ask:
                counts["locked"] += until - current

    def sample(k: int) -> None:
        messages[k] = counts["messages"]
        if not seen:
            return
        last_ts[k] = current
        bid_levels = sorted(book[0].items(), reverse=True)
        ask_levels = sorted(book[1].items())
        for side, side_levels in ((0, bid_levels), (1, ask_levels)):
            levels[k, side] = len(side_levels)
            for j, (price, size) in enumerate(side_levels[:depth]):
                top_price[k, side, j], top_size[k, side, j] = price, size
        bid, ask = best()
        band_depth[k] = 0.0
        if math.isnan(bid) or math.isnan(ask):
            return
        mid = (bid + ask) / 2.0
        for b, bps in enumerate(bands):
            band_depth[k, 0, b] = sum(q for p, q in bid_levels if p >= mid - mid * (bps / 1e4))
            band_depth[k, 1, b] = sum(q for p, q in ask_levels if p <= mid + mid * (bps / 1e4))

    for ts, is_snapshot, is_ask, price, amount in rows:
        if current is not None and ts < current:
            raise ValueError(f"local_timestamp goes backwards at {ts}")
        if current is None or ts != current:
            while cursor < s and sample_ts[cursor] < ts:  # the book before this message
                sample(cursor)
                cursor += 1
            if current is not None:
                account(ts)
                if seen:
                    counts["messages"] += 1
            current = ts
        if is_snapshot and not prev_snapshot:
            if not seen:
                counts["messages"] += 1
            book = [{}, {}]
            seen = True
            counts["snapshots"] += 1
        prev_snapshot = bool(is_snapshot)
        if not seen:
            counts["pre"] += 1
            continue
        if not (price > 0) or not (amount >= 0):
            counts["invalid"] += 1
            continue
        levels_of_side = book[1 if is_ask else 0]
        if amount == 0:
            if price in levels_of_side:
                del levels_of_side[price]
            else:
                counts["absent"] += 1
        else:
            levels_of_side[price] = amount
        counts["rows"] += 1
    while cursor < s:
        sample(cursor)
        cursor += 1
    if current is not None:
        account(end_ts if end_ts is not None else current)
    stats = BookStats(
        rows=counts["rows"],
        messages=counts["messages"],
        pre_snapshot_rows=counts["pre"],
        snapshots=counts["snapshots"],
        absent_deletes=counts["absent"],
        invalid_rows=counts["invalid"],
        crossed_us=counts["crossed"],
        locked_us=counts["locked"],
    )
    return BookSamples(
        np.asarray(sample_ts, dtype=np.int64),
        top_price,
        top_size,
        band_depth,
        levels,
        last_ts,
        messages,
        tuple(bands),
        stats,
    )


def dict_book(
    rows: Sequence[tuple[int, bool, bool, float, float]],
    sample_ts: Sequence[int] = (),
    depth: int = 50,
) -> tuple[dict[float, float], dict[float, float], list[tuple[list, list]]]:
    """The final (bids, asks) of the rows as a hand-written script keeps a book: a dict per side, rows before the
    first snapshot skipped, a snapshot after updates clearing the book, amount 0 deleting; and the top `depth`
    levels a side (sorted from the dicts) at each of `sample_ts` (between messages). The benchmark's baseline."""
    bids: dict[float, float] = {}
    asks: dict[float, float] = {}
    seen = prev_snapshot = False
    current = None
    samples: list[tuple[list, list]] = []
    cursor = 0
    for ts, is_snapshot, is_ask, price, amount in rows:
        if ts != current:
            while cursor < len(sample_ts) and sample_ts[cursor] < ts:
                samples.append((sorted(bids.items(), reverse=True)[:depth], sorted(asks.items())[:depth]))
                cursor += 1
            current = ts
        if is_snapshot and not prev_snapshot:
            bids, asks, seen = {}, {}, True
        prev_snapshot = is_snapshot
        if not seen:
            continue
        side = asks if is_ask else bids
        if amount == 0:
            side.pop(price, None)
        elif amount > 0:
            side[price] = amount
    while cursor < len(sample_ts):
        samples.append((sorted(bids.items(), reverse=True)[:depth], sorted(asks.items())[:depth]))
        cursor += 1
    return bids, asks, samples
