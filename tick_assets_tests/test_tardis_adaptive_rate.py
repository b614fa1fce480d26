"""The limiter learns a server limit it is not told: two 429s to estimate it, then it holds just under it."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from concurrent.futures import ThreadPoolExecutor

import pytest

from tick_assets.emulator.faults import FaultConfig
from tick_assets.tardis import ratelimit
from tick_assets.tardis.ratelimit import LimiterConfig, MemoryBackend, RateLimiter
from tick_assets_tests.conftest import make_client
from tick_assets_tests.test_tardis_ratelimit import _Clock


class _ServerBucket:
    """The server's own token bucket on the virtual clock (like the emulator's ServerRateLimit)."""

    def __init__(self, clock: _Clock, rate: float, burst: int) -> None:
        self.clock, self.rate, self.burst = clock, rate, burst
        self.tokens, self.updated = float(burst), clock.time()

    def admit(self) -> bool:
        now = self.clock.time()
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


def _drive(limiter: RateLimiter, server: _ServerBucket, files: int) -> tuple[int, list[float]]:
    """Download `files` files one after the other, retrying 429s (Retry-After 1 s); 429s and accept times."""
    throttled, accepted = 0, []
    while len(accepted) < files:
        permit = limiter.acquire()
        if server.admit():
            accepted.append(server.clock.time())
            limiter.release(permit)
        else:
            throttled += 1
            limiter.release(permit, throttled=True, pause_seconds=1.0)
    return throttled, accepted


@pytest.mark.parametrize("server_rate", [3.0, 5.0, 10.0, 15.0])
def test_two_429s_teach_the_limit_and_the_rate_then_holds_under_it(monkeypatch, server_rate) -> None:
    clock = _Clock()
    monkeypatch.setattr(ratelimit, "time", clock)
    limiter = RateLimiter(MemoryBackend(), "k", LimiterConfig(rate=20, burst=5))
    server = _ServerBucket(clock, server_rate, burst=10)
    files = int(server_rate * 60)  # a minute of the server's capacity
    throttled, accepted = _drive(limiter, server, files)
    state = limiter.snapshot()
    # Learning costs two 429s; the slow probe above the learned limit one more after half a minute.
    assert throttled <= 3
    # A lower bound: at 15 req/s the halving to 10 lets the server's bucket overflow before the second 429.
    assert server_rate * 0.85 <= state.learned_rate <= server_rate * 1.02
    # After the first seconds the accepted rate is just under the server's.
    late = [t for t in accepted if t >= accepted[0] + 10]
    achieved = (len(late) - 1) / (late[-1] - late[0])
    assert server_rate * 0.85 <= achieved <= server_rate * 1.02


def test_a_learned_limit_is_probed_slowly_and_relearned(monkeypatch) -> None:
    clock = _Clock()
    monkeypatch.setattr(ratelimit, "time", clock)
    limiter = RateLimiter(MemoryBackend(), "k", LimiterConfig(rate=20, burst=5))
    server = _ServerBucket(clock, 5.0, burst=10)
    throttled, accepted = _drive(limiter, server, 5 * 600)  # ten minutes at the server's limit
    # Probing above the learned limit costs at most one 429 per `probe_quiet_requests` (300) requests.
    assert throttled <= 2 + 3000 // 300
    assert throttled / (throttled + len(accepted)) <= 0.005
    assert len(accepted) / (accepted[-1] - accepted[0]) >= 5.0 * 0.93
    # The server raises its limit: the probe climbs to it and learns it.
    server.rate = 10.0
    throttled, accepted = _drive(limiter, server, 10 * 600)
    assert 9.0 <= limiter.snapshot().learned_rate <= 10.2


def test_an_estimate_from_an_idle_spell_cuts_no_deeper_than_halving(monkeypatch) -> None:
    clock = _Clock()
    monkeypatch.setattr(ratelimit, "time", clock)
    limiter = RateLimiter(MemoryBackend(), "k", LimiterConfig(rate=20, burst=5))
    limiter.release(limiter.acquire(), throttled=True, pause_seconds=1.0)
    assert limiter.snapshot().rate == pytest.approx(10)
    clock.sleep(20)  # idle: two requests in 20 s say nothing about the server's rate
    limiter.release(limiter.acquire(), throttled=True, pause_seconds=1.0)
    assert limiter.snapshot().rate >= 20 * 0.5 * 0.5 * 0.95 - 1e-9


def test_grants_waiting_through_a_pause_start_paced_not_at_once(monkeypatch) -> None:
    clock = _Clock()
    monkeypatch.setattr(ratelimit, "time", clock)
    limiter = RateLimiter(MemoryBackend(), "k", LimiterConfig(rate=10, burst=1, max_in_flight=8))
    step = limiter._try_acquire()
    # three grants with reservations (the bucket is empty after the first)
    grants = [limiter.backend.transact(limiter.key, step) for _ in range(3)]
    assert [g[0] for g in grants] == ["granted"] * 3 and grants[2][2] > 0
    limiter.release(limiter.acquire(), throttled=True, pause_seconds=1.0)
    paused_until = limiter.snapshot().paused_until
    starts = []
    for _, lease_id, delay in grants[1:]:
        clock.sleep(delay)
        limiter._wait_out_pause(lease_id)
        starts.append(clock.time())
    assert starts[0] >= paused_until
    assert starts[1] - starts[0] >= 1 / limiter.snapshot().rate - 1e-9  # queued again, one token each


def test_an_emulator_limit_the_client_is_not_told_is_learned(start_emulator, tmp_path) -> None:
    """Default limiter (20 req/s, burst 5, 8 in flight), 8 threads, an emulator allowing 5 req/s."""
    server = start_emulator()
    days = [dt.date(2024, 1, 2) + dt.timedelta(days=i) for i in range(25)]
    jobs = [(t, d) for t in ("trades", "quotes") for d in days]
    with make_client(server, tmp_path / "warm") as warm:  # generate the days outside the measurement
        for t, d in jobs:
            warm.download("binance-futures", t, "BTCUSDT", d)
    server.set_faults(FaultConfig(rate_limit=5, rate_burst=5))
    before = server.stats["counts"]
    with make_client(server, tmp_path / "cache", limiter_config=LimiterConfig()) as c:
        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(lambda j: c.download("binance-futures", j[0], "BTCUSDT", j[1]), jobs))
        state = c.limiter.snapshot()
    counts = server.stats["counts"]
    throttled = counts.get("rate_limited", 0) - before.get("rate_limited", 0)
    assert len(results) == len(jobs) and sum(r.retries for r in results) == throttled
    assert throttled <= 3  # two to learn; one spare for a loaded machine's jitter
    assert 5 * 0.8 <= state.learned_rate <= 5 * 1.1
    accepted = server.request_times(("dataset",))[-len(jobs) :]
    late = [t for t in accepted if t >= accepted[0] + 3]
    assert 5 * 0.85 <= (len(late) - 1) / (late[-1] - late[0]) <= 5 * 1.02


def test_a_later_run_starts_at_the_learned_limit(monkeypatch) -> None:
    clock = _Clock()
    monkeypatch.setattr(ratelimit, "time", clock)
    limiter = RateLimiter(MemoryBackend(), "k", LimiterConfig(rate=20, burst=5))
    _drive(limiter, _ServerBucket(clock, 5.0, burst=10), 100)
    learned = limiter.snapshot().learned_rate
    clock.sleep(3600)  # idle for an hour: nothing new is known about the server, the rate stays
    assert limiter.snapshot().rate == pytest.approx(learned * 0.98)
    throttled, accepted = _drive(limiter, _ServerBucket(clock, 5.0, burst=10), 100)
    assert throttled == 0, (learned, limiter.snapshot())
    assert (len(accepted) - 1) / (accepted[-1] - accepted[0]) >= 5.0 * 0.9


def test_a_state_written_by_a_newer_version_still_loads(tmp_path) -> None:
    limiter = ratelimit.sqlite_limiter(tmp_path / "limiter.sqlite", "k")
    limiter.release(limiter.acquire())
    conn = sqlite3.connect(tmp_path / "limiter.sqlite")
    stored = json.loads(conn.execute("SELECT state FROM limiter").fetchone()[0])
    conn.execute("UPDATE limiter SET state = ?", (json.dumps({**stored, "field_of_a_later_version": 1}),))
    conn.commit()
    assert limiter.snapshot().granted == 1
