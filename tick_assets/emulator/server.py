"""A Tardis-compatible HTTP server: the Datasets API and /v1/exchanges, with auth rules and fault injection."""

from __future__ import annotations

import collections
import contextlib
import datetime as dt
import hashlib
import json
import logging
import re
import socket
import struct
import threading
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from tick_assets.emulator.faults import FaultConfig, ServerRateLimit, retry_after_header
from tick_assets.emulator.sources import FixtureSource, Source, SyntheticSource

log = logging.getLogger(__name__)

_DATASET_RE = re.compile(r"^/v1/([^/]+)/([^/]+)/(\d{4})/(\d{2})/(\d{2})/([^/]+)\.csv\.gz$")
_EXCHANGE_RE = re.compile(r"^/v1/exchanges/([^/]+)$")
_CHUNK = 1 << 16
#: How a dataset body is labelled; both styles were seen from the real CDN (the body is the same gzip file).
HEADER_STYLES = ("text/csv", "content-encoding")
#: x-md5 header modes: the file's MD5, a value that does not match (files uploaded in chunks), or none.
MD5_MODES = ("file", "chunked", "none")
#: How the real service refuses a paid day without a key: 401 with a text body, or 403 with JSON `code: 10`.
KEYLESS_DENIALS = (401, 403)


@dataclass(frozen=True)
class EmulatorConfig:
    """How the emulator behaves."""

    host: str = "127.0.0.1"
    port: int = 0  # 0: pick a free port
    cache_dir: Path = Path("data/emulator")
    scale: int = 2000
    compresslevel: int = 6
    api_keys: frozenset[str] = frozenset()  # empty: any non-empty Bearer key is accepted
    exported_until: dt.date | None = None
    empty_days: frozenset[dt.date] = frozenset()
    fixtures: Path | None = None
    faults: FaultConfig = field(default_factory=FaultConfig)
    verbose: bool = False
    header_style: str = "text/csv"
    md5_mode: str = "file"
    keyless_denial: int = 401

    def __post_init__(self) -> None:
        for name, value, allowed in (
            ("header_style", self.header_style, HEADER_STYLES),
            ("md5_mode", self.md5_mode, MD5_MODES),
            ("keyless_denial", self.keyless_denial, KEYLESS_DENIALS),
        ):
            if value not in allowed:
                raise ValueError(
                    f"EmulatorConfig.{name}={value!r}: use one of {', '.join(map(str, allowed))}."
                )


#: The newest requests whose times the emulator keeps (for rate measurements; a long-running emulator forgets).
REQUEST_LOG_SIZE = 100_000


