"""features/depth: book_snapshot_25 sampled on the grid (last snapshot at or before each point) and its features.

Time axis: `local_timestamp` (when the snapshot was received), so a grid row never uses information from after
its time. Row t carries the book as of t, its age, and how many snapshots arrived in (t - step, t].

Plan: the ASOF join runs on two narrow columns (receive time, row number), then only the picked rows are
fetched with their 100 level columns: joining the wide rows directly costs several times more.
"""

from __future__ import annotations

from pathlib import Path

from tick_assets.features.grid import DaySlice
from tick_assets.lake.schema import quote

LEVELS = 25
DEPTH_LEVELS = (1, 5, 10, 25)
BAND_BPS = (10, 25, 50)
SIDES = ("bids", "asks")


def _px(side: str, i: int) -> str:
    return quote(f"{side}[{i}].price")


def _qty(side: str, i: int) -> str:
    return quote(f"{side}[{i}].amount")


def _sum(terms: list[str]) -> str:
    # Missing levels of a book count as 0; no book at all (before the day's first snapshot) stays NULL.
    return "CASE WHEN st IS NOT NULL THEN " + " + ".join(terms) + " END"


def level_sums_sql() -> str:
    """SELECT-list of the per-side sums (depth, notional, depth within bands) of one sampled book row."""
    cols = []
    for side, short in zip(SIDES, ("bid", "ask"), strict=True):
        for n in DEPTH_LEVELS:
            cols.append(f"{_sum([f'coalesce({_qty(side, i)}, 0)' for i in range(n)])} AS {short}_depth_{n}")
            cols.append(
                f"{_sum([f'coalesce({_px(side, i)} * {_qty(side, i)}, 0)' for i in range(n)])} AS {short}_notional_{n}"
            )
        for bps in BAND_BPS:
            op, sign = (">=", "-") if side == "bids" else ("<=", "+")
            limit = f"mid_ {sign} mid_ * {bps / 1e4}"
            terms = [
                f"CASE WHEN {_px(side, i)} {op} {limit} THEN {_qty(side, i)} ELSE 0 END"
                for i in range(LEVELS)
            ]
            cols.append(f"{_sum(terms)} AS {short}_depth_{bps}bps")
    return ",\n        ".join(cols)


def feature_columns_sql() -> str:
    """SELECT-list of the output columns, from the level sums and the top of book."""
    cols = [
        "best_bid",
        "best_ask",
        "bid_size",
        "ask_size",
        "mid_ AS mid",
        "best_ask - best_bid AS spread",
        "(best_ask - best_bid) / mid_ * 1e4 AS spread_bps",
        "(best_ask * bid_size + best_bid * ask_size) / (bid_size + ask_size) AS microprice",
    ]
    for n in DEPTH_LEVELS:
        cols += [f"bid_depth_{n}", f"ask_depth_{n}", f"bid_notional_{n}", f"ask_notional_{n}"]
        cols.append(
            f"(bid_depth_{n} - ask_depth_{n}) / nullif(bid_depth_{n} + ask_depth_{n}, 0) AS imbalance_{n}"
        )
    for bps in BAND_BPS:
        cols += [f"bid_depth_{bps}bps", f"ask_depth_{bps}bps"]
    return ",\n    ".join(cols)


def depth_sql(lake_root: Path, day: DaySlice) -> str:
    """The query giving one day's depth features: one row per grid point of the day."""
    src = day.lake_file_sql(lake_root, "book_snapshot_25")
    level_cols = ", ".join(f(s, i) for i in range(LEVELS) for s in SIDES for f in (_px, _qty))
    return f"""
WITH keys AS (
    -- several snapshots can share a receive time: the last one in the file is the book at that time
    SELECT local_timestamp AS st, max(file_row_number) AS rn
    FROM read_parquet({src}, file_row_number = true) GROUP BY local_timestamp
),
grid AS ({day.grid_sql()}),
picked AS (SELECT grid.t, keys.st, keys.rn FROM grid ASOF LEFT JOIN keys ON grid.t >= keys.st),
books AS (
    SELECT file_row_number AS rn, {level_cols}
    FROM read_parquet({src}, file_row_number = true)
    WHERE file_row_number IN (SELECT rn FROM picked)
),
updates AS (
    -- snapshots received in (t - step, t], keyed by t
    SELECT {day.start_us} + ((local_timestamp - {day.start_us} + {day.step_us} - 1) // {day.step_us}) * {day.step_us} AS t,
           count(*) AS updates
    FROM read_parquet({src}) GROUP BY 1
),
sampled AS (
    SELECT picked.t, picked.st, books.*,
           {_px("bids", 0)} AS best_bid, {_px("asks", 0)} AS best_ask,
           {_qty("bids", 0)} AS bid_size, {_qty("asks", 0)} AS ask_size,
           ({_px("asks", 0)} + {_px("bids", 0)}) / 2 AS mid_
    FROM picked LEFT JOIN books USING (rn)
),
sums AS (
    SELECT t, st, best_bid, best_ask, bid_size, ask_size, mid_,
        {level_sums_sql()}
    FROM sampled
)
SELECT
    '{day.instrument}' AS instrument,
    make_timestamp(sums.t)::TIMESTAMPTZ AS ts,
    make_timestamp(st)::TIMESTAMPTZ AS snapshot_ts,
    (sums.t - st) / 1000.0 AS staleness_ms,
    coalesce(updates.updates, 0) AS updates,
    {feature_columns_sql()}
FROM sums LEFT JOIN updates USING (t)
ORDER BY sums.t
"""
