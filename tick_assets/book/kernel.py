"""The stateful loop of the order book rebuilt from incremental_book_L2 rows, compiled with numba.

The contract (DESIGN.md "The book from incremental_book_L2", reference/tardis_api.md 2.2):
- rows that share a `local_timestamp` are one exchange message: the book is read only between messages;
- a snapshot row after a non-snapshot row (or the file's first snapshot) discards the book, so a run of
  `is_snapshot` rows replaces it (the day's first message, and again after every reconnect);
- `amount` is the new absolute size of the level, `0` deletes it (a delete of an absent level is counted);
- rows before the first snapshot are counted and skipped;
- a price is a key used exactly as parsed (the float64 of the CSV text), never computed.

Each side is one sorted array with the best level last (bids by price, asks by minus the price), so the updates
near the touch, which are most of them, move only the few levels between them and the touch.

`run` processes one chunk of rows and may be called again with the next chunk: a message split across chunks is
applied whole before the book is read, because the book is read only when a row of a later message arrives (or
at `finish`). Samples are taken at the given times (the state after every message received at or before the
time). Why numba: the loop is a per-row state machine (binary search, insert, delete) that vectorizes not at all;
numba compiles that Python to machine code, is maintained with numpy, and needs no build step.
"""

from __future__ import annotations

import numpy as np
from numba import njit

BID, ASK = 0, 1

# Slots of the int64 `state` vector.
SEEN_SNAPSHOT = 0  # 1 once the first snapshot row was applied
PREV_SNAPSHOT = 1  # 1 if the previous row was a snapshot row
CURRENT_TS = 2  # local_timestamp of the message being applied (the last one applied, between messages)
MESSAGES = 3  # messages applied (after the first snapshot)
PRE_SNAPSHOT_ROWS = 4  # rows skipped before the first snapshot
SNAPSHOTS = 5  # snapshot runs that replaced the book (the first one included)
ABSENT_DELETES = 6  # deletes of a level that was not in the book
INVALID_ROWS = 7  # rows with a missing or negative price or amount (skipped)
CROSSED_US = 8  # time the book spent crossed (best bid > best ask) between messages
LOCKED_US = 9  # time the book spent locked (best bid == best ask)
CURSOR = 10  # next sample to take
ROWS = 11  # rows applied to the book
STARTED = 12  # 1 once a row was seen
ACCOUNT_END = 13  # crossed/locked time is counted up to this local_timestamp (the end of the day), not after
STATE_SLOTS = 14

# Return codes of `run` (>= 0: every row done).
DONE = 0
NEED_CAPACITY = -1  # a side is full: grow `keys`/`sizes` and call again from the returned row
BACKWARDS = -2  # local_timestamp went backwards at the returned row


#: A time after every sample (int64 max): `finish` takes every sample still pending.
_AFTER_EVERYTHING = 2**63 - 1


def new_state(account_end: int = _AFTER_EVERYTHING) -> np.ndarray:
    """A fresh state vector (no book yet) counting crossed/locked time up to `account_end`."""
    state = np.zeros(STATE_SLOTS, dtype=np.int64)
    state[ACCOUNT_END] = account_end
    return state


@njit(cache=True, nogil=True)
def _find(keys: np.ndarray, n: int, key: float) -> int:
    """Index of the first of keys[:n] >= key (binary search)."""
    lo, hi = 0, n
    while lo < hi:
        mid = (lo + hi) >> 1
        if keys[mid] < key:
            lo = mid + 1
        else:
            hi = mid
    return lo


@njit(cache=True, nogil=True)
def _apply(
    keys: np.ndarray, sizes: np.ndarray, counts: np.ndarray, side: int, key: float, amount: float
) -> int:
    """Set (or delete, amount 0) one level; 0 done, 1 a delete of an absent level, -1 the side is full."""
    n = counts[side]
    row_keys, row_sizes = keys[side], sizes[side]
    at = _find(row_keys, n, key)
    found = at < n and row_keys[at] == key
    if amount == 0.0:
        if not found:
            return 1
        for j in range(at, n - 1):
            row_keys[j] = row_keys[j + 1]
            row_sizes[j] = row_sizes[j + 1]
        counts[side] = n - 1
        return 0
    if found:
        row_sizes[at] = amount
        return 0
    if n == row_keys.shape[0]:
        return -1
    for j in range(n, at, -1):
        row_keys[j] = row_keys[j - 1]
        row_sizes[j] = row_sizes[j - 1]
    row_keys[at] = key
    row_sizes[at] = amount
    counts[side] = n + 1
    return 0


@njit(cache=True, nogil=True)
def _best(keys: np.ndarray, counts: np.ndarray, side: int) -> float:
    n = counts[side]
    if n == 0:
        return np.nan
    return keys[side, n - 1] if side == BID else -keys[side, n - 1]