class _Stats:
    """Counters of what the emulator answered (served at /emulator/stats)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.counts: collections.Counter[str] = collections.Counter()
        self.bytes_sent = 0
        self.auth_headers_seen = 0
        self.in_flight = 0
        self.max_in_flight = 0
        #: (epoch seconds, "dataset" | "api") of each dataset request past the rate limit and each API request
        self.request_log: collections.deque[tuple[float, str]] = collections.deque(maxlen=REQUEST_LOG_SIZE)

    def add(self, key: str, n: int = 1) -> None:
        with self._lock:
            self.counts[key] += n

    def logged(self, kind: str) -> None:
        with self._lock:
            self.request_log.append((time.time(), kind))

    def add_bytes(self, n: int) -> None:
        with self._lock:
            self.bytes_sent += n

    @contextlib.contextmanager
    def in_flight_request(self) -> Iterator[None]:
        """Track how many dataset requests are being answered at once (and the most ever)."""
        with self._lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            yield
        finally:
            with self._lock:
                self.in_flight -= 1

    def as_dict(self) -> dict[str, Any]:
        with self._lock:
            return {
                "counts": dict(self.counts),
                "bytes_sent": self.bytes_sent,
                "max_concurrent_dataset_requests": self.max_in_flight,
            }


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    server_version = "tardis-emulator"

    def log_message(self, format: str, *args: Any) -> None:
        # Only the request line and status, never headers (they carry the API key).
        if self.server.config.verbose:
            log.info("%s - %s", self.address_string(), format % args)

    # -- responses ---------------------------------------------------------------------------------------

    def _send_json(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        self._send_json(status, {"code": status, "message": message}, headers)

    def _send_text(self, status: int, text: str) -> None:
        data = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    # -- routing -----------------------------------------------------------------------------------------

    def send_response(self, code: int, message: str | None = None) -> None:
        """Start a response: counted here, before any byte of it leaves, so a client that has its answer always
        finds it in /emulator/stats (counting after the write raced the client)."""
        self._responded = True
        self.server.stats.add(f"status_{code}")
        super().send_response(code, message)

    def do_GET(self) -> None:
        self._responded = False
        try:
            self._route()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception:  # a bug of the emulator: log it and answer 500 if no answer was started yet
            log.exception("emulator failed to answer %s", urllib.parse.urlsplit(self.path).path)
            if not self._responded:
                with contextlib.suppress(OSError):
                    self._error(500, "emulator error (see its log)")
            self.close_connection = True  # a half-sent body ends with the connection, never with another body

    def do_HEAD(self) -> None:
        """Like the real CDN: HEAD is answered 404 (no cheap existence or revision check)."""
        self.server.stats.add("requests")
        self.send_response(404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _route(self) -> None:
        path = urllib.parse.urlsplit(self.path).path
        stats = self.server.stats
        stats.add("requests")
        if "Range" in self.headers and _DATASET_RE.match(path):
            # Like the real CDN: no byte ranges (so no resume); clients re-download whole files.
            return self._error(403, "Forbidden: range requests are not supported")
        if path == "/emulator/stats":
            return self._send_json(200, stats.as_dict())
        if path.startswith("/v1/") and not _DATASET_RE.match(path):
            stats.logged("api")
        if path in ("/v1/exchanges", "/v1/exchanges/"):
            source = self.server.source
            return self._send_json(200, [source.exchange_json(e) for e in source.exchange_ids()])
        m = _EXCHANGE_RE.match(path)
        if m:
            body = self.server.source.exchange_json(urllib.parse.unquote(m[1]))
            if body is None:
                return self._error(404, f"Unknown exchange '{urllib.parse.unquote(m[1])}'")
            return self._send_json(200, body)
        m = _DATASET_RE.match(path)
        if m:
            with stats.in_flight_request():
                return self._dataset(path, m)
        self._error(404, f"Not found: {path}")

    def _dataset(self, path: str, m: re.Match[str]) -> None:
        server = self.server
        stats = server.stats
        stats.add("dataset_requests")
        if "Authorization" in self.headers:
            stats.add("with_authorization")
        wait = server.rate_limit.admit()
        if wait is not None:
            stats.add("rate_limited")
            return self._error(429, "Too Many Requests", {"Retry-After": retry_after_header(wait)})
        stats.logged("dataset")
        attempt = server.next_attempt(path)
        fault = server.config.faults.decide(path, attempt)
        if fault:
            stats.add(f"fault_{fault}")
        if fault == "throttle":
            return self._error(
                429, "Too Many Requests", {"Retry-After": str(server.config.faults.retry_after_seconds)}
            )
        if fault == "server_error":
            return self._error((500, 502, 503)[attempt % 3], "Internal Server Error")
        if fault == "cdn_400":
            # What the real CDN sends when it drops the query string: retried by the official clients.
            return self._error(400, "Invalid 'from' param - ISO 8601 format expected")

        exchange, data_type = urllib.parse.unquote(m[1]), urllib.parse.unquote(m[2])
        symbol = urllib.parse.unquote(m[6])
        try:
            day = dt.date(int(m[3]), int(m[4]), int(m[5]))
        except ValueError:
            return self._error(400, f"invalid date: {m[3]}/{m[4]}/{m[5]} is not a calendar day")
        # Refusals first, then the key, then the (possibly long) generation of the day: a keyless request for a
        # paid day costs the emulator nothing.
        check = server.source.lookup(exchange, data_type, day, symbol, generate=False)
        if check.refused:
            return self._error(check.status, check.not_found or "Not found")
        if not self._authorized(day, path):
            return None
        lookup = server.source.lookup(exchange, data_type, day, symbol)
        if lookup.path is None:
            return self._error(lookup.status, lookup.not_found or "Not found")
        if fault == "html":
            return self._send_html_page()
        self._send_file(lookup.path, fault)

    def _authorized(self, day: dt.date, path: str) -> bool:
        """Answer a refused request (and return False) like the real service; True when the day may be sent."""
        if day.day == 1:
            return True
        header = self.headers.get("Authorization", "")
        key = header[7:].strip() if header.startswith("Bearer ") else ""
        if not key:
            if self.server.config.keyless_denial == 403:
                self._send_json(403, {"code": 10, "message": "Forbidden: API key required for this dataset"})
            else:
                self._send_text(
                    401,
                    "For unauthorized requests, only historical CSV market datasets for the first day of each "
                    f"month are available (dataset for '{path.removeprefix('/v1/')}' has been requested)",
                )
            return False
        if self.server.config.api_keys and key not in self.server.config.api_keys:
            self._error(401, "Invalid API key.")
            return False
        return True

    def _send_html_page(self) -> None:
        body = b"<!DOCTYPE html><html><head><title>Error</title></head><body><h1>502 Bad Gateway</h1></body></html>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _send_file(self, path: Path, fault: str | None) -> None:
        size = path.stat().st_size
        length = size
        if fault == "truncate":
            length = max(10, size * 2 // 3) if size > 20 else size - 4
        config = self.server.config
        self.send_response(200)
        self.send_header("Content-Type", "text/csv")
        if config.header_style == "content-encoding":
            self.send_header("Content-Encoding", "gzip")
        self.send_header("Content-Length", str(length))
        if config.md5_mode != "none":
            self.send_header("x-md5", self.server.md5_of(path, chunked=config.md5_mode == "chunked"))
        self.end_headers()
        with open(path, "rb") as f:
            if fault in ("reset", "stall"):
                part = f.read(max(1, size // 3))
                self.server.stats.add_bytes(len(part))  # counted before it leaves, like the status
                self.wfile.write(part)
                if fault == "stall":
                    self.server.stopping.wait(self.server.config.faults.stall_seconds)
                else:
                    # SO_LINGER 0: close sends a TCP RST, like a dropped upstream connection.
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    self.server.mark_reset(self.connection)
                self.close_connection = True
                return
            self.server.stats.add_bytes(length)
            sent = self.connection.sendfile(f, 0, length)
        if sent != length:
            self.server.stats.add_bytes(sent - length)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, config: EmulatorConfig, source: Source) -> None:
        super().__init__((config.host, config.port), _Handler)
        self.config = config
        self.source = source
        self.stats = _Stats()
        self.rate_limit = ServerRateLimit(config.faults.rate_limit, config.faults.rate_burst)
        self.stopping = threading.Event()
        self._attempts: collections.Counter[str] = collections.Counter()
        self._attempts_lock = threading.Lock()
        self._resets: set[int] = set()
        self._md5: dict[tuple[Path, float], str] = {}

    def md5_of(self, path: Path, chunked: bool = False) -> str:
        """The file's MD5 (cached per path and mtime); `chunked` gives a multipart-upload style value that
        does not match, as Tardis warns can happen."""
        key = (path, path.stat().st_mtime)
        with self._attempts_lock:
            known = self._md5.get(key)
        if known is None:
            digest = hashlib.md5(usedforsecurity=False)
            with open(path, "rb") as f:
                while chunk := f.read(1 << 20):
                    digest.update(chunk)
            known = digest.hexdigest()
            with self._attempts_lock:
                self._md5[key] = known
        return hashlib.md5(known.encode(), usedforsecurity=False).hexdigest() if chunked else known

    def mark_reset(self, conn: socket.socket) -> None:
        with self._attempts_lock:
            self._resets.add(id(conn))

    def shutdown_request(self, request: socket.socket) -> None:
        # socketserver half-closes (SHUT_WR) first, which the client would see as a clean end of stream;
        # a connection chosen for the reset fault must be closed abruptly instead.
        with self._attempts_lock:
            reset = id(request) in self._resets
            self._resets.discard(id(request))
        if reset:
            self.close_request(request)
        else:
            super().shutdown_request(request)

    def next_attempt(self, path: str) -> int:
        with self._attempts_lock:
            self._attempts[path] += 1
            return self._attempts[path]


class EmulatorServer:
    """Runs the emulator in a background thread; use as a context manager or start()/stop()."""

    def __init__(self, config: EmulatorConfig | None = None) -> None:
        self.config = config or EmulatorConfig()
        source: Source
        if self.config.fixtures is not None:
            source = FixtureSource(self.config.fixtures)
        else:
            source = SyntheticSource(
                self.config.cache_dir,
                self.config.scale,
                self.config.exported_until,
                self.config.empty_days,
                self.config.compresslevel,
            )
        self._server = _Server(self.config, source)
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        """http://host:port of the running server."""
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def datasets_url(self) -> str:
        """Value for TARDIS_DATASETS_URL."""
        return f"{self.base_url}/v1"

    @property
    def api_url(self) -> str:
        """Value for TARDIS_API_URL."""
        return f"{self.base_url}/v1"

    @property
    def stats(self) -> dict[str, Any]:
        """What the server answered so far."""
        return self._server.stats.as_dict()

    def request_times(self, kinds: tuple[str, ...] = ("dataset", "api")) -> list[float]:
        """Epoch seconds of each request of `kinds` so far, in arrival order: "dataset" (a download past the rate
        limit) and "api" (exchange metadata), for rate measurements."""
        with self._server.stats._lock:
            return [t for t, kind in self._server.stats.request_log if kind in kinds]

    def set_faults(self, faults: FaultConfig) -> None:
        """Change the injected faults from the next request on (stalls in progress keep stalling)."""
        self.config = replace(self.config, faults=faults)
        self._server.config = self.config
        self._server.rate_limit = ServerRateLimit(faults.rate_limit, faults.rate_burst)

    def start(self) -> EmulatorServer:
        """Serve in a daemon thread."""
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="tardis-emulator", daemon=True
        )
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve in the calling thread until stop() or KeyboardInterrupt."""
        self._server.serve_forever(poll_interval=0.05)

    def stop(self) -> None:
        """Stop serving and release the port."""
        self._server.stopping.set()
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> EmulatorServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def wait_until_up(url: str, timeout: float = 10.0) -> None:
    """Poll an emulator's stats endpoint until it answers (for servers started in another process)."""
    import urllib.request

    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"{url}/emulator/stats", timeout=1):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
