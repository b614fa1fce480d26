"""Deterministic, vectorized synthetic Tardis market data: one market model per (exchange, symbol, day, scale).

The model (all numpy, no per-event Python loop):

* ``scale`` book events spread over the UTC day with an intraday intensity profile. ``local_timestamp`` is
  strictly increasing; the exchange ``timestamp`` is ``local - latency`` floored to the millisecond and made
  non-decreasing, so ``local_timestamp >= timestamp`` in every row. The latency is log-normal around a base per
  exchange (a few ms for binance, tens of ms for bitmex) with a tail of slow messages.
* Prices live on an integer tick grid. The best bid follows a random walk over "move" events (8% of events),
  bridged so the day ends where the next day opens (the opening price is a smooth function of the day number);
  most moves are one tick, a few sweep several levels and carry the day's volatility; the spread is 1-3 ticks.
  The visible book is 25 contiguous levels per side: bids ``b - k``, asks ``a + k``.
* The other events update one level (biased to the top). A "major" update replaces the resting size with a pure
  hash ``H(side, price, major update index)`` (log-normal, some round sizes); a "minor" one nudges it by one
  small order, a hash of its own index. So a level that leaves the window and comes back keeps its size, and
  sizes drift by small amounts as in real books. Every data type (snapshots, quotes, L2 diffs, trades at the
  touch, ticker, liquidations) is read off this one model, which makes them mutually consistent: replaying
  ``incremental_book_L2`` reproduces ``book_snapshot_25`` exactly.
* Beyond the window, ``incremental_book_L2`` carries the deep book real feeds send: on each side, levels at 12%
  of the ticks within 5% of the day's open (hundreds to thousands of levels a side), resting at the window's size
  function (a level that falls out of the window keeps its size), and on 1% of the events a far-away level appears
  or leaves (and, later the same day, leaves or comes back). A move past the window drops the deep levels the
  touch passed over and shows those between the old touch and the new window.
* A day opens with the book the previous day closed with: the touch is bridged across midnight and the spread
  carried over, the far-away book at rest is the same every day, and a level no update of the day has set holds
  what the week's earlier days left there (their update indexes are looked up in their own models). The far book
  spans 5% around each day's own open, so its edges move at midnight. The model starts each UTC week (Monday) at
  rest. The top 25 levels are always the window, so ``book_snapshot_25``, ``book_snapshot_5``
  and ``quotes`` are exactly the top of the L2 book; a message that changes only the deep book has no snapshot row.
* ``incremental_book_L2`` has what real files have: on about half of the days a few buffered update rows before
  the first snapshot (readers must skip them), and on about 60% of the days one or two mid-day reconnects, where
  the feed sends the whole book again as a group of ``is_snapshot=true`` rows sharing one ``local_timestamp``
  instead of that event's changes (the book after it is the model's book, so it must replace the old one).
* Trades come in bursts: fills of one taker order share the exchange timestamp and side and arrive µs apart;
  sizes are log-normal over about three decades, with many one-lot and one-significant-digit sizes; numeric
  trade ids are consecutive.

Rows per day by data type, as a function of ``scale`` (book events per day), measured on 2024-03-01 for
binance-futures BTCUSDT / deribit BTC-PERPETUAL / bitmex XBTUSD (the L2 ratio depends most on the symbol and the
scale: a smaller day has fewer, larger price moves, and a move shifts the 25-level windows):

=====================  ===============================  =======================================
data type              rows per day                     binance-futures BTCUSDT, 20k / 500k / 5M
=====================  ===============================  =======================================
book_snapshot_25       0.91-0.98 x scale                19.2k / 472k / 4.8M
book_snapshot_5        0.54-0.59 x scale                11.6k / 284k / 2.9M
quotes                 0.20-0.22 x scale                4.4k / 105k / 1.05M
incremental_book_L2    1.5-2.2 x scale                  44k / 873k / ~8M
trades                 max(5, scale // 3)               6.7k / 167k / 1.67M
derivative_ticker      max(24, scale // 10)             2k / 50k / 500k
liquidations           max(3, scale // 200)             100 / 2.5k / 25k
=====================  ===============================  =======================================

A real-size book_snapshot_25 day (5M rows) is scale ~5.4M; an incremental_book_L2 day of 20M rows is scale
~13.5M (see bench/synthetic_data.py, which measures both). Book data types are generated in chunks of
``CHUNK_EVENTS`` events, so memory is the O(scale) model (about 60 bytes per event), the update keys of the
week's earlier days (about 10 bytes per event each, up to six of them on a Sunday), plus one chunk.

Prices and amounts are integers divided by a power of ten, so they print in shortest decimal form.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import math
import operator
import os
from collections.abc import Callable, Iterator
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
_P_MOVE = 0.08  # share of book events that move the best bid/ask; the rest update one level
_SPREAD_P = (0.80, 0.15, 0.05)  # spread of 1, 2, 3 ticks
_LEVEL_DECAY = 0.85  # updates hit level k with weight decay**k
_DAILY_VOL = 0.015  # random-walk standard deviation over a day, as a fraction of the price
_P_SWEEP = 0.08  # share of price moves that sweep several levels (the rest move one tick)
_LEVEL_NOTIONAL = 25_000.0  # median resting size of a level, in USD
_LEVEL_SIGMA = 1.3  # log-normal sigma of level sizes
_LEVEL_P_ROUND = 0.2  # share of level sizes with one significant digit (a single round order resting there)
_P_MAJOR = 0.3  # share of level updates that replace the resting size; the rest nudge it (small orders)
_MINOR_FRAC = 0.005  # median size of a nudge (one small order), as a fraction of the resting size
_MINOR_SIGMA = 1.2  # log-normal sigma of nudge sizes
_TRADE_NOTIONAL = 1_000.0  # median trade size, in USD
_TRADE_SIGMA = 2.0  # log-normal sigma of trade sizes (real ones span about 3 decades)
_TRADE_P_ONE, _TRADE_P_ROUND = 0.07, 0.3  # shares of one-lot and one-significant-digit trade sizes
_TRADE_BURST_P = 0.45  # probability that a trade is another fill of the previous one's taker order
_TRADE_FILL_GAP_US = 10.0  # mean receive gap between the fills of one order
_TRADE_SIDE_FLIP = 0.3  # probability that a new taker order is on the other side than the last
#: Typical collector latency per exchange (local_timestamp - timestamp), µs; log-normal jitter and a slow tail.
_BASE_LATENCY_US = {"binance-futures": 5_000.0, "binance": 4_000.0, "deribit": 2_500.0, "bitmex": 40_000.0}
_DEFAULT_LATENCY_US = 10_000.0
_LATENCY_SIGMA = 0.25
_LATENCY_SLOW_P = 0.03
_RECONNECTS_P = (0.4, 0.5, 0.1)  # probability of 0, 1, 2 mid-day reconnects (a new L2 snapshot) in a day
_RECONNECT_MIN_EVENTS = 200  # smaller days never reconnect
_PRE_SNAPSHOT_P = 0.5  # probability that an L2 day starts with buffered updates before its first snapshot
_PRE_SNAPSHOT_MAX_ROWS = 8
#: The deep book, seen only in incremental_book_L2: beyond the 25-level window, levels at a share of the ticks
#: within DEEP_RANGE of the day's open on each side, at rest unless an occasional far-away order appears or leaves.
DEEP_RANGE = 0.05
_DEEP_DENSITY = 0.12
_P_DEEP_TOGGLE = 0.01  # share of events that also add or remove a far-away level (never inside the window)
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
_MUL_MINOR = _U64(0xE7037ED1A0B428DB)
_MUL_DEEP = _U64(0xC2B2AE3D27D4EB4F)


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


def _latencies(rng: np.random.Generator, n: int, base_us: float) -> np.ndarray:
    """Collector latencies in µs: log-normal around the exchange's base, with a heavy tail of slow messages."""
    jitter = np.exp(_LATENCY_SIGMA * rng.standard_normal(n))
    slow = np.where(rng.random(n) < _LATENCY_SLOW_P, rng.exponential(4.0 * base_us, n), 0.0)
    return 200 + np.floor(base_us * jitter + slow).astype(np.int64)


