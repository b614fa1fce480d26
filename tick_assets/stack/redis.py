"""A real Redis here (tests, `tick-assets stack`): Debian's `redis-server` on 127.0.0.1, a free port, a password.

Its settings reach it on stdin (`redis-server -`), so the password is in no file and no process list. Nothing is
persisted (the Celery broker's queue lives in memory): it is a broker for one stack's lifetime.

    with RedisServer() as redis:
        redis.url(0)   # redis://:<password>@127.0.0.1:<port>/0
"""

from __future__ import annotations

import contextlib
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RedisServer:
    """One throwaway `redis-server` on 127.0.0.1 (protected mode, a generated password), removed on stop."""

    def __init__(self, binary: str | None = None) -> None:
        found = binary or shutil.which("redis-server")
        if not found:
            raise FileNotFoundError("no redis-server here: apt-get install redis-server")
        self.binary = found
        self.port = _free_port()
        self.password = secrets.token_urlsafe(16)
        self.dir = Path(tempfile.mkdtemp(prefix="tick-redis-"))
        self.proc: subprocess.Popen | None = None

    def url(self, db: int = 0) -> str:
        """A redis:// URL with the password (what TICK_ASSETS_CELERY_BROKER would hold)."""
        return f"redis://:{self.password}@127.0.0.1:{self.port}/{db}"

    def _config(self) -> str:
        return "\n".join(
            [
                "bind 127.0.0.1",
                f"port {self.port}",
                "protected-mode yes",
                f'requirepass "{self.password}"',
                f'dir "{self.dir}"',
                'save ""',
                "appendonly no",
                f'logfile "{self.dir / "redis.log"}"',
                "daemonize no",
                "",
            ]
        )

    def start(self, timeout: float = 20.0) -> RedisServer:
        """Start the server and wait until it answers PING with the password."""
        self.proc = subprocess.Popen(
            [self.binary, "-"],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd=self.dir,
            start_new_session=True,
        )
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(self._config().encode())
            self.proc.stdin.close()
        except OSError:  # it exited before reading its settings: report it below, with its log
            pass
        deadline = time.monotonic() + timeout
        while not self.ping():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                log = (self.dir / "redis.log").read_text(errors="replace")[-2000:]
                self.stop()
                raise RuntimeError(f"redis-server did not come up on 127.0.0.1:{self.port}:\n{log}")
            time.sleep(0.05)
        return self

    def ping(self) -> bool:
        """Whether the server answers an authenticated PING."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                s.sendall(f"AUTH {self.password}\r\nPING\r\n".encode())
                reply = b""
                while reply.count(b"\r\n") < 2:
                    chunk = s.recv(100)
                    if not chunk:
                        break
                    reply += chunk
                return reply == b"+OK\r\n+PONG\r\n"
        except OSError:
            return False

    def stop(self) -> None:
        """Stop the server and remove its folder. Idempotent."""
        proc, self.proc = self.proc, None
        if proc is not None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
