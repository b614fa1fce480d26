"""A deterministic, vectorized synthetic Deribit `options_chain` day for the grouped symbol `OPTIONS`.

What one day holds (reference/tardis_api.md 2.8, tardis-node's Deribit option-summary mapper):

* **Listing.** Expiries follow Deribit's calendar, all at 08:00 UTC: the next 4 dailies, the next 3 Friday
  weeklies, the last Friday of the next 3 months (monthlies) and of the next 4 quarter months Mar/Jun/Sep/Dec.
  The chain is re-listed at 08:00 UTC: rows stamped (exchange ``timestamp``) before today's 08:00 carry the chain
  listed at yesterday's 08:00 (today's expiry included), rows stamped at or after it carry today's listing
  (today's expiry gone, the new far expiries added). Hence ``expiration > timestamp`` in every row. Strikes sit
  on Deribit-like grids around the day's opening index (steps of 500/1000/2000/5000/10000 USD at BTC 42000,
  finer near the money and for near expiries), each strike listed as a call and a put:
  ``BTC-{D}{MON}{YY}-{STRIKE}-{C|P}`` (``BTC-9JUN20-9875-P``). ``underlying_index`` is the dated future
  (``BTC-29MAR24``) for Friday expiries, which have one, and ``SYN.BTC-10MAR24`` for the synthetic others.
* **Prices.** The index follows a per-second bridged random walk from the day's opening price to the next day's
  (or a caller's path); ``underlying_price`` is the expiry's forward, ``index * exp(basis * T)``, 2 decimals.
  Marks are Black-76 with r = 0 on a volatility smile (ATM term structure, skew, curvature; 30-150 % IV),
  quoted in the coin (``mark_price = Black76_usd / underlying_price``, 8 decimals, at least 0.000001 so that
  no cell needs exponent notation), so call - put = 1 - K/F.
  Bids and asks are the marks at ``iv -+ a half-spread`` that widens in the wings and near expiry, floored and
  ceiled to Deribit's tick (0.0001 below 0.005, else 0.0005); ``bid_iv``/``ask_iv`` are implied back from
  them. Illiquid strikes have no bid (and sometimes no ask): their price, amount and IV cells are empty, as
  Tardis leaves zeros from Deribit empty. ``last_price`` is empty for never-traded options.
* **Greeks** follow Deribit's convention, which reproduces the Tardis docs sample row (delta, gamma, vega and
  rho to its 5 decimals, theta to 0.01): Black-76 forward
  delta (calls in [0, 1], puts in [-1, 0]); gamma = phi(d1) / (F sigma sqrt T) per USD; vega in USD per 1
  vol point; theta in USD per calendar day (365-day year); rho in USD per 1 % of rate (K T N(+-d2) / 100),
  with T in years of 365 days. Five decimals.
* **Rows.** ``scale`` is the exact number of rows of the day. Deribit publishes per-instrument tickers; the
  emulator groups rows into bursts of 0-16 (mean 8) instruments that share one exchange ``timestamp`` (a
  millisecond; neighbouring strikes and their call/put twins of one expiry), received a few µs apart after a
  log-normal collector latency (median 30 ms, a slow tail). Bursts spread over the day with an intraday profile
  (the 08:00 expiry and the US session busier). Both timestamp columns are non-decreasing and
  ``local_timestamp >= timestamp``; every ``local_timestamp`` lies in the day, while the first rows' exchange
  ``timestamp`` may precede midnight (by the latency, rarely more than a second), as in the docs sample row.

Per-row values come from counter-based hashes of the row, burst and instrument, not from a sequential random
stream, so each chunk of at most ``CHUNK_ROWS`` rows is computed on its own (bounded memory) and the same
inputs give the same bytes.
"""

from __future__ import annotations

import datetime as dt
import math
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from tick_assets.emulator import csvout
from tick_assets.emulator.synth import US_PER_DAY, _stable_int, open_price
from tick_assets.tardis import datatypes

#: A path of the underlying index: exchange timestamps (µs since the epoch, int64) -> index price (USD).
PricePath = Callable[[np.ndarray], np.ndarray]

#: Rows per yielded table.
CHUNK_ROWS = 100_000
#: Base price of each underlying (the emulator catalog's perpetuals use the same).
BASE_PRICES = {"BTC": 42000.0, "ETH": 2300.0}
EXPIRY_HOUR = 8
MEAN_BURST = 8  # instruments per published burst (sizes 0 .. 2 * MEAN_BURST)
_IV_BISECTIONS, _IV_NEWTON_STEPS = 7, 4