@njit(cache=True, nogil=True)
def _emit(k: int, book: tuple, state: np.ndarray, bands: np.ndarray, out: tuple) -> None:
    """Write sample k: the top levels, the depth within each band of the mid over the whole book, the level
    counts, the last message's time and the messages applied so far. Before the first snapshot: left empty."""
    keys, sizes, counts = book
    top_price, top_size, band_depth, levels, last_ts, messages = out
    messages[k] = state[MESSAGES]
    if state[SEEN_SNAPSHOT] == 0:
        levels[k, 0] = -1
        levels[k, 1] = -1
        return
    last_ts[k] = state[CURRENT_TS]
    depth_n = top_price.shape[2]
    for side in range(2):
        n = counts[side]
        levels[k, side] = n
        sign = 1.0 if side == BID else -1.0
        for j in range(min(depth_n, n)):
            top_price[k, side, j] = sign * keys[side, n - 1 - j]
            top_size[k, side, j] = sizes[side, n - 1 - j]
    bid, ask = _best(keys, counts, BID), _best(keys, counts, ASK)
    if np.isnan(bid) or np.isnan(ask):
        for b in range(bands.shape[0]):
            band_depth[k, 0, b] = 0.0
            band_depth[k, 1, b] = 0.0
        return
    mid = (bid + ask) / 2.0
    widest = bands.shape[0] - 1  # bands ascend
    for side in range(2):
        n = counts[side]
        for b in range(bands.shape[0]):
            band_depth[k, side, b] = 0.0
        for j in range(n - 1, -1, -1):
            price = keys[side, j] if side == BID else -keys[side, j]
            if side == BID:
                if price < mid - mid * bands[widest]:
                    break
            elif price > mid + mid * bands[widest]:
                break
            size = sizes[side, j]
            for b in range(bands.shape[0]):
                inside = price >= mid - mid * bands[b] if side == BID else price <= mid + mid * bands[b]
                if inside:
                    band_depth[k, side, b] += size


@njit(cache=True, nogil=True)
def _account(keys: np.ndarray, counts: np.ndarray, state: np.ndarray, until: int) -> None:
    """Add the time from the last message to `until` (at most ACCOUNT_END) to the crossed or locked total if the
    book is."""
    until = min(until, state[ACCOUNT_END])
    if state[SEEN_SNAPSHOT] == 0 or until <= state[CURRENT_TS]:
        return
    bid, ask = _best(keys, counts, BID), _best(keys, counts, ASK)
    if bid > ask:
        state[CROSSED_US] += until - state[CURRENT_TS]
    elif bid == ask:
        state[LOCKED_US] += until - state[CURRENT_TS]


@njit(cache=True, nogil=True)
def _emit_before(
    ts: int, book: tuple, state: np.ndarray, sample_ts: np.ndarray, bands: np.ndarray, out: tuple
) -> None:
    """Take every pending sample whose time is before `ts` from the book as it is now."""
    while state[CURSOR] < sample_ts.shape[0] and sample_ts[state[CURSOR]] < ts:
        c = state[CURSOR]
        _emit(c, book, state, bands, out)
        state[CURSOR] = c + 1


@njit(cache=True, nogil=True)
def run(
    local_ts: np.ndarray,
    is_snapshot: np.ndarray,
    is_ask: np.ndarray,
    price: np.ndarray,
    amount: np.ndarray,
    start: int,
    book: tuple,
    state: np.ndarray,
    sample_ts: np.ndarray,
    bands: np.ndarray,
    out: tuple,
) -> tuple[int, int]:
    """Apply rows [start, len) of a chunk, taking every sample whose time is before the next message.

    Returns (code, row): DONE, or NEED_CAPACITY / BACKWARDS with the row to resume from (or the bad row)."""
    keys, sizes, counts = book
    n_samples = sample_ts.shape[0]
    for i in range(start, local_ts.shape[0]):
        ts = local_ts[i]
        if state[STARTED] == 1 and ts < state[CURRENT_TS]:
            return BACKWARDS, i
        if state[STARTED] == 0 or ts != state[CURRENT_TS]:
            # the message before row i is complete (or there is none yet): the book may be read now
            if (
                state[CURSOR] < n_samples and sample_ts[state[CURSOR]] < ts
            ):  # the call is not free: test first
                _emit_before(ts, book, state, sample_ts, bands, out)
            if state[STARTED] == 1:
                _account(keys, counts, state, ts)
                if state[SEEN_SNAPSHOT] == 1:
                    state[MESSAGES] += 1
            state[STARTED] = 1
            state[CURRENT_TS] = ts
        snap = is_snapshot[i]
        if snap and state[PREV_SNAPSHOT] == 0:
            if state[SEEN_SNAPSHOT] == 0:
                state[MESSAGES] += 1  # the first snapshot's message
            counts[BID] = 0
            counts[ASK] = 0
            state[SEEN_SNAPSHOT] = 1
            state[SNAPSHOTS] += 1
        state[PREV_SNAPSHOT] = 1 if snap else 0
        if state[SEEN_SNAPSHOT] == 0:
            state[PRE_SNAPSHOT_ROWS] += 1
            continue
        p, a = price[i], amount[i]
        if not (p > 0.0) or not (a >= 0.0):  # NaN fails both
            state[INVALID_ROWS] += 1
            continue
        side = ASK if is_ask[i] else BID
        done = _apply(keys, sizes, counts, side, -p if side == ASK else p, a)
        if done < 0:
            # the bookkeeping above is idempotent for row i: a call from row i repeats only the level update
            return NEED_CAPACITY, i
        if done == 1:
            state[ABSENT_DELETES] += 1
        state[ROWS] += 1
    return DONE, local_ts.shape[0]


@njit(cache=True, nogil=True)
def finish(
    book: tuple, state: np.ndarray, sample_ts: np.ndarray, bands: np.ndarray, out: tuple, end_ts: int
) -> None:
    """After the last row: take the remaining samples and account crossed/locked time up to `end_ts`."""
    _emit_before(_AFTER_EVERYTHING, book, state, sample_ts, bands, out)
    keys, _, counts = book
    _account(keys, counts, state, end_ts)
