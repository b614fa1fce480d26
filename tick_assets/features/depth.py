"""features/depth: book_snapshot_25 sampled on the grid (last snapshot at or before each point) and its features.

Time axis: `local_timestamp` (when the snapshot was received), so a grid row never uses information from after
its time. Row t carries the book as of t, its age, and how many snapshots arrived in (t - step, t].

Plan (three passes over narrow data, one over the wide rows):
- Tardis files are ordered by `local_timestamp` (the blocking check `local_timestamp_in_order` guards it), so
  the book as of t is file row `count(rows received <= t) - 1`: a running sum of per-interval counts, with no
  join over the 500k snapshot keys.
- Only the picked rows are fetched with their four level lists (a hash join on the row number whose build
  side is the 86,400-row grid); joining the wide rows on time directly costs several times more.
- Level sums are built incrementally (depth at 5 levels = depth at 1 + levels 1..4, ...) over levels whose
  missing values were replaced once.
- When the grid step is a whole number of seconds and the raw partition has its per-second file
  (`lake/book_layout.py`: the rows the 1 s grid picks, with each second's row count, written by the
  conversion), counts and rows come from that file: ~86,400 rows instead of decoding every level of every row
  (the same rows, so the same values). Otherwise (no file, one that does not belong to the raw file, a step
  below a second) the raw file is read as above.
"""

from __future__ import annotations

from pathlib import Path

import duckdb

from tick_assets.features.grid import DaySlice
from tick_assets.lake.book_layout import SECOND_US, valid_seconds
from tick_assets.lake.datasets import connect
from tick_assets.lake.schema import BOOK_FIELDS, level, level_list, sql_string
from tick_assets.lake.store import Lake, as_lake

RAW = "raw/book_snapshot_25"

LEVELS = 25
DEPTH_LEVELS = (1, 5, 10, 25)
BAND_BPS = (10, 25, 50)
SIDES = ("bids", "asks")
SHORT = {"bids": "bid", "asks": "ask"}


def _backwards_text(day: DaySlice) -> str:
    return (
        f"book_snapshot_25 {day.exchange} {day.symbol} {day.day}: local_timestamp goes backwards in the file "
        "(see the local_timestamp_in_order check); re-download the day or report it to Tardis"
    )


def _backwards_message(day: DaySlice) -> str:
    return sql_string(_backwards_text(day))


def _px(side: str, i: int) -> str:
    return level(side, i, "price")


def _qty(side: str, i: int) -> str:
    return level(side, i, "amount")


def _levels_sql() -> str:
    # z_ is 0 when the grid row has a book and NULL before the day's first snapshot: missing levels of a book
    # count as 0 and a row without a book keeps NULL features.
    cols = []
    for side in SIDES:
        s = SHORT[side][0]
        for i in range(LEVELS):
            cols += [
                f"coalesce({_qty(side, i)}, z_) AS {s}q{i}",
                f"coalesce({_px(side, i)} * {_qty(side, i)}, z_) AS {s}n{i}",
                # a missing price never falls inside a band: -inf for bids, +inf for asks
                f"coalesce({_px(side, i)}, '{'-' if side == 'bids' else ''}inf'::DOUBLE) AS {s}p{i}",
            ]
    return ",\n        ".join(cols)


def _cumulative_sql() -> str:
    cols = []
    for side in SIDES:
        short, s = SHORT[side], SHORT[side][0]
        for kind, k in (("depth", "q"), ("notional", "n")):
            previous, lo = None, 0
            for n in DEPTH_LEVELS:
                terms = ([f"{short}_{kind}_{previous}"] if previous else []) + [
                    f"{s}{k}{i}" for i in range(lo, n)
                ]
                cols.append(f"{' + '.join(terms)} AS {short}_{kind}_{n}")
                previous, lo = n, n
    return ",\n        ".join(cols)


def _bands_sql() -> str:
    cols = []
    for side, op, sign in (("bids", ">=", "-"), ("asks", "<=", "+")):
        short, s = SHORT[side], SHORT[side][0]
        for bps in BAND_BPS:
            # A one-sided book has no mid: its band is empty (limit +inf for bids, -inf for asks); a level without
            # a price is outside every band (see _levels_sql); no book at all stays NULL (z_).
            empty = "'inf'::DOUBLE" if side == "bids" else "'-inf'::DOUBLE"
            limit = f"coalesce(mid_ {sign} mid_ * {bps / 1e4}, {empty})"
            terms = [f"({s}p{i} {op} {limit})::DOUBLE * {s}q{i}" for i in range(LEVELS)]
            cols.append(f"{' + '.join(terms)} + z_ AS {short}_depth_{bps}bps")
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


#: The relation `depth_query` registers on the step's connection.
RELATION = "features_depth_day"


def per_second_file(
    lake: Lake | Path, day: DaySlice, con: duckdb.DuckDBPyConnection | None = None
) -> str | None:
    """The URI of the day's per-second book file if this grid can read it (a step of whole seconds, a file that
    belongs to the raw partition), else None (the raw file is read)."""
    if day.step_us % SECOND_US:
        return None
    lake = as_lake(lake)
    if con is not None:
        return valid_seconds(con, lake, day.partition(RAW).relpath)
    with connect(lake, threads=1) as own:
        return valid_seconds(own, lake, day.partition(RAW).relpath)


