"""A rate limiter shared by every thread, process and run on the machine, or on every machine.

Token bucket (rate + burst) with reservations, a cap on requests in flight, a shared pause when the server
throttles (429 / Retry-After) and adaptation to a server limit it is not told. Between two 429s the server's
bucket goes from empty to empty, so the requests it accepted in between, over the time between, are a lower
bound of its rate: the second 429 sets the rate just under that estimate (the first, with nothing to measure
against, halves it). While no limit is known the rate recovers quickly; above a learned one it probes slowly,
and only after `probe_quiet_requests` requests, so holding just under the limit costs at most one 429 in that
many. Idle time recovers nothing: a later run starts at the limit learned before. The state lives behind
`LimiterBackend`: SQLite for one machine, in memory for one process, Postgres for many machines
(`tick_assets.tardis.ratelimit_postgres`); each grant is one atomic `transact`.

A request in flight holds a lease that expires `lease_ttl` after it was last renewed; the process holding it
renews it every third of that while the request runs, so a killed process or host gives its slots back within
the lease time. On one machine (SQLite, memory) a lease of a dead local process is also reclaimed at once.
"""

from __future__ import annotations

import json
import logging
import os
import random
import socket
import sqlite3
import threading
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import TypeVar

from tick_assets.processes import pid_running
from tick_assets.tardis.errors import TardisError

T = TypeVar("T")


class LimiterUnavailable(TardisError):
    """The shared limiter's server cannot be reached or answered with an error: no request may start."""


_HOST = socket.gethostname()
#: The rate recovers for this long after a grant; past it the limiter is idle and keeps what it learned.
_BUSY_SECONDS = 5.0
_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LimiterConfig:
    """Limits applied to one limiter key."""

    rate: float = 20.0  # requests per second, the ceiling the adaptation recovers to
    burst: int = 5  # tokens that may accumulate while idle (keep below the server's own burst)
    max_in_flight: int = 8  # requests started and not yet finished, machine-wide
    min_rate: float = 0.2  # adaptation never goes below this
    decrease_factor: float = 0.5  # the deepest cut of one throttle (the first one: nothing to estimate from)
    decrease_cooldown: float = 1.0  # one burst of 429s cuts the rate once
    quiet_seconds: float = 2.0  # no limit learned yet: recovery starts this long after the last throttle
    recovery_fraction_per_second: float = 0.05  # ... and adds this fraction of `rate` per second
    estimate_margin: float = 0.98  # a learned limit is held at this fraction of the estimate
    probe_quiet_seconds: float = 30.0  # a limit learned: held this long after the last 429, then probed
    probe_quiet_requests: int = 300  # ... and for this many requests: <= one probing 429 in this many
    probe_fraction_per_second: float = 0.01  # ... by this fraction of the learned limit per second
    lease_ttl: float = 60.0  # a lease not renewed for this long is reclaimed (a killed process or host)
    unavailable_grace: float = 30.0  # a limiter server unreachable this long fails the request (fail closed)

    def __post_init__(self) -> None:
        if self.rate <= 0 or self.burst < 1 or self.max_in_flight < 1:
            raise ValueError(
                f"Invalid rate limiter settings rate={self.rate}, burst={self.burst}, "
                f"max_in_flight={self.max_in_flight}: rate must be > 0, burst and max_in_flight >= 1."
            )
        if self.lease_ttl <= 0 or self.unavailable_grace < 0:
            raise ValueError(
                f"Invalid rate limiter settings lease_ttl={self.lease_ttl}, "
                f"unavailable_grace={self.unavailable_grace}: lease_ttl must be > 0, unavailable_grace >= 0."
            )


@dataclass
class LimiterState:
    """The shared state of one limiter key."""

    tokens: float
    updated: float
    rate: float
    paused_until: float = 0.0
    last_throttle: float = 0.0
    leases: dict[str, list] = field(default_factory=dict)  # id -> [pid, host, started, expires]
    granted: int = 0
    throttles: int = 0
    #: The server's limit estimated from the last two throttles (0: none learned yet).
    learned_rate: float = 0.0
    #: When the last request was granted (the rate recovers only while requests are going).
    last_grant: float = 0.0
    #: When the last 429 was reported (grants made before it queue again behind its pause).
    throttled_at: float = 0.0
    #: Requests answered and throttles counted at the last throttle that changed the rate (for the estimate).
    answered_at_throttle: float = 0.0
    throttles_at_throttle: int = 0

    @classmethod
    def from_json(cls, text: str) -> LimiterState:
        """Load a stored state, ignoring fields this version does not know (a state written by a newer one)."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in json.loads(text).items() if k in known})

    @classmethod
    def fresh(cls, config: LimiterConfig, now: float) -> LimiterState:
        """Return the state of a limiter that has never been used."""
        return cls(tokens=float(config.burst), updated=now, rate=config.rate)


class LimiterBackend(ABC):
    """Storage of limiter states that runs a function on one state atomically."""

    #: True when every user of the state is on this machine, so a lease of a dead local pid can be reclaimed at
    #: once; a shared backend relies on lease expiry alone (pids and host names mean nothing across hosts).
    local: bool = True

    @abstractmethod
    def transact(self, key: str, fn: Callable[[LimiterState | None], tuple[LimiterState, T]]) -> T:
        """Atomically read the state of `key`, apply `fn`, store the new state and return fn's result."""


