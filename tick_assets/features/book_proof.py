"""Evidence that the rebuilt book is right, per partition (the figures of the features/book checks).

- The rebuilt top 25 against `book_snapshot_25` at each snapshot's receive time: Tardis derives those snapshots
  from the same feed, so the two must agree level for level.
- The end-of-day book of day D against the opening snapshot of day D+1 (the idea of `tardis_l2_topk`): the feed
  restarts at midnight with a fresh snapshot, which should look like the book the day ended with.
- What the replay saw: time crossed or locked, updates before the first snapshot, mid-day re-snapshots, deletes of
  absent levels. No Dagster imports.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import duckdb
import numpy as np

from tick_assets.features.book import L2_DATASET, replay_day
from tick_assets.features.grid import MICROS_PER_DAY, DaySlice
from tick_assets.lake.schema import BOOK_SIDES, level_list, sql_string
from tick_assets.lake.store import Lake, as_lake

SNAPSHOT_DATASET = "raw/book_snapshot_25"
TOP = 25


def _matrix(column: Any, width: int) -> np.ndarray:
    """A list column of fixed length `width` (nulls as NaN) as an (n, width) float array."""
    flat = column.combine_chunks().flatten() if hasattr(column, "combine_chunks") else column.flatten()
    return flat.to_numpy(zero_copy_only=False).astype(np.float64).reshape(-1, width)


def _snapshots(
    con: duckdb.DuckDBPyConnection, uri: str
) -> tuple[np.ndarray, dict[tuple[int, str], np.ndarray]]:
    """local_timestamp and the (n, 25) price/amount matrices per side of a stored book_snapshot_25 file."""
    cols = ", ".join(level_list(s, f) for s in BOOK_SIDES for f in ("price", "amount"))
    table = con.sql(f"SELECT local_timestamp, {cols} FROM read_parquet({sql_string(uri)})").to_arrow_table()
    out = {}
    for side_index, side in ((0, "bids"), (1, "asks")):
        for field in ("price", "amount"):
            out[(side_index, field)] = _matrix(table.column(level_list(side, field)), TOP)
    return table.column("local_timestamp").to_numpy(), out


def _same(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return ((a == b) | (np.isnan(a) & np.isnan(b))).all(axis=1)


def _opening_snapshot(con: duckdb.DuckDBPyConnection, uri: str) -> tuple[np.ndarray, np.ndarray]:
    """The first run of snapshot rows of an L2 file as (bids, asks), each (n, 2) of price and size, best first."""
    rows = con.sql(
        f"""
        WITH r AS (SELECT file_row_number AS n, is_snapshot, side, price, amount
                   FROM read_parquet({sql_string(uri)}, file_row_number = true)),
        s AS (SELECT min(n) AS first FROM r WHERE is_snapshot),
        e AS (SELECT coalesce(min(n), (SELECT max(n) + 1 FROM r)) AS stop FROM r, s WHERE n > s.first AND NOT is_snapshot)
        SELECT side = 'ask' AS is_ask, price, amount FROM r, s, e
        WHERE n >= s.first AND n < e.stop AND amount > 0 AND side IN ('bid', 'ask')
        """
    ).fetchnumpy()
    is_ask = np.asarray(rows["is_ask"], dtype=bool)
    price, amount = np.asarray(rows["price"], dtype=float), np.asarray(rows["amount"], dtype=float)
    bids = np.column_stack([price[~is_ask], amount[~is_ask]])
    asks = np.column_stack([price[is_ask], amount[is_ask]])
    return bids[np.argsort(-bids[:, 0], kind="stable")], asks[np.argsort(asks[:, 0], kind="stable")]


def _reconcile(end: tuple[np.ndarray, np.ndarray], opening: tuple[np.ndarray, np.ndarray]) -> dict[str, Any]:
    """Top-25 level overlap and size differences between a day's last book and the next day's opening one."""
    figures: dict[str, Any] = {}
    for name, a, b in (("bid", end[0], opening[0]), ("ask", end[1], opening[1])):
        top_a, top_b = a[:TOP], b[:TOP]
        common, ia, ib = np.intersect1d(top_a[:, 0], top_b[:, 0], return_indices=True)
        figures[f"{name}_top25_overlap"] = len(common) / max(1, min(len(top_a), len(top_b)))
        sizes_a, sizes_b = top_a[ia, 1], top_b[ib, 1]
        figures[f"{name}_same_size_share"] = float(np.mean(sizes_a == sizes_b)) if len(common) else None
        figures[f"{name}_mean_abs_size_diff"] = (
            float(np.mean(np.abs(sizes_a - sizes_b))) if len(common) else None
        )
    if len(end[0]) and len(end[1]) and len(opening[0]) and len(opening[1]):
        mid_end = (end[0][0, 0] + end[1][0, 0]) / 2
        mid_open = (opening[0][0, 0] + opening[1][0, 0]) / 2
        figures["mid_change_bps"] = float((mid_open - mid_end) / mid_end * 1e4)
    return figures


def proof_figures(con: duckdb.DuckDBPyConnection, lake: Lake | Path, day: DaySlice) -> dict[str, Any]:
    """Figures of one day's rebuilt book: top-25 agreement with book_snapshot_25, reconciliation with the next
    day's opening snapshot (None where that day is not in the lake), and the replay's own statistics."""
    lake = as_lake(lake)
    snapshot_file = day.partition(SNAPSHOT_DATASET).relpath
    figures: dict[str, Any] = {}
    snapshot_ts = None
    if lake.exists(snapshot_file):
        snapshot_ts, snapshot = _snapshots(con, lake.uri(snapshot_file))
        order = np.argsort(snapshot_ts, kind="stable")  # in file order unless the file breaks its own order
        snapshot_ts, snapshot = snapshot_ts[order], {k: v[order] for k, v in snapshot.items()}
    samples, replay = replay_day(
        con, lake, day, sample_ts=snapshot_ts if snapshot_ts is not None else [], depth=TOP
    )
    stats = samples.stats
    figures |= {
        "l2_rows": stats.rows + stats.pre_snapshot_rows + stats.invalid_rows,
        "messages": stats.messages,
        "pre_snapshot_rows": stats.pre_snapshot_rows,
        "resnapshots": stats.resnapshots,
        "absent_deletes": stats.absent_deletes,
        "invalid_rows": stats.invalid_rows,
        "crossed_seconds": stats.crossed_us / 1e6,
        "locked_seconds": stats.locked_us / 1e6,
        "crossed_or_locked_share": (stats.crossed_us + stats.locked_us) / MICROS_PER_DAY,
    }
    if snapshot_ts is None:
        figures["snapshots_compared"] = None
    else:
        ok = np.ones(snapshot_ts.size, dtype=bool)
        for side in (0, 1):
            ok &= _same(samples.top_price[:, side, :], snapshot[(side, "price")])
            ok &= _same(samples.top_size[:, side, :], snapshot[(side, "amount")])
        figures["snapshots_compared"] = int(ok.size)
        figures["snapshots_matched"] = int(ok.sum())
        figures["match_rate"] = float(ok.mean()) if ok.size else None
        if not ok.all():
            first = int(np.flatnonzero(~ok)[0])
            figures["first_mismatch_local_timestamp"] = int(snapshot_ts[first])
            figures["first_mismatch_row"] = first
    following = DaySlice(day.exchange, day.symbol, day.day + dt.timedelta(days=1), day.step_ms)
    next_file = following.partition(L2_DATASET).relpath
    opening = _opening_snapshot(con, lake.uri(next_file)) if lake.exists(next_file) else None
    if opening is not None and (len(opening[0]) or len(opening[1])):
        figures |= _reconcile(replay.book(), opening)
        figures["next_day"] = str(following.day)
    else:  # not in the lake yet, or a day without data or without a snapshot: nothing to compare
        figures["next_day"] = None
    return figures