def depth_query(con: duckdb.DuckDBPyConnection, lake: Lake | Path, day: DaySlice) -> str:
    """The SELECT of one day's depth features on `con` (what the asset stores): computed with numpy from the
    per-second file and registered on `con` as `features_depth_day` when it can, else `depth_sql`'s query."""
    src = day.lake_file_sql(lake, RAW)  # the raw partition must exist either way
    seconds = per_second_file(lake, day, con)
    if seconds is not None:
        from tick_assets.features.depth_arrays import depth_arrays  # imports this module's constants

        table = depth_arrays(con, seconds, day, _backwards_text(day))
        if table is not None:
            con.register(RELATION, table)
            # the instrument as the SQL gives it (a literal: a required Parquet column)
            return f"SELECT {sql_string(day.instrument)} AS instrument, * FROM {RELATION}"
    return depth_sql(lake, day, seconds, src)


def _counts_sql(src: str, seconds: str | None, day: DaySlice) -> str:
    start, step = day.start_us, day.step_us
    if seconds is None:
        return f"""
    SELECT greatest({start}, {start} + ((local_timestamp - {start} + {step} - 1) // {step}) * {step}) AS t,
           count(*) AS received,
           count(*) FILTER (WHERE local_timestamp > {start - step}) AS updates
    FROM read_parquet({src}) WHERE {day.rows_sql} GROUP BY 1"""
    # `second` is ceil(local_timestamp) to the second and the step is whole seconds, so a row's grid point and
    # its `> start - step` test are the same from its second as from its local_timestamp
    return f"""
    SELECT greatest({start}, {start} + ((second - {start} + {step} - 1) // {step}) * {step}) AS t,
           sum(received)::BIGINT AS received,
           coalesce(sum(received) FILTER (WHERE second > {start - step}), 0)::BIGINT AS updates
    FROM read_parquet({sql_string(seconds)}) WHERE {day.rows_sql} GROUP BY 1"""


def _rows_sql(src: str, seconds: str | None, level_cols: str) -> str:
    if seconds is None:
        return f"SELECT file_row_number, local_timestamp, {level_cols} FROM read_parquet({src}, file_row_number = true)"
    return f"SELECT file_row AS file_row_number, local_timestamp, {level_cols} FROM read_parquet({sql_string(seconds)})"


def depth_sql(
    lake: Lake | Path, day: DaySlice, seconds: str | bool | None = True, src: str | None = None
) -> str:
    """The query giving one day's depth features: one row per grid point of the day.

    `seconds`: True reads the day's per-second file when it can (`per_second_file`), False or None the raw
    file, a URI that per-second file."""
    src = src or day.lake_file_sql(lake, RAW)
    if seconds is True:
        seconds = per_second_file(lake, day)
    seconds = seconds or None
    level_cols = ", ".join(level_list(s, f) for s in SIDES for f in BOOK_FIELDS)
    return f"""
WITH counts AS (
    -- snapshots per grid interval (t - step, t]; rows received before the day count towards its first point
    {_counts_sql(src, seconds, day).strip()}
),
picked AS (
    SELECT grid.t, coalesce(updates, 0) AS updates,
           sum(coalesce(received, 0)) OVER (ORDER BY grid.t ROWS UNBOUNDED PRECEDING) - 1 AS rn
    FROM ({day.grid_sql()}) AS grid LEFT JOIN counts USING (t)
),
sampled AS (
    SELECT picked.t, picked.updates,
           -- the file order is the time order (Tardis files are sorted by local_timestamp); refuse a file
           -- that breaks it rather than sample a book from after t
           CASE WHEN b.local_timestamp > picked.t THEN error({_backwards_message(day)})
           ELSE b.local_timestamp END AS st,
           CASE WHEN b.local_timestamp IS NOT NULL THEN 0.0 END AS z_,
           {_px("bids", 0)} AS best_bid, {_px("asks", 0)} AS best_ask,
           {_qty("bids", 0)} AS bid_size, {_qty("asks", 0)} AS ask_size,
           ({_px("asks", 0)} + {_px("bids", 0)}) / 2 AS mid_,
           {level_cols}
    FROM ({_rows_sql(src, seconds, level_cols)}) AS b
    RIGHT JOIN picked ON b.file_row_number = picked.rn
),
levels AS (
    SELECT t, updates, st, z_, best_bid, best_ask, bid_size, ask_size, mid_,
        {_levels_sql()}
    FROM sampled
),
sums AS (
    SELECT *,
        {_cumulative_sql()},
        {_bands_sql()}
    FROM levels
)
SELECT
    {sql_string(day.instrument)} AS instrument,
    make_timestamp(t)::TIMESTAMPTZ AS ts,
    make_timestamp(st)::TIMESTAMPTZ AS snapshot_ts,
    (t - st) / 1000.0 AS staleness_ms,
    updates,
    {feature_columns_sql()}
FROM sums
ORDER BY t
"""
