"""A fault-injecting HTTP proxy on 127.0.0.1 in front of a real S3 server (tests only).

    with S3FaultProxy(s3.endpoint) as proxy:
        proxy.add(Fault("PutObject", "503", count=3))         # the next 3 PutObject get 503 SlowDown
        proxy.add(Fault("UploadPart", "stall", count=1))     # the next UploadPart is held unanswered
        ... point AWS_ENDPOINT_URL at proxy.endpoint ...
        proxy.seen["PutObject"], proxy.injected[("PutObject", "503")], proxy.forwarded["PutObject"]

Requests are classified by S3 operation (PutObject, UploadPart, CreateMultipartUpload, CompleteMultipartUpload,
AbortMultipartUpload, GetObject, HeadObject, ListObjects, ...). A rule applies to the first `count` requests of
its operation (and key substring) that arrive while it is armed; other requests are forwarded as they are.
Actions:
  "503" / "500"   answer with an S3 XML error body (SlowDown / InternalError by default) after reading the
                  request body, without forwarding: the server never sees the request.
  "stall"         read the request and hold the connection without answering for `stall_seconds` (longer
                  than the client's read timeout), then close it; nothing is forwarded.
With `after_forward=True` the request is forwarded first and only the answer is replaced (the server did the
work, the client hears a 5xx or nothing): the case of a response lost on the way back.

Signatures: SigV4 signs the Host header (and the x-amz-* headers named in SignedHeaders). The proxy forwards the
request line, the Host header and every other header byte for byte, and the body unchanged, so the server checks
the signature against exactly what the client signed. Only the hop-by-hop headers (Connection, Keep-Alive,
Proxy-*) and `Expect: 100-continue` (which the proxy answers itself; botocore never signs it) are not passed on;
a request whose SignedHeaders name one of those is refused with 502, so a signature is never broken silently.
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import threading
import time
import urllib.parse
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

#: Headers that concern one hop only, not passed on (and never part of a SigV4 signature from botocore).
_HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authorization",
    "proxy-authenticate",
    "te",
    "upgrade",
    "expect",
}
_ERROR_CODES = {
    "503": ("SlowDown", "Please reduce your request rate."),
    "500": ("InternalError", "We encountered an internal error. Please try again."),
}


def s3_operation(method: str, path: str, query: str, headers: dict[str, str]) -> str:
    """The S3 operation of a path-style request (`/bucket` or `/bucket/key`)."""
    params = urllib.parse.parse_qs(query, keep_blank_values=True)
    has_key = "/" in path.lstrip("/")
    if method == "PUT":
        if not has_key:
            return "CreateBucket"
        if "partNumber" in params and "uploadId" in params:
            return "UploadPart"
        if "x-amz-copy-source" in headers:
            return "CopyObject"
        return "PutObject"
    if method == "POST":
        if "uploads" in params:
            return "CreateMultipartUpload"
        if "uploadId" in params:
            return "CompleteMultipartUpload"
        if "delete" in params:
            return "DeleteObjects"
        return "POST"
    if method == "DELETE":
        return (
            "AbortMultipartUpload"
            if "uploadId" in params
            else ("DeleteObject" if has_key else "DeleteBucket")
        )
    if method == "GET":
        if "uploads" in params:
            return "ListMultipartUploads"
        if "uploadId" in params:
            return "ListParts"
        return "GetObject" if has_key else "ListObjects"
    if method == "HEAD":
        return "HeadObject" if has_key else "HeadBucket"
    return method


@dataclass
class Fault:
    """Answer the first `count` requests of `operation` (whose key contains `key_contains`) with `action`."""

    operation: str
    action: str  # "503", "500" or "stall"
    count: int = 1
    key_contains: str = ""
    after_forward: bool = False
    stall_seconds: float = 120.0
    error_code: str | None = (
        None  # S3 error code in the XML body (default SlowDown for 503, InternalError for 500)
    )
    remaining: int = field(init=False)

    def __post_init__(self) -> None:
        if self.action not in ("503", "500", "stall"):
            raise ValueError(f"unknown action {self.action!r}")
        self.remaining = self.count


@dataclass(frozen=True)
class Seen:
    """One request as the proxy saw it."""

    at: float
    operation: str
    key: str
    outcome: str  # "forwarded <status>", "503", "500", "stall", "forwarded <status> then 503", ...


class S3FaultProxy:
    """The proxy; `endpoint` is what a client uses instead of the server's."""

    def __init__(self, upstream: str, timeout: float = 300.0) -> None:
        parsed = urllib.parse.urlparse(upstream)
        if parsed.scheme != "http" or parsed.hostname not in ("127.0.0.1", "localhost"):
            raise ValueError(
                f"the proxy forwards only to a plain-HTTP server on this machine, not {upstream!r}"
            )
        self.upstream = (parsed.hostname, parsed.port or 80)
        self.upstream_timeout = timeout
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self._stop = threading.Event()
        self.log: list[Seen] = []
        proxy = self

        class Handler(_Handler):
            owner = proxy

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    # -- lifecycle --

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> S3FaultProxy:
        self._thread = threading.Thread(target=self._server.serve_forever, name="s3-fault-proxy", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()  # stalled handlers give up their connection at once
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(10)

    def __enter__(self) -> S3FaultProxy:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- rules and what was seen --

    def add(self, fault: Fault) -> Fault:
        """Arm a rule (rules are tried in the order added)."""
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear(self) -> None:
        """Disarm every rule and forget what was seen."""
        with self._lock:
            self._faults.clear()
            self.log.clear()

    def _take(self, operation: str, key: str) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.remaining > 0 and fault.operation == operation and fault.key_contains in key:
                    fault.remaining -= 1
                    return fault
        return None

    def _record(self, operation: str, key: str, outcome: str) -> None:
        with self._lock:
            self.log.append(Seen(time.monotonic(), operation, key, outcome))

    @property
    def seen(self) -> Counter:
        """Requests that reached the proxy, by operation."""
        with self._lock:
            return Counter(s.operation for s in self.log)

    @property
    def injected(self) -> Counter:
        """Faults injected, by (operation, action)."""
        with self._lock:
            return Counter(
                (s.operation, s.outcome.rsplit(" ", 1)[-1])
                for s in self.log
                if not s.outcome.startswith("forwarded") or " then " in s.outcome
            )

    @property
    def forwarded(self) -> Counter:
        """Requests the server received (through the proxy), by operation."""
        with self._lock:
            return Counter(s.operation for s in self.log if s.outcome.startswith("forwarded"))


def error_body(code: str, message: str, resource: str) -> bytes:
    """An S3-style XML error document."""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{code}</Code><Message>{message}</Message><Resource>{resource}</Resource>"
        f"<RequestId>fault-proxy</RequestId></Error>"
    ).encode()


