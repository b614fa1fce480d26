"""features/depth from the day's per-second book file: numpy and one compiled (numba) pass instead of SQL.

The same features as `depth.depth_sql`, value for value: every column is the same IEEE operations in the same
order (sums left to right over the levels, missing levels as 0, a missing price outside every band), so the
stored partition holds the same values. On the ~86,400 sampled rows the arithmetic takes milliseconds, where
DuckDB spends more on planning and evaluating the ~900 expressions of the SQL than on reading the rows
(docs/PERFORMANCE.md). Where numpy and DuckDB could differ (NaN or infinite levels: DuckDB orders NaN above
every number), and for a list that is not `LEVELS` long, `depth_arrays` returns None and the SQL runs.
"""

from __future__ import annotations

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from numba import njit

from tick_assets.features.depth import BAND_BPS, DEPTH_LEVELS, LEVELS
from tick_assets.features.grid import MICROS_PER_DAY, DaySlice
from tick_assets.lake.schema import sql_string

LISTS = ("bids_price", "bids_amount", "asks_price", "asks_amount")


def _levels(column: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray | None] | None:
    """(values with missing levels as 0, missing or None) as (rows, LEVELS) arrays; None if a list is not
    LEVELS long or a level is NaN/inf (where DuckDB's comparisons differ from IEEE)."""
    lists = column.combine_chunks()
    if lists.null_count or (len(lists) and not np.all(np.diff(np.asarray(lists.offsets)) == LEVELS)):
        return None
    flat = lists.flatten()
    values = flat.to_numpy(zero_copy_only=False)
    missing = None
    if flat.null_count:
        missing = np.asarray(flat.is_null())
        values = np.where(missing, 0.0, values)
        missing = missing.reshape(-1, LEVELS)
    if not np.isfinite(values).all():
        return None
    return values.reshape(-1, LEVELS), missing


def _masked(values: np.ndarray, null: np.ndarray) -> pa.Array:
    return pa.array(values, type=pa.float64(), mask=null)


def _read(con: duckdb.DuckDBPyConnection, seconds: str, day: DaySlice) -> pa.Table:
    names = ["second", "received", "file_row", "local_timestamp", *LISTS]
    if "://" not in seconds:  # a local file: pyarrow decodes these lists ~2.5x faster than DuckDB
        rows = pq.read_table(seconds, columns=names)
        return rows if not day.grouped else rows.slice(0, 0)  # day.rows_sql
    return con.sql(
        f"SELECT second, received, file_row, local_timestamp, {', '.join(LISTS)} "
        f"FROM read_parquet({sql_string(seconds)}) WHERE {day.rows_sql}"
    ).to_arrow_table()


def _int64(rows: pa.Table, name: str) -> np.ndarray:
    return np.asarray(rows.column(name).combine_chunks(), dtype=np.int64)


def _or_none(missing: np.ndarray | None, shape: tuple[int, ...]) -> np.ndarray:
    return np.zeros(shape, dtype=np.bool_) if missing is None else missing


@njit(cache=True, nogil=True)
def _side(
    price: np.ndarray,
    qty: np.ndarray,
    price_na: np.ndarray,
    qty_na: np.ndarray,
    r: int,
    k: int,
    s: int,
    bid: bool,
    limits: np.ndarray,
    depths: np.ndarray,
    depth: np.ndarray,
    notional: np.ndarray,
    bands: np.ndarray,
) -> None:
    """One side of grid row k (file row r): the running depth and notional, and the bands, as the SQL adds."""
    acc_q, acc_n, j = 0.0, 0.0, 0
    for i in range(price.shape[1]):
        q = qty[r, i]  # a missing amount is 0 (filled)
        v = 0.0 if price_na[r, i] or qty_na[r, i] else price[r, i] * q
        acc_q, acc_n = (q, v) if i == 0 else (acc_q + q, acc_n + v)
        if j < len(depths) and i + 1 == depths[j]:
            depth[s, j, k], notional[s, j, k] = acc_q, acc_n
            j += 1
    for b in range(len(limits)):
        acc = 0.0
        for i in range(price.shape[1]):
            # a missing price is outside every band
            p = (-np.inf if bid else np.inf) if price_na[r, i] else price[r, i]
            term = (1.0 if (p >= limits[b] if bid else p <= limits[b]) else 0.0) * qty[r, i]
            acc = term if i == 0 else acc + term
        bands[s, b, k] = acc + 0.0


@njit(cache=True, nogil=True)
def _sums(
    bp: np.ndarray,
    bq: np.ndarray,
    ap: np.ndarray,
    aq: np.ndarray,
    bp_na: np.ndarray,
    bq_na: np.ndarray,
    ap_na: np.ndarray,
    aq_na: np.ndarray,
    at: np.ndarray,
    none: np.ndarray,
    mid: np.ndarray,
    mid_na: np.ndarray,
    depths: np.ndarray,
    fractions: np.ndarray,
    depth: np.ndarray,
    notional: np.ndarray,
    bands: np.ndarray,
) -> None:
    """The level sums and bands of every grid row with a book (one pass over its 100 levels)."""
    limits = np.empty(len(fractions))
    for k in range(len(at)):
        if none[k]:
            continue
        r = at[k]
        for b in range(len(fractions)):  # no mid: an empty band (+inf for bids)
            limits[b] = np.inf if mid_na[k] else mid[k] - mid[k] * fractions[b]
        _side(bp, bq, bp_na, bq_na, r, k, 0, True, limits, depths, depth, notional, bands)
        for b in range(len(fractions)):
            limits[b] = -np.inf if mid_na[k] else mid[k] + mid[k] * fractions[b]
        _side(ap, aq, ap_na, aq_na, r, k, 1, False, limits, depths, depth, notional, bands)


