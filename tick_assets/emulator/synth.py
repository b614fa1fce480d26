"""Deterministic, vectorized synthetic Tardis market data: one market model per (exchange, symbol, day, scale).

The model (all numpy, no per-event Python loop):

* ``scale`` book events spread over the UTC day with an intraday intensity profile. ``local_timestamp`` is
  strictly increasing; the exchange ``timestamp`` is ``local - latency`` floored to the millisecond and made
  non-decreasing, so ``local_timestamp >= timestamp`` in every row.
* Prices live on an integer tick grid. The best bid follows a random walk over "move" events, bridged so the
  day ends where the next day opens (the opening price is a smooth function of the day number); the spread is
  1-3 ticks. The visible book is 25 contiguous levels per side: bids ``b - k``, asks ``a + k``.
* The amount of a level is a pure hash ``H(side, price, last_update_index)`` of the last "update" event at that
  (side, price), so a level that leaves the window and comes back keeps its resting amount. Every data type
  (snapshots, quotes, L2 diffs, trades at the touch, ticker, liquidations) is read off this one model, which
  makes them mutually consistent: replaying ``incremental_book_L2`` reproduces ``book_snapshot_25`` exactly.

Prices and amounts are integers divided by a power of ten, so they print in shortest decimal form.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import math
import operator
import os
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from tick_assets.emulator import catalog, csvout
from tick_assets.tardis import datatypes

US_PER_DAY = 86_400_000_000
BOOK_DEPTH = 25
#: Book events processed per chunk: bounds memory (about 150 MB of temporaries for 25 levels).
CHUNK_EVENTS = 100_000

_ASK, _BID = 0, 1
_P_MOVE = 0.15  # share of book events that move the best bid/ask; the rest update one level
_SPREAD_P = (0.80, 0.15, 0.05)  # spread of 1, 2, 3 ticks
_LEVEL_DECAY = 0.85  # updates hit level k with weight decay**k
_DAILY_VOL = 0.015  # random-walk standard deviation over a day, as a fraction of the price
_LEVEL_NOTIONAL = 25_000.0  # median resting size of a level, in USD
_LEVEL_SIGMA = 1.0  # log-normal sigma of level sizes
_TRADE_NOTIONAL = 2_500.0
_LIQ_NOTIONAL = 10_000.0
_OPEN_INTEREST_NOTIONAL = 5e8
_FUNDING_PERIOD_US = 8 * 3600 * 1_000_000
_RATE_DECIMALS = 10  # funding rates print like 0.0001035718

_U64 = np.uint64
_MIX1 = _U64(0xBF58476D1CE4E5B9)
_MIX2 = _U64(0x94D049BB133111EB)
_GOLDEN = _U64(0x9E3779B97F4A7C15)
_MUL_J = _U64(0xD6E8FEB86659FD93)
_MUL_SIDE = _U64(0xA0761D6478BD642F)


# --------------------------------------------------------------------------------------------------------------
# hashing, seeding, time helpers


def _stable_int(*parts: object, nbytes: int = 16) -> int:
    """A stable (cross-process, cross-platform) integer hash of some values."""
    text = "\x1f".join(str(p) for p in parts)
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:nbytes], "little")


def _rng(seed: int, stream: int) -> np.random.Generator:
    """An independent random stream of one market."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(stream,)))


def _mix64(x: np.ndarray) -> np.ndarray:
    """SplitMix64 finalizer, vectorized over uint64 (wrapping multiplication)."""
    x = x ^ (x >> _U64(30))
    x = x * _MIX1
    x = x ^ (x >> _U64(27))
    x = x * _MIX2
    return x ^ (x >> _U64(31))


def _day_start_us(day: dt.date) -> int:
    """Microseconds since the epoch of 00:00 UTC of a day."""
    return (day.toordinal() - dt.date(1970, 1, 1).toordinal()) * US_PER_DAY


def _intraday_profile() -> tuple[np.ndarray, np.ndarray]:
    """Piecewise-linear CDF of event intensity over the day (fraction of day -> cumulative share)."""
    hours = (np.arange(1440) + 0.5) / 60.0
    weight = (
        1.0
        + 1.3 * np.exp(-0.5 * ((hours - 14.5) / 1.6) ** 2)  # US open
        + 0.35 * np.exp(-0.5 * ((hours - 1.5) / 1.5) ** 2)  # Asia
        + 0.35 * np.exp(-0.5 * ((hours - 8.5) / 1.2) ** 2)  # Europe
    )
    cdf = np.concatenate([[0.0], np.cumsum(weight)])
    return np.linspace(0.0, 1.0, 1441), cdf / cdf[-1]


