"""Many days at once: availability first, independent verdicts per day, and a prompt stop when interrupted."""

from __future__ import annotations

import datetime as dt
import os
import signal
import threading
import time

import pytest

from tick_assets.emulator.faults import FaultConfig
from tick_assets.lake import DayRequest, ingest_days, partition_file
from tick_assets.tardis import UnavailableError
from tick_assets_tests.conftest import make_client


def _requests(first: dt.date, n: int, symbol: str = "BTCUSDT") -> list[DayRequest]:
    days = [first + dt.timedelta(days=i) for i in range(n)]
    return [DayRequest("trades", "binance-futures", symbol, d, key=str(d)) for d in days]


def test_results_in_order_with_unavailable_days_failing_before_any_request(emulator, tmp_path) -> None:
    # The emulator's export horizon is 2024-02-01: the last two days are not exported yet.
    requests = _requests(dt.date(2024, 1, 29), 5)
    with make_client(emulator, tmp_path / "cache") as client:
        results = ingest_days(client, tmp_path / "lake", requests, max_workers=4)
    assert [r.request.key for r in results] == [str(r.day) for r in requests]
    assert [r.ok for r in results] == [True, True, True, False, False]
    assert all(isinstance(r.error, UnavailableError) for r in results[3:])
    assert emulator.stats["counts"]["dataset_requests"] == 3


def test_lower_case_symbol_is_checked_like_it_is_downloaded(emulator, tmp_path) -> None:
    with make_client(emulator, tmp_path / "cache") as client:
        (result,) = ingest_days(
            client, tmp_path / "lake", _requests(dt.date(2024, 1, 2), 1, symbol="btcusdt")
        )
    assert result.ok, result.error
    assert result.write.path == str(
        partition_file(tmp_path / "lake", "raw/trades", "binance-futures", "BTCUSDT", "2024-01-02")
    )


def test_interrupt_stops_starting_new_days(emulator, tmp_path) -> None:
    seen = []

    def interrupt_after_first(result) -> None:
        seen.append(result)
        raise KeyboardInterrupt  # what a run termination looks like to the step's thread

    requests = _requests(dt.date(2024, 1, 2), 25)
    with make_client(emulator, tmp_path / "cache") as client, pytest.raises(KeyboardInterrupt):
        ingest_days(client, tmp_path / "lake", requests, max_workers=2, on_result=interrupt_after_first)
    assert len(seen) == 1
    # Only the days already in flight finished; the queued ones were never requested.
    assert emulator.stats["counts"]["dataset_requests"] <= 3
    assert len(list((tmp_path / "lake").rglob("data.parquet"))) <= 3


def _interrupt_once_stalled(server, downloads: int, sent: list[float]) -> None:
    """Send this process a SIGINT (how a run termination arrives) once `downloads` downloads are stalled: not at a
    fixed time, as a loaded machine may not have started them all by then. The send time goes into `sent`."""

    def interrupt() -> None:
        deadline = time.monotonic() + 30
        while server.stats["counts"].get("fault_stall", 0) < downloads and time.monotonic() < deadline:
            time.sleep(0.05)
        sent.append(time.monotonic())
        os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=interrupt, daemon=True).start()


def test_interrupt_cuts_stalled_downloads_at_once(start_emulator, tmp_path) -> None:
    # Every download stalls mid-body for a minute (read timeout 60 s); the interrupt must not wait for them.
    server = start_emulator(FaultConfig(stall=1.0, stall_seconds=60))
    handler = signal.getsignal(signal.SIGINT)
    assert handler is signal.default_int_handler, (
        f"SIGINT is handled by {handler!r}: a SIGINT would not raise"
    )
    requests = _requests(dt.date(2024, 1, 2), 4)
    sent: list[float] = []
    with make_client(server, tmp_path / "cache", read_timeout=60) as client:
        _interrupt_once_stalled(server, 4, sent)
        with pytest.raises(KeyboardInterrupt):
            ingest_days(client, tmp_path / "lake", requests, max_workers=4)
        took = time.monotonic() - sent[0]
    assert took < 10, f"the interrupt waited {took:.1f} s for stalled reads"
    assert server.stats["counts"]["fault_stall"] == 4  # all four were stalled when it came
    assert list((tmp_path / "lake").rglob("data.parquet")) == []
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith((".tmp", ".unconfirmed"))]


def test_an_interrupt_delivered_to_another_thread_still_stops_the_days(start_emulator, tmp_path) -> None:
    """The kernel may hand a process-wide SIGINT to any thread that does not block it (here the main thread
    blocks it, as a busy or masked main thread would not take it): the waiting main thread must still raise."""
    server = start_emulator(FaultConfig(stall=1.0, stall_seconds=60))
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    sent: list[float] = []
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        with make_client(server, tmp_path / "cache", read_timeout=60) as client:
            _interrupt_once_stalled(
                server, 2, sent
            )  # taken by a thread that does not block it: not the main one
            with pytest.raises(KeyboardInterrupt):
                ingest_days(client, tmp_path / "lake", _requests(dt.date(2024, 1, 2), 2), max_workers=2)
            took = time.monotonic() - sent[0]
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
    assert took < 10, f"the interrupt waited {took:.1f} s"