def depth_arrays(
    con: duckdb.DuckDBPyConnection, seconds: str, day: DaySlice, backwards: str
) -> pa.Table | None:
    """The day's depth features but `instrument` from its per-second file `seconds` (a step of whole seconds), or None where
    only the SQL gives the same values. `backwards` is the error message of a file whose times go backwards."""
    start, step = day.start_us, day.step_us
    rows = _read(con, seconds, day)
    levels = {name: _levels(rows.column(name)) for name in LISTS}
    if any(v is None for v in levels.values()):
        return None
    second, received = _int64(rows, "second"), _int64(rows, "received")
    file_row, local_ts = _int64(rows, "file_row"), _int64(rows, "local_timestamp")

    n = MICROS_PER_DAY // step
    t = start + np.arange(n, dtype=np.int64) * step
    # the grid point (t - step, t] of each second; rows before the day count towards the first point
    point = np.maximum(0, (second - start + step - 1) // step)
    inside = point < n
    per_point = np.bincount(point[inside], weights=received[inside], minlength=n).astype(np.int64)
    fresh = inside & (second > start - step)
    updates = np.bincount(point[fresh], weights=received[fresh], minlength=n).astype(np.int64)
    rn = np.cumsum(per_point) - 1
    none = rn < 0  # no snapshot yet: every feature NULL
    at = np.minimum(np.searchsorted(file_row, rn), max(len(file_row) - 1, 0))
    at[none] = 0
    if len(file_row) == 0:
        at[:] = 0
        local_ts = np.zeros(1, dtype=np.int64)
    elif not np.array_equal(file_row[at[~none]], rn[~none]):
        return None  # not the rows the grid picks (cannot happen for a file that matches its raw partition)
    st = local_ts[at]
    if np.any(~none & (st > t)):
        con.execute(f"SELECT error({sql_string(backwards)})")  # the SQL's own error, raised by DuckDB

    if len(file_row) == 0:  # no rows at all: every grid row is `none`, the levels are never read
        levels = {name: (np.zeros((1, LEVELS)), None) for name in LISTS}
    values = [levels[name][0] for name in LISTS]  # bids_price, bids_amount, asks_price, asks_amount
    missing = [_or_none(levels[name][1], values[0].shape) for name in LISTS]
    top = [v[at, 0] for v in values]
    top_na = [none | m[at, 0] for m in missing]
    best_bid, bid_size, best_ask, ask_size = top
    bb_na, bs_na, ba_na, as_na = top_na
    cols: dict[str, pa.Array] = {}
    with np.errstate(all="ignore"):
        mid = (best_ask + best_bid) / 2
        mid_na = bb_na | ba_na
        cols["best_bid"], cols["best_ask"] = _masked(best_bid, bb_na), _masked(best_ask, ba_na)
        cols["bid_size"], cols["ask_size"] = _masked(bid_size, bs_na), _masked(ask_size, as_na)
        cols["mid"] = _masked(mid, mid_na)
        cols["spread"] = _masked(best_ask - best_bid, mid_na)
        cols["spread_bps"] = _masked((best_ask - best_bid) / mid * 1e4, mid_na)
        micro = (best_ask * bid_size + best_bid * ask_size) / (bid_size + ask_size)
        cols["microprice"] = _masked(micro, mid_na | bs_na | as_na)
        depth, notional, bands = (
            np.zeros((2, k, n)) for k in (len(DEPTH_LEVELS), len(DEPTH_LEVELS), len(BAND_BPS))
        )
        _sums(
            *values,
            *missing,
            at,
            none,
            mid,
            mid_na,
            np.array(DEPTH_LEVELS, dtype=np.int64),
            np.array([bps / 1e4 for bps in BAND_BPS]),
            depth,
            notional,
            bands,
        )
        for j, level in enumerate(DEPTH_LEVELS):
            for kind, sums in (("depth", depth), ("notional", notional)):
                for s, short in enumerate(("bid", "ask")):
                    cols[f"{short}_{kind}_{level}"] = _masked(sums[s, j], none)
            bd, ad = depth[0, j], depth[1, j]
            total = bd + ad
            cols[f"imbalance_{level}"] = _masked((bd - ad) / total, none | (total == 0))
        for b, bps in enumerate(BAND_BPS):
            for s, short in enumerate(("bid", "ask")):
                cols[f"{short}_depth_{bps}bps"] = _masked(bands[s, b], none)
        staleness = (t - st).astype(np.float64) / 1000.0

    utc = pa.timestamp("us", tz="UTC")
    head = {
        "ts": pa.array(t, type=pa.int64()).cast(utc),
        "snapshot_ts": pa.array(st, type=pa.int64(), mask=none).cast(utc),
        "staleness_ms": _masked(staleness, none),
        "updates": pa.array(updates, type=pa.int64()),
    }
    return pa.table({**head, **cols})
