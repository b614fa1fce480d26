"""The limiter's state in Postgres: one row per limiter key, each grant one transaction holding the row lock.

Every machine that reaches the server shares one token bucket, one in-flight cap and one throttle pause. Leases
carry an expiry that their holder renews (see `ratelimit`), so a killed process or host gives its slots back
within `lease_ttl` without pids or host names. The server unreachable fails closed: a download waits for no
limit of its own, it stops with `LimiterUnavailable`.

The URL (e.g. `postgresql://user:password@host:5432/db`, from TICK_ASSETS_LIMITER_URL) may hold a password: it is
never logged, printed or put in an error message; `describe_url` is what is shown.
"""

from __future__ import annotations

import json
import os
import threading
import urllib.parse
from collections.abc import Callable
from dataclasses import asdict
from typing import Any, TypeVar

from tick_assets.tardis.errors import TardisError
from tick_assets.tardis.ratelimit import LimiterBackend, LimiterState

T = TypeVar("T")

TABLE = "tick_assets_limiter"
#: Seconds to wait for a connection: past it the limiter is unreachable.
CONNECT_TIMEOUT = 10


class LimiterUnavailable(TardisError):
    """The shared limiter's server cannot be reached or answered with an error: no request may start."""


def describe_url(url: str) -> str:
    """The URL without its password (and query), for messages."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or "localhost"
    user = f"{parts.username}@" if parts.username else ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{user}{host}{port}{parts.path}"


def _dsn(url: str) -> str:
    """A libpq URL from ours (`postgresql+psycopg2://` is SQLAlchemy's spelling of the same)."""
    return "postgresql://" + url.split("://", 1)[1]


class PostgresBackend(LimiterBackend):
    """Limiter states in a Postgres table, shared by every process on every machine that reaches the server."""

    local = False

    def __init__(self, url: str) -> None:
        self._url = url
        self.description = describe_url(url)
        self._local = threading.local()
        self._execute(
            lambda cur: cur.execute(f"CREATE TABLE IF NOT EXISTS {TABLE} (key TEXT PRIMARY KEY, state TEXT)")
        )

    def __repr__(self) -> str:
        return f"PostgresBackend({self.description})"

    def _connect(self) -> Any:
        # One connection per thread and process: a connection must not cross a fork or be shared by threads.
        conn = getattr(self._local, "conn", None)
        if conn is None or conn.closed or getattr(self._local, "pid", None) != os.getpid():
            try:
                import psycopg2
            except ImportError as exc:
                raise LimiterUnavailable(
                    "a postgresql:// limiter needs psycopg2: pip install 'tick-assets[distributed]'"
                ) from exc
            try:
                conn = psycopg2.connect(
                    _dsn(self._url), connect_timeout=CONNECT_TIMEOUT, application_name="tick-assets limiter"
                )
            except psycopg2.Error as exc:
                raise LimiterUnavailable(self._unreachable(exc)) from None
            self._local.conn, self._local.pid = conn, os.getpid()
        return conn

    def _unreachable(self, exc: BaseException) -> str:
        # psycopg2's text names the host and port, never the password; ours names the URL without it.
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return (
            f"the shared rate limiter at {self.description} is unreachable ({reason}). No download starts without "
            "the shared limit (each machine limiting on its own would overrun the account): start or reach the "
            "server, or unset TICK_ASSETS_LIMITER_URL on a single machine."
        )

    def _execute(self, work: Callable[[Any], T]) -> T:
        """Run `work(cursor)` in one transaction; a broken connection is dropped and the error is fail-closed."""
        import psycopg2

        conn = self._connect()
        try:
            with conn, conn.cursor() as cur:  # commits, or rolls back on an exception
                return work(cur)
        except psycopg2.Error as exc:
            if conn.closed or isinstance(exc, psycopg2.OperationalError | psycopg2.InterfaceError):
                self._local.conn = None
                conn.close()
                raise LimiterUnavailable(self._unreachable(exc)) from None
            raise

    def transact(self, key: str, fn: Callable[[LimiterState | None], tuple[LimiterState, T]]) -> T:
        """Apply `fn` to the state of `key` under its row lock (`SELECT ... FOR UPDATE`), in one transaction."""

        def work(cur: Any) -> T:
            cur.execute(f"SELECT state FROM {TABLE} WHERE key = %s FOR UPDATE", (key,))
            row = cur.fetchone()
            if row is None:  # the key's first use: create its row (one creator wins), then lock it
                cur.execute(f"INSERT INTO {TABLE} (key) VALUES (%s) ON CONFLICT (key) DO NOTHING", (key,))
                cur.execute(f"SELECT state FROM {TABLE} WHERE key = %s FOR UPDATE", (key,))
                row = cur.fetchone()
            (text,) = row
            state = LimiterState(**json.loads(text)) if text else None
            new_state, result = fn(state)
            cur.execute(f"UPDATE {TABLE} SET state = %s WHERE key = %s", (json.dumps(asdict(new_state)), key))
            return result

        return self._execute(work)
