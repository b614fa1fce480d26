"""Tardis Datasets API client: validated URLs, rate-limited streaming downloads, integrity, retries, cache."""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import logging
import os
import random
import socket
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import requests
import urllib3

from tick_assets import __version__
from tick_assets.durable import (
    fsync_path,
    owned_temp,
    remove_abandoned_temps,
    write_file_atomically,
)
from tick_assets.tardis import errors
from tick_assets.tardis.exchanges import ExchangeDetails
from tick_assets.tardis.integrity import GzipInfo, GzipIntegrityError, has_gzip_magic, verify_gzip
from tick_assets.tardis.ratelimit import MemoryBackend, Permit, RateLimiter
from tick_assets.tardis.retry import RetryPolicy, parse_retry_after
from tick_assets.tardis.urls import (
    DEFAULT_API_URL,
    DEFAULT_DATASETS_URL,
    cache_file_name,
    dataset_url,
    parse_date,
    validate_data_type,
    validate_exchange,
    validate_symbol,
)

log = logging.getLogger(__name__)
T = TypeVar("T")
U = TypeVar("U")

_CHUNK = 1 << 20
#: Suffix of a download (or metadata file) not yet verified and renamed into the cache.
UNCONFIRMED_SUFFIX = ".unconfirmed"
USER_AGENT = f"tick-assets/{__version__} (+tardis-dev compatible)"
#: Seconds a failed /v1/exchanges fetch is remembered: the other days of a run fail at once, not one by one.
METADATA_FAILURE_TTL = 30.0
# Failures of the connection or the transfer; configuration errors (InvalidURL, MissingSchema, ...) and local
# disk errors are not in this list, so they fail at once instead of being retried.
_NETWORK_ERRORS = (
    requests.exceptions.ConnectionError,
    requests.exceptions.Timeout,
    requests.exceptions.ChunkedEncodingError,
    urllib3.exceptions.ProtocolError,
    urllib3.exceptions.ReadTimeoutError,
    urllib3.exceptions.NewConnectionError,
    ConnectionError,
    TimeoutError,
)


@dataclass(frozen=True)
class DownloadResult:
    """Where a dataset file is and what fetching it cost."""

    path: Path
    url: str
    compressed_bytes: int
    uncompressed_bytes: int
    from_cache: bool
    attempts: int
    seconds: float
    limiter_wait_seconds: float
    #: The server's `x-md5` header (None when it sent none, and for cache hits).
    server_md5: str | None = None
    #: MD5 of the bytes received (None for cache hits).
    md5: str | None = None

    @property
    def md5_matches(self) -> bool | None:
        """Whether x-md5 equals the received bytes' MD5 (None without x-md5). Tardis says it may differ for
        files uploaded in chunks, so a mismatch is reported, never a failure: size and gzip decode decide."""
        if self.server_md5 is None or self.md5 is None:
            return None
        return self.server_md5.strip().strip('"').lower() == self.md5

    @property
    def empty(self) -> bool:
        """True when Tardis has no data for the day (an empty gzip)."""
        return self.uncompressed_bytes == 0

    @property
    def retries(self) -> int:
        """Attempts beyond the first."""
        return max(0, self.attempts - 1)

    @property
    def mb_per_second(self) -> float:
        """Compressed megabytes per second of the transfer, rate-limiter wait excluded (0 for a cache hit)."""
        busy = self.seconds - self.limiter_wait_seconds
        return 0.0 if self.from_cache or busy <= 0 else self.compressed_bytes / 1e6 / busy


@dataclass(frozen=True)
class _Dataset:
    """Validated coordinates of one dataset file."""

    exchange: str
    data_type: str
    symbol: str
    day: dt.date
    url: str
    path: Path


@dataclass
class _Attempt:
    """Counters of one logical request across its attempts."""

    attempts: int = 0
    limiter_wait: float = 0.0


@dataclass(frozen=True)
class _Fetched:
    """What one successful attempt stored: a temp file of the whole body (not yet decoded) and its checksums."""

    tmp: Path
    compressed_bytes: int
    md5: str
    server_md5: str | None


