"""The distributed profile on one machine: every server it needs, started here on 127.0.0.1 and always stopped.

- Postgres (a throwaway cluster): Dagster's runs, events and concurrency pools, and the shared rate limiter;
- Redis: the Celery broker and result backend;
- SeaweedFS (`weed mini`): the S3 lake;
- one Dagster code server, webserver and daemon (the run workers start on the code server's side);
- N Celery step workers, each in a private folder of its own (data dir, scratch, Dagster's local files, TMPDIR,
  HOME): they share nothing with anyone but what a cluster shares, the servers above.

    with DistributedStack(home, env={"TARDIS_DATASETS_URL": ...}) as stack:
        stack.dagster.launch_backfill(...)    # a DagsterStack: the same GraphQL helpers
        stack.kill_worker("w1")                # kill -9 of a whole worker (master and step processes)

Every credential is generated here and handed over in the environment only.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from tick_assets import settings
from tick_assets.assets.executors import CELERY_QUEUE
from tick_assets.assets.resources import TARDIS_POOL
from tick_assets.stack.localstack import DISTRIBUTED, DagsterStack
from tick_assets.stack.postgres import USER, PostgresServer
from tick_assets.stack.redis import RedisServer
from tick_assets.stack.s3server import S3Server

log = logging.getLogger(__name__)
LAKE_BUCKET = "tick-lake"
LOCAL_DIR_VAR = "TICK_ASSETS_DAGSTER_LOCAL_DIR"
#: Environment variables of the caller that must not leak into the stack's processes (each gets its own).
_OWN_VARS = ("TICK_ASSETS_", "DAGSTER_", "AWS_", "TARDIS_")


@dataclass
class CeleryWorker:
    """One Celery step worker: its name (`<name>@127.0.0.1` in Dagster's events), private folder and process."""

    name: str
    root: Path
    proc: subprocess.Popen
    #: Where this start's lines begin in the log (a restarted worker appends to the log of its earlier life).
    log_offset: int = 0

    @property
    def hostname(self) -> str:
        """The worker's Celery node name (what Dagster records as "Celery worker")."""
        return f"{self.name}@127.0.0.1"

    @property
    def log(self) -> Path:
        """The worker's log file."""
        return self.root / "worker.log"


@dataclass
class DistributedStack:
    """Postgres + Redis + S3 + Dagster (code server, webserver, daemon) + Celery workers; see the module doc."""

    home: Path
    #: Settings for every Dagster process and worker (Tardis URLs and key, instruments, days per run...).
    env: dict[str, str] = field(default_factory=dict, repr=False)
    workers: int = 2
    worker_concurrency: int = 2
    #: Downloads at once across every run and worker (pool `tardis`, set before the first run).
    tardis_slots: int = 4
    port: int = 0
    instance_overrides: dict = field(default_factory=dict)
    #: The backfill daemon's interval (DagsterStack.backfill_interval: tests only; None is Dagster's 30 s).
    backfill_interval: float | None = None
    pg: PostgresServer | None = None
    redis: RedisServer | None = None
    s3: S3Server | None = None
    dagster: DagsterStack | None = None
    celery: dict[str, CeleryWorker] = field(default_factory=dict)

    @property
    def lake_url(self) -> str:
        """The lake every process writes to."""
        return f"s3://{LAKE_BUCKET}/lake"

    def shared_env(self) -> dict[str, str]:
        """What every machine of the profile is given: the servers' addresses and credentials."""
        assert self.pg and self.redis and self.s3
        return {
            "DAGSTER_PG_HOST": "127.0.0.1",
            "DAGSTER_PG_PORT": str(self.pg.port),
            "DAGSTER_PG_USERNAME": USER,
            "DAGSTER_PG_PASSWORD": self.pg.password,
            "DAGSTER_PG_DB": "postgres",
            settings.LIMITER_URL_VAR: self.pg.url,
            "TICK_ASSETS_LAKE": self.lake_url,
            **self.s3.env(),
            settings.EXECUTOR_VAR: "celery",
            settings.CELERY_BROKER_VAR: self.redis.url(0),
            settings.CELERY_BACKEND_VAR: self.redis.url(1),
        }

    def _machine_env(self, root: Path) -> dict[str, str]:
        """The environment of a process on a "machine" whose own disk is `root`."""
        base = {k: v for k, v in os.environ.items() if not k.startswith(_OWN_VARS)}
        for sub in ("data", "local", "tmp", "home"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        return {
            **base,
            **self.shared_env(),
            **self.env,
            "TICK_ASSETS_DATA_DIR": str(root / "data"),
            LOCAL_DIR_VAR: str(root / "local"),
            "TMPDIR": str(root / "tmp"),
            "HOME": str(root / "home"),
        }

    def start(self, timeout: float = 240.0) -> DistributedStack:
        """Start every server, set the pools, start the workers; stop everything if any part fails."""
        try:
            # each assigned before it starts, so a start that fails half-way is still stopped below
            self.pg = PostgresServer()
            self.pg.start()
            self.redis = RedisServer()
            self.redis.start()
            self.s3 = S3Server(bucket=LAKE_BUCKET)
            self.s3.start()
            control = self.home / "control"
            env = self._machine_env(control)
            self.dagster = DagsterStack(
                control / "dagster_home",
                env=env,
                inherit_env=False,
                port=self.port,
                cwd=control,
                profile=DISTRIBUTED,
                code_server=True,
                instance_overrides=self.instance_overrides,
                backfill_interval=self.backfill_interval,
            )
            self.dagster.start(timeout=timeout)
            self.dagster.set_pool_limit(TARDIS_POOL, self.tardis_slots)  # at deploy time: see dagster.yaml
            for n in range(1, self.workers + 1):
                self.start_worker(f"w{n}")
            for worker in self.celery.values():
                self._wait_worker_ready(worker, timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def start_worker(self, name: str) -> CeleryWorker:
        """Start Celery worker `name` in its own folder (reused if it ran before: a restart on the same disk)."""
        root = self.home / "workers" / name
        env = self._machine_env(root)
        log = open(root / "worker.log", "ab")  # noqa: SIM115 - closed with the process
        offset = log.tell()
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "tick_assets.assets.celery_app",
                "worker",
                "-Q",
                CELERY_QUEUE,
                "--concurrency",
                str(self.worker_concurrency),
                "--pool",
                "prefork",
                "-n",
                f"{name}@127.0.0.1",
                "--without-gossip",
                "--without-mingle",
                "--loglevel",
                "INFO",
            ],
            cwd=root,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        worker = CeleryWorker(name, root, proc, offset)
        self.celery[name] = worker
        return worker

    def _wait_worker_ready(self, worker: CeleryWorker, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if worker.proc.poll() is not None:
                tail = worker.log.read_text(errors="replace")[-3000:]
                raise RuntimeError(f"Celery worker {worker.name} exited ({worker.proc.returncode}):\n{tail}")
            with open(worker.log, "rb") as f:
                f.seek(worker.log_offset)
                if f"{worker.hostname} ready.".encode() in f.read():
                    return
            time.sleep(0.3)
        raise TimeoutError(f"Celery worker {worker.name} not ready in {timeout:.0f} s; see {worker.log}")

    def wait_worker_ready(self, name: str, timeout: float = 120.0) -> None:
        """Wait until worker `name` consumes the queue."""
        self._wait_worker_ready(self.celery[name], timeout)

    def worker_pids(self, name: str) -> list[int]:
        """The processes of worker `name`: its master and its step (pool) processes."""
        pgid = self.celery[name].proc.pid
        out = subprocess.run(["ps", "-e", "-o", "pid=,pgid="], capture_output=True, text=True).stdout
        return [int(p) for p, g in (line.split() for line in out.splitlines()) if int(g) == pgid]

    def kill_worker(self, name: str) -> None:
        """kill -9 of worker `name` as a whole (master and step processes), as when its machine is lost."""
        worker = self.celery[name]
        with contextlib.suppress(ProcessLookupError):
            os.killpg(worker.proc.pid, signal.SIGKILL)
        worker.proc.wait()

    def stop(self) -> None:
        """Stop the workers, Dagster and the servers (in that order), each part even if another fails to stop;
        idempotent."""
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            workers = list(self.celery.values())
            for worker in workers:  # all asked at once: each finishes (or drops) its step meanwhile
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(worker.proc.pid, signal.SIGTERM)
            for worker in workers:
                try:
                    worker.proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(worker.proc.pid, signal.SIGKILL)
                    worker.proc.wait()
            self.celery.clear()
            parts = [
                self.dagster.stop if self.dagster else None,
                self.s3.stop if self.s3 else None,
                self.redis.stop if self.redis else None,
                self.pg.close if self.pg else None,
            ]
            for stop_part in parts:
                if stop_part is None:
                    continue
                try:
                    stop_part()
                except Exception:
                    log.exception("could not stop %s; stopping the rest", stop_part)
            self.dagster = self.pg = self.redis = self.s3 = None
        finally:
            signal.signal(signal.SIGINT, previous)

    def __enter__(self) -> DistributedStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
