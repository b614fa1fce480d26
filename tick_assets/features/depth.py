"""features/depth: book_snapshot_25 sampled on the grid (last snapshot at or before each point) and its features.

Time axis: `local_timestamp` (when the snapshot was received), so a grid row never uses information from after
its time. Row t carries the book as of t, its age, and how many snapshots arrived in (t - step, t].
"""

from __future__ import annotations

from pathlib import Path

from tick_assets.features.grid import DaySlice
from tick_assets.lake.schema import quote

LEVELS = 25
DEPTH_LEVELS = (1, 5, 10, 25)
BAND_BPS = (10, 25, 50)


def _px(side: str, i: int) -> str:
    return quote(f"{side}[{i}].price")


def _qty(side: str, i: int) -> str:
    return quote(f"{side}[{i}].amount")


def _sum(terms: list[str]) -> str:
    # Missing levels of a book count as 0; no book at all (before the day's first snapshot) stays NULL.
    return "CASE WHEN st IS NOT NULL THEN " + " + ".join(terms) + " END"


def feature_columns_sql() -> str:
    """SELECT-list of every depth feature, computed from the sampled snapshot columns of one row."""
    cols = [
        f"{_px('bids', 0)} AS best_bid",
        f"{_px('asks', 0)} AS best_ask",
        f"{_qty('bids', 0)} AS bid_size",
        f"{_qty('asks', 0)} AS ask_size",
        f"({_px('asks', 0)} + {_px('bids', 0)}) / 2 AS mid",
        f"{_px('asks', 0)} - {_px('bids', 0)} AS spread",
        f"({_px('asks', 0)} - {_px('bids', 0)}) / (({_px('asks', 0)} + {_px('bids', 0)}) / 2) * 1e4 AS spread_bps",
        f"({_px('asks', 0)} * {_qty('bids', 0)} + {_px('bids', 0)} * {_qty('asks', 0)}) "
        f"/ ({_qty('bids', 0)} + {_qty('asks', 0)}) AS microprice",
    ]
    for n in DEPTH_LEVELS:
        bid = _sum([f"coalesce({_qty('bids', i)}, 0)" for i in range(n)])
        ask = _sum([f"coalesce({_qty('asks', i)}, 0)" for i in range(n)])
        bid_notional = _sum([f"coalesce({_px('bids', i)} * {_qty('bids', i)}, 0)" for i in range(n)])
        ask_notional = _sum([f"coalesce({_px('asks', i)} * {_qty('asks', i)}, 0)" for i in range(n)])
        cols += [
            f"{bid} AS bid_depth_{n}",
            f"{ask} AS ask_depth_{n}",
            f"{bid_notional} AS bid_notional_{n}",
            f"{ask_notional} AS ask_notional_{n}",
            f"(({bid}) - ({ask})) / nullif(({bid}) + ({ask}), 0) AS imbalance_{n}",
        ]
    mid = f"(({_px('asks', 0)} + {_px('bids', 0)}) / 2)"
    for bps in BAND_BPS:
        bid_band = _sum(
            [
                f"CASE WHEN {_px('bids', i)} >= {mid} * (1 - {bps} / 1e4) THEN {_qty('bids', i)} ELSE 0 END"
                for i in range(LEVELS)
            ]
        )
        ask_band = _sum(
            [
                f"CASE WHEN {_px('asks', i)} <= {mid} * (1 + {bps} / 1e4) THEN {_qty('asks', i)} ELSE 0 END"
                for i in range(LEVELS)
            ]
        )
        cols += [f"{bid_band} AS bid_depth_{bps}bps", f"{ask_band} AS ask_depth_{bps}bps"]
    return ",\n    ".join(cols)


def depth_sql(lake_root: Path, day: DaySlice) -> str:
    """The query giving one day's depth features: one row per grid point of the day."""
    snapshot_cols = ", ".join(
        [_px(s, i) for i in range(LEVELS) for s in ("bids", "asks")]
        + [_qty(s, i) for i in range(LEVELS) for s in ("bids", "asks")]
    )
    return f"""
WITH snaps AS (
    SELECT local_timestamp AS st, {snapshot_cols}
    FROM read_parquet({day.lake_file_sql(lake_root, "book_snapshot_25")}, file_row_number = true)
    -- several snapshots can share a local_timestamp: the last one in the file is the book at that time
    QUALIFY row_number() OVER (PARTITION BY local_timestamp ORDER BY file_row_number DESC) = 1
),
grid AS ({day.grid_sql()}),
updates AS (
    -- snapshots received in (t - step, t], keyed by t
    SELECT {day.start_us} + ((local_timestamp - {day.start_us} + {day.step_us} - 1) // {day.step_us}) * {day.step_us} AS t,
           count(*) AS updates
    FROM read_parquet({day.lake_file_sql(lake_root, "book_snapshot_25")})
    GROUP BY 1
),
sampled AS (
    SELECT grid.t, snaps.* FROM grid ASOF LEFT JOIN snaps ON grid.t >= snaps.st
)
SELECT
    '{day.instrument}' AS instrument,
    make_timestamp(sampled.t)::TIMESTAMPTZ AS ts,
    make_timestamp(st)::TIMESTAMPTZ AS snapshot_ts,
    (sampled.t - st) / 1000.0 AS staleness_ms,
    coalesce(updates.updates, 0) AS updates,
    {feature_columns_sql()}
FROM sampled LEFT JOIN updates USING (t)
ORDER BY sampled.t
"""
