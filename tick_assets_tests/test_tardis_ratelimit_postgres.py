"""The limiter on a real Postgres (a throwaway cluster on 127.0.0.1): the same schedule as on one machine, one
rate and one pause for every process and connection, leases that a killed holder gives back within their time
and that a live one keeps past it, and a server that cannot be reached failing closed without its password."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from tick_assets.assets.resources import TardisResource
from tick_assets.stack.postgres import PostgresServer
from tick_assets.tardis import ratelimit
from tick_assets.tardis.ratelimit import LimiterConfig, MemoryBackend, RateLimiter, open_limiter
from tick_assets.tardis.ratelimit_postgres import LimiterUnavailable, PostgresBackend
from tick_assets_tests.test_tardis_ratelimit import _Clock

WORKER = Path(__file__).parent / "helpers" / "limiter_worker.py"


@pytest.fixture(scope="module")
def pg() -> Iterator[PostgresServer]:
    """One Postgres for the module."""
    with PostgresServer() as server:
        yield server


@pytest.fixture
def key(request: pytest.FixtureRequest) -> str:
    """A limiter key of the test's own (the tests share one server)."""
    return request.node.name


def test_the_schedule_on_postgres_is_the_schedule_in_memory(pg, key, monkeypatch) -> None:
    """Same config, same virtual clock: the same grant times to the microsecond, throttle and recovery included."""
    schedules = []
    for backend in (MemoryBackend(), PostgresBackend(pg.url)):
        clock = _Clock()
        monkeypatch.setattr(ratelimit, "time", clock)
        limiter = RateLimiter(backend, key, LimiterConfig(rate=50, burst=10))
        starts = []
        for i in range(40):
            permit = limiter.acquire()
            starts.append(clock.monotonic())
            limiter.release(permit, throttled=i == 20, pause_seconds=0.5 if i == 20 else 0.0)
        schedules.append(starts)
        assert limiter.snapshot().throttles == 1 and limiter.snapshot().rate < 50
    assert schedules[0] == pytest.approx(schedules[1], abs=1e-9)