@dataclass(frozen=True)
class _Confirmed:
    """A download verified and under its final name: its sizes and checksums."""

    compressed_bytes: int
    uncompressed_bytes: int
    md5: str
    server_md5: str | None


@dataclass(frozen=True)
class _Failure:
    """A failed attempt worth retrying: its error, and the pause a 429 imposes on every worker (else 0)."""

    error: errors.TransientError
    throttled: bool = False
    pause: float = 0.0


def _attempt_url(url: str, attempt: int) -> str:
    """The URL of attempt `attempt`: a dataset URL carries `?retryAttempt=N` from the 2nd attempt on."""
    # Like the official clients: the cache-busting query defeats a CDN which cached a bad answer (metadata URLs
    # never carry it).
    return url if attempt == 1 or not url.endswith(".gz") else f"{url}?retryAttempt={attempt - 1}"


def _raise_if_stopped(stop: threading.Event | None, url: str) -> None:
    if stop is not None and stop.is_set():
        raise errors.CancelledError(
            f"{url}: download stopped (the run is being cancelled); nothing was written"
        )


class TardisClient:
    """Downloads Tardis datasets into a cache that uses the official client's file names."""

    def __init__(
        self,
        cache_dir: Path | str,
        *,
        api_key: str | None = None,
        datasets_url: str = DEFAULT_DATASETS_URL,
        api_url: str = DEFAULT_API_URL,
        limiter: RateLimiter | None = None,
        retry: RetryPolicy | None = None,
        connect_timeout: float = 10.0,
        read_timeout: float = 60.0,
        attempt_timeout: float = 1800.0,
        metadata_ttl_seconds: float = 3600.0,
        metadata_retry: RetryPolicy | None = None,
        pool_size: int = 32,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.cache_dir = Path(cache_dir)
        api_key = (api_key or "").strip() or None
        if api_key is not None and (any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in api_key)):
            # Never echo the key: requests would put it in an InvalidHeader message.
            raise errors.InvalidRequestError(
                "TARDIS_API_KEY contains whitespace or control characters inside it; copy the key again."
            )
        self._api_key = api_key
        self.datasets_url = datasets_url.rstrip("/")
        self.api_url = api_url.rstrip("/")
        self.limiter = limiter or RateLimiter(
            MemoryBackend(), urllib.parse.urlsplit(self.datasets_url).netloc
        )
        self.retry = retry or RetryPolicy()
        self.timeout = (connect_timeout, read_timeout)
        self.attempt_timeout = attempt_timeout
        self.metadata_ttl_seconds = metadata_ttl_seconds
        #: Metadata is small and answered by another host: a short budget, so an outage fails a day in seconds
        #: rather than after the download budget (the official get_exchange_details does not retry at all).
        self.metadata_retry = metadata_retry or RetryPolicy(max_attempts=3, max_delay=8.0)
        self._sleep = sleep
        self._rng = random.Random()
        self._metadata: dict[str, tuple[float, ExchangeDetails]] = {}
        # One lock per exchange: concurrent downloads fetch its metadata once; a failure is remembered for
        # METADATA_FAILURE_TTL seconds so the other days of a run fail at once instead of trying again each.
        self._metadata_locks: dict[str, threading.Lock] = {}
        self._metadata_locks_guard = threading.Lock()
        self._metadata_failures: dict[str, tuple[float, errors.TardisError]] = {}
        self._session = requests.Session()
        self._in_flight: set[requests.Response] = set()
        self._in_flight_lock = threading.Lock()
        adapter = requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=pool_size, max_retries=0)
        self._session.mount("http://", adapter)
        self._session.mount("https://", adapter)
        self._session.headers.update({"User-Agent": USER_AGENT, "Accept-Encoding": "gzip"})

    def __repr__(self) -> str:
        key = "set" if self._api_key else "unset"
        return f"TardisClient(datasets_url={self.datasets_url!r}, api_url={self.api_url!r}, api_key=<{key}>)"

    @property
    def has_api_key(self) -> bool:
        """Whether requests carry an API key."""
        return self._api_key is not None

    def close(self) -> None:
        """Close pooled connections."""
        self._session.close()

    def __enter__(self) -> TardisClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- paths and URLs ----------------------------------------------------------------------------------

    def resolve(self, exchange: str, data_type: str, symbol: str, day: str | dt.date) -> tuple[str, Path]:
        """Validate a dataset's coordinates and return its URL and cache path."""
        spec = self._validated(exchange, data_type, symbol, day)
        return spec.url, spec.path

    def _validated(self, exchange: str, data_type: str, symbol: str, day: str | dt.date) -> _Dataset:
        exchange = validate_exchange(exchange)
        data_type = validate_data_type(data_type)
        symbol = validate_symbol(symbol)
        day = parse_date(day)
        path = self.cache_dir / cache_file_name(exchange, data_type, day, symbol)
        if path.resolve().parent != self.cache_dir.resolve():
            raise errors.InvalidRequestError(f"Symbol {symbol!r} would escape the cache directory.")
        url = dataset_url(self.datasets_url, exchange, data_type, day, symbol)
        return _Dataset(exchange, data_type, symbol, day, url, path)

    # -- downloads ---------------------------------------------------------------------------------------

    def download(
        self,
        exchange: str,
        data_type: str,
        symbol: str,
        day: str | dt.date,
        *,
        force: bool = False,
        check_availability: bool = False,
        stop: threading.Event | None = None,
        verify: Callable[[Path], GzipInfo] = verify_gzip,
    ) -> DownloadResult:
        """Return the verified .csv.gz of one day, from the cache if intact, else downloaded.

        `verify` decodes the whole file and raises GzipIntegrityError if it is corrupt or truncated. It runs on a
        cached file and on a fresh download before the download gets its final name (outside the rate limiter's
        permit), and a failure downloads it again. A conversion that decodes the file anyway can be the `verify`
        (`lake.ingest_day` does this), so a day is decoded once. Any other error of `verify` propagates; a
        download is then kept in the cache only if it is an intact gzip.

        Setting `stop` (from another thread) ends the download at the next chunk, retry or backoff with
        CancelledError; a connection stalled mid-body notices within the read timeout.
        """
        ds = self._validated(exchange, data_type, symbol, day)
        url, path = ds.url, ds.path
        started = time.monotonic()
        if not force and path.exists():
            try:
                info = verify(path)
            except GzipIntegrityError as exc:
                log.warning("cached %s failed its integrity check (%s); downloading it again", path.name, exc)
            else:
                return DownloadResult(
                    path, url, info.compressed_bytes, info.uncompressed_bytes, True, 0, 0.0, 0.0
                )
        if check_availability:
            self.exchange_details(ds.exchange, stop=stop).check_day(ds.data_type, ds.symbol, ds.day)
        path.parent.mkdir(parents=True, exist_ok=True)
        remove_abandoned_temps(path.parent, UNCONFIRMED_SUFFIX)  # once per download, not per attempt
        counters = _Attempt()
        info = self._with_retries(
            url,
            counters,
            lambda attempt_url: self._fetch_to_file(attempt_url, path, stop),
            on_auth=lambda status: self._auth_message(url, ds.day, status),
            stop=stop,
            check=lambda fetched: self._confirm(fetched, path, url, verify),
        )
        return DownloadResult(
            path=path,
            url=url,
            compressed_bytes=info.compressed_bytes,
            uncompressed_bytes=info.uncompressed_bytes,
            from_cache=False,
            attempts=counters.attempts,
            seconds=time.monotonic() - started,
            limiter_wait_seconds=counters.limiter_wait,
            server_md5=info.server_md5,
            md5=info.md5,
        )

    def _fetch_to_file(self, url: str, path: Path, stop: threading.Event | None = None) -> _Fetched:
        """Store one attempt's body in a temp file beside `path`, its size and gzip magic checked (the decode is
        `_confirm`'s, after the permit is released)."""
        tmp = owned_temp(path, UNCONFIRMED_SUFFIX)
        kept = False
        try:
            with (
                self._session.get(
                    url, headers=self._auth_headers(), stream=True, timeout=self.timeout
                ) as resp,
                self._tracked(resp),
            ):
                _raise_if_stopped(stop, url)  # stopped while connecting: abort_in_flight() missed this one
                self._raise_for_status(resp, url)
                # The CDN labels the same gzip bytes either `Content-Type: text/csv` or `Content-Encoding: gzip`;
                # the body is read undecoded, so Content-Length counts the bytes written under both.
                expected = resp.headers.get("Content-Length")
                digest = hashlib.md5(usedforsecurity=False)
                written = 0
                deadline = time.monotonic() + self.attempt_timeout
                with open(tmp, "wb") as out:
                    for chunk in resp.raw.stream(_CHUNK, decode_content=False):
                        _raise_if_stopped(stop, url)
                        if time.monotonic() > deadline:  # a trickling body never trips the read timeout
                            raise errors.TransientError(
                                f"{url}: attempt exceeded {self.attempt_timeout:.0f}s"
                            )
                        if written == 0 and not has_gzip_magic(chunk):
                            raise errors.BadContentError(self._bad_content_message(url, resp, chunk))
                        out.write(chunk)
                        digest.update(chunk)
                        written += len(chunk)
                    out.flush()
                    os.fsync(out.fileno())
                if written == 0:
                    raise errors.TransientError(f"{url}: empty response body (not even an empty gzip)")
                if expected is not None and expected.isdigit() and int(expected) != written:
                    raise errors.TransientError(f"{url}: got {written} of {expected} bytes (Content-Length)")
            kept = True
            return _Fetched(tmp, written, digest.hexdigest(), resp.headers.get("x-md5"))
        finally:
            if not kept:
                tmp.unlink(missing_ok=True)

    def _confirm(
        self, fetched: _Fetched, path: Path, url: str, verify: Callable[[Path], GzipInfo]
    ) -> _Confirmed:
        """Verify a fetched temp file and give it its final name; a corrupt one is a TransientError (retried)."""
        try:
            info = verify(fetched.tmp)
        except GzipIntegrityError as exc:
            fetched.tmp.unlink(missing_ok=True)
            raise errors.TransientError(f"{url}: {exc}") from None
        except errors.CancelledError:
            fetched.tmp.unlink(missing_ok=True)  # cancelled: no time for a decode to keep it
            raise
        except Exception:
            self._keep_if_intact(fetched.tmp, path)
            raise
        except BaseException:  # interrupted
            fetched.tmp.unlink(missing_ok=True)
            raise
        try:
            os.replace(fetched.tmp, path)
            fsync_path(path.parent)
        except (
            OSError
        ) as exc:  # verified (and, in a raw asset, already converted): only the cache copy is lost
            log.warning(
                "could not keep %s in the cache (%s); it will be downloaded again when needed", path, exc
            )
            fetched.tmp.unlink(missing_ok=True)
        return _Confirmed(info.compressed_bytes, info.uncompressed_bytes, fetched.md5, fetched.server_md5)

    def _keep_if_intact(self, tmp: Path, path: Path) -> None:
        """After `verify` failed for another reason (a bad value, a lake error), cache the file if it is an
        intact gzip, so a re-run need not download it again; else remove it."""
        try:
            verify_gzip(tmp)
            os.replace(tmp, path)
            fsync_path(path.parent)
        except Exception:  # corrupt too, or the rename failed: the caller raises its own error
            tmp.unlink(missing_ok=True)
        except BaseException:  # interrupted during the decode
            tmp.unlink(missing_ok=True)
            raise

    @contextlib.contextmanager
    def _tracked(self, resp: requests.Response) -> Iterator[None]:
        with self._in_flight_lock:
            self._in_flight.add(resp)
        try:
            yield
        finally:
            with self._in_flight_lock:
                self._in_flight.discard(resp)

    def abort_in_flight(self) -> int:
        """Shut down the connections of downloads in progress (call from another thread after setting their
        `stop`), so a read blocked on a stalled server returns now instead of after the read timeout."""
        with self._in_flight_lock:
            responses = list(self._in_flight)
        aborted = 0
        for resp in responses:
            sock = getattr(getattr(resp.raw, "connection", None), "sock", None)
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                    aborted += 1
        return aborted

    def _bad_content_message(self, url: str, resp: requests.Response, head: bytes) -> str:
        content_type = resp.headers.get("Content-Type", "unknown")
        snippet = self._redact(head[:4096].decode("utf-8", "replace"))[:80].replace("\n", " ")
        return (
            f"{url}: HTTP 200 but the body is not gzip (Content-Type {content_type}, starts with {snippet!r}). "
            "A proxy, captive portal or wrong TARDIS_DATASETS_URL is answering instead of Tardis; "
            "check the URL and network, then re-run."
        )

    # -- exchange metadata -------------------------------------------------------------------------------

    def exchange_details(
        self, exchange: str, *, refresh: bool = False, stop: threading.Event | None = None
    ) -> ExchangeDetails:
        """Return /v1/exchanges/{exchange}, cached in memory and on disk for `metadata_ttl_seconds`.

        Retried with the short `metadata_retry` budget; a failure is remembered for METADATA_FAILURE_TTL
        seconds (every caller in that time gets it at once); `stop` cuts the retries short.
        """
        exchange = validate_exchange(exchange)
        with self._metadata_locks_guard:
            lock = self._metadata_locks.setdefault(exchange, threading.Lock())
        with lock:
            failed = self._metadata_failures.get(exchange)
            if failed and not refresh and time.monotonic() - failed[0] < METADATA_FAILURE_TTL:
                raise failed[1]
            try:
                details = self._exchange_details(exchange, refresh, stop)
            except errors.CancelledError:
                raise
            except errors.TardisError as exc:
                self._metadata_failures[exchange] = (time.monotonic(), exc)
                raise
            self._metadata_failures.pop(exchange, None)
            return details

    def _exchange_details(
        self, exchange: str, refresh: bool, stop: threading.Event | None
    ) -> ExchangeDetails:
        now = time.time()
        cached = self._metadata.get(exchange)
        if cached and not refresh and now - cached[0] < self.metadata_ttl_seconds:
            return cached[1]
        disk = self.cache_dir / "_metadata" / f"{exchange}.json"
        if not refresh and disk.exists() and now - disk.stat().st_mtime < self.metadata_ttl_seconds:
            try:
                details = ExchangeDetails.from_json(json.loads(disk.read_text()))
                self._metadata[exchange] = (disk.stat().st_mtime, details)
                return details
            except (ValueError, KeyError):
                pass
        url = f"{self.api_url}/exchanges/{exchange}"
        payload = self._with_retries(
            url, _Attempt(), self._fetch_json, on_auth=None, stop=stop, policy=self.metadata_retry
        )
        details = ExchangeDetails.from_json(payload)
        disk.parent.mkdir(parents=True, exist_ok=True)
        write_file_atomically(disk, json.dumps(payload).encode(), UNCONFIRMED_SUFFIX)
        self._metadata[exchange] = (now, details)
        return details

    def check_available(self, exchange: str, data_type: str, symbol: str, day: str | dt.date) -> None:
        """Raise UnavailableError unless the day lies inside the symbol's availability and the export horizon."""
        ds = self._validated(exchange, data_type, symbol, day)
        self.exchange_details(ds.exchange).check_day(ds.data_type, ds.symbol, ds.day)

    def _fetch_json(self, url: str) -> dict:
        # The metadata API needs no key; the official client sends none.
        with self._session.get(url, timeout=self.timeout) as resp:
            self._raise_for_status(resp, url)
            try:
                return resp.json()
            except ValueError as exc:
                raise errors.TransientError(f"{url}: response is not JSON ({exc})") from None

    # -- shared request machinery ------------------------------------------------------------------------

    def _redact(self, text: str) -> str:
        return text.replace(self._api_key, "<redacted>") if self._api_key else text

    def _auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}

    def _with_retries(
        self,
        url: str,
        counters: _Attempt,
        fetch: Callable[[str], T],
        on_auth: Callable[[int], str] | None,
        stop: threading.Event | None = None,
        policy: RetryPolicy | None = None,
        check: Callable[[T], U] | None = None,
    ) -> T | U:
        """Return `fetch`'s result, retrying transient failures under `policy` (default: the download budget).

        `check`, if given, runs on each fetched result after the rate limiter's permit is released; it returns
        what to give back, or raises a TransientError to retry like a failed attempt."""
        policy = policy or self.retry
        failure: _Failure | None = None
        for attempt in range(1, policy.max_attempts + 1):
            _raise_if_stopped(stop, url)
            counters.attempts = attempt
            outcome = self._attempt(url, attempt, counters, fetch, on_auth, policy)
            if not isinstance(outcome, _Failure) and check is not None:
                try:
                    return check(outcome)
                except errors.TransientError as exc:
                    outcome = _Failure(exc)
            if not isinstance(outcome, _Failure):
                return outcome
            failure = outcome
            if attempt < policy.max_attempts:
                self._back_off(url, attempt, failure, policy, stop)
        last_error = failure.error if failure is not None else None
        raise errors.RetriesExhaustedError(
            f"{url}: failed {policy.max_attempts} times, last error: {last_error}. "
            "The service or the network keeps failing; re-run later (completed partitions are kept)."
        )

    def _attempt(
        self,
        url: str,
        attempt: int,
        counters: _Attempt,
        fetch: Callable[[str], T],
        on_auth: Callable[[int], str] | None,
        policy: RetryPolicy,
    ) -> T | _Failure:
        """Run one rate-limited attempt: its result, a _Failure to retry, or the error it raises."""
        permit: Permit = self.limiter.acquire()
        counters.limiter_wait += permit.waited_seconds
        failure: _Failure | None = None
        try:
            return fetch(_attempt_url(url, attempt))
        except Exception as exc:
            failure = self._retryable(exc, url, attempt, on_auth, policy)
            if failure is None:
                raise
            return failure
        finally:
            throttled = failure is not None and failure.throttled
            pause = failure.pause if failure is not None else 0.0
            self.limiter.release(permit, throttled=throttled, pause_seconds=pause)

    def _retryable(
        self,
        exc: Exception,
        url: str,
        attempt: int,
        on_auth: Callable[[int], str] | None,
        policy: RetryPolicy,
    ) -> _Failure | None:
        """Classify a failed attempt: a _Failure to retry, None to re-raise `exc`, or raise the explained 401/403."""
        if isinstance(exc, (errors.UnauthorizedError, errors.ForbiddenError)):
            if on_auth is not None:
                raise type(exc)(exc.status, url, on_auth(exc.status)) from None
            return None
        if isinstance(exc, errors.TransientError):
            pause = 0.0
            if exc.throttled:  # a 429: every worker pauses for Retry-After, or the backoff + 60 s without one
                pause = (
                    exc.retry_after
                    if exc.retry_after is not None
                    else policy.throttle_pause(attempt, self._rng)
                )
            return _Failure(exc, exc.throttled, pause)
        if isinstance(exc, errors.TardisError) or not isinstance(exc, _NETWORK_ERRORS):
            return None  # permanent (bad request, bad content, cancelled ...) or local (disk, configuration)
        return _Failure(errors.TransientError(f"{url}: {type(exc).__name__}: {self._redact(str(exc))}"))

    def _retry_delay(self, attempt: int, failure: _Failure, policy: RetryPolicy) -> float:
        """Seconds to sleep after failed attempt `attempt`: backoff (at least Retry-After), or jitter after a 429."""
        if failure.throttled:
            # The shared pause makes every worker wait in acquire(); add jitter so they do not stampede.
            return self._rng.uniform(0, min(1.0, failure.pause / 10 + 0.05))
        delay = policy.backoff(attempt, self._rng, status=failure.error.status)
        retry_after = failure.error.retry_after
        return delay if retry_after is None else max(delay, retry_after)

    def _back_off(
        self, url: str, attempt: int, failure: _Failure, policy: RetryPolicy, stop: threading.Event | None
    ) -> None:
        """Log the failed attempt and wait before the next one; raise CancelledError if `stop` is set meanwhile."""
        delay = self._retry_delay(attempt, failure, policy)
        shared = f" after the {failure.pause:.1f}s pause every worker shares (Retry-After)"
        log.warning(
            "attempt %d/%d for %s failed: %s; retrying in %.1fs%s",
            attempt,
            policy.max_attempts,
            url,
            failure.error,
            delay,
            shared if failure.throttled else "",
        )
        if stop is None:
            self._sleep(delay)
        elif stop.wait(delay):
            _raise_if_stopped(stop, url)

    def _raise_for_status(self, resp: requests.Response, url: str) -> None:
        status = resp.status_code
        if status == 200:
            return
        body = _error_text(resp, status, self._redact) if status < 500 else ""
        retry_after = parse_retry_after(resp.headers.get("Retry-After"))
        if retry_after is not None:
            retry_after = min(retry_after, self.retry.max_retry_after)
        if status == 429:
            raise errors.TransientError(
                f"{url}: HTTP 429 Too Many Requests", retry_after, throttled=True, status=status
            )
        if status == 400:
            # The CDN bug that drops query strings; the official clients retry it.
            if "ISO 8601 format" in body:
                raise errors.TransientError(f"{url}: HTTP 400 (spurious 'ISO 8601 format')", status=status)
            raise errors.BadRequestError(
                400,
                url,
                f"{url}: HTTP 400 Bad Request: {body or 'no message'}. Tardis refuses this exchange, data type, "
                "symbol or date: check datasets.symbols[].id and dataTypes at "
                "https://api.tardis.dev/v1/exchanges/<exchange>.",
            )
        if status == 401:
            raise errors.UnauthorizedError(401, url, f"{url}: HTTP 401 Unauthorized: {body}")
        if status == 403:
            raise errors.ForbiddenError(
                403,
                url,
                f"{url}: HTTP 403 Forbidden ({body or 'no message'}): the key has no access to this exchange or "
                "period, or unauthenticated requests are being rate limited. Check the subscription of "
                "TARDIS_API_KEY.",
            )
        if status == 404:
            raise errors.NotFoundError(
                404,
                url,
                f"{url}: HTTP 404 Not Found ({body or 'no such file'}): the exchange, data type or "
                "symbol does not exist, or Tardis has no file for this day. Check them and the symbol's "
                "availableSince/availableTo at https://api.tardis.dev/v1/exchanges/<exchange> (datasets.symbols).",
            )
        # Every other non-200 is retried, like the official clients (5xx, 408, 425, CDN oddities ...).
        raise errors.TransientError(
            f"{url}: HTTP {status}{': ' + body if body else ''}", retry_after, status=status
        )

    def _auth_message(self, url: str, day: dt.date, status: int) -> str:
        if not self._api_key and day.day != 1:
            return (
                f"{url}: HTTP {status}: {day:%Y-%m-%d} needs an API key; without one only the first day of each "
                "month is free. Set TARDIS_API_KEY to your Tardis.dev key, or pick a first-of-month day."
            )
        if not self._api_key:
            return (
                f"{url}: HTTP {status} without an API key on a free first-of-month day: Tardis limits keyless "
                "downloads. Set TARDIS_API_KEY, or retry later."
            )
        return (
            f"{url}: HTTP {status}: TARDIS_API_KEY was rejected (wrong, expired, or without access to "
            "this exchange or date). Check the key and its subscription."
        )


def _error_text(resp: requests.Response, status: int, redact: Callable[[str], str]) -> str:
    """The message of an error body: the JSON `message` (with a `code` other than the status) if any, else the
    text; redacted before it is cut, so no part of a key echoed by a proxy survives."""
    text = redact(resp.text)[:500].strip()
    try:
        payload = json.loads(text)
    except ValueError:
        return text
    if isinstance(payload, dict) and payload.get("message"):
        code = payload.get("code")
        return f"{payload['message']}" + (f" (code {code})" if code not in (None, status) else "")
    return text