class MemoryBackend(LimiterBackend):
    """State shared by the threads of one process only (tests, notebooks)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._states: dict[str, LimiterState] = {}

    def transact(self, key: str, fn: Callable[[LimiterState | None], tuple[LimiterState, T]]) -> T:
        """Apply `fn` under a process-wide lock."""
        with self._lock:
            state, result = fn(self._states.get(key))
            self._states[key] = state
            return result


class SQLiteBackend(LimiterBackend):
    """State in a SQLite file, shared by every process on the machine (BEGIN IMMEDIATE serialises writers)."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        with self._connect() as conn:
            conn.execute("CREATE TABLE IF NOT EXISTS limiter (key TEXT PRIMARY KEY, state TEXT NOT NULL)")

    def _connect(self) -> sqlite3.Connection:
        # One connection per thread and process: a connection must not cross a fork.
        conn = getattr(self._local, "conn", None)
        if conn is None or getattr(self._local, "pid", None) != os.getpid():
            conn = sqlite3.connect(self.path, timeout=60.0, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            self._local.conn = conn
            self._local.pid = os.getpid()
        return conn

    def transact(self, key: str, fn: Callable[[LimiterState | None], tuple[LimiterState, T]]) -> T:
        """Apply `fn` inside a BEGIN IMMEDIATE transaction on the shared file."""
        conn = self._connect()
        conn.execute("BEGIN IMMEDIATE")
        try:
            row = conn.execute("SELECT state FROM limiter WHERE key = ?", (key,)).fetchone()
            state = LimiterState.from_json(row[0]) if row else None
            new_state, result = fn(state)
            conn.execute(
                "INSERT INTO limiter (key, state) VALUES (?, ?) "
                "ON CONFLICT(key) DO UPDATE SET state = excluded.state",
                (key, json.dumps(asdict(new_state))),
            )
            conn.execute("COMMIT")
            return result
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise


@dataclass(frozen=True)
class Permit:
    """A granted request slot; give it back with `RateLimiter.release`."""

    lease_id: str
    waited_seconds: float


class RateLimiter:
    """Shared token bucket + in-flight cap + throttle pause + limit adaptation, keyed by e.g. the API host."""

    def __init__(self, backend: LimiterBackend, key: str, config: LimiterConfig | None = None) -> None:
        self.backend = backend
        self.key = key
        self.config = config or LimiterConfig()
        self._held: set[str] = set()  # leases of this process still in flight (renewed by the keeper)
        self._held_lock = threading.Lock()
        self._keeper: threading.Thread | None = None
        self._keeper_pid = 0

    def __repr__(self) -> str:
        return f"RateLimiter(key={self.key!r}, backend={type(self.backend).__name__}, config={self.config})"

    # -- pure state transitions -------------------------------------------------------------------------

    def _refreshed(self, state: LimiterState | None, now: float) -> LimiterState:
        cfg = self.config
        if state is None:
            return LimiterState.fresh(cfg, now)
        # Another process may have written a later time while this one waited for the lock.
        now = max(now, state.updated)
        elapsed = max(0.0, now - state.updated)
        # Additive recovery, only for the part of `elapsed` in the quiet period that follows the last
        # throttle and the pause it caused: quick while no limit is known, a slow probe above a learned one.
        if state.learned_rate > 0:
            quiet = cfg.probe_quiet_seconds
            probing = state.granted - state.answered_at_throttle >= cfg.probe_quiet_requests
            step = state.learned_rate * cfg.probe_fraction_per_second if probing else 0.0
        else:
            quiet, step = cfg.quiet_seconds, cfg.rate * cfg.recovery_fraction_per_second
        quiet_from = max(state.last_throttle, state.paused_until) + quiet
        # Only time with requests going counts: idle, nothing is learned about the server, and a later run
        # starts at the limit learned before instead of above it.
        busy_until = min(now, state.last_grant + _BUSY_SECONDS) if state.last_grant else now
        quiet_elapsed = max(0.0, busy_until - max(quiet_from, state.updated))
        state.rate = min(cfg.rate, state.rate + step * quiet_elapsed)
        state.rate = max(cfg.min_rate, state.rate)
        state.tokens = min(float(cfg.burst), state.tokens + elapsed * state.rate)
        state.updated = now
        for lease_id, lease in list(state.leases.items()):
            pid, host, started = lease[:3]
            expires = lease[3] if len(lease) > 3 else started + cfg.lease_ttl  # a lease from before expiry
            lost = self.backend.local and host == _HOST and not pid_running(pid)
            if lost or now > expires:
                del state.leases[lease_id]
        return state

    def _try_acquire(self) -> Callable[[LimiterState | None], tuple[LimiterState, tuple]]:
        def step(current: LimiterState | None) -> tuple[LimiterState, tuple]:
            now = time.time()  # read inside the transaction: the lock wait may have been long
            state = self._refreshed(current, now)
            if now < state.paused_until:
                return state, ("wait", state.paused_until - now)
            if len(state.leases) >= self.config.max_in_flight:
                return state, ("wait", None)
            state.tokens -= 1.0
            lease_id = uuid.uuid4().hex
            state.leases[lease_id] = [os.getpid(), _HOST, now, now + self.config.lease_ttl]
            state.granted += 1
            state.last_grant = now
            # A negative balance is a reservation: this request may start once it is paid back.
            return state, ("granted", lease_id, max(0.0, -state.tokens / state.rate))

        return step

    # -- public API -------------------------------------------------------------------------------------

    def acquire(self) -> Permit:
        """Block until a request may start; return a permit that records how long it waited."""
        started = time.monotonic()
        poll = 0.005
        while True:
            outcome = self._transact_within_grace(self._try_acquire())
            if outcome[0] == "granted":
                _, lease_id, delay = outcome
                self._hold(lease_id)
                try:
                    if delay > 0:
                        time.sleep(delay)
                        # a throttle seen by anyone while this grant waited its turn pauses it too
                        self._wait_out_pause(lease_id)
                except BaseException:
                    # Interrupted (Ctrl-C, run cancelled) while holding a slot: give it back.
                    self.release(Permit(lease_id, 0.0))
                    raise
                return Permit(lease_id, time.monotonic() - started)
            delay = outcome[1]
            if delay is None:  # in-flight cap reached: poll with jitter, backing off a little
                delay = poll * (0.5 + random.random())
                poll = min(poll * 1.5, 0.1)
            time.sleep(delay)

    def _transact_within_grace(self, fn: Callable[[LimiterState | None], tuple[LimiterState, T]]) -> T:
        """`backend.transact`, retried while the backend is unavailable for up to `unavailable_grace` seconds
        (a server restart); past it LimiterUnavailable: no request starts without the shared limit."""
        deadline = time.monotonic() + self.config.unavailable_grace
        pause = 0.2
        while True:
            try:
                return self.backend.transact(self.key, fn)
            except LimiterUnavailable:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise
                time.sleep(min(pause, remaining))
                pause = min(pause * 2, 5.0)

    def _hold(self, lease_id: str) -> None:
        """Keep `lease_id` renewed until it is released (one keeper thread per process and limiter)."""
        with self._held_lock:
            if self._keeper_pid != os.getpid():  # a forked child: the parent's leases are not its own
                self._held = set()
                self._keeper = None
            self._held.add(lease_id)
            if self._keeper is None or not self._keeper.is_alive():
                self._keeper_pid = os.getpid()
                self._keeper = threading.Thread(target=self._renew_leases, name="limiter-leases", daemon=True)
                self._keeper.start()

    def _renew_leases(self) -> None:
        """Push the expiry of this process's leases in flight forward, every third of the lease time, until none
        is held (the next grant starts a new keeper)."""
        while True:
            threading.Event().wait(self.config.lease_ttl / 3)  # real time, whatever clock the limiter reads
            with self._held_lock:
                held = set(self._held)
                if not held:
                    self._keeper = None
                    return

            def step(current: LimiterState | None, held: set[str] = held) -> tuple[LimiterState, None]:
                now = time.time()
                state = self._refreshed(current, now)
                for lease_id in held & set(state.leases):
                    state.leases[lease_id][3:] = [now + self.config.lease_ttl]
                # renewed too late (the process stalled past the lease time): the slot went to another
                if lapsed := held - set(state.leases):
                    _log.warning("%d limiter lease(s) of %s lapsed while in flight", len(lapsed), self.key)
                return state, None

            try:
                self.backend.transact(self.key, step)
            except Exception as exc:  # the next round retries; a lapsed lease only frees a slot early
                _log.warning("could not renew %d limiter lease(s) of %s: %s", len(held), self.key, exc)

    def _wait_out_pause(self, lease_id: str) -> None:
        """Wait out a pause that began after this grant, then queue again for a token: grants that waited through
        a pause would otherwise all start at its end, one burst the server refuses again."""
        while True:
            now = time.time()

            def step(current: LimiterState | None, now: float = now) -> tuple[LimiterState, float]:
                state = self._refreshed(current, now)
                if now < state.paused_until:
                    return state, state.paused_until - now
                lease = state.leases.get(lease_id)
                if lease is not None and state.throttled_at >= lease[2]:
                    lease[2] = now  # its place is behind the pause: a fresh reservation
                    state.tokens -= 1.0
                    return state, max(1e-6, -state.tokens / state.rate)
                return state, 0.0

            delay = self.backend.transact(self.key, step)
            if delay <= 0:
                return
            time.sleep(delay)

    def release(self, permit: Permit, *, throttled: bool = False, pause_seconds: float = 0.0) -> None:
        """Give the permit back; on a throttle, pause everyone and cut the rate to just under the server's limit."""
        cfg = self.config
        with self._held_lock:
            self._held.discard(permit.lease_id)

        def step(current: LimiterState | None) -> tuple[LimiterState, None]:
            now = time.time()
            state = self._refreshed(current, now)
            state.leases.pop(permit.lease_id, None)
            if throttled:
                state.throttles += 1
                state.throttled_at = now
                state.paused_until = max(state.paused_until, now + pause_seconds)
                if now - state.last_throttle >= cfg.decrease_cooldown:
                    self._adapt(state, now)
                # No burst right after a 429; grants waiting for their turn queue again behind the pause (their
                # debt is forgiven here and taken again then).
                state.tokens = 0.0
            return state, None

        try:
            self.backend.transact(self.key, step)
        except LimiterUnavailable as exc:
            # The request already ran: its outcome stands. Its lease lapses within lease_ttl; a throttle not
            # recorded here is met again by the next request, whose grant fails closed if the server stays away.
            _log.warning("could not release a limiter lease of %s: %s", self.key, exc)

    def _adapt(self, state: LimiterState, now: float) -> None:
        """Cut the rate after a throttle: to just under the limit measured since the previous throttle, never by
        more than `decrease_factor` (all the first one can do: it has nothing to measure against)."""
        cfg = self.config
        # Requests answered so far: not those still in flight (another 429 may be on its way) nor the grants still
        # waiting for their start (a negative balance).
        answered = state.granted - max(0.0, -state.tokens) - len(state.leases)
        interval = now - state.last_throttle
        cut = state.rate * cfg.decrease_factor
        if state.last_throttle > 0 and interval > 0:
            # Both throttles found the server's bucket empty: what it let through in between is its rate times
            # the interval, less if its bucket overflowed meanwhile (the client idled): a lower bound, trusted
            # down to `cut`.
            accepted = answered - state.answered_at_throttle - (state.throttles - state.throttles_at_throttle)
            estimate = max(0.0, accepted) / interval
            state.rate = max(cut, min(estimate, state.rate)) * cfg.estimate_margin
            state.learned_rate = state.rate / cfg.estimate_margin
            _log.info(
                "%s throttled: %.0f requests accepted in %.1fs since the last 429, about %.1f req/s; "
                "limiting to %.1f req/s",
                self.key,
                accepted,
                interval,
                estimate,
                state.rate,
            )
        else:
            state.rate = cut
        state.rate = max(cfg.min_rate, state.rate)
        state.last_throttle = now
        state.answered_at_throttle = answered
        state.throttles_at_throttle = state.throttles

    def snapshot(self) -> LimiterState:
        """Return a copy of the current shared state (for metrics and tests)."""
        now = time.time()

        def step(current: LimiterState | None) -> tuple[LimiterState, LimiterState]:
            state = self._refreshed(current, now)
            return state, LimiterState(**json.loads(json.dumps(asdict(state))))

        return self.backend.transact(self.key, step)


def sqlite_limiter(path: Path | str, key: str, config: LimiterConfig | None = None) -> RateLimiter:
    """Return a limiter whose state is shared through the SQLite file at `path`."""
    return RateLimiter(SQLiteBackend(path), key, config)


def open_limiter(location: Path | str, key: str, config: LimiterConfig | None = None) -> RateLimiter:
    """A limiter on the backend `location` names: a `postgresql://` URL (shared by every machine that reaches
    the server) or the path of a SQLite file (one machine)."""
    text = str(location).strip()
    if "://" in text:
        scheme = text.split("://", 1)[0].lower()
        if scheme not in ("postgresql", "postgres") and not scheme.startswith("postgresql+"):
            raise ValueError(
                f"the limiter location has the scheme {scheme!r}: use a postgresql://user:password@host:port/db "
                "URL for a shared limiter, or a file path for one machine's"
            )
        from tick_assets.tardis.ratelimit_postgres import PostgresBackend

        return RateLimiter(PostgresBackend(text), key, config)
    return sqlite_limiter(location, key, config)
