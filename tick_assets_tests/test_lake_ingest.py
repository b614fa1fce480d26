"""Many days at once: availability first, independent verdicts per day, and a prompt stop when interrupted."""

from __future__ import annotations

import datetime as dt
import gzip
import os
import signal
import threading
import time
from pathlib import Path

import duckdb
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


def _count_decoded_bytes(monkeypatch) -> list[int]:
    """Record the size of every chunk any full gzip decode (verification or conversion) produces."""
    from tick_assets.tardis import integrity

    decoded: list[int] = []
    original = integrity._decoded

    def counting(gz, path):
        chunk = original(gz, path)
        decoded.append(len(chunk))
        return chunk

    monkeypatch.setattr(integrity, "_decoded", counting)
    return decoded


def test_a_day_is_verified_by_one_decode_on_a_cache_miss_and_on_a_hit(
    emulator, tmp_path, monkeypatch
) -> None:
    decoded = _count_decoded_bytes(monkeypatch)
    request = _requests(dt.date(2024, 1, 2), 1)
    with make_client(emulator, tmp_path / "cache") as client:
        (miss,) = ingest_days(client, tmp_path / "lake", request)
        assert miss.ok and not miss.download.from_cache
        csv = len(gzip.decompress(miss.download.path.read_bytes()))
        assert miss.download.uncompressed_bytes == csv
        assert sum(decoded) == csv  # the download was verified by the conversion's check, not before it
        decoded.clear()
        (hit,) = ingest_days(client, tmp_path / "lake", request)
    assert hit.ok and hit.download.from_cache and sum(decoded) == csv
    assert (
        hit.write.rows
        == miss.write.rows
        == len(gzip.decompress(miss.download.path.read_bytes()).splitlines()) - 1
    )


def test_truncated_downloads_reach_neither_the_lake_nor_the_cache(start_emulator, tmp_path) -> None:
    # Every answer is a complete HTTP response (Content-Length right) whose gzip is cut short: only the decode
    # can tell, and the decode is the conversion's.
    lake = tmp_path / "lake"
    request = _requests(dt.date(2024, 1, 2), 1)
    with make_client(start_emulator(), tmp_path / "good") as client:
        (good,) = ingest_days(client, lake, request)
    stored = Path(good.write.path).read_bytes()
    server = start_emulator(FaultConfig(truncate=1.0))
    with make_client(server, tmp_path / "cache") as client:
        (bad,) = ingest_days(client, lake, request)
    assert not bad.ok and "corrupt or truncated gzip" in str(bad.error)
    assert server.stats["counts"]["fault_truncate"] == server.stats["counts"]["dataset_requests"] > 1
    assert Path(good.write.path).read_bytes() == stored  # the stored partition is untouched
    assert list((tmp_path / "cache").rglob("*.csv.gz*")) == []  # nothing cached, under any name
    assert [p.name for p in lake.rglob("*") if p.is_file()] == ["data.parquet"]


def test_a_truncated_download_is_downloaded_again_and_lands_whole(start_emulator, tmp_path) -> None:
    requests = _requests(dt.date(2024, 1, 2), 4)
    with make_client(start_emulator(), tmp_path / "clean") as client:
        clean = ingest_days(client, tmp_path / "clean_lake", requests)
    server = start_emulator(FaultConfig(truncate=0.5, seed=7))
    with make_client(server, tmp_path / "cache") as client:
        faulty = ingest_days(client, tmp_path / "lake", requests, max_workers=2)
    assert all(r.ok for r in faulty), [r.error for r in faulty]
    assert server.stats["counts"]["fault_truncate"] == sum(r.download.retries for r in faulty) >= 1
    for a, b in zip(clean, faulty, strict=True):
        assert a.write.rows == b.write.rows
        assert b.download.path.read_bytes() == a.download.path.read_bytes()  # the cache holds the good file
        assert (
            duckdb.sql(f"SELECT * FROM '{a.write.path}' EXCEPT SELECT * FROM '{b.write.path}'").fetchall()
            == []
        )
    assert list((tmp_path / "cache").rglob("*.unconfirmed*")) == []


def test_a_corrupt_cached_file_is_downloaded_again_by_the_conversion(emulator, tmp_path) -> None:
    request = _requests(dt.date(2024, 1, 2), 1)
    with make_client(emulator, tmp_path / "cache") as client:
        (first,) = ingest_days(client, tmp_path / "lake", request)
        good = first.download.path.read_bytes()
        first.download.path.write_bytes(good[: len(good) // 2])  # cut short on disk by something else
        (again,) = ingest_days(client, tmp_path / "lake", request)
    assert again.ok and not again.download.from_cache
    assert again.download.path.read_bytes() == good and again.write.rows == first.write.rows


def test_a_fresh_download_with_a_bad_value_is_kept_in_the_cache_and_named_by_its_cache_path(
    start_emulator, tmp_path
) -> None:
    from tick_assets.lake import CsvParseError
    from tick_assets.tardis.datatypes import header_line

    fixtures = tmp_path / "fixtures"
    fixtures.mkdir()
    rows = "binance-futures,BTCUSDT,1704153600000000,1704153600001000,1,buy,not-a-price,0.5\n"
    name = "binance-futures_trades_2024-01-02_BTCUSDT.csv.gz"
    (fixtures / name).write_bytes(gzip.compress((header_line("trades") + "\n" + rows).encode()))
    server = start_emulator(fixtures=fixtures)
    with make_client(server, tmp_path / "cache") as client:
        (result,) = ingest_days(client, tmp_path / "lake", _requests(dt.date(2024, 1, 2), 1))
    cached = tmp_path / "cache" / name
    assert isinstance(result.error, CsvParseError) and f"delete the cached file {cached} " in str(
        result.error
    )
    assert cached.read_bytes() == (fixtures / name).read_bytes()  # an intact gzip: kept, not downloaded again
    assert server.stats["counts"]["dataset_requests"] == 1  # a bad value is not retried
    assert list((tmp_path / "cache").glob("*.csv.gz*")) == [cached]  # no temp left
    assert not list((tmp_path / "lake").rglob("*.parquet"))
