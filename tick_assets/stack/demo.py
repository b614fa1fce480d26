"""`tick-assets demo`: the whole platform on the bundled emulator, driven like a user drives it.

Starts the emulator on 127.0.0.1, a Dagster webserver and daemon on an instance under DATA_DIR/dagster_home,
launches one backfill of every partitioned asset (raw data types, features, analytics, with their checks) for a
few days of the configured instruments, waits for it and for the automation that refreshes the warehouse
views, and prints what landed. With `ui=True` the UI keeps serving until Ctrl-C.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import socket
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from tick_assets import settings
from tick_assets.assets.offered import NOT_OFFERED
from tick_assets.assets.partitions import partition_key
from tick_assets.emulator.server import EmulatorConfig, EmulatorServer
from tick_assets.lake import open_lake
from tick_assets.lake.warehouse import open_catalog
from tick_assets.stack.distributed import DistributedStack
from tick_assets.stack.localstack import DagsterStack, backfill_progress
from tick_assets.stack.progress import StatusLine

#: Pool `tardis` of the demo instance: downloads at once across runs.
DEMO_TARDIS_SLOTS = 4
#: Any non-empty key: the emulator accepts it and serves every day (without one, only each month's first day).
EMULATOR_KEY = "emulator-demo-key"


@dataclass
class DemoResult:
    """What the demo materialized and where it lives."""

    seconds: float
    backfill_status: str
    runs: int
    partitions: dict[str, int] = field(default_factory=dict)
    rows: dict[str, int] = field(default_factory=dict)
    #: Partitions per asset whose data type Tardis does not offer for the instrument (empty by design).
    not_offered: dict[str, int] = field(default_factory=dict)
    expected_partitions: int = 0
    home: Path = Path()
    data_dir: Path = Path()
    url: str = ""
    #: From launching the backfill to its end.
    backfill_seconds: float = 0.0
    views_refreshed: bool = False
    #: The catalog of views this machine can query (DATA_DIR/warehouse.duckdb on one machine).
    warehouse: Path | None = None

    @property
    def ok(self) -> bool:
        """Every asset has every partition of the demo range."""
        return self.backfill_status == "COMPLETED_SUCCESS" and all(
            n == self.expected_partitions for n in self.partitions.values()
        )


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _usable_port(port: int) -> int:
    """`port` if it is free on 127.0.0.1, else 0 (any free port)."""
    if port == 0:
        return 0
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return 0
    return port


def _asset_paths(stack: DagsterStack) -> list[list[str]]:
    nodes = stack.graphql("{ assetNodes { assetKey { path } isPartitioned } }")["assetNodes"]
    return [n["assetKey"]["path"] for n in nodes if n["isPartitioned"]]


def _row_counts(
    stack: DagsterStack, paths: list[list[str]], keys: list[str]
) -> tuple[dict[str, int], dict[str, int], dict[str, int]]:
    """Per asset: partitions materialized, their rows, and how many of them Tardis does not offer."""
    query = """
    query($key: AssetKeyInput!) { assetOrError(assetKey: $key) { ... on Asset {
      assetMaterializations(limit: 10000) { partition metadataEntries {
        label ... on IntMetadataEntry { intValue } } } } } }
    """
    partitions, rows, not_offered = {}, {}, {}
    for path in paths:
        events = stack.graphql(query, {"key": {"path": path}})["assetOrError"]["assetMaterializations"]
        latest: dict[str, tuple[int, bool]] = {}
        for event in reversed(events):  # oldest first: the newest materialization of a partition wins
            if event["partition"] not in keys:  # an earlier demo's days, kept in the same instance
                continue
            entries = event["metadataEntries"]
            counts = [e["intValue"] for e in entries if e["label"] == "dagster/row_count"]
            offered = all(e["label"] != NOT_OFFERED for e in entries)
            latest[event["partition"]] = (counts[0] if counts else 0, offered)
        name = "/".join(path)
        partitions[name], rows[name] = len(latest), sum(n for n, _ in latest.values())
        not_offered[name] = sum(not offered for _, offered in latest.values())
    return partitions, rows, not_offered


def _wait_for_views(stack: DagsterStack, after: float, timeout: float = 180.0) -> bool:
    query = """{ assetOrError(assetKey: {path: ["warehouse", "views"]}) { ... on Asset {
      assetMaterializations(limit: 1) { timestamp } } } }"""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = stack.graphql(query)["assetOrError"] or {}
        events = found.get("assetMaterializations") or []
        if events and float(events[0]["timestamp"]) / 1000 >= after:
            return True
        time.sleep(2)
    return False


def _wait(stack: DagsterStack, backfill_id: str, progress: StatusLine | None) -> dict:
    """Wait for the backfill, drawing its progress on `progress` (polled every 1.5 s) if given."""
    if progress is None:
        return stack.wait_for_backfill(backfill_id, timeout=3600)
    launched = time.monotonic()
    try:
        return stack.wait_for_backfill(
            backfill_id,
            timeout=3600,
            poll=1.5,
            progress=lambda state: progress.show(backfill_progress(state, time.monotonic() - launched)),
        )
    finally:
        progress.close()


PROFILES = ("single", "distributed")
#: Settings that say where a machine keeps things or reaches the shared servers: the distributed stack sets them.
_INFRASTRUCTURE_VARS = {
    "TICK_ASSETS_DATA_DIR",
    "TICK_ASSETS_LAKE",
    settings.LIMITER_URL_VAR,
    settings.EXECUTOR_VAR,
    settings.CELERY_BROKER_VAR,
    settings.CELERY_BACKEND_VAR,
    "TICK_ASSETS_DAGSTER_LOCAL_DIR",
}


@contextmanager
def _environ(values: dict[str, str]) -> Iterator[None]:
    """`values` in this process's environment for the block (the S3 credentials while the summary reads the lake)."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@contextmanager