def test_a_throttle_pauses_every_connection_and_the_cap_holds_across_them(pg, key) -> None:
    config = LimiterConfig(rate=200, burst=50, max_in_flight=3)
    limiters = [RateLimiter(PostgresBackend(pg.url), key, config) for _ in range(2)]
    running, peak, lock = [0], [0], threading.Lock()

    def work(limiter: RateLimiter) -> None:
        for _ in range(10):
            permit = limiter.acquire()
            with lock:
                running[0] += 1
                peak[0] = max(peak[0], running[0])
            time.sleep(0.01)
            with lock:
                running[0] -= 1
            limiter.release(permit)

    threads = [threading.Thread(target=work, args=(limiters[i % 2],)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert peak[0] == 3 and limiters[0].snapshot().granted == 60  # the cap, shared by two connections
    # a 429 seen through one connection pauses the other one for Retry-After
    permit = limiters[0].acquire()
    started = time.monotonic()  # the pause runs from the release, which comes after this
    limiters[0].release(permit, throttled=True, pause_seconds=0.6)
    limiters[1].release(limiters[1].acquire())
    assert time.monotonic() - started >= 0.6
    assert limiters[1].snapshot().rate == pytest.approx(100, rel=0.05)  # halved for everyone


def _spawn(
    pg: PostgresServer, key: str, n: int, hold: float, rate: float, burst: int, in_flight: int, ttl: float
):
    args = [str(a) for a in (sys.executable, WORKER, pg.url, rate, burst, n, hold, in_flight, ttl, key)]
    return subprocess.Popen(args, stdout=subprocess.PIPE, text=True)


@pytest.mark.slow
def test_processes_on_postgres_share_one_rate(pg, key) -> None:
    total, rate = 90, 20.0
    procs = [_spawn(pg, key, total // 3, 0.02, rate, 1, 8, 60) for _ in range(3)]
    outs = [p.communicate(timeout=90)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs)
    starts = sorted(t for out in outs for t in json.loads(out.splitlines()[-1]))
    achieved = (len(starts) - 1) / (starts[-1] - starts[0])
    assert len(starts) == total and 0.9 * rate <= achieved <= rate * 1.05 + 1
    # No second holds more than rate + burst grants; the times are taken after each grant returns, so a busy
    # machine may shift one by tens of ms: two of slack.
    for i, t in enumerate(starts):
        assert sum(1 for u in starts[i:] if u - t < 1.0) <= rate + 1 + 2


@pytest.mark.slow
def test_a_killed_holders_slot_comes_back_within_its_lease_time_and_a_live_one_keeps_it(pg, key) -> None:
    ttl = 3.0  # renewed every second: a lapse would need the keeper thread held up for two
    config = LimiterConfig(rate=100, burst=100, max_in_flight=1, lease_ttl=ttl)
    # a live holder keeps its slot past the lease time: its keeper renews it
    holder, other = (RateLimiter(PostgresBackend(pg.url), key, config) for _ in range(2))
    permit = holder.acquire()
    got: list[float] = []

    def wait_for_the_slot() -> None:
        granted = other.acquire()
        got.append(time.monotonic())
        other.release(granted)

    waiter = threading.Thread(target=wait_for_the_slot)
    waiter.start()
    time.sleep(2.5 * ttl)
    assert waiter.is_alive()  # still waiting: the holder's lease was renewed, not reclaimed
    released = time.monotonic()
    holder.release(permit)
    waiter.join(10)
    assert (
        not waiter.is_alive() and got[0] >= released
    )  # the slot came only once the live holder gave it back
    # a holder killed with SIGKILL (no release, no renewal) gives the slot back within the lease time
    proc = _spawn(pg, key, 1, 600, 100, 100, 1, ttl)
    assert "granted" in proc.stdout.readline()
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    killed = time.monotonic()
    limiter = RateLimiter(PostgresBackend(pg.url), key, config)
    limiter.release(limiter.acquire())
    waited = time.monotonic() - killed
    # not at once (no pid is trusted across hosts), and no later than the lease time after its last renewal
    assert 0.3 < waited < ttl + 1.5, waited


def test_an_unreachable_server_fails_closed_and_never_shows_the_password(pg, key) -> None:
    backend = PostgresBackend(pg.url)
    limiter = RateLimiter(backend, key, LimiterConfig(unavailable_grace=1.0))
    permit = limiter.acquire()
    assert pg.password not in repr(limiter) and pg.password not in repr(backend)
    pg.stop()
    try:
        limiter.release(permit)  # the request ran: the server away does not fail it (its lease lapses)
        started = time.monotonic()
        with pytest.raises(LimiterUnavailable) as failed:
            limiter.acquire()
        assert time.monotonic() - started >= 0.8  # retried through the grace, then failed closed
    finally:
        pg.start()
    message = str(failed.value)
    assert (
        f"127.0.0.1:{pg.port}" in message
        and "unreachable" in message
        and "TICK_ASSETS_LIMITER_URL" in message
    )
    assert pg.password not in message
    limiter.release(limiter.acquire())  # the server back: a new connection, the same state
    assert limiter.snapshot().granted == 2
    closed = pg.url.replace(f":{pg.port}/", f":{_closed_port()}/")
    with pytest.raises(LimiterUnavailable, match="unreachable") as never:
        open_limiter(closed, key, LimiterConfig(unavailable_grace=0)).acquire()
    assert pg.password not in str(never.value)


def _closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_run_downloads_through_the_server_limiter_named_by_the_environment(
    pg, emulator, tmp_path, monkeypatch
):
    """TICK_ASSETS_LIMITER_URL through dg.EnvVar: the run's grants are counted on the server, no SQLite limiter is
    made, and the URL's password is in no event and no file."""
    monkeypatch.setenv("TICK_ASSETS_LIMITER_URL", pg.url)

    @dg.asset
    def probe(tardis: TardisResource) -> dg.MaterializeResult:
        """Download one day through the resource's client."""
        result = tardis.client.download("deribit", "trades", "BTC-PERPETUAL", "2024-01-02")
        return dg.MaterializeResult(
            metadata={"bytes": result.compressed_bytes, "limiter": repr(tardis.client.limiter)}
        )

    resource = TardisResource(
        api_key="test-key",
        datasets_url=emulator.datasets_url,
        api_url=emulator.api_url,
        data_dir=str(tmp_path),
        limiter_url=dg.EnvVar("TICK_ASSETS_LIMITER_URL"),
    )
    run = dg.materialize([probe], resources={"tardis": resource})
    assert run.success
    host = emulator.datasets_url.split("://", 1)[1].split("/", 1)[0]
    assert open_limiter(pg.url, host).snapshot().granted >= 1
    assert not (tmp_path / "ratelimit.sqlite").exists()
    events = [str(e) for e in run.all_events]
    assert "PostgresBackend" in str(run.asset_materializations_for_node("probe")[0].metadata["limiter"])
    assert events and all(pg.password not in e for e in events)
    for path in tmp_path.rglob("*"):
        assert not path.is_file() or pg.password.encode() not in path.read_bytes()


def test_a_restart_within_the_grace_is_waited_out(pg, key) -> None:
    limiter = RateLimiter(PostgresBackend(pg.url), key, LimiterConfig(unavailable_grace=30.0))
    limiter.release(limiter.acquire())
    pg.stop()
    restarter = threading.Timer(1.0, pg.start)
    restarter.start()
    try:
        limiter.release(limiter.acquire())  # waits for the server instead of failing the download
    finally:
        restarter.join()
    assert limiter.snapshot().granted == 2


def test_a_location_that_is_not_postgres_or_a_path_is_refused_not_taken_for_a_file(pg, key, tmp_path) -> None:
    with pytest.raises(ValueError, match="scheme 'mysql'") as refused:
        open_limiter("mysql://tick:SECRET-1@db/tick", key)
    assert "SECRET-1" not in str(refused.value)
    shouting = " POSTGRESQL://" + pg.url.split("://", 1)[1]  # any case, stray spaces: still the server
    assert isinstance(open_limiter(shouting, key).backend, PostgresBackend)
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("password", ["pa/ss#wo?rd", "pa%zzss", "p@ss:word"])
def test_a_password_that_breaks_the_url_never_shows(password) -> None:
    url = f"postgresql://tick:{password}@127.0.0.1:{_closed_port()}/tick"
    try:
        open_limiter(url, "k", LimiterConfig(unavailable_grace=0)).acquire()
    except (LimiterUnavailable, ValueError) as exc:
        message = str(exc)
    else:
        pytest.fail("a server that is not there was reached")
    for piece in (password, password[:4], password[-4:]):
        assert piece not in message, message


def test_many_machines_granting_first_on_a_fresh_database_all_succeed(pg) -> None:
    """The table is made on first use by whoever comes first: 8 connections at once on a database that has none
    all get their grant (CREATE TABLE IF NOT EXISTS alone failed one with UniqueViolation on pg_type)."""
    import psycopg2

    for attempt in range(3):  # the race needs the creators to overlap: three fresh databases
        name = f"fresh_{attempt}_{os.getpid()}"
        admin = psycopg2.connect(pg.url)
        admin.autocommit = True
        with admin.cursor() as cur:
            cur.execute(f"CREATE DATABASE {name}")
        admin.close()
        url = pg.url.rsplit("/", 1)[0] + f"/{name}"
        limiters = [
            RateLimiter(PostgresBackend(url), "fresh", LimiterConfig(rate=1000, burst=100)) for _ in range(8)
        ]
        barrier, errors = threading.Barrier(len(limiters)), []

        def grant(limiter: RateLimiter, barrier: threading.Barrier = barrier, errors: list = errors) -> None:
            barrier.wait()
            try:
                limiter.release(limiter.acquire())
            except Exception as exc:
                errors.append(exc)

        threads = [threading.Thread(target=grant, args=(lim,)) for lim in limiters]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert errors == []
        assert limiters[0].snapshot().granted == len(limiters)  # counted on the one shared row
