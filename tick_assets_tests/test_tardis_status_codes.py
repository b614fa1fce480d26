"""Status codes the emulator never sends on its own (400, 403, spurious 400, 503 + Retry-After)."""

from __future__ import annotations

import datetime as dt
import gzip
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tick_assets.tardis import RetryPolicy, TardisClient, errors
from tick_assets.tardis.ratelimit import LimiterConfig, MemoryBackend, RateLimiter

BODY = gzip.compress(b"exchange,symbol,timestamp,local_timestamp,id,side,price,amount\n")


class _Scripted(ThreadingHTTPServer):
    """Answers each request with the next (status, headers, body) of a script, then 200 + gzip."""

    script: list[tuple[int, dict[str, str], bytes]]
    seen: list[str]


class _Handler(BaseHTTPRequestHandler):
    server: _Scripted

    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:
        self.server.seen.append(self.path)
        status, headers, body = self.server.script.pop(0) if self.server.script else (200, {}, BODY)
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        if "Content-Length" not in headers:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        if headers.get("Connection") == "close":
            self.close_connection = True


@pytest.fixture
def scripted() -> Iterator[_Scripted]:
    server = _Scripted(("127.0.0.1", 0), _Handler)
    server.script, server.seen = [], []
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _client(server: _Scripted, tmp_path) -> TardisClient:
    url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    limiter = RateLimiter(MemoryBackend(), "t", LimiterConfig(rate=1000, burst=1000))
    retry = RetryPolicy(max_attempts=4, base_delay=0.01, max_delay=0.02)
    return TardisClient(tmp_path, api_key="k", datasets_url=url, api_url=url, limiter=limiter, retry=retry)


@pytest.mark.parametrize(
    ("status", "body", "error", "text"),
    [
        (400, b'{"message":"Invalid symbol"}', errors.BadRequestError, "Invalid symbol"),
        (403, b'{"code":10,"message":"Forbidden"}', errors.ForbiddenError, "TARDIS_API_KEY was rejected"),
        (404, b"{}", errors.NotFoundError, "exchange, data type or symbol"),
    ],
)
def test_permanent_statuses_raise_typed_errors_without_retry(
    scripted, tmp_path, status, body, error, text
) -> None:
    scripted.script = [(status, {"Content-Type": "application/json"}, body)]
    with _client(scripted, tmp_path) as c, pytest.raises(error, match=text):
        c.download("deribit", "trades", "BTC-PERPETUAL", "2024-01-02")
    assert len(scripted.seen) == 1


def test_spurious_iso_400_and_503_are_retried_with_cache_buster(scripted, tmp_path) -> None:
    scripted.script = [
        (400, {}, b'{"message":"Invalid \'from\' param - ISO 8601 format expected"}'),
        (503, {"Retry-After": "0"}, b""),
    ]
    with _client(scripted, tmp_path) as c:
        result = c.download("deribit", "trades", "BTC-PERPETUAL", "2024-01-02")
    assert result.attempts == 3 and result.path.read_bytes() == BODY
    assert scripted.seen == [
        "/v1/deribit/trades/2024/01/02/BTC-PERPETUAL.csv.gz",
        "/v1/deribit/trades/2024/01/02/BTC-PERPETUAL.csv.gz?retryAttempt=1",
        "/v1/deribit/trades/2024/01/02/BTC-PERPETUAL.csv.gz?retryAttempt=2",
    ]


@pytest.mark.parametrize("status", [408, 418, 425, 502, 520])
def test_every_other_non_200_is_retried_like_the_official_clients(scripted, tmp_path, status) -> None:
    scripted.script = [(status, {}, b"odd")]
    with _client(scripted, tmp_path) as c:
        result = c.download("deribit", "trades", "BTC-PERPETUAL", "2024-01-02")
    assert result.attempts == 2 and result.path.read_bytes() == BODY


def test_retry_attempt_query_goes_only_on_dataset_urls(scripted, tmp_path) -> None:
    scripted.script = [(503, {}, b""), (200, {"Content-Type": "application/json"}, b'{"id": "deribit"}')]
    with _client(scripted, tmp_path) as c:
        c.exchange_details("deribit")
    assert scripted.seen == ["/v1/exchanges/deribit", "/v1/exchanges/deribit"]


def test_short_body_against_content_length_is_retried(scripted, tmp_path) -> None:
    # A 200 whose Content-Length promises more than arrives (connection closed early).
    scripted.script = [(200, {"Content-Length": str(len(BODY) + 50), "Connection": "close"}, BODY)]
    with _client(scripted, tmp_path) as c:
        result = c.download("deribit", "trades", "BTC-PERPETUAL", "2024-01-02")
    assert result.attempts == 2 and result.path.read_bytes() == BODY


@pytest.mark.parametrize("labelled", [{"Content-Type": "text/csv"}, {"Content-Encoding": "gzip"}])
def test_short_body_is_caught_under_both_header_styles(scripted, tmp_path, labelled) -> None:
    # The CDN labels the gzip either text/csv or Content-Encoding: gzip; Content-Length counts its bytes either way.
    # (urllib3 enforces it on the undecoded stream first; the client's own comparison backs it up.)
    headers = {**labelled, "Content-Length": str(len(BODY) + 50), "Connection": "close"}
    scripted.script = [(200, headers, BODY)]
    with _client(scripted, tmp_path) as c:
        result = c.download("deribit", "trades", "BTC-PERPETUAL", "2024-01-02")
    assert result.attempts == 2 and result.path.read_bytes() == BODY


def test_a_metadata_outage_fails_every_day_fast_and_is_fetched_once(scripted, tmp_path) -> None:
    from tick_assets.lake.ingest import DayRequest, ingest_days

    scripted.script = [(503, {}, b"")] * 50
    url = f"http://127.0.0.1:{scripted.server_address[1]}/v1"
    limiter = RateLimiter(MemoryBackend(), "t", LimiterConfig(rate=1000, burst=1000))
    client = TardisClient(
        tmp_path,
        api_key="k",
        datasets_url=url,
        api_url=url,
        limiter=limiter,
        metadata_retry=RetryPolicy(max_attempts=2, base_delay=0.01, max_delay=0.02),
    )
    days = [DayRequest("trades", "deribit", "BTC-PERPETUAL", dt.date(2024, 1, d)) for d in range(2, 12)]
    with client:
        results = ingest_days(client, tmp_path / "lake", days, max_workers=4)
    assert all(isinstance(r.error, errors.RetriesExhaustedError) for r in results)
    # One fetch of the metadata (its 2 attempts) for the whole run, no dataset request: the other days got
    # the remembered failure at once.
    assert scripted.seen == ["/v1/exchanges/deribit"] * 2


def test_a_key_echoed_in_an_error_body_is_redacted_wherever_the_body_is_cut(scripted, tmp_path) -> None:
    key = "TD.secret-key-0123456789abcdef"
    for offset in (0, 480, 490, 499):  # the key straddles the 500-character cut
        body = ("x" * offset + f"bad key {key} " + "y" * 600).encode()
        scripted.script = [(401, {"Content-Type": "text/plain"}, body)]
        url = f"http://127.0.0.1:{scripted.server_address[1]}/v1"
        limiter = RateLimiter(MemoryBackend(), "t", LimiterConfig(rate=1000, burst=1000))
        client = TardisClient(tmp_path, api_key=key, datasets_url=url, api_url=url, limiter=limiter)
        with client, pytest.raises(errors.TardisError) as info:
            client._fetch_json(f"{url}/exchanges/deribit")
        text = str(info.value)
        assert "TD.secret" not in text and key[:6] not in text.replace("<redacted>", ""), offset