def open_stack(
    profile: str, data_dir: Path, env: dict[str, str], port: int, workers: int, say: Callable[[str], None]
) -> Iterator[tuple[DagsterStack, DistributedStack | None]]:
    """The Dagster stack of `profile`, its pool `tardis` set: (webserver + daemon, the distributed stack if any)."""
    if profile == "single":
        home = data_dir / "dagster_home"
        say(f"starting the Dagster webserver and daemon (instance {home}) ...")
        with DagsterStack(home, env, port=port) as stack:
            stack.set_pool_limit("tardis", DEMO_TARDIS_SLOTS)
            yield stack, None
        return
    if profile != "distributed":
        raise ValueError(f"profile {profile!r}: use one of {', '.join(PROFILES)}")
    home = data_dir / "distributed"
    # The machines of the profile start from a clean environment: hand them the user's own settings (instruments,
    # data types, start date, days per run...), not the ones that say where this machine keeps things.
    env = {
        **{
            k: v
            for k, v in os.environ.items()
            if k.startswith("TICK_ASSETS_") and k not in _INFRASTRUCTURE_VARS
        },
        **env,
    }
    env.pop("TICK_ASSETS_DATA_DIR", None)  # each machine of the stack has its own
    say(
        f"starting Postgres, redis-server, SeaweedFS (S3), a code server, the webserver, the daemon and {workers} "
        f"Celery workers on 127.0.0.1 (throwaway, under {home}) ..."
    )
    with DistributedStack(home, env=env, workers=workers, port=port, tardis_slots=DEMO_TARDIS_SLOTS) as dist:
        assert dist.dagster is not None
        yield dist.dagster, dist


def describe_stack(stack: DagsterStack, dist: DistributedStack | None) -> str:
    """Where each part of a running stack listens and keeps its files (never a credential)."""
    lines = [f"Dagster UI        {stack.url}"]
    if dist is None:
        lines.append(f"instance          {stack.home} (SQLite), steps on this machine's processes")
        return "\n".join(lines)
    assert dist.pg and dist.redis and dist.s3
    lines += [
        f"Postgres          127.0.0.1:{dist.pg.port} (Dagster's runs, events and pools; the shared limiter)",
        f"redis-server      127.0.0.1:{dist.redis.port} (the Celery broker and result backend)",
        f"S3 (SeaweedFS)    {dist.s3.endpoint}, lake {dist.lake_url}",
        f"code server       127.0.0.1:{stack.code_server_port}",
        *(
            f"Celery worker     {w.hostname}, its own folder {w.root} (log {w.log.name})"
            for w in dist.celery.values()
        ),
        "credentials       generated for this stack, held only in its processes' environment",
    ]
    return "\n".join(lines)