def _exchange_timestamps(
    rng: np.random.Generator, local: np.ndarray, t0: int, base_latency_us: float
) -> np.ndarray:
    """Exchange timestamps: local minus a jittered latency, floored to ms, non-decreasing, >= day start."""
    ts = np.maximum((local - _latencies(rng, local.size, base_latency_us)) // 1000 * 1000, t0)
    return np.maximum.accumulate(ts)


def _round_lots(lots: np.ndarray, u: np.ndarray, p_one: float, p_round: float) -> np.ndarray:
    """Make some sizes round like people type them: u < p_one gives one lot, u < p_one + p_round one digit."""
    lots = np.maximum(lots, 1)
    unit = 10 ** np.floor(np.log10(lots.astype(np.float64))).astype(np.int64)
    rounded = np.maximum(1, np.rint(lots / unit).astype(np.int64)) * unit
    return np.where(u < p_one, 1, np.where(u < p_one + p_round, rounded, lots)).astype(np.int64)


def _lognormal_lots(
    rng: np.random.Generator, n: int, median: float, sigma: float, p_one: float = 0.0, p_round: float = 0.0
) -> np.ndarray:
    """Whole-lot sizes (>= 1) from a log-normal distribution, some of them rounded (see _round_lots)."""
    lots = np.maximum(1, np.rint(median * np.exp(sigma * rng.standard_normal(n)))).astype(np.int64)
    if p_one or p_round:
        lots = _round_lots(lots, rng.random(n), p_one, p_round)
    return lots


def _price_steps(rng: np.random.Generator, m: int, sigma: float) -> np.ndarray:
    """Steps of the best bid in ticks with standard deviation sigma: mostly one tick, sometimes a sweep.

    Real books mostly tick up or down by one level; the daily range comes from rare large moves. When sigma is
    large (few moves in a day), a share _P_SWEEP of the moves is normal with the variance the one-tick steps
    leave over.
    """
    if sigma * sigma <= 1.5:
        return np.rint(rng.normal(0.0, sigma, m)).astype(np.int64)
    sweep = rng.random(m) < _P_SWEEP
    big_sigma = math.sqrt((sigma * sigma - (1.0 - _P_SWEEP)) / _P_SWEEP)
    one = np.where(rng.random(m) < 0.5, -1, 1)
    return np.where(sweep, np.rint(rng.normal(0.0, big_sigma, m)), one).astype(np.int64)


# --------------------------------------------------------------------------------------------------------------
# the market model


def _unit_value(spec: catalog.SymbolSpec) -> float:
    """USD value of one amount unit: linear contracts are in coins, whole-number (inverse) ones in USD."""
    return spec.base_price if spec.amount_decimals > 0 else 1.0


def _median_lots(spec: catalog.SymbolSpec, notional: float) -> float:
    """Number of lots worth a USD notional at the base price (at least one)."""
    return max(1.0, notional / _unit_value(spec) / spec.lot_size)


def open_price(base_price: float, day: dt.date) -> float:
    """Opening price of a day: the base price times a smooth function of the day number. Keyed by the base
    price, not the exchange: the same coin trades at about the same price everywhere (options included)."""
    d = day.toordinal()
    asset = repr(base_price)
    phases = [(_stable_int("phase", asset, i, nbytes=4) / 2**32) * 2 * math.pi for i in range(3)]
    noise = _stable_int("open", asset, day.isoformat(), nbytes=4) / 2**32 * 2.0 - 1.0
    x = (
        0.18 * math.sin(2 * math.pi * d / 365.25 + phases[0])
        + 0.04 * math.sin(2 * math.pi * d / 29.53 + phases[1])
        + 0.01 * math.sin(2 * math.pi * d / 7.0 + phases[2])
        + 0.003 * noise
    )
    return base_price * math.exp(x)


def _open_ticks(exchange: str, spec: catalog.SymbolSpec, day: dt.date) -> int:
    """Opening best bid of a day, in ticks."""
    price = open_price(spec.base_price, day)
    return max(200, round(price * 10**spec.price_decimals / spec.tick_units))


def _opening_spread(exchange: str, spec: catalog.SymbolSpec, day: dt.date) -> int:
    """The spread in ticks a day opens with (and the previous day's last move ends with), drawn like the others."""
    u = _stable_int("spread", exchange, spec.id, day.isoformat(), nbytes=4) / 2**32
    return int(np.searchsorted(np.cumsum(_SPREAD_P), u, side="right")) + 1


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
        # what a level holds when no update of this day or the previous one set it, and which far-away levels
        # rest: the same every day, so a day opens with the book the previous one closed with
        self.rest_salt = _U64(_stable_int("tick_assets.synth.rest", exchange, spec.id, scale, nbytes=8))
        self.level_median = _median_lots(spec, _LEVEL_NOTIONAL)
        self.latency_us = _BASE_LATENCY_US.get(exchange, _DEFAULT_LATENCY_US)
        rng = _rng(self.seed, 0)
        n = self.n = scale

        # event times: event 0 is the initial book, a fraction of a second after midnight
        first = int(rng.integers(20_000, 300_000))
        local = np.empty(n, dtype=np.int64)
        local[0] = self.t0 + first
        local[1:] = self.t0 + _sorted_offsets(rng, n - 1, first + 1, US_PER_DAY)
        self.local = local
        self.ts = _exchange_timestamps(rng, local, self.t0, self.latency_us)

        # price moves: bridged random walk of the best bid from today's to tomorrow's open
        is_move = rng.random(n) < _P_MOVE
        is_move[0] = False
        m = int(is_move.sum())
        b_open = _open_ticks(exchange, spec, day)
        b_next = _open_ticks(exchange, spec, day + dt.timedelta(days=1))
        spreads = rng.choice(3, size=m, p=_SPREAD_P).astype(np.int64) + 1
        # the day opens with the spread the previous day's last move left (both read it off the day number)
        opening_spread = _opening_spread(exchange, spec, day)
        if m:
            spreads[-1] = _opening_spread(exchange, spec, day + dt.timedelta(days=1))
        sigma = max(0.7, _DAILY_VOL * b_open / math.sqrt(max(m, 1)))
        steps = _price_steps(rng, m, sigma)
        walk = np.cumsum(steps)
        if m:
            drift = walk[-1] - (b_next - b_open)
            walk -= np.rint(np.arange(1, m + 1) / m * drift).astype(np.int64)
        path = np.maximum(b_open + walk, BOOK_DEPTH + 5)
        move_no = np.cumsum(is_move) - 1  # index of the last move at or before each event
        has_move = move_no >= 0
        safe = np.maximum(move_no, 0)
        self.bid = np.where(has_move, path[safe] if m else b_open, b_open).astype(np.int64)
        self.ask = self.bid + np.where(has_move, spreads[safe] if m else opening_spread, opening_spread)
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
        # a major update replaces the resting size of its level; a minor one nudges it (see _level_lots)
        self.upd_major = is_upd & (rng.random(n) < _P_MAJOR)
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
        keys = self._key(self.upd_side[rows], upd_price) * n + rows
        self.upd_keys = np.sort(keys)
        self.major_keys = np.sort(keys[self.upd_major[rows]])
        del keys, upd_price, rows
        self.reconnects = self._reconnect_events()
        self.deep_lo = int(b_open * (1 - DEEP_RANGE))
        self.deep_hi = int(b_open * (1 + DEEP_RANGE))
        self.toggle_event, self.toggle_side, self.toggle_price, self.toggle_keys = self._deep_toggles()
        arrays = (self.local, self.ts, self.bid, self.ask, self.is_move, self.upd_side, self.upd_level)
        for arr in (*arrays, self.upd_major, self.reconnects, self.toggle_event, self.toggle_keys):
            arr.setflags(write=False)

    def _reconnect_events(self) -> np.ndarray:
        """Events at which the L2 feed reconnects mid-day: 0-2 a day, each one at an event that moves the bid."""
        rng = _rng(self.seed, 6)
        count = int(np.searchsorted(np.cumsum(_RECONNECTS_P), rng.random(), side="right"))
        if count == 0 or self.n < _RECONNECT_MIN_EVENTS:
            return np.zeros(0, dtype=np.int64)
        candidates = np.flatnonzero(self.bid[1:] != self.bid[:-1]) + 1  # the top 25 change there for sure
        edges = np.linspace(0.1 * self.n, 0.9 * self.n, count + 1).astype(np.int64)
        wanted = edges[:-1] + np.floor(rng.random(count) * (edges[1:] - edges[:-1])).astype(np.int64)
        pos = np.searchsorted(candidates, wanted)
        found = candidates[np.minimum(pos, max(candidates.size - 1, 0))] if candidates.size else wanted
        ok = (pos < candidates.size) & (found < edges[1:])
        return found[ok].astype(np.int64)

    # -- the deep book (beyond the window) ---------------------------------------------------------------------

    def _deep_key(self, side: np.ndarray | int, price: np.ndarray) -> np.ndarray:
        span = self.deep_hi - self.deep_lo + 1
        return np.asarray(side, dtype=np.int64) * span + (np.asarray(price) - self.deep_lo)

    def _deep_toggles(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Far-away levels that appear or leave, and later the same day leave or come back (so every day closes
        with the resting far-away book the next one opens with): (event, side, price, sorted keys key * n +
        event), events sorted and distinct."""
        rng = _rng(self.seed, 8)
        first = np.flatnonzero(rng.random(self.n) < _P_DEEP_TOGGLE / 2)
        first = first[(first > 0) & (first < self.n - 1)]
        second = first + 1 + np.floor(rng.random(first.size) * (self.n - 1 - first)).astype(np.int64)
        side = rng.integers(0, 2, first.size).astype(np.int8)
        u = rng.random(first.size)
        lo = np.where(side == _ASK, self.ask[first] + BOOK_DEPTH, self.deep_lo)
        hi = np.where(side == _ASK, self.deep_hi, self.bid[first] - BOOK_DEPTH)
        ok = hi >= lo  # the touch may have left the deep range
        first, second, side, u, lo, hi = first[ok], second[ok], side[ok], u[ok], lo[ok], hi[ok]
        # a pair whose return shares its event with another toggle is dropped whole: one toggle per event
        events, seen = np.unique(np.concatenate([first, second]), return_counts=True)
        shared = events[seen > 1]
        clash = np.isin(first, shared) | np.isin(second, shared)
        first, second, side, u, lo, hi = (a[~clash] for a in (first, second, side, u, lo, hi))
        price = lo + np.floor(u * (hi - lo + 1)).astype(np.int64)
        events = np.concatenate([first, second])
        order = np.argsort(events, kind="stable")
        events, side, price = (
            events[order],
            np.concatenate([side, side])[order],
            np.concatenate([price, price])[order],
        )
        keys = np.sort(self._deep_key(side, price) * self.n + events)
        return events.astype(np.int64), side, price.astype(np.int64), keys

    def deep_exists(self, side: np.ndarray | int, price: np.ndarray, event: np.ndarray) -> np.ndarray:
        """Whether a level rests at (side, price) after `event` when that price is outside the window."""
        price = np.asarray(price)
        inside = (price >= self.deep_lo) & (price <= self.deep_hi)
        x = self._hash(side, price, np.full(np.shape(price), -1), _MUL_DEEP, self.rest_salt)
        base = (x >> _U64(11)).astype(np.float64) / 2.0**53 < _DEEP_DENSITY
        key = self._deep_key(side, np.clip(price, self.deep_lo, self.deep_hi)) * self.n
        toggles = np.searchsorted(self.toggle_keys, key + event, side="right") - np.searchsorted(
            self.toggle_keys, key, side="left"
        )
        return inside & (base ^ (toggles % 2 == 1))

    def deep_lots(self, side: np.ndarray | int, price: np.ndarray, event: np.ndarray) -> np.ndarray:
        """Size in lots of a level at (side, price) after `event`: the window's size function, so a level that
        leaves the window keeps its size and one that was never in it has its resting size."""
        price = np.asarray(price)
        window = (price >= self.pmin) & (price < self.pmin + self.prange)
        safe = np.where(window, price, self.pmin)
        last = np.where(window, self._last_update(self.upd_keys, side, safe, event), -1)
        major = np.where(window, self._last_update(self.major_keys, side, safe, event), -1)
        return self._level_lots(side, price, last, major)

    @functools.cached_property
    def pre_snapshot(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Buffered L2 updates received before the day's first snapshot: (ts, local, side, price, lots)."""
        rng = _rng(self.seed, 7)
        count = 0 if rng.random() >= _PRE_SNAPSHOT_P else int(rng.integers(1, _PRE_SNAPSHOT_MAX_ROWS + 1))
        lo, hi = self.t0 + 1_000, int(self.local[0])
        groups = int(rng.integers(1, 4))
        times = np.sort(lo + rng.choice(hi - lo, size=groups, replace=False).astype(np.int64))
        local = times[np.sort(rng.integers(0, groups, count))]
        ts = np.minimum(_exchange_timestamps(rng, local, self.t0, self.latency_us), int(self.ts[0]))
        side = rng.integers(0, 2, count).astype(np.int8)
        level = rng.integers(0, 10, count)
        price = np.where(side == _ASK, int(self.ask[0]) + level, int(self.bid[0]) - level)
        lots = _lognormal_lots(rng, count, self.level_median, _LEVEL_SIGMA)
        lots = np.where(rng.random(count) < 0.2, 0, lots)  # some of them deletes
        return ts, local, side, price.astype(np.int64), lots

    # -- level amounts ----------------------------------------------------------------------------------------

    def _key(self, side: np.ndarray | int, price: np.ndarray) -> np.ndarray:
        return np.asarray(side, dtype=np.int64) * self.prange + (price - self.pmin)

    def _last_update(self, keys: np.ndarray, side: int, price: np.ndarray, event: np.ndarray) -> np.ndarray:
        """Index of the last update in `keys` at (side, price) with index <= event, or -1 (searchsorted)."""
        key = self._key(side, price)
        query = key * self.n + event
        if keys.size == 0:
            return np.full(np.broadcast(query).shape, -1, dtype=np.int64)
        pos = np.searchsorted(keys, query, side="right") - 1
        found = keys[np.maximum(pos, 0)]
        ok = (pos >= 0) & (found // self.n == key)
        return np.where(ok, found % self.n, -1)

    def _hash(
        self,
        side: np.ndarray | int,
        price: np.ndarray,
        event: np.ndarray,
        mul: np.uint64,
        salt: np.uint64 | None = None,
    ) -> np.ndarray:
        """64 well-mixed bits of (side, price, event) for this market (or for `salt`)."""
        x = _mix64(np.asarray(price).astype(np.uint64) * _GOLDEN ^ (self.salt if salt is None else salt))
        return _mix64(
            x
            ^ (np.asarray(event + 1).astype(np.uint64) * mul)
            ^ (np.asarray(side).astype(np.uint64) * _MUL_SIDE)
        )

    def _base_lots(
        self, side: np.ndarray, price: np.ndarray, major: np.ndarray, salt: np.uint64
    ) -> np.ndarray:
        """The resting size H(side, price, major) in lots (log-normal, some of them round) under `salt`."""
        x = self._hash(side, price, major, _MUL_J, salt)
        mask = _U64(0xFFFF)
        total = (x & mask) + ((x >> _U64(16)) & mask) + ((x >> _U64(32)) & mask) + ((x >> _U64(48)) & mask)
        z = (total.astype(np.float64) / 65536.0 - 2.0) * math.sqrt(3.0)  # Irwin-Hall(4) ~ N(0, 1)
        base = np.maximum(1.0, np.rint(self.level_median * np.exp(_LEVEL_SIGMA * z))).astype(np.int64)
        y = self._hash(side, price, major, _MUL_MINOR, salt)
        return _round_lots(base, (y >> _U64(11)).astype(np.float64) / 2.0**53, 0.0, _LEVEL_P_ROUND)

    def _nudged(
        self, side: np.ndarray, price: np.ndarray, base: np.ndarray, last: np.ndarray, salt: np.uint64
    ) -> np.ndarray:
        """`base` after the minor update `last`: one small order (>= 1 lot) added or taken, a hash of the update."""
        m = self._hash(side, price, last, _MUL_MINOR, salt)
        mask = _U64(0xFFFF)
        total = (m & mask) + ((m >> _U64(16)) & mask) + ((m >> _U64(32)) & mask)
        zm = (total.astype(np.float64) / 65536.0 - 1.5) * 2.0  # Irwin-Hall(3), sd 1
        size = np.maximum(1.0, np.rint(_MINOR_FRAC * base * np.exp(_MINOR_SIGMA * zm))).astype(np.int64)
        return np.maximum(1, base + np.where((m >> _U64(63)) == _U64(1), -size, size))

    @functools.cached_property
    def previous(self) -> list[_DayUpdates]:
        """The level updates of the days before this one in its UTC week (from Monday), newest first: what this
        day's book opens with. A Monday (or the instrument's first listed day) opens at rest."""
        days = []
        for back in range(1, self.day.weekday() + 1):
            day = self.day - dt.timedelta(days=back)
            if self.spec.available_since is not None and day < self.spec.available_since:
                break
            days.append(_day_updates(self.exchange, self.spec.id, day, self.scale))
        return days

    def opening_lots(self, side: np.ndarray, price: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(base, size) in lots of each level as the day opens: as the last updates of the week's previous days
        left it, at rest (the same every day) where none of them set it.

        Of the days before, the newest with an update at the level gives its last update; the newest with a major
        update gives the base (the same day, or an older one if that day only nudged the level)."""
        rest = self._base_lots(side, price, np.full(price.shape, -1), self.rest_salt)
        base, size = rest.copy(), rest.copy()
        if price.size == 0 or not self.previous:
            return base, size
        last = np.full(price.shape, -1, dtype=np.int64)
        last_salt = np.zeros(price.shape, dtype=np.uint64)
        major = np.full(price.shape, -1, dtype=np.int64)
        major_salt = np.zeros(price.shape, dtype=np.uint64)
        for day in self.previous:  # newest first: keep the first found
            day_last, day_major = day.last(side, price)
            take = (last < 0) & (day_last >= 0)
            last[take], last_salt[take] = day_last[take], day.salt
            take = (major < 0) & (day_major >= 0)
            major[take], major_salt[take] = day_major[take], day.salt
        has_major = major >= 0
        base[has_major] = self._base_lots(
            side[has_major], price[has_major], major[has_major], major_salt[has_major]
        )
        size[...] = base
        minor = (last >= 0) & ((last != major) | (last_salt != major_salt))
        size[minor] = self._nudged(side[minor], price[minor], base[minor], last[minor], last_salt[minor])
        return base, size

    def _level_lots(
        self, side: np.ndarray | int, price: np.ndarray, last: np.ndarray, major: np.ndarray
    ) -> np.ndarray:
        """Size in whole lots (>= 1) of a level whose last update today is `last` and last major one `major`
        (-1: none today).

        A major update sets the resting size to a pure hash H(side, price, major); a minor one after it nudges
        it by a hash of its own index, so a level's size drifts by small amounts. A level no update of the day
        has set yet holds what it opened with (see opening_lots); a minor one nudges that.
        """
        side, price, last, major = (np.asarray(a) for a in np.broadcast_arrays(side, price, last, major))
        side, price = side.astype(np.int8), price.astype(np.int64)
        base = np.empty(price.shape, dtype=np.int64)
        size = np.empty(price.shape, dtype=np.int64)
        today = major >= 0
        base[today] = self._base_lots(side[today], price[today], major[today], self.salt)
        opening_base, opening_size = self.opening_lots(side[~today], price[~today])
        base[~today] = opening_base
        size[...] = base
        size[~today] = opening_size  # a level not updated today at all; nudged below if a minor one came
        minor = (last >= 0) & (last != major)
        size[minor] = self._nudged(side[minor], price[minor], base[minor], last[minor], self.salt)
        return size

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
        upd_major = self.upd_major[start + upd_rows]
        ks = np.arange(levels, dtype=np.int64)
        out = []
        for side, best, sign in ((_BID, bid, -1), (_ASK, ask, 1)):
            prices = best[full_rows, None] + sign * ks
            events = (start + full_rows)[:, None]
            value = np.zeros((m, levels), dtype=np.int64)
            source = np.full((m, levels), -1, dtype=np.int64)
            last = self._last_update(self.upd_keys, side, prices, events)
            major = self._last_update(self.major_keys, side, prices, events)
            value[full_rows] = self._level_lots(side, prices, last, major)
            del prices, events, last, major
            source[full_rows] = full_rows[:, None]
            sel = (upd_side == side) & (upd_level < levels)
            rows, lv = upd_rows[sel], upd_level[sel]
            price, event = best[rows] + sign * lv, start + rows
            major = np.where(upd_major[sel], event, self._last_update(self.major_keys, side, price, event))
            value[rows, lv] = self._level_lots(side, price, event, major)
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
        """Taker trades at the touch of the book in force, in bursts of fills of one taker order."""
        rng = _rng(self.seed, 1)
        count = max(5, self.scale // 3)
        raw = self.t0 + _sorted_offsets(rng, count, int(self.local[0] - self.t0), US_PER_DAY)
        # a fill continues the previous one's order: same exchange timestamp and side, received µs later
        fill = rng.random(count) < _TRADE_BURST_P
        fill[0] = False
        order = np.cumsum(~fill) - 1
        first = np.flatnonzero(~fill)
        gaps = np.cumsum(np.where(fill, 1 + np.floor(rng.exponential(_TRADE_FILL_GAP_US, count)), 0))
        gaps = gaps.astype(np.int64)
        # min of two strictly increasing sequences: still strictly increasing, and never past the next order
        local = np.minimum(raw[first][order] + gaps - gaps[first][order], raw)
        order_ts = _exchange_timestamps(rng, local[first], self.t0, self.latency_us)
        ts = order_ts[order]
        flips = rng.random(first.size) < _TRADE_SIDE_FLIP
        flips[0] = rng.random() < 0.5
        is_sell = (np.cumsum(flips) % 2 == 1)[order]
        idx = self.book_index(local)
        price = np.where(is_sell, self.bid[idx], self.ask[idx])
        median = _median_lots(self.spec, _TRADE_NOTIONAL)
        lots = _lognormal_lots(rng, count, median, _TRADE_SIGMA, _TRADE_P_ONE, _TRADE_P_ROUND)
        return _Trades(local, ts, is_sell, price, lots)


@dataclass(frozen=True)
class _DayUpdates:
    """One day's level updates, all a next day needs of it to open with the book it closed with."""

    salt: np.uint64
    n: int
    pmin: int
    prange: int
    upd_keys: np.ndarray
    major_keys: np.ndarray

    @classmethod
    def of(cls, market: _Market) -> _DayUpdates:
        """The updates of a market (the rest of it is not kept)."""
        return cls(market.salt, market.n, market.pmin, market.prange, market.upd_keys, market.major_keys)

    def last(self, side: np.ndarray, price: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Index of the day's last update and last major update at each (side, price), or -1."""
        inside = (price >= self.pmin) & (price < self.pmin + self.prange)
        key = np.asarray(side, dtype=np.int64) * self.prange + (
            np.where(inside, price, self.pmin) - self.pmin
        )
        out = []
        for keys in (self.upd_keys, self.major_keys):
            query = key * self.n + (self.n - 1)
            pos = np.searchsorted(keys, query, side="right") - 1
            found = keys[np.maximum(pos, 0)] if keys.size else np.zeros_like(query)
            ok = inside & (pos >= 0) & (found // self.n == key)
            out.append(np.where(ok, found % self.n, -1))
        return out[0], out[1]


@functools.lru_cache(maxsize=8)
def _day_updates(exchange: str, symbol_id: str, day: dt.date, scale: int) -> _DayUpdates:
    """A day's level updates, kept for the days after it in its week (a week's days are generated in a row)."""
    spec = catalog.CATALOG[exchange].symbol(symbol_id)
    assert spec is not None
    return _DayUpdates.of(_Market(exchange, spec, day, scale))


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


def _numeric_ids(rng: np.random.Generator, n: int, base: int, gap_p: float = 0.08) -> pa.Array:
    """Strictly increasing integer ids (as strings) from a base, with gaps at a rate (0: consecutive)."""
    ids = base + np.cumsum(1 + (rng.random(n) < gap_p))
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


def _l2_table(
    mk: _Market,
    ts: np.ndarray,
    local: np.ndarray,
    snapshot: np.ndarray,
    side: np.ndarray,
    price: np.ndarray,
    lots: np.ndarray,
) -> pa.Table:
    cols = _head(mk, ts, local)
    cols += [
        pa.array(snapshot, pa.bool_()),
        _choice_str(side, ("ask", "bid")),
        _prices(price, mk.spec),
        _amounts(lots, mk.spec),
    ]
    return _table("incremental_book_L2", cols)


#: Rows of one incremental_book_L2 group: (side, price in ticks, amount in lots).
_L2Rows = tuple[np.ndarray, np.ndarray, np.ndarray]


@dataclass(frozen=True)
class _L2Events:
    """What each event of an L2 chunk sends (arrays indexed by the chunk's event, in event order)."""

    rows: np.ndarray  # the event's row in the chunk's book (event - book.start)
    upd_side: np.ndarray  # side of the event's level update, -1 for a price move
    upd_level: np.ndarray  # level of that update (0 for a price move)
    upd_lots: np.ndarray  # size of the updated level after the event, lots
    ask_shift: np.ndarray  # best ask minus the previous event's, ticks
    bid_shift: np.ndarray  # best bid minus the previous event's, ticks
    snapshot_count: np.ndarray  # 2 * BOOK_DEPTH rows at the day's first event and at a reconnect, else 0
    update_count: np.ndarray  # 1 when the update changed its level's size, else 0
    ask_count: np.ndarray  # ask levels that leave the window (as many enter it) because the best ask moved
    bid_count: np.ndarray  # the same for bids
    events: np.ndarray  # the event numbers
    is_snapshot: np.ndarray  # the event sends the whole book


@dataclass(frozen=True)
class _L2Group:
    """One kind of row an event may send: how many per event, and how to build them."""

    count: np.ndarray  # rows per event
    build: Callable[[np.ndarray, np.ndarray], _L2Rows]  # (owning event, index within the group) -> rows
    is_snapshot: bool = False


def _price_at(book: _Book, row: np.ndarray, is_ask: np.ndarray, level: np.ndarray) -> np.ndarray:
    """Price in ticks of level `level` (ask + level or bid - level) after book row `row`."""
    return np.where(is_ask, book.ask[row] + level, book.bid[row] - level)


def _lots_at(book: _Book, row: np.ndarray, is_ask: np.ndarray, level: np.ndarray) -> np.ndarray:
    """Size in lots of level `level` of the ask or bid side after book row `row`."""
    return np.where(is_ask, book.ask_lots[row, level], book.bid_lots[row, level])


def _l2_events(mk: _Market, book: _Book, lo: int, hi: int) -> _L2Events:
    """Compare each event of [lo, hi) with the one before it: what it snapshots, updates and shifts."""
    # the chunk's book starts one event early (except on the day's first chunk) to have the previous state
    rows = np.arange(0 if lo == 0 else 1, hi - book.start)
    prev_rows = np.maximum(rows - 1, 0)
    events = book.start + rows
    is_snapshot = (events == 0) | np.isin(events, mk.reconnects)
    upd_side = np.asarray(mk.upd_side[events])
    upd_level = np.asarray(mk.upd_level[events]).astype(np.int64)
    is_update = upd_side >= 0
    is_ask = upd_side == _ASK
    level = np.where(is_update, upd_level, 0)
    new_lots = _lots_at(book, rows, is_ask, level)
    old_lots = _lots_at(book, prev_rows, is_ask, level)
    ask_shift = book.ask[rows] - book.ask[prev_rows]
    bid_shift = book.bid[rows] - book.bid[prev_rows]
    return _L2Events(
        rows=rows,
        upd_side=upd_side,
        upd_level=upd_level,
        upd_lots=new_lots,
        ask_shift=ask_shift,
        bid_shift=bid_shift,
        snapshot_count=np.where(is_snapshot, 2 * BOOK_DEPTH, 0),
        update_count=(is_update & (new_lots != old_lots) & ~is_snapshot).astype(np.int64),
        ask_count=np.where(is_snapshot, 0, np.minimum(np.abs(ask_shift), BOOK_DEPTH)),
        bid_count=np.where(is_snapshot, 0, np.minimum(np.abs(bid_shift), BOOK_DEPTH)),
        events=events,
        is_snapshot=is_snapshot,
    )


def _snapshot_rows(book: _Book, events: _L2Events, owner: np.ndarray, within: np.ndarray) -> _L2Rows:
    """The whole book (first event of the day or a reconnect): asks from the best, then bids from the best."""
    row = events.rows[owner]
    is_ask = within < BOOK_DEPTH
    level = within % BOOK_DEPTH
    side = np.where(is_ask, _ASK, _BID).astype(np.int8)
    return side, _price_at(book, row, is_ask, level), _lots_at(book, row, is_ask, level)


def _update_rows(book: _Book, events: _L2Events, owner: np.ndarray, within: np.ndarray) -> _L2Rows:
    """The level an update event changed, with its new size."""
    side = events.upd_side[owner]
    price = _price_at(book, events.rows[owner], side == _ASK, events.upd_level[owner])
    return side, price, events.upd_lots[owner]


def _window_rows(
    mk: _Market,
    book: _Book,
    events: _L2Events,
    side: int,
    entering: bool,
    owner: np.ndarray,
    within: np.ndarray,
) -> _L2Rows:
    """Levels of one side's window that leave (old prices: size 0, or their size if the deep book keeps them) or
    enter it because its best price moved."""
    if side == _ASK:  # window ask .. ask + 24
        best, lots, shift, count, sign = book.ask, book.ask_lots, events.ask_shift, events.ask_count, 1
    else:  # window bid - 24 .. bid
        best, lots, shift, count, sign = book.bid, book.bid_lots, events.bid_shift, events.bid_count, -1
    row = events.rows[owner]
    # moving outward (asks up, bids down) the near levels leave and far ones enter; moving inward the reverse
    outward = shift[owner] * sign > 0
    far = BOOK_DEPTH - count[owner]
    sides = np.full(owner.size, side, dtype=np.int8)
    if entering:
        level = np.where(outward, far, 0) + within
        return sides, best[row] + sign * level, lots[row, level]
    level = np.where(outward, 0, far) + within
    price = best[row - 1] + sign * level
    # moving inward, the far levels fall out of the window into the deep book: kept where a level rests there
    kept = ~outward & mk.deep_exists(side, price, events.events[owner])
    return sides, price, np.where(kept, lots[row - 1, level], 0)


def _listed_group(owner: np.ndarray, rows: _L2Rows, n_events: int, is_snapshot: bool = False) -> _L2Group:
    """A group of rows listed per event: `owner` (position in the chunk's events, ascending) of each row."""
    count = np.bincount(owner, minlength=n_events).astype(np.int64)
    first = np.cumsum(count) - count
    side, price, lots = rows

    def build(event: np.ndarray, within: np.ndarray) -> _L2Rows:
        at = first[event] + within
        return side[at], price[at], lots[at]

    return _L2Group(count, build, is_snapshot)


def _ranges(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For ranges [lo_i, hi_i] (empty where hi < lo): (i of each value, the values), in order."""
    size = np.maximum(hi - lo + 1, 0)
    owner, within = _repeat_index(size)
    return owner, lo[owner] + within


def _deep_snapshot_rows(mk: _Market, book: _Book, events: _L2Events) -> tuple[np.ndarray, _L2Rows]:
    """The deep book after each snapshot event: asks from the window outward, then bids from the window down."""
    at = np.flatnonzero(events.is_snapshot)
    ev, rows = events.events[at], events.rows[at]
    parts = []
    for side, lo, hi in (
        (_ASK, book.ask[rows] + BOOK_DEPTH, np.full(at.size, mk.deep_hi)),
        (_BID, np.full(at.size, mk.deep_lo), book.bid[rows] - BOOK_DEPTH),
    ):
        i, price = _ranges(lo, hi)
        if side == _BID:  # best first: descending within each event
            order = np.lexsort((-price, i))
            i, price = i[order], price[order]
        keep = mk.deep_exists(side, price, ev[i])
        i, price = i[keep], price[keep]
        parts.append((i, np.full(i.size, side, np.int8), price, mk.deep_lots(side, price, ev[i])))
    return _merge_listed(at, parts)


def _merge_listed(at: np.ndarray, parts: list) -> tuple[np.ndarray, _L2Rows]:
    """Concatenate listed parts ((index into `at`, side, price, lots), ...) into rows ordered by event, parts in
    the given order within an event."""
    owner = np.concatenate([at[p[0]] for p in parts]) if parts else np.zeros(0, np.int64)
    part = np.concatenate([np.full(p[0].size, k) for k, p in enumerate(parts)]) if parts else owner
    seq = np.concatenate([np.arange(p[0].size) for p in parts]) if parts else owner
    order = np.lexsort((seq, part, owner))
    cols = [np.concatenate([p[j] for p in parts])[order] for j in (1, 2, 3)]
    return owner[order], (cols[0], cols[1], cols[2])


def _deep_sweep_rows(mk: _Market, book: _Book, events: _L2Events) -> tuple[np.ndarray, _L2Rows]:
    """Moves of more than the window: deep levels the touch passed over leave, and the deep book between the
    old touch and the new window shows up."""
    rows, prev = events.rows, np.maximum(events.rows - 1, 0)
    live = ~events.is_snapshot
    b0, b1, a0, a1 = book.bid[prev], book.bid[rows], book.ask[prev], book.ask[rows]
    parts = []
    for side, lo, hi, appear in (
        (_BID, b0 + 1, b1 - BOOK_DEPTH, True),  # bid rose past the window: (b0, b1 - 25] joins the deep book
        (_BID, b1 + 1, b0 - BOOK_DEPTH, False),  # bid fell past it: (b1, b0 - 25] is above the bid now
        (_ASK, a1 + BOOK_DEPTH, a0 - 1, True),  # ask fell past the window: [a1 + 25, a0)
        (_ASK, a0 + BOOK_DEPTH, a1 - 1, False),  # ask rose past it: [a0 + 25, a1)
    ):
        at = np.flatnonzero(live & (hi >= lo))
        i, price = _ranges(lo[at], hi[at])
        ev = events.events[at][i]
        rested = mk.deep_exists(side, price, ev if appear else ev - 1)
        i, price, ev = i[rested], price[rested], ev[rested]
        lots = mk.deep_lots(side, price, ev) if appear else np.zeros(price.size, np.int64)
        parts.append((at[i], np.full(i.size, side, np.int8), price, lots))
    toggled = np.flatnonzero(np.isin(events.events, mk.toggle_event) & live)
    which = np.searchsorted(mk.toggle_event, events.events[toggled])
    # only a level deep before the event too: one the event's own move reveals or drops is written above
    was_deep = np.where(
        mk.toggle_side[which] == _ASK,
        mk.toggle_price[which] >= a0[toggled] + BOOK_DEPTH,
        mk.toggle_price[which] <= b0[toggled] - BOOK_DEPTH,
    )
    toggled, which = toggled[was_deep], which[was_deep]
    if toggled.size:
        side, price, ev = mk.toggle_side[which], mk.toggle_price[which], events.events[toggled]
        lots = np.where(mk.deep_exists(side, price, ev), mk.deep_lots(side, price, ev), 0)
        parts.append((toggled, side, price, lots))
    return _merge_listed(np.arange(rows.size), parts)


def _l2_groups(mk: _Market, book: _Book, events: _L2Events) -> list[_L2Group]:
    """The row groups of an event, in the order its rows are written."""
    n = events.rows.size
    return [
        _L2Group(events.snapshot_count, functools.partial(_snapshot_rows, book, events), is_snapshot=True),
        _listed_group(*_deep_snapshot_rows(mk, book, events), n, is_snapshot=True),
        _L2Group(events.update_count, functools.partial(_update_rows, book, events)),
        _L2Group(events.ask_count, functools.partial(_window_rows, mk, book, events, _ASK, False)),
        _L2Group(events.ask_count, functools.partial(_window_rows, mk, book, events, _ASK, True)),
        _L2Group(events.bid_count, functools.partial(_window_rows, mk, book, events, _BID, False)),
        _L2Group(events.bid_count, functools.partial(_window_rows, mk, book, events, _BID, True)),
        _listed_group(*_deep_sweep_rows(mk, book, events), n),
    ]


def _l2_chunk_table(mk: _Market, lo: int, hi: int) -> pa.Table:
    """incremental_book_L2 rows of events [lo, hi): per event its row groups, one group after the other."""
    book = mk.book(max(lo - 1, 0), hi, BOOK_DEPTH)
    events = _l2_events(mk, book, lo, hi)
    groups = _l2_groups(mk, book, events)
    per_event = sum(group.count for group in groups)
    n_rows = int(per_event.sum())
    out_row = np.empty(n_rows, dtype=np.int64)
    out_snapshot = np.zeros(n_rows, dtype=bool)
    out_side = np.empty(n_rows, dtype=np.int8)
    out_price = np.empty(n_rows, dtype=np.int64)
    out_lots = np.empty(n_rows, dtype=np.int64)
    offset = np.cumsum(per_event) - per_event  # next free output row of each event
    for group in groups:
        owner, within = _repeat_index(group.count)
        pos = offset[owner] + within
        offset += group.count
        side, price, lots = group.build(owner, within)
        if group.is_snapshot:
            out_snapshot[pos] = True
        out_row[pos] = events.rows[owner]
        out_side[pos] = side
        out_price[pos] = price
        out_lots[pos] = lots
    event = book.start + out_row
    return _l2_table(mk, mk.ts[event], mk.local[event], out_snapshot, out_side, out_price, out_lots)


def _pre_snapshot_table(mk: _Market) -> pa.Table | None:
    """The buffered update rows received before the day's first snapshot, or None on a day without them."""
    ts, local, side, price, lots = mk.pre_snapshot
    if not local.size:
        return None
    return _l2_table(mk, ts, local, np.zeros(local.size, dtype=bool), side, price, lots)


def _iter_l2(mk: _Market, chunk: int) -> Iterator[pa.Table]:
    """incremental_book_L2: buffered updates, the initial 50 levels as a snapshot, then the changed levels.

    At a reconnect event the feed sends the whole book again as a snapshot group instead of its changes.
    """
    pre_snapshot = _pre_snapshot_table(mk)
    if pre_snapshot is not None:
        yield pre_snapshot
    for lo in range(0, mk.n, chunk):
        yield _l2_chunk_table(mk, lo, min(mk.n, lo + chunk))


def _trades_table(mk: _Market) -> pa.Table:
    tr = mk.trades
    rng = _rng(mk.seed, 2)
    n = tr.local.size
    if mk.spec.trade_id_style == "uuid":
        ids = _uuid_ids(rng, n)
    else:
        ids = _numeric_ids(rng, n, _id_base(mk, "trades"), 0.0)  # a venue's trade ids are consecutive
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
    ts = _exchange_timestamps(rng, local, mk.t0, mk.latency_us)
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
    ts = _exchange_timestamps(rng, local, mk.t0, mk.latency_us)
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
    if data_type == "book_ticker":  # the exchange's own best bid/ask channel: the quotes on their own clock
        from tick_assets.emulator.derived import book_ticker_tables

        return book_ticker_tables(_iter_snapshots(mk, "quotes", 1, chunk_events))
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
