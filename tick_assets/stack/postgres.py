"""A real Postgres here (tests, `tick-assets stack`): a throwaway cluster (initdb + pg_ctl) in a folder of its own.

It listens on a free port of 127.0.0.1 only (and a unix socket in its directory). Connections over TCP need the
password this helper generates (scram-sha-256), so tests use URLs with a secret in them, as deployments do.
Postgres refuses to run as root: as root, the cluster's directory and processes belong to the `postgres` user
(the Debian package creates it), else `nobody`.

    with PostgresServer() as pg:
        url = pg.url            # postgresql://tick:<password>@127.0.0.1:<port>/postgres
        ...
        pg.stop() / pg.start()  # a restart keeps the data (for fault tests)
"""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

USER = "tick"


def pg_bin() -> Path:
    """The newest installed Postgres server binaries (`/usr/lib/postgresql/<version>/bin`)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    if not found:
        raise FileNotFoundError("no Postgres server here: apt-get install postgresql")
    return Path(found[-1]).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PostgresServer:
    """One throwaway Postgres cluster on 127.0.0.1, removed on stop."""

    def __init__(self) -> None:
        self.bin = pg_bin()
        self.dir = Path(tempfile.mkdtemp(prefix="tick-pg-"))
        self.data = self.dir / "data"
        self.port = _free_port()
        self.password = secrets.token_urlsafe(16)
        self._owner = None
        if os.geteuid() == 0:
            name = "postgres" if _user_exists("postgres") else "nobody"
            self._owner = pwd.getpwnam(name)
            os.chown(self.dir, self._owner.pw_uid, self._owner.pw_gid)
        try:
            self._initdb()
        except BaseException:
            shutil.rmtree(self.dir, ignore_errors=True)  # the password file with it
            raise

    @property
    def url(self) -> str:
        """A libpq URL with the password (what TICK_ASSETS_LIMITER_URL would hold)."""
        return f"postgresql://{USER}:{self.password}@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        def demote() -> None:
            if self._owner is not None:
                os.setgid(self._owner.pw_gid)
                os.setuid(self._owner.pw_uid)

        return subprocess.run(
            args, preexec_fn=demote, capture_output=True, text=True, check=check, cwd=self.dir, timeout=120
        )

    def _initdb(self) -> None:
        pwfile = self.dir / "pw"
        pwfile.write_text(self.password)
        try:
            self._initdb_with(pwfile)
        finally:
            pwfile.unlink(missing_ok=True)

    def _initdb_with(self, pwfile: Path) -> None:
        if self._owner is not None:
            os.chown(pwfile, self._owner.pw_uid, self._owner.pw_gid)
        self._run(
            str(self.bin / "initdb"),
            "-D",
            str(self.data),
            "-U",
            USER,
            f"--pwfile={pwfile}",
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "--no-sync",
            "-E",
            "UTF8",
        )

    def start(self) -> PostgresServer:
        """Start (or restart) the server and wait until it accepts connections."""
        options = (
            f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"
        )
        self._run(
            str(self.bin / "pg_ctl"),
            "-D",
            str(self.data),
            "-o",
            options,
            "-l",
            str(self.dir / "log"),
            "-w",
            "start",
        )
        return self

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (data kept); `mode` immediate is a crash."""
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop", check=False)

    def close(self) -> None:
        """Stop the server and remove its directory."""
        self.stop("immediate")
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True