def run_demo(
    first_day: dt.date,
    days: int,
    scale: int,
    data_dir: Path,
    ui: bool = False,
    port: int = 0,
    say: Callable[[str], None] = print,
    progress: StatusLine | None = None,
    profile: str = "single",
    workers: int = 2,
    backfill: bool = True,
) -> DemoResult:
    """Run the demo on the stack of `profile` and return what landed, showing the backfill's progress on
    `progress` if given; with `ui`, keep serving until interrupted; without `backfill`, only serve."""
    data_dir = data_dir.absolute()
    instruments = settings.instruments()
    keys = [
        partition_key(first_day + dt.timedelta(days=d), inst) for inst in instruments for d in range(days)
    ]
    started = time.monotonic()
    emulator_config = EmulatorConfig(
        cache_dir=data_dir / "emulator",
        scale=scale,
        exported_until=first_day + dt.timedelta(days=days),
    )
    with _sigterm_as_interrupt(), EmulatorServer(emulator_config) as emulator:
        env = {
            "TARDIS_DATASETS_URL": emulator.datasets_url,
            "TARDIS_API_URL": emulator.api_url,
            "TARDIS_API_KEY": EMULATOR_KEY,  # never a real key: it would only be sent to the emulator
            "TICK_ASSETS_DATA_DIR": str(data_dir),
        }
        say(
            f"emulator on {emulator.base_url} (scale {scale:,} book events a day, cache {emulator_config.cache_dir})"
        )
        usable = _usable_port(port)
        if port and not usable:
            say(f"port {port} is taken: using a free one")
        with open_stack(profile, data_dir, env, usable, workers, say) as (stack, dist):
            result = DemoResult(
                seconds=0.0,
                backfill_status="NOT_RUN",
                runs=0,
                home=stack.home,
                data_dir=data_dir,
                url=stack.url,
            )
            if backfill:
                result = _backfill(stack, dist, keys, progress, say, started, data_dir)
                say(summary(result, result.views_refreshed, first_day, instruments[0], dist))
            if ui:
                stack.cli("sensor", "start", "-w", str(stack.workspace), "tardis_daily_exports")
                say("")
                say(describe_stack(stack, dist))
                say(
                    f"\nThe Dagster UI is at {stack.url} (the emulator keeps serving at {emulator.base_url}, "
                    f"{days} days from {first_day}); the daily export sensor is on. Press Ctrl-C to stop everything."
                )
                try:
                    while True:
                        time.sleep(1)
                except KeyboardInterrupt:
                    say("stopping every process the stack started ...")
    return result


def _backfill(
    stack: DagsterStack,
    dist: DistributedStack | None,
    keys: list[str],
    progress: StatusLine | None,
    say: Callable[[str], None],
    started: float,
    data_dir: Path,
) -> DemoResult:
    """Backfill every partitioned asset over `keys` and collect what landed."""
    paths = _asset_paths(stack)
    say(f"{stack.url}: backfill of {len(paths)} assets x {len(keys)} partitions")
    backfill_id = stack.launch_backfill(paths, keys, title="tick-assets demo")
    launched = time.time()
    state = _wait(stack, backfill_id, progress)
    backfill_seconds = time.time() - launched
    say("waiting for the automation to refresh warehouse/views ...")
    views = _wait_for_views(stack, after=launched)
    warehouse = settings.warehouse_path(data_dir)
    if dist is not None:  # the views asset ran on a worker: build this machine's catalog over the S3 lake
        warehouse = (
            dist.home / "warehouse.duckdb"
        )  # beside the throwaway stack, not over the single machine's
        with _environ(dist.s3.env() if dist.s3 else {}):
            views = _publish_local_catalog(warehouse, data_dir, dist.lake_url)
    partitions, rows, not_offered = _row_counts(stack, paths, keys)
    return DemoResult(
        seconds=time.monotonic() - started,
        backfill_status=state["status"],
        runs=len(state["runs"]),
        partitions=partitions,
        rows=rows,
        not_offered=not_offered,
        expected_partitions=len(keys),
        home=stack.home,
        data_dir=data_dir,
        url=stack.url,
        backfill_seconds=backfill_seconds,
        views_refreshed=views,
        warehouse=warehouse,
    )