_US_PER_YEAR = 365 * US_PER_DAY
_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
_N_DAILIES, _N_WEEKLIES, _N_MONTHLIES, _N_QUARTERLIES = 4, 3, 3, 4
_DAILY_VOL = 0.025  # index random walk over a day
_LATENCY_MEDIAN_US, _LATENCY_SIGMA = 30_000.0, 0.6
_LATENCY_SLOW_P, _LATENCY_SLOW_US = 0.05, 300_000.0
_DAY_MARGIN_US = 5_000  # last burst head before midnight minus this
_PRICE_TICK, _SMALL_BELOW = 5, 50  # in units of 0.0001 BTC: 0.0005, and 0.0001 below 0.005
_QUOTE_BUCKET_US = 15 * 60 * 1_000_000  # bid/ask presence is persistent per instrument over 15 minutes
_SIZE_BUCKET_US = 2 * 60 * 1_000_000  # quoted amounts persist 2 minutes
_TRADE_BUCKET_US = 30 * 60 * 1_000_000  # last_price: the mark at the start of the last 30-minute bucket
_KIND_OI = {"daily": 0.15, "weekly": 0.4, "monthly": 1.0, "quarterly": 1.6}

_U64 = np.uint64
_MASK64 = 0xFFFF_FFFF_FFFF_FFFF


# --------------------------------------------------------------------------------------------------------------
# counter-based hashing


def _mix64(x: np.ndarray) -> np.ndarray:
    """SplitMix64 finalizer over uint64 arrays (wrapping arithmetic)."""
    with np.errstate(over="ignore"):
        x = x ^ (x >> _U64(30))
        x = x * _U64(0xBF58476D1CE4E5B9)
        x = x ^ (x >> _U64(27))
        x = x * _U64(0x94D049BB133111EB)
        return x ^ (x >> _U64(31))


def _h64(salt: int, *keys: np.ndarray | int) -> np.ndarray:
    """64 well-mixed bits of some integer keys (arrays broadcast) under a salt."""
    x = np.full(np.broadcast(*[np.asarray(k) for k in keys]).shape, _U64(salt & _MASK64), dtype=np.uint64)
    for i, k in enumerate(keys):
        kk = np.asarray(k).astype(np.int64).astype(np.uint64)
        with np.errstate(over="ignore"):
            x = _mix64(x ^ (kk * _U64((0x9E3779B97F4A7C15 * (2 * i + 1)) & _MASK64)))
    return x


def _u01(salt: int, *keys: np.ndarray | int) -> np.ndarray:
    """Uniform [0, 1) doubles from a hash of the keys."""
    return (_h64(salt, *keys) >> _U64(11)).astype(np.float64) / 2.0**53


def _normal(salt: int, *keys: np.ndarray | int) -> np.ndarray:
    """Standard normal deviates (Box-Muller) from a hash of the keys."""
    u1 = 1.0 - _u01(salt, *keys)
    u2 = _u01(salt ^ 0x5BD1E995, *keys)
    return np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u2)


# --------------------------------------------------------------------------------------------------------------
# Black-76


def _erfc(x: np.ndarray) -> np.ndarray:
    """Complementary error function (Chebyshev fit, relative error below 1.2e-7 everywhere)."""
    z = np.abs(x)
    t = 1.0 / (1.0 + 0.5 * z)
    poly = -1.26551223 + t * (
        1.00002368
        + t
        * (
            0.37409196
            + t
            * (
                0.09678418
                + t
                * (
                    -0.18628806
                    + t
                    * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277))))
                )
            )
        )
    )
    ans = t * np.exp(-z * z + poly)
    return np.where(x >= 0, ans, 2.0 - ans)


def norm_cdf(x: np.ndarray) -> np.ndarray:
    """Standard normal CDF, vectorized (accurate to about 1e-7 relative, also in the tails)."""
    return 0.5 * _erfc(-np.asarray(x, dtype=np.float64) / math.sqrt(2.0))


def _norm_pdf(x: np.ndarray) -> np.ndarray:
    return np.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)


def black76_usd(
    forward: np.ndarray, strike: np.ndarray, years: np.ndarray, vol: np.ndarray, is_call: np.ndarray
) -> np.ndarray:
    """Black-76 option value in USD with zero rate (vol as a fraction, time in 365-day years)."""
    sd = vol * np.sqrt(years)
    d1 = (np.log(forward / strike) + 0.5 * sd * sd) / sd
    d2 = d1 - sd
    call = forward * norm_cdf(d1) - strike * norm_cdf(d2)
    put = strike * norm_cdf(-d2) - forward * norm_cdf(-d1)
    return np.where(is_call, call, put)


