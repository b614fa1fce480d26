"""The Tardis client against the emulator: downloads, cache, every error class and every fault."""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import logging
import threading
import time
from pathlib import Path

import pytest

from tick_assets.emulator.faults import FaultConfig
from tick_assets.tardis import TardisClient, errors
from tick_assets.tardis.ratelimit import LimiterConfig
from tick_assets.tardis.retry import RetryPolicy
from tick_assets_tests.conftest import EXPORTED_UNTIL, TEST_SCALE, make_client

DAY = dt.date(2024, 1, 2)


def _server_file(cache: Path, name_part: str) -> bytes:
    # The session cache holds one folder per scale; the default emulator serves TEST_SCALE.
    from tick_assets.emulator.sources import GENERATOR_VERSION

    folder = cache / f"v{GENERATOR_VERSION}-s{TEST_SCALE}"
    matches = [p for p in folder.rglob("*.csv.gz") if name_part in str(p)]
    assert len(matches) == 1, matches
    return matches[0].read_bytes()


def test_download_saves_raw_gzip_untouched(client, emulator, synth_cache, tmp_path) -> None:
    result = client.download("binance-futures", "trades", "btcusdt", DAY)
    assert result.path == tmp_path / "cache" / "binance-futures_trades_2024-01-02_BTCUSDT.csv.gz"
    served = _server_file(synth_cache, "binance-futures/trades/2024-01-02_BTCUSDT")
    assert result.path.read_bytes() == served
    assert result.compressed_bytes == len(served)
    text = gzip.decompress(served).decode()
    assert result.uncompressed_bytes == len(text.encode())
    assert text.startswith("exchange,symbol,timestamp,local_timestamp,id,side,price,amount\n")
    assert not result.from_cache and result.attempts == 1 and not result.empty
    assert result.url == f"{emulator.datasets_url}/binance-futures/trades/2024/01/02/BTCUSDT.csv.gz"
    assert not list(result.path.parent.glob("*.unconfirmed"))