_PROFILE_X, _PROFILE_CDF = _intraday_profile()


def _strictly_increasing(raw: np.ndarray) -> np.ndarray:
    """The smallest strictly increasing int64 sequence >= a non-decreasing one."""
    ar = np.arange(raw.size, dtype=np.int64)
    return np.maximum.accumulate(raw - ar) + ar


def _sorted_offsets(rng: np.random.Generator, n: int, lo: int, hi: int) -> np.ndarray:
    """n strictly increasing µs offsets in [lo, hi) of the day, following the intraday profile."""
    if n <= 0:
        return np.zeros(0, dtype=np.int64)
    top = hi - n  # raw offsets stay below top, so +n of strictness never leaves [lo, hi)
    if top <= lo:
        raise ValueError(f"cannot place {n} distinct microseconds in [{lo}, {hi})")
    spacing = np.cumsum(rng.exponential(size=n + 1))
    u = spacing[:n] / spacing[n]  # sorted uniforms without a sort
    f_lo, f_hi = np.interp([lo / US_PER_DAY, top / US_PER_DAY], _PROFILE_X, _PROFILE_CDF)
    frac = np.interp(f_lo + u * (f_hi - f_lo), _PROFILE_CDF, _PROFILE_X)
    raw = np.clip(np.floor(frac * US_PER_DAY).astype(np.int64), lo, top - 1)
    return _strictly_increasing(raw)