def deribit_greeks(
    forward: np.ndarray, strike: np.ndarray, years: np.ndarray, vol: np.ndarray, is_call: np.ndarray
) -> dict[str, np.ndarray]:
    """Deribit's greeks: forward delta, gamma per USD, vega per vol point, theta per day, rho per 1 %."""
    sqrt_t = np.sqrt(years)
    sd = vol * sqrt_t
    d1 = (np.log(forward / strike) + 0.5 * sd * sd) / sd
    d2 = d1 - sd
    pdf = _norm_pdf(d1)
    n_d1 = norm_cdf(d1)
    return {
        "delta": np.where(is_call, n_d1, n_d1 - 1.0),
        "gamma": pdf / (forward * sd),
        "vega": forward * pdf * sqrt_t / 100.0,
        "theta": -forward * pdf * vol / (2.0 * sqrt_t) / 365.0,
        "rho": np.where(is_call, strike * years * norm_cdf(d2), -strike * years * norm_cdf(-d2)) / 100.0,
    }


def _implied_vol(
    price_coin: np.ndarray, forward: np.ndarray, strike: np.ndarray, years: np.ndarray, is_call: np.ndarray
) -> np.ndarray:
    """Black-76 implied vol (fraction) of coin-quoted prices; NaN outside the values at 1 % and 1000 %.

    Bisection in log-vol narrows [1 %, 1000 %] to a few percent, then Newton steps (kept in the bracket)
    converge quadratically: far fewer price evaluations than bisection alone.
    """
    target = price_coin * forward
    lo = np.full(target.shape, math.log(0.01))
    hi = np.full(target.shape, math.log(10.0))
    ok = (black76_usd(forward, strike, years, np.exp(lo), is_call) < target) & (
        black76_usd(forward, strike, years, np.exp(hi), is_call) > target
    )
    for _ in range(_IV_BISECTIONS):
        mid = 0.5 * (lo + hi)
        above = black76_usd(forward, strike, years, np.exp(mid), is_call) > target
        hi = np.where(above, mid, hi)
        lo = np.where(above, lo, mid)
    lo, hi = np.exp(lo), np.exp(hi)
    x = np.sqrt(lo * hi)
    sqrt_t = np.sqrt(years)
    for _ in range(_IV_NEWTON_STEPS):
        sd = x * sqrt_t
        vega = forward * _norm_pdf((np.log(forward / strike) + 0.5 * sd * sd) / sd) * sqrt_t
        step = x - (black76_usd(forward, strike, years, x, is_call) - target) / np.maximum(vega, 1e-300)
        x = np.clip(step, lo, hi)
    return np.where(ok, x, np.nan)


# --------------------------------------------------------------------------------------------------------------
# calendar and instruments


def _at_expiry_hour(day: dt.date) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, EXPIRY_HOUR, tzinfo=dt.timezone.utc)


def _last_friday(year: int, month: int) -> dt.date:
    nxt = dt.date(year + month // 12, month % 12 + 1, 1)
    last = nxt - dt.timedelta(days=1)
    return last - dt.timedelta(days=(last.weekday() - 4) % 7)


def listed_expiries(at: dt.datetime) -> dict[dt.datetime, str]:
    """The expiries (08:00 UTC) listed at an instant, each with its kind: daily, weekly, monthly, quarterly."""
    if at.tzinfo is None:
        raise ValueError("`at` must be timezone-aware")
    at = at.astimezone(dt.timezone.utc)
    first = at.date() if at < _at_expiry_hour(at.date()) else at.date() + dt.timedelta(days=1)
    out: dict[dt.datetime, str] = {}
    for k in range(_N_DAILIES):
        out[_at_expiry_hour(first + dt.timedelta(days=k))] = "daily"
    friday = first + dt.timedelta(days=(4 - first.weekday()) % 7)
    for k in range(_N_WEEKLIES):
        out[_at_expiry_hour(friday + dt.timedelta(weeks=k))] = "weekly"
    last_fridays: list[dt.datetime] = []
    y, m = first.year, first.month
    while sum(e.month % 3 == 0 for e in last_fridays) < _N_QUARTERLIES:
        expiry = _at_expiry_hour(_last_friday(y, m))
        if expiry > at:
            last_fridays.append(expiry)
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)
    for e in last_fridays[:_N_MONTHLIES]:
        out[e] = "monthly"
    for e in last_fridays:
        if e.month % 3 == 0:
            out[e] = "quarterly"
    return dict(sorted(out.items()))


def expiry_code(expiry: dt.datetime | dt.date) -> str:
    """Deribit's date code of an expiry: day without leading zero, upper-case month, 2-digit year (9JUN20)."""
    return f"{expiry.day}{_MONTHS[expiry.month - 1]}{expiry.year % 100:02d}"


def _nice_step(value: float) -> float:
    """The {1, 1.25, 2, 2.5, 5} x 10^k number nearest a value in log terms."""
    exp10 = 10.0 ** math.floor(math.log10(value))
    cands = [c * exp10 for c in (1.0, 1.25, 2.0, 2.5, 5.0, 10.0)]
    return min(cands, key=lambda c: abs(math.log(c / value)))


