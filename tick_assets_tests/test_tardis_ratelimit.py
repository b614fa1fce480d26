"""The shared limiter: rate and burst, in-flight cap, throttle pause, adaptation, and sharing across processes."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tick_assets.tardis import ratelimit
from tick_assets.tardis.ratelimit import LimiterConfig, MemoryBackend, RateLimiter, sqlite_limiter

WORKER = Path(__file__).parent / "helpers" / "limiter_worker.py"


def _run(limiter: RateLimiter, n: int, hold: float = 0.0) -> list[float]:
    starts = []
    for _ in range(n):
        permit = limiter.acquire()
        starts.append(time.monotonic())
        time.sleep(hold)
        limiter.release(permit)
    return starts


class _Clock:
    """A virtual clock for the limiter: sleeping advances it, so grant times are exact, whatever the load."""

    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def time(self) -> float:
        return self.now

    monotonic = time

    def sleep(self, seconds: float) -> None:
        self.now += max(0.0, seconds)


def test_burst_then_steady_rate(monkeypatch) -> None:
    clock = _Clock()
    monkeypatch.setattr(ratelimit, "time", clock)
    limiter = RateLimiter(MemoryBackend(), "k", LimiterConfig(rate=50, burst=10))
    t0 = clock.monotonic()
    starts = []
    for _ in range(35):
        permit = limiter.acquire()
        starts.append(clock.monotonic())
        limiter.release(permit)
    assert starts[9] == t0  # the burst goes out at once
    gaps = [b - a for a, b in itertools.pairwise(starts[10:])]
    assert gaps == pytest.approx([1 / 50] * len(gaps), abs=1e-6)  # then one request per 1/rate


def test_in_flight_cap_is_never_exceeded() -> None:
    limiter = RateLimiter(MemoryBackend(), "k", LimiterConfig(rate=1000, burst=1000, max_in_flight=3))
    active, peak, lock = 0, 0, threading.Lock()

    def work() -> None:
        nonlocal active, peak
        for _ in range(5):
            permit = limiter.acquire()
            with lock:
                active += 1
                peak = max(peak, active)
            time.sleep(0.01)
            with lock:
                active -= 1
            limiter.release(permit)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert peak == 3
    assert limiter.snapshot().leases == {}


def test_throttle_pauses_everyone_and_halves_then_recovers(monkeypatch) -> None:
    cfg = LimiterConfig(rate=20, burst=5, quiet_seconds=0.3, recovery_fraction_per_second=1.0)
    limiter = RateLimiter(MemoryBackend(), "k", cfg)
    permit = limiter.acquire()
    limiter.release(permit, throttled=True, pause_seconds=0.5)
    # A second 429 of the same burst does not halve again (cooldown).
    limiter.release(limiter.acquire(), throttled=True, pause_seconds=0.5)
    state = limiter.snapshot()
    assert state.rate == pytest.approx(10) and state.throttles == 2
    t0 = time.monotonic()
    other = RateLimiter(limiter.backend, "k", cfg)  # another worker sharing the state
    waited = other.acquire().waited_seconds
    assert waited >= 0.45 and time.monotonic() - t0 >= 0.45
    time.sleep(0.9)  # quiet: additive recovery back to the configured rate
    assert limiter.snapshot().rate == pytest.approx(20)


def test_rate_never_drops_below_minimum() -> None:
    cfg = LimiterConfig(rate=4, burst=1, min_rate=1, decrease_cooldown=0)
    limiter = RateLimiter(MemoryBackend(), "k", cfg)
    for _ in range(6):
        limiter.release(limiter.acquire(), throttled=True, pause_seconds=0)
    assert limiter.snapshot().rate == 1


def test_invalid_config_is_rejected() -> None:
    with pytest.raises(ValueError, match="rate must be > 0"):
        LimiterConfig(rate=0)


def _spawn(db: Path, n: int, hold: float, rate: float = 20.0, burst: int = 1) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(WORKER), str(db), str(rate), str(burst), str(n), str(hold)],
        stdout=subprocess.PIPE,
        text=True,
    )


@pytest.mark.slow
@pytest.mark.parametrize("processes", [1, 4])
def test_processes_share_one_rate(tmp_path: Path, processes: int) -> None:
    db = tmp_path / "limiter.sqlite"
    total = 80
    procs = [_spawn(db, total // processes, 0.02) for _ in range(processes)]
    starts = sorted(t for p in procs for t in json.loads(p.communicate(timeout=60)[0].splitlines()[-1]))
    assert all(p.returncode == 0 for p in procs)
    assert len(starts) == total
    achieved = (total - 1) / (starts[-1] - starts[0])
    assert 0.9 * 20 <= achieved <= 20 * 1.05 + 1
    # No one-second window holds more than rate + burst requests.
    for i, t in enumerate(starts):
        in_window = sum(1 for u in starts[i:] if u - t < 1.0)
        assert in_window <= 21


@pytest.mark.slow
def test_lease_of_a_killed_process_is_reclaimed(tmp_path: Path) -> None:
    db = tmp_path / "limiter.sqlite"
    cfg = LimiterConfig(rate=100, burst=100, max_in_flight=1)
    proc = _spawn(db, 1, 60.0, rate=100, burst=100)  # takes the only slot and holds it
    limiter = sqlite_limiter(db, "tardis", cfg)
    deadline = time.monotonic() + 10
    while not limiter.snapshot().leases and time.monotonic() < deadline:
        time.sleep(0.05)
    assert limiter.snapshot().leases
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    permit = limiter.acquire()  # would block forever if the dead lease were kept
    limiter.release(permit)


def test_interrupt_while_waiting_on_a_reservation_gives_the_slot_back(monkeypatch) -> None:
    limiter = RateLimiter(MemoryBackend(), "k", LimiterConfig(rate=1, burst=1, max_in_flight=2))
    limiter.release(limiter.acquire())  # the burst token is spent; the next grant must wait ~1 s

    def interrupted(seconds: float) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(time, "sleep", interrupted)
    with pytest.raises(KeyboardInterrupt):
        limiter.acquire()
    assert limiter.snapshot().leases == {}


def test_a_stale_clock_reading_cannot_mint_tokens() -> None:
    limiter = RateLimiter(MemoryBackend(), "k", LimiterConfig(rate=10, burst=5))
    state = limiter.snapshot()
    later = state.updated + 10.0
    refreshed = limiter._refreshed(state, later)
    refreshed.tokens = 0.0
    # A process that read the time before waiting for the lock must not move `updated` back.
    again = limiter._refreshed(refreshed, later - 5.0)
    assert again.updated == later and again.tokens == 0.0