class _Handler(BaseHTTPRequestHandler):
    owner: S3FaultProxy
    protocol_version = "HTTP/1.1"  # keep-alive, and `Expect: 100-continue` answered by handle_expect_100

    def log_message(self, format, *args) -> None:  # quiet
        pass

    def do_GET(self) -> None:
        self._handle()

    do_PUT = do_POST = do_DELETE = do_HEAD = do_GET

    # -- one request --

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            out = bytearray()
            while True:
                size_line = self.rfile.readline()
                out += size_line
                size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while True:  # trailers, up to the empty line
                        line = self.rfile.readline()
                        out += line
                        if line in (b"\r\n", b"\n", b""):
                            return bytes(out)
                out += self.rfile.read(size + 2)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _handle(self) -> None:
        proxy = self.owner
        path, _, query = self.path.partition("?")
        headers = {k.lower(): v for k, v in self.headers.items()}
        operation = s3_operation(self.command, path, query, headers)
        key = urllib.parse.unquote(path)
        body = self._read_body()
        fault = proxy._take(operation, key)
        if fault is not None and not fault.after_forward:
            proxy._record(operation, key, fault.action)
            self._inject(fault, path)
            return
        status, reason, out_headers, payload = self._forward(body, headers)
        if fault is not None:  # the server did it; the answer is lost
            proxy._record(operation, key, f"forwarded {status} then {fault.action}")
            self._inject(fault, path)
            return
        proxy._record(operation, key, f"forwarded {status}")
        self.send_response_only(status, reason)
        for name, value in out_headers:
            if name.lower() not in _HOP_BY_HOP and name.lower() != "transfer-encoding":
                self.send_header(name, value)
        if not any(n.lower() == "content-length" for n, _ in out_headers) and self.command != "HEAD":
            self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)
        self.wfile.flush()

    def _inject(self, fault: Fault, path: str) -> None:
        if fault.action == "stall":
            self.owner._stop.wait(fault.stall_seconds)
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        code, message = _ERROR_CODES[fault.action]
        payload = error_body(fault.error_code or code, message, path)
        self.send_response_only(int(fault.action))
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)
        self.wfile.flush()

    def _forward(self, body: bytes, headers: dict[str, str]) -> tuple[int, str, list[tuple[str, str]], bytes]:
        signed = headers.get("authorization", "").partition("SignedHeaders=")[2].split(",", 1)[0]
        dropped = [h for h in signed.split(";") if h and h in _HOP_BY_HOP]
        if dropped:
            payload = error_body("ProxyCannotForward", f"signed hop-by-hop headers {dropped}", self.path)
            return 502, "Bad Gateway", [("Content-Type", "application/xml")], payload
        conn = http.client.HTTPConnection(*self.owner.upstream, timeout=self.owner.upstream_timeout)
        try:
            conn.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
            for name, value in self.headers.items():  # Host included, unchanged: the signature covers it
                if name.lower() not in _HOP_BY_HOP:
                    conn.putheader(name, value)
            conn.endheaders()
            if body:
                conn.send(body)
            resp = conn.getresponse()
            payload = b"" if self.command == "HEAD" else resp.read()
            return resp.status, resp.reason, resp.getheaders(), payload
        finally:
            conn.close()