def _publish_local_catalog(warehouse: Path, data_dir: Path, lake_url: str) -> bool:
    """`warehouse` with views over the lake at `lake_url` (what `tick-assets warehouse` does)."""
    from tick_assets.lake.warehouse import catalog_datasets, publish_catalog

    lake = open_lake(lake_url, scratch=data_dir / "scratch")
    publish_catalog(warehouse, lake, catalog_datasets(lake, settings.raw_data_types()))
    return True


def summary(
    result: DemoResult,
    views_refreshed: bool,
    first_day: dt.date,
    instrument: str,
    dist: DistributedStack | None = None,
) -> str:
    """The text the demo prints: rows per asset, a few feature rows, where the data is, a query to try."""
    lines = [
        "",
        f"backfill {result.backfill_status} in {result.runs} runs, {result.backfill_seconds:.0f} s "
        f"({result.seconds:.0f} s since the start)",
        "",
        f"{'asset':<32} {'partitions':>10} {'not offered':>12} {'rows':>12}",
    ]
    lines += [
        f"{name:<32} {result.partitions[name]:>10} {result.not_offered.get(name, 0):>12} {result.rows[name]:>12,}"
        for name in sorted(result.partitions)
    ]
    if any(result.not_offered.values()):
        lines.append(
            "(not offered: Tardis has no such dataset for that instrument; an empty partition that says so)"
        )
    warehouse = result.warehouse or settings.warehouse_path(result.data_dir)
    query = (
        "SELECT instrument, date_trunc('hour', ts) AS hour, avg(mid) AS mid, avg(spread_bps) AS spread_bps, "
        "avg(imbalance_5) AS imbalance_5 FROM features.depth GROUP BY ALL ORDER BY ALL LIMIT 5"
    )
    lake_url = dist.lake_url if dist else settings.lake_url(result.data_dir)
    try:
        with (
            _environ(dist.s3.env() if dist and dist.s3 else {}),
            open_catalog(warehouse, open_lake(lake_url, scratch=result.data_dir / "scratch")) as con,
        ):
            sample = con.sql(
                "SELECT ts, mid, round(spread_bps, 4) AS spread_bps, round(imbalance_5, 4) AS imbalance_5, "
                "bid_depth_10, updates "
                f"FROM features.depth WHERE instrument = '{instrument}' AND mid IS NOT NULL "
                f"AND ts >= '{first_day}' ORDER BY ts LIMIT 5"
            )
            lines += ["", f"features/depth, {instrument}, first rows with a book:", str(sample)]
    except duckdb.Error as exc:
        lines += ["", f"(could not read {warehouse}: {exc})"]
    charts = (
        "in each partition's metadata in the UI, and on the disk of the worker that drew it"
        if dist
        else f"{result.data_dir / 'reports' / 'daily_summary'}/<exchange-SYMBOL>/<date>.png"
    )
    lines += [
        "",
        f"lake (Parquet):     {lake_url}/<asset path>/exchange_id=.../symbol_id=.../date=.../",
        f"warehouse (DuckDB): {warehouse}  views raw.*, features.*, analytics.* over the lake"
        f"{'' if views_refreshed else ' (not refreshed yet)'}",
        f"daily charts:       {charts}",
        f"Dagster instance:   {'Postgres (throwaway, with the stack)' if dist else result.home}",
    ]
    if dist is None:
        lines += [
            "",
            "try:",
            f'  {sys.executable} -c "import duckdb; print(duckdb.connect(\'{warehouse}\', read_only=True).sql(\\"{query}\\"))"',
        ]
    return "\n".join(lines)