def _strikes(spot: float, years: float, vol: float) -> np.ndarray:
    """Deribit-like strike grid of one expiry: fine steps near the money and for near expiries."""
    unit = max(1.0, _nice_step(spot * 0.0125))  # whole-dollar strikes, as in the symbols
    days = years * 365.0
    if days <= 4.5:
        tiers = ((1, 0.05), (2, 0.12), (4, 9.0))
    elif days <= 10.5:
        tiers = ((2, 0.08), (4, 0.25), (10, 9.0))
    else:
        tiers = ((2, 0.10), (4, 0.30), (10, 0.8), (20, 9.0))
    sd = vol * math.sqrt(years)
    m_lo, m_hi = -min(1.6, max(0.12, 5.0 * sd)), min(1.6, max(0.15, 6.0 * sd))
    out: list[np.ndarray] = []
    inner = 0.0
    for mult, edge in tiers:
        step = unit * mult
        lo = max(step, math.ceil(spot * math.exp(max(m_lo, -edge)) / step) * step)
        ks = np.arange(lo, spot * math.exp(min(m_hi, edge)) + 1e-9, step)
        m = np.abs(np.log(ks / spot))
        out.append(ks[(m >= inner) | (mult == tiers[0][0])])
        inner = edge
    return np.unique(np.concatenate(out))


@dataclass(frozen=True)
class _Instruments:
    """Every option listed at some time of the day (sorted by expiry, strike, call before put)."""

    symbol: pa.Array  # string
    strike: np.ndarray
    expiry_us: np.ndarray
    is_call: np.ndarray
    key: np.ndarray  # uint64 stable per symbol
    kind_oi: np.ndarray  # open interest weight of the expiry kind
    basis: np.ndarray  # annualized basis of the expiry's forward
    listed_us: np.ndarray  # listing time (new expiries list at 08:00; older ones: far in the past)


@dataclass(frozen=True)
class _Segment:
    """The chain published between two listings: instrument ids and burst-start weights."""

    inst: np.ndarray  # ids into _Instruments, in chain order
    cum_weight: np.ndarray
    index_names: pa.Array  # underlying_index per position of `inst`