def _exchange_timestamps(rng: np.random.Generator, local: np.ndarray, t0: int) -> np.ndarray:
    """Exchange timestamps: local minus a few ms of latency, floored to ms, non-decreasing, >= day start."""
    latency = 300 + np.floor(rng.exponential(3_000.0, local.size)).astype(np.int64)
    ts = np.maximum((local - latency) // 1000 * 1000, t0)
    return np.maximum.accumulate(ts)


def _lognormal_lots(rng: np.random.Generator, n: int, median: float, sigma: float) -> np.ndarray:
    """Whole-lot sizes (>= 1) from a log-normal distribution."""
    return np.maximum(1, np.rint(median * np.exp(sigma * rng.standard_normal(n)))).astype(np.int64)


# --------------------------------------------------------------------------------------------------------------
# the market model


def _unit_value(spec: catalog.SymbolSpec) -> float:
    """USD value of one amount unit: linear contracts are in coins, whole-number (inverse) ones in USD."""
    return spec.base_price if spec.amount_decimals > 0 else 1.0


def _median_lots(spec: catalog.SymbolSpec, notional: float) -> float:
    """Number of lots worth a USD notional at the base price (at least one)."""
    return max(1.0, notional / _unit_value(spec) / spec.lot_size)


def _open_ticks(exchange: str, spec: catalog.SymbolSpec, day: dt.date) -> int:
    """Opening best bid of a day, in ticks: base price times a smooth function of the day number."""
    d = day.toordinal()
    # keyed by the base price, not the exchange: the same coin trades at about the same price everywhere
    asset = repr(spec.base_price)
    phases = [(_stable_int("phase", asset, i, nbytes=4) / 2**32) * 2 * math.pi for i in range(3)]
    noise = _stable_int("open", asset, day.isoformat(), nbytes=4) / 2**32 * 2.0 - 1.0
    x = (
        0.18 * math.sin(2 * math.pi * d / 365.25 + phases[0])
        + 0.04 * math.sin(2 * math.pi * d / 29.53 + phases[1])
        + 0.01 * math.sin(2 * math.pi * d / 7.0 + phases[2])
        + 0.003 * noise
    )
    price = spec.base_price * math.exp(x)
    return max(200, round(price * 10**spec.price_decimals / spec.tick_units))


@dataclass(frozen=True)
class _Book:
    """Top `levels` of the book for a contiguous range of events (arrays indexed by event - start)."""

    start: int
    bid: np.ndarray  # best bid, ticks
    ask: np.ndarray  # best ask, ticks
    bid_lots: np.ndarray  # (events, levels) amount in lots of bid level k (price bid - k)
    ask_lots: np.ndarray  # (events, levels) amount in lots of ask level k (price ask + k)

    def changed(self) -> np.ndarray:
        """For events 1.. of the range: did the top levels differ from the previous event."""
        return (
            (self.bid[1:] != self.bid[:-1])
            | (self.ask[1:] != self.ask[:-1])
            | (self.bid_lots[1:] != self.bid_lots[:-1]).any(axis=1)
            | (self.ask_lots[1:] != self.ask_lots[:-1]).any(axis=1)
        )


@dataclass(frozen=True)
class _Trades:
    local: np.ndarray
    ts: np.ndarray
    is_sell: np.ndarray
    price_ticks: np.ndarray
    lots: np.ndarray


class _Market:
    """The book-event model of one (exchange, symbol, day, scale); every data type is derived from it."""

    def __init__(self, exchange: str, spec: catalog.SymbolSpec, day: dt.date, scale: int) -> None:
        self.exchange = exchange
        self.spec = spec
        self.day = day
        self.scale = scale
        self.seed = _stable_int("tick_assets.synth", exchange, spec.id, day.isoformat(), scale)
        self.t0 = _day_start_us(day)
        self.salt = _U64(self.seed & 0xFFFF_FFFF_FFFF_FFFF)
        self.level_median = _median_lots(spec, _LEVEL_NOTIONAL)
        rng = _rng(self.seed, 0)
        n = self.n = scale

        # event times: event 0 is the initial book, a fraction of a second after midnight
        first = int(rng.integers(20_000, 300_000))
        local = np.empty(n, dtype=np.int64)
        local[0] = self.t0 + first
        local[1:] = self.t0 + _sorted_offsets(rng, n - 1, first + 1, US_PER_DAY)
        self.local = local
        self.ts = _exchange_timestamps(rng, local, self.t0)

        # price moves: bridged random walk of the best bid from today's to tomorrow's open
        is_move = rng.random(n) < _P_MOVE
        is_move[0] = False
        m = int(is_move.sum())
        b_open = _open_ticks(exchange, spec, day)
        b_next = _open_ticks(exchange, spec, day + dt.timedelta(days=1))
        spreads = rng.choice(3, size=m, p=_SPREAD_P).astype(np.int64) + 1
        sigma = max(0.7, _DAILY_VOL * b_open / math.sqrt(max(m, 1)))
        steps = np.rint(rng.normal(0.0, sigma, m)).astype(np.int64)
        walk = np.cumsum(steps)
        if m:
            drift = walk[-1] - (b_next - b_open)
            walk -= np.rint(np.arange(1, m + 1) / m * drift).astype(np.int64)
        path = np.maximum(b_open + walk, BOOK_DEPTH + 5)
        move_no = np.cumsum(is_move) - 1  # index of the last move at or before each event
        has_move = move_no >= 0
        safe = np.maximum(move_no, 0)
        self.bid = np.where(has_move, path[safe] if m else b_open, b_open).astype(np.int64)
        self.ask = self.bid + np.where(has_move, spreads[safe] if m else 1, 1)
        self.is_move = is_move

        # level updates: side and level (biased to the top) of every non-move event
        level_cdf = np.cumsum(_LEVEL_DECAY ** np.arange(BOOK_DEPTH))
        level_cdf /= level_cdf[-1]
        is_upd = ~is_move
        is_upd[0] = False
        side = rng.integers(0, 2, n).astype(np.int8)
        level = np.minimum(np.searchsorted(level_cdf, rng.random(n), side="right"), BOOK_DEPTH - 1)
        self.upd_side = np.where(is_upd, side, -1).astype(np.int8)
        self.upd_level = np.where(is_upd, level, 0).astype(np.int8)
        rows = np.flatnonzero(is_upd)
        upd_price = np.where(
            self.upd_side[rows] == _ASK,
            self.ask[rows] + self.upd_level[rows],
            self.bid[rows] - self.upd_level[rows],
        )
        self.pmin = int(self.bid.min()) - BOOK_DEPTH
        self.prange = int(self.ask.max()) + BOOK_DEPTH - self.pmin + 1
        if 2 * self.prange * max(n, 1) >= 2**62:
            raise ValueError("price range too wide for the update index")
        self.upd_keys = np.sort(self._key(self.upd_side[rows], upd_price) * n + rows)
        for arr in (self.local, self.ts, self.bid, self.ask, self.is_move, self.upd_side, self.upd_level):
            arr.setflags(write=False)

    # -- level amounts ----------------------------------------------------------------------------------------

    def _key(self, side: np.ndarray | int, price: np.ndarray) -> np.ndarray:
        return np.asarray(side, dtype=np.int64) * self.prange + (price - self.pmin)

    def _last_update(self, side: int, price: np.ndarray, event: np.ndarray) -> np.ndarray:
        """Index of the last update at (side, price) with index <= event, or -1 (vectorized searchsorted)."""
        key = self._key(side, price)
        query = key * self.n + event
        if self.upd_keys.size == 0:
            return np.full(np.broadcast(query).shape, -1, dtype=np.int64)
        pos = np.searchsorted(self.upd_keys, query, side="right") - 1
        found = self.upd_keys[np.maximum(pos, 0)]
        ok = (pos >= 0) & (found // self.n == key)
        return np.where(ok, found % self.n, -1)

    def _level_lots(self, side: np.ndarray | int, price: np.ndarray, last: np.ndarray) -> np.ndarray:
        """H(side, price, last update index): a deterministic log-normal-ish size in whole lots (>= 1)."""
        x = _mix64(np.asarray(price).astype(np.uint64) * _GOLDEN ^ self.salt)
        x = _mix64(
            x
            ^ (np.asarray(last + 1).astype(np.uint64) * _MUL_J)
            ^ (np.asarray(side).astype(np.uint64) * _MUL_SIDE)
        )
        mask = _U64(0xFFFF)
        total = (x & mask) + ((x >> _U64(16)) & mask) + ((x >> _U64(32)) & mask) + (x >> _U64(48))
        z = (total.astype(np.float64) / 65536.0 - 2.0) * math.sqrt(3.0)  # Irwin-Hall(4) ~ N(0, 1)
        return np.maximum(1.0, np.rint(self.level_median * np.exp(_LEVEL_SIGMA * z))).astype(np.int64)

    def book(self, start: int, stop: int, levels: int) -> _Book:
        """Top `levels` per side after each event in [start, stop)."""
        m = stop - start
        bid = np.asarray(self.bid[start:stop])
        ask = np.asarray(self.ask[start:stop])
        # rows where every level must be evaluated: the first row and every price move
        full = np.asarray(self.is_move[start:stop]).copy()
        full[0] = True
        full_rows = np.flatnonzero(full)
        upd_rows = np.flatnonzero(np.asarray(self.upd_side[start:stop]) >= 0)
        upd_side = self.upd_side[start + upd_rows]
        upd_level = self.upd_level[start + upd_rows].astype(np.int64)
        ks = np.arange(levels, dtype=np.int64)
        out = []
        for side, best, sign in ((_BID, bid, -1), (_ASK, ask, 1)):
            prices = best[full_rows, None] + sign * ks
            events = (start + full_rows)[:, None]
            value = np.zeros((m, levels), dtype=np.int64)
            source = np.full((m, levels), -1, dtype=np.int64)
            value[full_rows] = self._level_lots(side, prices, self._last_update(side, prices, events))
            source[full_rows] = full_rows[:, None]
            sel = (upd_side == side) & (upd_level < levels)
            rows, lv = upd_rows[sel], upd_level[sel]
            value[rows, lv] = self._level_lots(side, best[rows] + sign * lv, start + rows)
            source[rows, lv] = rows
            np.maximum.accumulate(source, axis=0, out=source)  # forward fill within each level column
            out.append(np.take_along_axis(value, source, axis=0))
        return _Book(start, bid, ask, out[0], out[1])

    # -- trades and other streams ----------------------------------------------------------------------------

    def book_index(self, local: np.ndarray) -> np.ndarray:
        """Index of the book event in force at each local timestamp (last event with local <= t)."""
        return np.maximum(np.searchsorted(self.local, local, side="right") - 1, 0)

    @functools.cached_property
    def trades(self) -> _Trades:
        """Taker trades at the touch of the book in force."""
        rng = _rng(self.seed, 1)
        count = max(5, self.scale // 3)
        local = self.t0 + _sorted_offsets(rng, count, int(self.local[0] - self.t0), US_PER_DAY)
        ts = _exchange_timestamps(rng, local, self.t0)
        is_sell = rng.random(count) < 0.5
        idx = self.book_index(local)
        price = np.where(is_sell, self.bid[idx], self.ask[idx])
        lots = _lognormal_lots(rng, count, _median_lots(self.spec, _TRADE_NOTIONAL), 1.4)
        return _Trades(local, ts, is_sell, price, lots)


@functools.lru_cache(maxsize=2)
def _market(exchange: str, symbol: str, day: dt.date, scale: int) -> _Market:
    spec = catalog.CATALOG[exchange].symbol(symbol)
    assert spec is not None
    return _Market(exchange, spec, day, scale)


# --------------------------------------------------------------------------------------------------------------
# arrow columns


def _const_str(value: str, n: int) -> pa.Array:
    return pa.repeat(pa.scalar(value, pa.string()), n)


def _choice_str(codes: np.ndarray, labels: tuple[str, str]) -> pa.Array:
    """Strings from 0/1 codes without a Python loop."""
    return pa.array(labels, pa.string()).take(pa.array(np.asarray(codes, dtype=np.int8)))


def _decimal(units: np.ndarray, decimals: int) -> np.ndarray:
    """Integer units / 10**decimals as float64: the correctly rounded double of that decimal."""
    return units.astype(np.float64) / 10.0**decimals


def _prices(ticks: np.ndarray, spec: catalog.SymbolSpec) -> np.ndarray:
    return _decimal(ticks * spec.tick_units, spec.price_decimals)


def _amounts(lots: np.ndarray, spec: catalog.SymbolSpec) -> np.ndarray:
    return _decimal(lots * spec.lot_units, spec.amount_decimals)


def _numeric_ids(rng: np.random.Generator, n: int, base: int) -> pa.Array:
    """Strictly increasing integer ids (as strings) from a base, with occasional gaps."""
    ids = base + np.cumsum(1 + (rng.random(n) < 0.08))
    return pa.array(ids, pa.int64()).cast(pa.string())


_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
_UUID_SPANS = ((0, 8, 0), (9, 13, 8), (14, 18, 12), (19, 23, 16), (24, 36, 20))  # (out start, out end, hex)


def _uuid_ids(rng: np.random.Generator, n: int) -> pa.Array:
    """Random UUID-like lowercase 8-4-4-4-12 hex strings, built as one byte buffer."""
    raw = rng.integers(0, 256, size=(n, 16), dtype=np.uint8)
    hexd = np.empty((n, 32), dtype=np.uint8)
    hexd[:, 0::2] = _HEX[raw >> 4]
    hexd[:, 1::2] = _HEX[raw & 15]
    out = np.full((n, 36), ord("-"), dtype=np.uint8)
    for lo, hi, h in _UUID_SPANS:
        out[:, lo:hi] = hexd[:, h : h + hi - lo]
    offsets = np.arange(0, 36 * (n + 1), 36, dtype=np.int64)
    arr = pa.LargeStringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(np.ascontiguousarray(out)))
    return arr.cast(pa.string())


def _table(data_type: str, arrays: list[pa.Array | np.ndarray]) -> pa.Table:
    return pa.Table.from_arrays(
        [pa.array(a) if isinstance(a, np.ndarray) else a for a in arrays],
        names=list(datatypes.columns(data_type)),
    )


def _head(mk: _Market, ts: np.ndarray, local: np.ndarray) -> list[pa.Array | np.ndarray]:
    n = len(local)
    return [
        _const_str(mk.exchange, n),
        _const_str(mk.spec.id, n),
        ts.astype(np.int64),
        local.astype(np.int64),
    ]


# --------------------------------------------------------------------------------------------------------------
# data types


def _iter_snapshots(mk: _Market, data_type: str, levels: int, chunk: int) -> Iterator[pa.Table]:
    """book_snapshot_N / quotes: one row per event whose top `levels` changed."""
    spec = mk.spec
    for lo in range(0, mk.n, chunk):
        hi = min(mk.n, lo + chunk)
        start = max(lo - 1, 0)
        book = mk.book(start, hi, levels)
        keep = book.changed()
        if lo == 0:
            keep = np.concatenate([[True], keep])
        rows = np.flatnonzero(keep) + (lo - start)
        ev = start + rows
        cols = _head(mk, mk.ts[ev], mk.local[ev])
        bid, ask = book.bid[rows], book.ask[rows]
        if data_type == "quotes":
            cols += [
                _amounts(book.ask_lots[rows, 0], spec),
                _prices(ask, spec),
                _prices(bid, spec),
                _amounts(book.bid_lots[rows, 0], spec),
            ]
        else:
            ask_lots, bid_lots = book.ask_lots[rows], book.bid_lots[rows]
            for k in range(levels):
                cols += [
                    _prices(ask + k, spec),
                    _amounts(ask_lots[:, k], spec),
                    _prices(bid - k, spec),
                    _amounts(bid_lots[:, k], spec),
                ]
        yield _table(data_type, cols)


def _repeat_index(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For counts c_e: (e repeated c_e times, 0..c_e-1 within each e)."""
    owner = np.repeat(np.arange(counts.size), counts)
    first = np.cumsum(counts) - counts
    return owner, np.arange(owner.size) - first[owner]


def _iter_l2(mk: _Market, chunk: int) -> Iterator[pa.Table]:
    """incremental_book_L2: the initial 50 levels as a snapshot, then per event the levels that changed."""
    spec = mk.spec
    depth = BOOK_DEPTH
    for lo in range(0, mk.n, chunk):
        hi = min(mk.n, lo + chunk)
        start = max(lo - 1, 0)
        book = mk.book(start, hi, depth)
        parts: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, bool]] = []  # ev, side, price, lots
        if lo == 0:
            ks = np.arange(depth)
            parts.append(
                (
                    np.zeros(2 * depth, dtype=np.int64),
                    np.repeat(np.array([_ASK, _BID], dtype=np.int8), depth),
                    np.concatenate([book.ask[0] + ks, book.bid[0] - ks]),
                    np.concatenate([book.ask_lots[0], book.bid_lots[0]]),
                    True,
                )
            )
        # events 1.. of the range, compared with the event before
        e = np.arange(1, hi - start)
        g = start + e
        uside = np.asarray(mk.upd_side[g])
        ulevel = np.asarray(mk.upd_level[g]).astype(np.int64)
        is_upd = uside >= 0
        ul = np.where(is_upd, ulevel, 0)
        new_lots = np.where(uside == _ASK, book.ask_lots[e, ul], book.bid_lots[e, ul])
        old_lots = np.where(uside == _ASK, book.ask_lots[e - 1, ul], book.bid_lots[e - 1, ul])
        c_upd = (is_upd & (new_lots != old_lots)).astype(np.int64)
        d_ask = book.ask[e] - book.ask[e - 1]
        d_bid = book.bid[e] - book.bid[e - 1]
        c_ask = np.minimum(np.abs(d_ask), depth)
        c_bid = np.minimum(np.abs(d_bid), depth)
        # categories in row order within an event: update, ask leave, ask enter, bid leave, bid enter
        counts = [c_upd, c_ask, c_ask, c_bid, c_bid]
        total = sum(counts)
        row0 = np.cumsum(total) - total
        n_rows = int(total.sum())
        out_ev = np.empty(n_rows, dtype=np.int64)
        out_side = np.empty(n_rows, dtype=np.int8)
        out_price = np.empty(n_rows, dtype=np.int64)
        out_lots = np.empty(n_rows, dtype=np.int64)
        offset = row0.copy()
        for cat, c in enumerate(counts):
            owner, j = _repeat_index(c)
            pos = offset[owner] + j
            offset += c
            ee = e[owner]
            if cat == 0:
                side = uside[owner]
                lv = ulevel[owner]
                price = np.where(side == _ASK, book.ask[ee] + lv, book.bid[ee] - lv)
                lots = new_lots[owner]
            elif cat in (1, 2):  # ask side: window ask .. ask + 24
                side = np.full(owner.size, _ASK, dtype=np.int8)
                up = d_ask[owner] > 0
                cc = c_ask[owner]
                if cat == 1:  # leaving: old levels at the near end when moving up, far end when moving down
                    lv = np.where(up, 0, depth - cc) + j
                    price, lots = book.ask[ee - 1] + lv, np.zeros(owner.size, dtype=np.int64)
                else:
                    lv = np.where(up, depth - cc, 0) + j
                    price, lots = book.ask[ee] + lv, book.ask_lots[ee, lv]
            else:  # bid side: window bid - 24 .. bid
                side = np.full(owner.size, _BID, dtype=np.int8)
                up = d_bid[owner] > 0
                cc = c_bid[owner]
                if cat == 3:
                    lv = np.where(up, depth - cc, 0) + j
                    price, lots = book.bid[ee - 1] - lv, np.zeros(owner.size, dtype=np.int64)
                else:
                    lv = np.where(up, 0, depth - cc) + j
                    price, lots = book.bid[ee] - lv, book.bid_lots[ee, lv]
            out_ev[pos] = ee
            out_side[pos] = side
            out_price[pos] = price
            out_lots[pos] = lots
        parts.append((out_ev, out_side, out_price, out_lots, False))
        for ev_local, side, price, lots, snapshot in parts:
            ev = start + ev_local
            cols = _head(mk, mk.ts[ev], mk.local[ev])
            cols += [
                pa.repeat(pa.scalar(snapshot, pa.bool_()), ev.size),
                _choice_str(side, ("ask", "bid")),
                _prices(price, spec),
                _amounts(lots, spec),
            ]
            yield _table("incremental_book_L2", cols)


def _trades_table(mk: _Market) -> pa.Table:
    tr = mk.trades
    rng = _rng(mk.seed, 2)
    n = tr.local.size
    if mk.spec.trade_id_style == "uuid":
        ids = _uuid_ids(rng, n)
    else:
        ids = _numeric_ids(rng, n, _id_base(mk, "trades"))
    cols = _head(mk, tr.ts, tr.local)
    cols += [
        ids,
        _choice_str(tr.is_sell, ("buy", "sell")),
        _prices(tr.price_ticks, mk.spec),
        _amounts(tr.lots, mk.spec),
    ]
    return _table("trades", cols)


def _id_base(mk: _Market, what: str) -> int:
    """A per-day base for numeric ids that grows from day to day."""
    days = mk.day.toordinal() - dt.date(2017, 1, 1).toordinal()
    return (
        100_000_000
        + days * 20_000_000
        + _stable_int(what, mk.exchange, mk.spec.id, mk.day, nbytes=4) % 1_000_000
    )


def _derivative_ticker_table(mk: _Market) -> pa.Table:
    spec = mk.spec
    rng = _rng(mk.seed, 3)
    n = max(24, mk.scale // 10)
    lo = int(mk.local[0] - mk.t0)
    grid = (US_PER_DAY - lo) / n
    raw = lo + np.floor((np.arange(n) + 0.05 + 0.9 * rng.random(n)) * grid).astype(np.int64)
    local = mk.t0 + np.minimum(_strictly_increasing(raw), US_PER_DAY - 1)
    ts = _exchange_timestamps(rng, local, mk.t0)
    idx = mk.book_index(local)
    mid = (mk.bid[idx] + mk.ask[idx]) * spec.tick_units / (2 * 10**spec.price_decimals)
    # last price: the last trade at or before the ticker (the mid before the first trade), in half-units
    tr = mk.trades
    t_idx = np.searchsorted(tr.local, local, side="right") - 1
    half_units = (
        np.where(t_idx >= 0, 2 * tr.price_ticks[np.maximum(t_idx, 0)], mk.bid[idx] + mk.ask[idx])
        * spec.tick_units
    )
    last_price = _decimal(half_units * 5, spec.price_decimals + 1)
    fine = spec.price_decimals + 2
    index_bps = np.cumsum(rng.normal(0.0, 0.3, n)) / math.sqrt(n) * 4 + rng.normal(0.0, 1.0, n)
    index_price = _decimal(np.rint(mid * (1 + 1e-4 * index_bps) * 10**fine), fine)
    mark_price = _decimal(
        np.rint(mid * (1 + 1e-4 * (index_bps + 1.5 + rng.normal(0.0, 0.5, n))) * 10**fine), fine
    )
    rate = 1e-4 + 2e-5 * (rng.standard_normal() + np.cumsum(rng.standard_normal(n)) / math.sqrt(n))
    rate = np.clip(rate, 1.5e-5, 7.5e-4)
    funding_rate = _decimal(np.rint(rate * 10**_RATE_DECIMALS), _RATE_DECIMALS)
    predicted = np.clip(rate + rng.normal(0.0, 1e-5, n), 1.5e-5, 7.5e-4)
    predicted_rate = _decimal(np.rint(predicted * 10**_RATE_DECIMALS), _RATE_DECIMALS)
    funding_ts = mk.t0 + ((ts - mk.t0) // _FUNDING_PERIOD_US + 1) * _FUNDING_PERIOD_US
    oi_walk = np.cumsum(rng.normal(0.0, 0.08 / math.sqrt(n), n)) + 0.1 * rng.standard_normal()
    oi_units = _OPEN_INTEREST_NOTIONAL / _unit_value(spec) * np.exp(np.clip(oi_walk, -0.5, 0.5))
    oi_lots = np.maximum(1, np.rint(oi_units / spec.lot_size)).astype(np.int64)
    open_interest = _amounts(oi_lots, spec)
    if mk.exchange == "deribit":
        funding_ts_col = pa.nulls(n, pa.int64())
        predicted_col = pa.nulls(n, pa.float64())
    else:
        funding_ts_col = pa.array(funding_ts, pa.int64())
        predicted_col = pa.array(predicted_rate, pa.float64())
    cols = _head(mk, ts, local)
    cols += [funding_ts_col, funding_rate, predicted_col, open_interest, last_price, index_price, mark_price]
    return _table("derivative_ticker", cols)


def _liquidations_table(mk: _Market) -> pa.Table:
    spec = mk.spec
    rng = _rng(mk.seed, 4)
    n = max(3, mk.scale // 200)
    local = mk.t0 + _sorted_offsets(rng, n, int(mk.local[0] - mk.t0), US_PER_DAY)
    ts = _exchange_timestamps(rng, local, mk.t0)
    idx = mk.book_index(local)
    is_sell = rng.random(n) < 0.5  # sell: a long position was liquidated, below the bid
    bps = 2.0 + rng.exponential(6.0, n)
    through = np.ceil(bps * 1e-4 * mk.bid[idx]).astype(np.int64)
    price = np.where(is_sell, mk.bid[idx] - through, mk.ask[idx] + through)
    lots = _lognormal_lots(rng, n, _median_lots(spec, _LIQ_NOTIONAL), 1.2)
    ids = pa.nulls(n, pa.string()) if mk.exchange == "deribit" else _numeric_ids(rng, n, _id_base(mk, "liq"))
    cols = _head(mk, ts, local)
    cols += [ids, _choice_str(is_sell, ("buy", "sell")), _prices(price, spec), _amounts(lots, spec)]
    return _table("liquidations", cols)


# --------------------------------------------------------------------------------------------------------------
# public API


def resolve(exchange: str, symbol: str, data_type: str) -> catalog.SymbolSpec:
    """Return the catalog symbol, or raise ValueError if the exchange, symbol or data type is not served."""
    ex = catalog.CATALOG.get(exchange)
    if ex is None:
        raise ValueError(f"unknown exchange {exchange!r}")
    spec = ex.symbol(symbol)
    if spec is None:
        raise ValueError(f"unknown symbol {symbol!r} for exchange {exchange!r}")
    if data_type not in spec.data_types:
        raise ValueError(f"data type {data_type!r} is not available for {exchange} {symbol}")
    return spec


def iter_tables(
    exchange: str, symbol: str, data_type: str, day: dt.date, scale: int, chunk_events: int = CHUNK_EVENTS
) -> Iterator[pa.Table]:
    """Return an iterator over the rows of a synthetic dataset day as consecutive tables (bounded memory)."""
    resolve(exchange, symbol, data_type)
    try:
        scale = operator.index(scale)
    except TypeError:
        raise ValueError(f"scale must be an integer, got {scale!r}") from None
    if scale < 1:
        raise ValueError(f"scale must be at least 1, got {scale}")
    if isinstance(day, dt.datetime):
        day = day.date()
    mk = _market(exchange, symbol, day, scale)
    if data_type == "book_snapshot_25":
        return _iter_snapshots(mk, data_type, 25, chunk_events)
    if data_type == "book_snapshot_5":
        return _iter_snapshots(mk, data_type, 5, chunk_events)
    if data_type == "quotes":
        return _iter_snapshots(mk, data_type, 1, chunk_events)
    if data_type == "incremental_book_L2":
        return _iter_l2(mk, chunk_events)
    if data_type == "trades":
        return iter([_trades_table(mk)])
    if data_type == "derivative_ticker":
        return iter([_derivative_ticker_table(mk)])
    if data_type == "liquidations":
        return iter([_liquidations_table(mk)])
    raise ValueError(f"the generator does not produce {data_type!r}")


def generate_table(exchange: str, symbol: str, data_type: str, day: dt.date, scale: int) -> pa.Table:
    """Generate one synthetic dataset day as a single table with the Tardis columns of the data type."""
    tables = list(iter_tables(exchange, symbol, data_type, day, scale))
    return pa.concat_tables(tables).combine_chunks() if len(tables) > 1 else tables[0]


def write_dataset(
    exchange: str,
    symbol: str,
    data_type: str,
    day: dt.date,
    scale: int,
    out_path: str | os.PathLike[str],
    compresslevel: int = csvout.DEFAULT_COMPRESSLEVEL,
) -> int:
    """Generate a synthetic dataset day and write it as a Tardis .csv.gz; return the row count."""
    tables = iter_tables(exchange, symbol, data_type, day, scale)
    return csvout.write_csv_gz(out_path, data_type, tables, compresslevel)