def test_cache_hit_sends_no_request_and_corrupt_cache_is_replaced(client, emulator) -> None:
    first = client.download("deribit", "quotes", "BTC-PERPETUAL", DAY)
    before = emulator.stats["counts"]["dataset_requests"]
    again = client.download("deribit", "quotes", "BTC-PERPETUAL", DAY)
    assert again.from_cache and again.path == first.path
    assert emulator.stats["counts"]["dataset_requests"] == before
    good = first.path.read_bytes()
    first.path.write_bytes(good[: len(good) // 2])  # a truncated file left by some other tool
    repaired = client.download("deribit", "quotes", "BTC-PERPETUAL", DAY)
    assert not repaired.from_cache and repaired.path.read_bytes() == good
    assert emulator.stats["counts"]["dataset_requests"] == before + 1


def test_an_existing_tardis_dev_download_folder_is_reused(emulator, tmp_path) -> None:
    folder = tmp_path / "datasets"
    folder.mkdir()
    # A file as the official client names it, already on disk.
    (folder / "deribit_trades_2024-01-03_BTC-PERPETUAL.csv.gz").write_bytes(
        gzip.compress(b"exchange,symbol\n")
    )
    with make_client(emulator, folder) as c:
        result = c.download("deribit", "trades", "BTC-PERPETUAL", "2024-01-03")
    assert result.from_cache and emulator.stats["counts"].get("dataset_requests", 0) == 0


def test_empty_gzip_day_is_valid_no_data(start_emulator, tmp_path) -> None:
    server = start_emulator(empty_days=frozenset({DAY}))
    with make_client(server, tmp_path) as c:
        result = c.download("binance-futures", "trades", "BTCUSDT", DAY)
    assert result.empty and result.compressed_bytes > 0 and gzip.decompress(result.path.read_bytes()) == b""


@pytest.mark.parametrize("denial", [401, 403])
def test_first_day_of_month_is_free_without_key(start_emulator, tmp_path, denial) -> None:
    # The real service refuses a paid day without a key with 401 (text body) or, for some, 403 (JSON code 10):
    # both give the same advice, and neither is retried.
    emulator = start_emulator(keyless_denial=denial)
    with make_client(emulator, tmp_path, api_key=None) as c:
        assert c.download("deribit", "trades", "BTC-PERPETUAL", "2024-01-01").uncompressed_bytes > 0
        with pytest.raises((errors.UnauthorizedError, errors.ForbiddenError)) as info:
            c.download("deribit", "trades", "BTC-PERPETUAL", DAY)
    message = str(info.value)
    assert f"HTTP {denial}" in message and info.value.status == denial
    assert "2024-01-02 needs an API key" in message and "first day of each month" in message
    assert "TARDIS_API_KEY" in message
    assert emulator.stats["counts"][f"status_{denial}"] == 1  # not retried


def test_invalid_key_is_a_clear_401_not_retried(start_emulator, tmp_path) -> None:
    server = start_emulator(api_keys=frozenset({"the-right-key"}))
    with (
        make_client(server, tmp_path, api_key="a-wrong-key") as c,
        pytest.raises(errors.UnauthorizedError) as info,
    ):
        c.download("deribit", "trades", "BTC-PERPETUAL", DAY)
    assert "TARDIS_API_KEY was rejected" in str(info.value)
    assert "a-wrong-key" not in str(info.value)
    assert server.stats["counts"]["dataset_requests"] == 1


def test_unknown_exchange_is_a_404_not_retried(client, emulator) -> None:
    with pytest.raises(errors.NotFoundError, match="404.*exchange, data type or symbol"):
        client.download("no-such-exchange", "trades", "BTCUSDT", DAY)
    assert emulator.stats["counts"]["dataset_requests"] == 1
    assert not list(client.cache_dir.glob("*"))


@pytest.mark.parametrize(
    ("data_type", "symbol", "message"),
    [
        ("trades", "NOPE", r"invalid symbol \(must be one of BTC-PERPETUAL"),
        ("options_chain", "BTC-PERPETUAL", "invalid data type 'options_chain' for BTC-PERPETUAL"),
    ],
)
def test_unknown_symbol_or_data_type_not_offered_is_a_400_like_the_real_service(
    client, emulator, data_type, symbol, message
) -> None:
    # The real service answers these 400 with a message (e.g. "invalid symbol (must be XRP-EUR)"), not 404.
    with pytest.raises(errors.BadRequestError, match=message) as info:
        client.download("deribit", data_type, symbol, DAY)
    assert "datasets.symbols" in str(info.value)
    assert emulator.stats["counts"]["dataset_requests"] == 1
    assert emulator.stats["counts"]["status_400"] == 1
    assert not list(client.cache_dir.glob("*"))


def test_invalid_input_fails_before_any_request(client, emulator) -> None:
    for args in [
        ("deribit", "trade", "BTC", DAY),
        ("deribit", "trades", "../x", DAY),
        ("deribit", "trades", "B", "2024-1-2"),
    ]:
        with pytest.raises(errors.InvalidRequestError):
            client.download(*args)
    assert emulator.stats["counts"].get("dataset_requests", 0) == 0


@pytest.mark.parametrize("fault", ["throttle", "server_error", "reset", "truncate", "stall", "cdn_400"])
def test_transient_faults_are_retried_until_the_file_is_complete(
    start_emulator, tmp_path, synth_cache, fault
) -> None:
    clean = start_emulator()
    with make_client(clean, tmp_path / "clean") as c:
        expected = c.download("binance-futures", "book_snapshot_25", "BTCUSDT", DAY).path.read_bytes()
    faults = FaultConfig(**{fault: 0.5}, seed=7, stall_seconds=5.0, retry_after_seconds=1)
    server = start_emulator(faults)
    days = [DAY + dt.timedelta(days=i) for i in range(4)]
    with make_client(server, tmp_path / "faulty", read_timeout=0.5) as c:
        results = [c.download("binance-futures", "book_snapshot_25", "BTCUSDT", d) for d in days]
    assert results[0].path.read_bytes() == expected
    for r in results:
        gzip.decompress(r.path.read_bytes())  # complete and valid
    assert sum(r.retries for r in results) >= 1
    assert server.stats["counts"][f"fault_{fault}"] == sum(r.retries for r in results)
    assert not list((tmp_path / "faulty").glob("*.unconfirmed"))


def test_429_pauses_the_shared_limiter_for_retry_after(start_emulator, tmp_path) -> None:
    server = start_emulator(FaultConfig(throttle=0.5, seed=3, retry_after_seconds=1))
    with make_client(server, tmp_path, limiter_config=LimiterConfig(rate=50, burst=50)) as c:
        started = time.monotonic()
        results = [
            c.download("deribit", "trades", "BTC-PERPETUAL", DAY + dt.timedelta(days=i)) for i in range(4)
        ]
        elapsed = time.monotonic() - started
        state = c.limiter.snapshot()
    throttles = server.stats["counts"]["fault_throttle"]
    assert throttles >= 1 and state.throttles == throttles
    assert elapsed >= throttles * 0.9  # every 429 paused the limiter for Retry-After (1 s)
    assert sum(r.limiter_wait_seconds for r in results) >= throttles * 0.9
    assert state.rate < 50  # AIMD cut the rate


def test_server_side_rate_limit_is_absorbed(start_emulator, tmp_path) -> None:
    server = start_emulator(FaultConfig(rate_limit=5, rate_burst=1))
    with make_client(server, tmp_path) as c:
        for i in range(6):
            c.download("deribit", "trades", "BTC-PERPETUAL", DAY + dt.timedelta(days=i))
    assert server.stats["counts"]["rate_limited"] >= 1
    assert server.stats["counts"]["status_200"] == 6


def test_persistent_failure_exhausts_retries_and_leaves_nothing(start_emulator, tmp_path) -> None:
    server = start_emulator(FaultConfig(server_error=1.0))
    retry = RetryPolicy(max_attempts=3, base_delay=0.01, max_delay=0.02)
    with make_client(server, tmp_path, retry=retry) as c, pytest.raises(errors.RetriesExhaustedError) as info:
        c.download("deribit", "trades", "BTC-PERPETUAL", DAY)
    assert "failed 3 times" in str(info.value) and "HTTP 5" in str(info.value)
    assert server.stats["counts"]["dataset_requests"] == 3
    assert list(tmp_path.iterdir()) == []


def test_html_page_with_status_200_is_a_clear_error_not_retried(start_emulator, tmp_path) -> None:
    server = start_emulator(FaultConfig(html=1.0))
    with make_client(server, tmp_path) as c, pytest.raises(errors.BadContentError) as info:
        c.download("deribit", "trades", "BTC-PERPETUAL", DAY)
    assert "not gzip" in str(info.value) and "text/html" in str(info.value)
    assert server.stats["counts"]["dataset_requests"] == 1
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("fault", ["stall", "server_error"])
def test_stop_ends_a_stalled_or_retrying_download_promptly(start_emulator, tmp_path, fault) -> None:
    # A stalled body is noticed within the read timeout; a retry backoff is cut short at once.
    server = start_emulator(FaultConfig(**{fault: 1.0}, stall_seconds=60))
    retry = RetryPolicy(max_attempts=10, base_delay=30, max_delay=30)
    stop = threading.Event()
    with make_client(server, tmp_path, retry=retry, read_timeout=1.0) as c:
        threading.Timer(0.5, stop.set).start()
        started = time.monotonic()
        with pytest.raises(errors.CancelledError, match="stopped"):
            c.download("deribit", "trades", "BTC-PERPETUAL", DAY, stop=stop)
    assert time.monotonic() - started < 5
    assert server.stats["counts"]["dataset_requests"] <= 2
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


def test_failed_redownload_keeps_the_previous_good_file(start_emulator, tmp_path) -> None:
    good = start_emulator()
    with make_client(good, tmp_path) as c:
        path = c.download("deribit", "trades", "BTC-PERPETUAL", DAY).path
    before = path.read_bytes()
    bad = start_emulator(FaultConfig(truncate=1.0))
    retry = RetryPolicy(max_attempts=2, base_delay=0.01)
    with (
        make_client(bad, tmp_path, retry=retry) as c,
        pytest.raises(errors.RetriesExhaustedError, match="truncated|corrupt"),
    ):
        c.download("deribit", "trades", "BTC-PERPETUAL", DAY, force=True)
    assert path.read_bytes() == before


def test_exchange_details_and_availability(client, emulator) -> None:
    details = client.exchange_details("binance-futures")
    assert "BTCUSDT" in details.symbols and "book_snapshot_25" in details.symbols["BTCUSDT"].data_types
    assert details.last_exported_day() == EXPORTED_UNTIL - dt.timedelta(days=1)
    requests_before = emulator.stats["counts"]["requests"]
    client.exchange_details("binance-futures")  # cached (TTL)
    assert emulator.stats["counts"]["requests"] == requests_before
    client.check_available("binance-futures", "trades", "BTCUSDT", "2024-01-31")
    with pytest.raises(errors.UnavailableError, match="availableSince 2019-11-17"):
        client.check_available("binance-futures", "trades", "BTCUSDT", "2019-11-16")
    with pytest.raises(errors.NotExportedYetError, match="not exported yet.*06:00 UTC on 2024-02-02"):
        client.check_available("binance-futures", "trades", "BTCUSDT", "2024-02-01")
    with pytest.raises(errors.NotOfferedError, match="does not offer 'options_chain' for BTCUSDT"):
        client.check_available("binance-futures", "options_chain", "BTCUSDT", "2024-01-05")
    with pytest.raises(errors.UnavailableError, match="not a dataset symbol"):
        client.check_available("binance-futures", "trades", "DOGEUSDT", "2024-01-05")
    with pytest.raises(errors.UnavailableError):
        client.download("binance-futures", "trades", "BTCUSDT", "2024-02-03", check_availability=True)


def test_percent_encoded_symbol_round_trip(client, emulator) -> None:
    result = client.download("bitget-futures", "trades", "??USDT", DAY)
    assert result.path.name == "bitget-futures_trades_2024-01-02_--USDT.csv.gz"
    assert result.url.endswith("/%3F%3FUSDT.csv.gz")
    assert ",??USDT," in gzip.decompress(result.path.read_bytes()).decode()


def test_api_key_never_leaks(start_emulator, tmp_path, caplog) -> None:
    secret = "tk-SECRET-9f8e7d6c5b4a"
    server = start_emulator(FaultConfig(server_error=0.3, reset=0.2, seed=11), api_keys=frozenset({secret}))
    caplog.set_level(logging.DEBUG)
    texts: list[str] = []
    with make_client(server, tmp_path / "cache", api_key=secret) as c:
        texts.append(repr(c))
        for i in range(3):
            c.download("deribit", "trades", "BTC-PERPETUAL", DAY + dt.timedelta(days=i))
        for bad in [("deribit", "trades", "NOPE", DAY), ("nope", "trades", "X", DAY)]:
            with pytest.raises(errors.TardisError) as info:
                c.download(*bad)
            texts += [str(info.value), repr(info.value)]
    with make_client(start_emulator(api_keys=frozenset({"other"})), tmp_path / "c2", api_key=secret) as c:
        with pytest.raises(errors.UnauthorizedError) as info:
            c.download("deribit", "trades", "BTC-PERPETUAL", DAY)
        texts.append(str(info.value))
    assert server.stats["counts"]["with_authorization"] >= 3  # the key was sent, as a Bearer header
    texts += [r.getMessage() for r in caplog.records]
    assert all(secret not in t for t in texts)
    for path in tmp_path.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert secret.encode() not in data and secret.encode() not in (
                gzip.decompress(data) if data[:2] == b"\x1f\x8b" else b""
            )


def test_key_with_inner_whitespace_is_rejected_without_echoing_it(tmp_path) -> None:
    with pytest.raises(errors.InvalidRequestError) as info:
        TardisClient(tmp_path, api_key="tk-SECRET\nmore")
    assert "SECRET" not in str(info.value) and "TARDIS_API_KEY" in str(info.value)
    # Surrounding whitespace (a key read from a file with a trailing newline) is simply stripped.
    assert TardisClient(tmp_path, api_key="tk-SECRET\n").has_api_key


def test_configuration_errors_are_not_retried(tmp_path) -> None:
    with TardisClient(tmp_path, api_key="k", datasets_url="datasets.tardis.dev/v1") as c:
        started = time.monotonic()
        with pytest.raises(Exception, match="No connection adapters|Invalid URL|MissingSchema|scheme"):
            c.download("deribit", "trades", "BTC-PERPETUAL", DAY)
    assert time.monotonic() - started < 2


def test_retry_after_is_clamped(tmp_path) -> None:
    from tick_assets.tardis.retry import parse_retry_after

    assert parse_retry_after("86400") == 86400
    policy = RetryPolicy()
    assert policy.max_retry_after == 300
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # a date in the past
    assert parse_retry_after("soon") is None


@pytest.mark.parametrize("style", ["text/csv", "content-encoding"])
def test_x_md5_is_recorded_and_a_mismatch_is_reported_not_fatal(start_emulator, tmp_path, style) -> None:
    for md5_mode, matches in (("file", True), ("chunked", False), ("none", None)):
        server = start_emulator(header_style=style, md5_mode=md5_mode)
        with make_client(server, tmp_path / md5_mode / style.replace("/", "-")) as c:
            result = c.download("deribit", "trades", "BTC-PERPETUAL", DAY)
        assert result.md5_matches is matches, md5_mode
        assert (result.server_md5 is None) == (md5_mode == "none")
        assert result.md5 == hashlib.md5(result.path.read_bytes()).hexdigest()
        assert result.compressed_bytes == result.path.stat().st_size


def test_not_exported_yet_is_told_apart_from_delisted() -> None:
    from tick_assets.tardis.exchanges import ExchangeDetails

    details = ExchangeDetails.from_json(
        {
            "id": "binance",
            "datasets": {
                "exportedUntil": "2024-02-01T00:00:00.000Z",
                "symbols": [
                    # The real shape: an active symbol's availableTo equals exportedUntil.
                    {
                        "id": "BTCUSDT",
                        "availableSince": "2019-03-30T00:00:00.000Z",
                        "availableTo": "2024-02-01T00:00:00.000Z",
                        "dataTypes": ["trades"],
                    },
                    {
                        "id": "LUNAUSDT",
                        "availableSince": "2019-03-30T00:00:00.000Z",
                        "availableTo": "2022-05-13T00:00:00.000Z",
                        "dataTypes": ["trades"],
                    },
                ],
            },
        }
    )
    details.check_day("trades", "BTCUSDT", dt.date(2024, 1, 31))
    with pytest.raises(
        errors.NotExportedYetError,
        match=r"not exported yet: Tardis publishes day 2024-02-01 "
        r"around 06:00 UTC on 2024-02-02, retry later \(exportedUntil 2024-02-01 00:00 UTC\)",
    ):
        details.check_day("trades", "BTCUSDT", dt.date(2024, 2, 1))
    with pytest.raises(
        errors.UnavailableError, match="delisted or expired: its data ends on 2022-05-12"
    ) as info:
        details.check_day("trades", "LUNAUSDT", dt.date(2022, 5, 13))
    assert not isinstance(info.value, errors.NotExportedYetError)
    assert details.last_available_day("BTCUSDT") == dt.date(2024, 1, 31)
    assert details.last_available_day("LUNAUSDT") == dt.date(2022, 5, 12)
    # exportedUntil is not always midnight (it moves as Tardis publishes): the sensor's last day is one that
    # check_day accepts.
    late = ExchangeDetails.from_json(
        {
            "id": "binance",
            "datasets": {
                "exportedUntil": "2026-08-25T06:13:00.000Z",
                "symbols": [
                    {"id": "BTCUSDT", "availableTo": "2026-08-25T06:13:00.000Z", "dataTypes": ["trades"]}
                ],
            },
        }
    )
    last = late.last_available_day("BTCUSDT")
    assert last == dt.date(2026, 8, 24)
    late.check_day("trades", "BTCUSDT", last)
    with pytest.raises(errors.NotExportedYetError):
        late.check_day("trades", "BTCUSDT", last + dt.timedelta(days=1))


def test_retry_budget_matches_the_official_clients() -> None:
    import random

    policy = RetryPolicy()
    no_jitter = random.Random(0)
    no_jitter.uniform = lambda a, b: a  # type: ignore[method-assign]
    assert policy.max_attempts == 30
    # tardis-python pins these: the first 500 waits 4 s, the first 429 62 s, the first spurious 400 2 s.
    assert policy.backoff(1, no_jitter, status=500) == 4.0
    assert policy.throttle_pause(1, no_jitter) == 62.0
    assert policy.backoff(1, no_jitter, status=400) == 2.0
    assert policy.backoff(7, no_jitter) == policy.backoff(29, no_jitter) == 120.0  # capped
    # 2 + 4 + ... + 64, then 23 x 120 s, plus 29 x 0.5 s of jitter: about 48 minutes between 30 attempts
    assert policy.worst_case_wait_seconds() == 2900.5


def test_cached_days_need_no_network_not_even_for_availability(emulator, tmp_path) -> None:
    """A verified file in the cache (e.g. an existing tardis-dev download folder) is used with zero requests
    even when the service is unreachable; the availability check runs only when a download is needed."""
    from tick_assets.lake.ingest import DayRequest, ingest_days

    with make_client(emulator, tmp_path / "cache") as c:
        c.download("deribit", "trades", "BTC-PERPETUAL", DAY)
    dead = "http://127.0.0.1:9/v1"  # nothing listens on the discard port
    offline = TardisClient(
        tmp_path / "cache",
        api_key="k",
        datasets_url=dead,
        api_url=dead,
        retry=RetryPolicy(max_attempts=1),
        metadata_retry=RetryPolicy(max_attempts=1),
    )
    with offline:
        results = ingest_days(
            offline, tmp_path / "lake", [DayRequest("trades", "deribit", "BTC-PERPETUAL", DAY)]
        )
        assert results[0].ok and results[0].download.from_cache, results[0].error
        missing = ingest_days(
            offline,
            tmp_path / "lake",
            [DayRequest("trades", "deribit", "BTC-PERPETUAL", DAY + dt.timedelta(1))],
        )
    assert not missing[0].ok and "exchanges/deribit" in str(missing[0].error)