class _Chain:
    """The model of one (exchange, underlying, day, scale) chain."""

    def __init__(
        self, exchange: str, underlying: str, day: dt.date, scale: int, path: PricePath | None
    ) -> None:
        self.exchange, self.underlying, self.day, self.scale = exchange, underlying, day, scale
        self.seed = _stable_int("tick_assets.options_chain", exchange, underlying, day.isoformat(), scale)
        self.salt = self.seed & _MASK64
        self.t0 = (day.toordinal() - dt.date(1970, 1, 1).toordinal()) * US_PER_DAY
        self.roll_us = self.t0 + EXPIRY_HOUR * 3_600_000_000
        self.path = path if path is not None else default_index_path(underlying, day)
        self.spot0 = float(np.asarray(self.path(np.array([self.t0], dtype=np.int64)))[0])
        day_salt = _stable_int("vol", underlying, day.isoformat(), nbytes=8)
        d = day.toordinal()
        wave = math.sin(2 * math.pi * d / 173.0 + 1.3) + 0.5 * math.sin(2 * math.pi * d / 41.0)
        self.atm_level = 0.55 * math.exp(0.18 * wave + 0.05 * float(_normal(day_salt, 0)[()]))
        self.term_premium = 0.05 + 0.12 * float(_normal(day_salt, 1)[()])
        self.skew = -0.025 + 0.03 * float(_normal(day_salt, 2)[()])
        self.curvature = 0.07 + 0.01 * float(_normal(day_salt, 3)[()])
        self._build_instruments()
        self.n_bursts = max(1, -(-scale // MEAN_BURST))

    # -- instruments -----------------------------------------------------------------------------------------

    def _build_instruments(self) -> None:
        before = _at_expiry_hour(self.day) - dt.timedelta(days=1)
        after = _at_expiry_hour(self.day)
        pre, post = listed_expiries(before), listed_expiries(after)
        expiries = sorted(set(pre) | set(post))
        cols: dict[str, list] = {
            k: [] for k in ("symbol", "strike", "exp", "call", "kind", "basis", "listed")
        }
        for e in expiries:
            e_us = int(e.timestamp()) * 1_000_000
            years = max(e_us - self.t0, US_PER_DAY) / _US_PER_YEAR
            kind = post.get(e) or pre[e]
            # the annualized basis of an expiry's forward: the same every day (a dated future's premium)
            basis = 0.07 + 0.03 * float(_normal(_stable_int("basis", self.underlying, e.isoformat()), 0)[()])
            listed = self.roll_us if e not in pre else -(2**62)
            for k in _strikes(self.spot0, years, self.atm_level):
                for call in (True, False):
                    cols["symbol"].append(
                        f"{self.underlying}-{expiry_code(e)}-{int(k)}-{'C' if call else 'P'}"
                    )
                    cols["strike"].append(float(k))
                    cols["exp"].append(e_us)
                    cols["call"].append(call)
                    cols["kind"].append(_KIND_OI[kind])
                    cols["basis"].append(basis)
                    cols["listed"].append(listed)
        keys = [_stable_int("inst", s, nbytes=8) for s in cols["symbol"]]
        self.inst = _Instruments(
            symbol=pa.array(cols["symbol"], pa.string()),
            strike=np.array(cols["strike"]),
            expiry_us=np.array(cols["exp"], dtype=np.int64),
            is_call=np.array(cols["call"], dtype=bool),
            key=np.array(keys, dtype=np.uint64),
            kind_oi=np.array(cols["kind"]),
            basis=np.array(cols["basis"]),
            listed_us=np.array(cols["listed"], dtype=np.int64),
        )
        self.segments = (self._segment(pre, before), self._segment(post, after))

    def _segment(self, listing: dict[dt.datetime, str], at: dt.datetime) -> _Segment:
        inst = self.inst
        listed_us = {int(e.timestamp()) * 1_000_000 for e in listing}
        ids = np.flatnonzero(np.isin(inst.expiry_us, list(listed_us)))
        # futures: every listed Friday expiry (weeklies, monthlies, quarterlies); the rest are synthetic
        fridays = {int(e.timestamp()) * 1_000_000: e for e in listing if e.weekday() == 4}
        names = []
        for i in ids:
            e_us = int(inst.expiry_us[i])
            code = expiry_code(dt.datetime.fromtimestamp(e_us / 1e6, dt.timezone.utc))
            names.append(f"{self.underlying}-{code}" if e_us in fridays else f"SYN.{self.underlying}-{code}")
        days = (inst.expiry_us[ids] - int(at.timestamp()) * 1_000_000) / US_PER_DAY
        m = np.log(inst.strike[ids] / self.spot0) / (self.atm_level * np.sqrt(np.maximum(days, 1.0) / 365.0))
        weight = (0.3 + 0.7 * np.exp(-days / 20.0)) * np.exp(-0.5 * (m / 1.5) ** 2) + 0.02
        return _Segment(ids, np.cumsum(weight), pa.array(names, pa.string()))

    # -- bursts ----------------------------------------------------------------------------------------------

    def _burst_rows(self, b: np.ndarray) -> np.ndarray:
        """First row of each burst b (C(b) = floor(scale (b + v_b) / n), C(0) = 0, C(n) = scale)."""
        n = self.n_bursts
        v = _u01(self.salt ^ 0xB0, b)
        c = np.floor(self.scale * (b + v) / n).astype(np.int64)
        return np.where(b <= 0, 0, np.where(b >= n, self.scale, c))

    def _burst_times(self, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(head local time, raw exchange timestamp) of bursts, before the running maxima."""
        x = (b + 0.05 + 0.9 * _u01(self.salt ^ 0xB1, b)) / self.n_bursts
        frac = np.interp(x, _PROFILE_CDF, _PROFILE_X)
        span = US_PER_DAY - _DAY_MARGIN_US - 1_000
        head = self.t0 + 1_000 + np.floor(frac * span).astype(np.int64)
        lat = _LATENCY_MEDIAN_US * np.exp(_LATENCY_SIGMA * _normal(self.salt ^ 0xB2, b))
        slow = _u01(self.salt ^ 0xB3, b) < _LATENCY_SLOW_P
        lat = lat + np.where(slow, -_LATENCY_SLOW_US * np.log1p(-_u01(self.salt ^ 0xB4, b)), 0.0)
        ts = (head - 200 - lat.astype(np.int64)) // 1000 * 1000
        return head, ts

    # -- rows ------------------------------------------------------------------------------------------------

    def tables(self, chunk_rows: int) -> Iterator[pa.Table]:
        """The day's rows in file order, as tables of at most chunk_rows rows (chunking does not change them)."""
        carry_ts, carry_local = -(2**62), -(2**62)
        n = self.n_bursts
        for r_lo in range(0, self.scale, chunk_rows):
            r_hi = min(self.scale, r_lo + chunk_rows)
            bs = np.arange(max(0, r_lo * n // self.scale - 2), min(n, -(-r_hi * n // self.scale) + 2) + 1)
            starts = self._burst_rows(bs)
            # rows from the start of the chunk's first burst, so that in-burst receive gaps add up across chunks
            first = int(starts[np.searchsorted(starts, r_lo, side="right") - 1])
            rows = np.arange(first, r_hi, dtype=np.int64)
            pos = np.searchsorted(starts, rows, side="right") - 1
            j = rows - starts[pos]
            head, ts_raw = self._burst_times(bs[: pos[-1] + 1])
            ts_b = np.maximum.accumulate(np.maximum(ts_raw, carry_ts))
            gaps = np.where(j == 0, 0, 1 + np.floor(-12.0 * np.log1p(-_u01(self.salt ^ 0xC0, rows))))
            cum = np.cumsum(gaps.astype(np.int64))
            in_burst = cum - cum[np.searchsorted(rows, starts[pos])]
            local = np.minimum(head[pos] + in_burst, self.t0 + US_PER_DAY - 1)
            keep = slice(r_lo - first, None)
            local = np.maximum.accumulate(np.maximum(local[keep], carry_local))
            carry_ts, carry_local = int(ts_b[-1]), int(local[-1])
            yield self._rows(bs[pos[keep]], j[keep], ts_b[pos[keep]], local)

    def _rows(self, burst: np.ndarray, j: np.ndarray, ts: np.ndarray, local: np.ndarray) -> pa.Table:
        """One table of rows given their burst, place in the burst and timestamps."""
        inst = self.inst
        n = burst.size
        seg_no = (ts >= self.roll_us).astype(np.int64)
        ids = np.empty(n, dtype=np.int64)
        positions = np.empty(n, dtype=np.int64)
        for s, seg in enumerate(self.segments):
            sel = seg_no == s
            if not sel.any():
                continue
            size = seg.inst.size
            u = _u01(self.salt ^ 0xD0, burst[sel])
            start = np.searchsorted(seg.cum_weight, u * seg.cum_weight[-1], side="right")
            p = (np.minimum(start, size - 1) + j[sel]) % size
            positions[sel] = p
            ids[sel] = seg.inst[p]
        index_col = _take_by_segment(self.segments, seg_no, positions)
        strike, expiry, is_call, key = inst.strike[ids], inst.expiry_us[ids], inst.is_call[ids], inst.key[ids]
        years = (expiry - ts) / _US_PER_YEAR
        spot = np.asarray(self.path(ts), dtype=np.float64)
        noise = 1.5e-4 * _normal(self.salt ^ 0xE0, burst, expiry // 1_000_000)
        forward = np.rint(spot * np.exp(inst.basis[ids] * years + noise) * 100.0) / 100.0
        vol = self._vol(strike, forward, years, spot)
        usd = black76_usd(forward, strike, years, vol, is_call)
        mark = np.maximum(np.rint(usd / forward * 1e8), 100.0) / 1e8  # at least 0.000001 (no exponent form)
        greeks = deribit_greeks(forward, strike, years, vol, is_call)
        z = np.log(strike / forward) / (vol * np.sqrt(np.maximum(years, 1.0 / 365.0)))
        itm_z = np.where(is_call, -z, z)  # > 0 in the money

        # bid / ask: marks at iv -+ half-spread, on the tick grid; illiquid ones missing
        days = years * 365.0
        half = (0.006 + 0.0035 * np.abs(z) + 0.02 * np.exp(-days / 1.5)) * (
            1.0 + 0.5 * _u01(self.salt ^ 0xF0, key, ts // _SIZE_BUCKET_US)
        )
        bid_raw = black76_usd(forward, strike, years, np.maximum(vol - half, 0.02), is_call) / forward
        ask_raw = black76_usd(forward, strike, years, vol + half, is_call) / forward
        bid_units = _to_tick(bid_raw, floor=True)
        ask_units = np.maximum(_to_tick(ask_raw, floor=False), np.maximum(bid_units + 1, 1))
        q = ts // _QUOTE_BUCKET_US
        wing = np.maximum(np.abs(z) - 1.2, 0.0) + 0.5 * np.maximum(itm_z - 1.5, 0.0)
        has_bid = (bid_units > 0) & (_u01(self.salt ^ 0xF1, key, q) >= np.clip(0.04 + 0.3 * wing, 0, 0.95))
        has_ask = _u01(self.salt ^ 0xF2, key, q) >= np.clip(0.02 + 0.12 * np.maximum(wing - 1.0, 0), 0, 0.8)
        bid_px = bid_units / 1e4
        ask_px = ask_units / 1e4
        bid_iv = _implied_vol(bid_px, forward, strike, years, is_call)
        ask_iv = _implied_vol(ask_px, forward, strike, years, is_call)
        has_ask &= np.isfinite(ask_iv) & (ask_iv <= 2.5 * vol)  # no silly offers at the minimum tick
        has_bid_iv = has_bid & np.isfinite(bid_iv)  # a bid below the 1 % value has no IV (Deribit: 0)
        has_ask_iv = has_ask
        size_b = ts // _SIZE_BUCKET_US
        near = np.exp(-0.5 * (z / 2.0) ** 2)
        bid_amt = self._amounts(key, size_b, 0xA1, near)
        ask_amt = self._amounts(key, size_b, 0xA2, near)

        # open interest: per instrument, hourly steps; new listings start from zero
        listed = inst.listed_us[ids]
        oi_base = 400.0 * inst.kind_oi[ids] * near * np.exp(1.1 * _normal(self.salt ^ 0x0A, key))
        hour = (ts - self.t0) // 3_600_000_000
        ramp = np.clip((ts - listed) / (12 * 3_600_000_000), 0.0, 1.0)
        oi = np.rint(oi_base * ramp * np.exp(0.04 * _normal(self.salt ^ 0x0B, key, hour)) * 10.0) / 10.0

        # last price: the mark at the start of the current trade bucket, with trade noise; none if never traded
        t_b = np.maximum(ts // _TRADE_BUCKET_US * _TRADE_BUCKET_US, listed + 600_000_000)
        traded = (_u01(self.salt ^ 0x0C, key) >= np.clip(0.08 + 0.25 * wing, 0, 0.95)) & (t_b <= ts)
        years_b = (expiry - t_b) / _US_PER_YEAR
        spot_b = np.asarray(self.path(t_b), dtype=np.float64)
        fwd_b = spot_b * np.exp(inst.basis[ids] * years_b)
        vol_b = self._vol(strike, fwd_b, years_b, spot_b) * np.exp(0.04 * _normal(self.salt ^ 0x0D, key, t_b))
        last_units = np.maximum(
            _to_tick(black76_usd(fwd_b, strike, years_b, vol_b, is_call) / fwd_b, True), 1
        )

        cols: list[pa.Array] = [
            pa.repeat(pa.scalar(self.exchange, pa.string()), n),
            inst.symbol.take(pa.array(ids)),
            pa.array(ts, pa.int64()),
            pa.array(local, pa.int64()),
            pa.array(["put", "call"], pa.string()).take(pa.array(is_call.astype(np.int8))),
            pa.array(strike, pa.float64()),
            pa.array(expiry, pa.int64()),
            pa.array(oi + 0.0, pa.float64()),
            pa.array(last_units / 1e4, pa.float64(), mask=~traded),
            pa.array(bid_px, pa.float64(), mask=~has_bid),
            pa.array(bid_amt, pa.float64(), mask=~has_bid),
            pa.array(_round(bid_iv * 100.0, 2), pa.float64(), mask=~has_bid_iv),
            pa.array(ask_px, pa.float64(), mask=~has_ask),
            pa.array(ask_amt, pa.float64(), mask=~has_ask),
            pa.array(_round(ask_iv * 100.0, 2), pa.float64(), mask=~has_ask_iv),
            pa.array(mark, pa.float64()),
            pa.array(_round(vol * 100.0, 2), pa.float64()),
            index_col,
            pa.array(forward, pa.float64()),
        ]
        cols += [
            pa.array(_round(greeks[g], 5), pa.float64()) for g in ("delta", "gamma", "vega", "theta", "rho")
        ]
        return pa.Table.from_arrays(cols, names=list(datatypes.columns("options_chain")))

    def _vol(
        self, strike: np.ndarray, forward: np.ndarray, years: np.ndarray, spot: np.ndarray
    ) -> np.ndarray:
        """The smile: ATM term structure (moving against the index), skew and curvature in normalized strike."""
        days = years * 365.0
        atm = self.atm_level * (1.0 + self.term_premium * np.exp(-days / 14.0))
        atm = atm * np.exp(np.clip(-1.2 * np.log(spot / self.spot0), -0.3, 0.3))
        zc = np.clip(np.log(strike / forward) / (atm * np.sqrt(np.maximum(years, 1.0 / 365.0))), -6.0, 6.0)
        curv = self.curvature * (1.0 + np.exp(-days / 2.0))
        return atm * (1.0 + 2.0 * self.skew * np.tanh(zc / 2.0) + curv * zc * zc / (1.0 + 0.15 * zc * zc))

    def _amounts(self, key: np.ndarray, bucket: np.ndarray, salt: int, near: np.ndarray) -> np.ndarray:
        """Quoted sizes in contracts (0.1 steps), larger near the money, some of them round numbers."""
        raw = (2.0 + 10.0 * near) * np.exp(0.9 * _normal(self.salt ^ salt, key, bucket))
        tenths = np.clip(np.rint(raw * 10.0), 1, 5000)
        whole = _u01(self.salt ^ salt ^ 0x77, key, bucket) < 0.4
        tenths = np.where(whole & (tenths >= 10), np.rint(tenths / 10.0) * 10.0, tenths)
        return tenths / 10.0


def _take_by_segment(
    segments: tuple[_Segment, _Segment], seg_no: np.ndarray, positions: np.ndarray
) -> pa.Array:
    """underlying_index strings of rows from their segment's per-position names."""
    names = pa.concat_arrays([s.index_names for s in segments])
    offset = np.where(seg_no == 1, len(segments[0].index_names), 0)
    return names.take(pa.array(positions + offset))


def _to_tick(price: np.ndarray, floor: bool) -> np.ndarray:
    """Prices in units of 0.0001 on Deribit's grid: 0.0001 below 0.005, 0.0005 from there, floored or ceiled."""
    units = price * 1e4
    rnd = np.floor if floor else np.ceil
    fine = rnd(units - 1e-9 if not floor else units + 1e-9)
    coarse = rnd((units + (1e-9 if floor else -1e-9)) / _PRICE_TICK) * _PRICE_TICK
    return np.where(units < _SMALL_BELOW, fine, coarse).astype(np.int64)


def _round(x: np.ndarray, decimals: int) -> np.ndarray:
    """Round to a number of decimals as the nearest double of that decimal; -0 becomes 0."""
    scale = 10.0**decimals
    return np.rint(np.nan_to_num(x) * scale) / scale + 0.0


def _intraday_profile() -> tuple[np.ndarray, np.ndarray]:
    """Piecewise-linear CDF of ticker activity over the day: the 08:00 expiry and US hours are busier."""
    hours = (np.arange(1440) + 0.5) / 60.0
    weight = (
        1.0
        + 1.5 * np.exp(-0.5 * ((hours - 8.05) / 0.35) ** 2)
        + 1.2 * np.exp(-0.5 * ((hours - 14.5) / 1.6) ** 2)
        + 0.3 * np.exp(-0.5 * ((hours - 2.0) / 1.5) ** 2)
    )
    cdf = np.concatenate([[0.0], np.cumsum(weight)])
    return np.linspace(0.0, 1.0, 1441), cdf / cdf[-1]


_PROFILE_X, _PROFILE_CDF = _intraday_profile()


# --------------------------------------------------------------------------------------------------------------
# public API


def _open_price(underlying: str, day: dt.date) -> float:
    """Opening index of a day, from the same function as synth's perpetuals (so the chain opens near them)."""
    return open_price(BASE_PRICES[underlying], day)


def default_index_path(underlying: str, day: dt.date) -> PricePath:
    """The emulator's index of a day: a per-second random walk bridged from this day's open to the next's."""
    if underlying not in BASE_PRICES:
        raise ValueError(f"unknown underlying {underlying!r} (one of {', '.join(BASE_PRICES)})")
    t0 = (day.toordinal() - dt.date(1970, 1, 1).toordinal()) * US_PER_DAY
    n = 86_400
    rng = np.random.default_rng(_stable_int("index-path", underlying, day.isoformat(), nbytes=8))
    walk = np.concatenate([[0.0], np.cumsum(rng.normal(0.0, _DAILY_VOL / math.sqrt(n), n))])
    frac = np.arange(n + 1) / n
    p0, p1 = _open_price(underlying, day), _open_price(underlying, day + dt.timedelta(days=1))
    log_path = math.log(p0) + walk - frac * walk[-1] + frac * math.log(p1 / p0)
    grid_us = t0 + np.arange(n + 1, dtype=np.int64) * 1_000_000
    prices = np.exp(log_path)

    def path(ts_us: np.ndarray) -> np.ndarray:
        return np.interp(np.asarray(ts_us, dtype=np.float64), grid_us.astype(np.float64), prices)

    return path


def iter_options_chain_tables(
    exchange: str,
    underlying: str,
    day: dt.date,
    scale: int,
    underlying_price_path: PricePath | None = None,
    chunk_rows: int = CHUNK_ROWS,
) -> Iterator[pa.Table]:
    """Yield a synthetic Deribit options_chain day (exactly `scale` rows) in file order, in bounded chunks.

    `underlying_price_path` maps exchange timestamps (µs, int64 array) to the index in USD; the default is
    `default_index_path(underlying, day)`. Only `exchange == "deribit"` is modelled.
    """
    if exchange != "deribit":
        raise ValueError(f"options_chain is modelled for deribit only, not {exchange!r}")
    if underlying not in BASE_PRICES and underlying_price_path is None:
        raise ValueError(f"unknown underlying {underlying!r} (one of {', '.join(BASE_PRICES)})")
    if isinstance(day, dt.datetime):
        day = day.date()
    if not isinstance(scale, int) or isinstance(scale, bool) or scale < 1:
        raise ValueError(f"scale must be a positive integer, got {scale!r}")
    if chunk_rows < 1:
        raise ValueError("chunk_rows must be positive")
    chain = _Chain(exchange, underlying, day, scale, underlying_price_path)
    return chain.tables(chunk_rows)


def write_options_chain(
    exchange: str,
    underlying: str,
    day: dt.date,
    scale: int,
    out_path: str | os.PathLike[str],
    compresslevel: int = csvout.DEFAULT_COMPRESSLEVEL,
) -> int:
    """Write a synthetic options_chain day as a Tardis .csv.gz; return the row count (= scale)."""
    tables = iter_options_chain_tables(exchange, underlying, day, scale)
    return csvout.write_csv_gz(out_path, "options_chain", tables, compresslevel)
