"""The limiter's state in Postgres: one row per limiter key, each grant one transaction holding the row lock.

Every machine that reaches the server shares one token bucket, one in-flight cap and one throttle pause. Leases
carry an expiry that their holder renews (see `ratelimit`), so a killed process or host gives its slots back
within `lease_ttl` without pids or host names. The server unreachable fails closed: a grant retries for
`unavailable_grace` (a restart), then the download stops with `LimiterUnavailable`, never with a limit of its own.
Every session has lock, statement and idle-transaction timeouts and TCP keepalives, so a client cut off while it
holds the row lock cannot stall the other machines for long; transactions are READ COMMITTED whatever the server's
default.

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

from tick_assets.tardis.ratelimit import LimiterBackend, LimiterState, LimiterUnavailable

T = TypeVar("T")

TABLE = "tick_assets_limiter"
#: Seconds to wait for a connection: past it the limiter is unreachable.
CONNECT_TIMEOUT = 10


#: Session settings: a lock or an idle transaction held by a cut-off client cannot stall every machine for the
#: server's TCP keepalive (about 2 h): past these the statement fails and the grant fails closed.
_SESSION_OPTIONS = "-c lock_timeout=10s -c statement_timeout=30s -c idle_in_transaction_session_timeout=30s"
_KEEPALIVES = {"keepalives": 1, "keepalives_idle": 10, "keepalives_interval": 5, "keepalives_count": 3}


def describe_url(url: str) -> str:
    """The URL without its password (and query), for messages; never a piece of the password, even when the URL
    does not parse (a password with an unencoded / # ? must be percent-encoded)."""
    try:
        parts = urllib.parse.urlsplit(url.strip())
        host = parts.hostname or "localhost"
        user = f"{parts.username}@" if parts.username else ""
        port = f":{parts.port}" if parts.port else ""
        return f"{parts.scheme}://{user}{host}{port}{parts.path}"
    except ValueError:
        return "a postgresql:// URL that does not parse (percent-encode / # ? % in the password)"


def _secrets(url: str) -> list[str]:
    """The URL's password as written and decoded (to scrub from driver messages)."""
    try:
        password = urllib.parse.urlsplit(url.strip()).password
    except ValueError:
        password = url.split("://", 1)[-1].split("@", 1)[0].partition(":")[2] or None
    if not password:
        return []
    return sorted({password, urllib.parse.unquote(password)}, key=len, reverse=True)


def _connect_args(url: str) -> dict[str, Any]:
    """libpq keywords from the URL, parsed here (the last @ ends the user info, as in a browser), so the driver
    never parses the URL and can never quote part of the password back in an error."""
    try:
        parts = urllib.parse.urlsplit(url.strip())
        port = parts.port
    except ValueError:
        raise LimiterUnavailable(f"the limiter URL is {describe_url(url)}") from None
    args: dict[str, Any] = dict(urllib.parse.parse_qsl(parts.query))
    args |= {"host": parts.hostname or "localhost", "port": port or 5432}
    if parts.username:
        args["user"] = urllib.parse.unquote(parts.username)
    if parts.password:
        args["password"] = urllib.parse.unquote(parts.password)
    if parts.path.strip("/"):
        args["dbname"] = urllib.parse.unquote(parts.path.strip("/"))
    return args


class PostgresBackend(LimiterBackend):
    """Limiter states in a Postgres table, shared by every process on every machine that reaches the server."""

    local = False

    def __init__(self, url: str) -> None:
        self._url = url
        self.description = describe_url(url)
        self._local = threading.local()
        self._table_ready = False  # made on first use, so a server that is restarting meets the grant's grace

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
                    **_connect_args(self._url),
                    connect_timeout=CONNECT_TIMEOUT,
                    application_name="tick-assets limiter",
                    options=_SESSION_OPTIONS,
                    **_KEEPALIVES,
                )
            except psycopg2.Error as exc:
                raise LimiterUnavailable(self._unreachable(exc)) from None
            # whatever the server's default: a row lock per grant needs no more, and more would abort on contention
            conn.set_session(isolation_level="READ COMMITTED")
            self._local.conn, self._local.pid = conn, os.getpid()
        return conn

    def _unreachable(self, exc: BaseException) -> str:
        # The driver's text names the host and port; a malformed URL can make it quote the password: scrubbed.
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        for secret in _secrets(self._url):
            reason = reason.replace(secret, "***")
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

        if not self._table_ready:
            self._execute(_create_table)
            self._table_ready = True

        def work(cur: Any) -> T:
            cur.execute(f"SELECT state FROM {TABLE} WHERE key = %s FOR UPDATE", (key,))
            row = cur.fetchone()
            if row is None:  # the key's first use: create its row (one creator wins), then lock it
                cur.execute(f"INSERT INTO {TABLE} (key) VALUES (%s) ON CONFLICT (key) DO NOTHING", (key,))
                cur.execute(f"SELECT state FROM {TABLE} WHERE key = %s FOR UPDATE", (key,))
                row = cur.fetchone()
            (text,) = row
            state = LimiterState.from_json(text) if text else None
            new_state, result = fn(state)
            cur.execute(f"UPDATE {TABLE} SET state = %s WHERE key = %s", (json.dumps(asdict(new_state)), key))
            return result

        return self._execute(work)


#: Key of the transaction-level advisory lock that serializes the table's creation (any constant of our own).
_CREATE_LOCK = 0x7469636B  # "tick"


def _create_table(cur: Any) -> None:
    """Create the limiter's table if it is missing. CREATE TABLE IF NOT EXISTS alone races: two machines creating
    it at once fail one with UniqueViolation on pg_type (seen: a download step failed on its first grant), so the
    creators queue on an advisory lock held until the transaction ends."""
    cur.execute("SELECT pg_advisory_xact_lock(%s)", (_CREATE_LOCK,))
    cur.execute(f"CREATE TABLE IF NOT EXISTS {TABLE} (key TEXT PRIMARY KEY, state TEXT)")
