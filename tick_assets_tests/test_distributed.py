"""The distributed profile for real, on 127.0.0.1 (slow): a throwaway Postgres (Dagster's storage and the shared
limiter), redis-server (the Celery broker), SeaweedFS (the S3 lake), one code server + webserver + daemon and two
Celery workers, each in a private folder (no disk shared with anything). One stack serves every test here.

The emulator enforces RATE requests/s (burst EMULATOR_BURST) and the limiter is set to the same rate; Dagster
backfills the whole graph through the UI's GraphQL API.
"""

from __future__ import annotations

import collections
import datetime as dt
import gzip
import json
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg2
import pytest

from tick_assets.assets.partitions import parse_partition_key, partition_key, split_instrument
from tick_assets.emulator.faults import FaultConfig
from tick_assets.emulator.server import EmulatorConfig, EmulatorServer
from tick_assets.lake import connect, open_lake
from tick_assets.lake.layout import partition_relpath
from tick_assets.stack.distributed import DistributedStack
from tick_assets.tardis.ratelimit_postgres import TABLE
from tick_assets_tests.conftest import EXPORTED_UNTIL, TEST_BACKFILL_INTERVAL
from tick_assets_tests.helpers.exposure import files_holding

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1500)]

INSTRUMENTS = ["binance-futures:BTCUSDT", "deribit:BTC-PERPETUAL"]
DATA_TYPES = ["trades", "book_snapshot_25"]
RATE = 1.0  # requests/s the emulator allows, and the limiter's rate
EMULATOR_BURST = (
    2  # the emulator's bucket; the limiter's is 1 (a request's network jitter must not cost a 429)
)
LEASE_TTL = 6.0
#: Far below the default hour, and above this suite's longest step (a ranged download waiting on the 1/s limiter:
#: about 20 s), with room for a loaded machine: a step that outlives it is started twice (asserted below not to).
VISIBILITY_TIMEOUT = 60.0
SCALE = 3000

_ENGINE_EVENTS = """
query($id: ID!) { logsForRun(runId: $id, limit: 5000) { __typename
  ... on EventConnection { events { __typename
    ... on EngineEvent { message stepKey metadataEntries { label ... on TextMetadataEntry { text } } }
    ... on ExecutionStepStartEvent { stepKey } } } } }
"""
_MATERIALIZATIONS = """
query($key: AssetKeyInput!) { assetOrError(assetKey: $key) { ... on Asset {
  assetMaterializations(limit: 10000) { partition runId metadataEntries {
    label ... on IntMetadataEntry { intValue } } } } } }
"""


def _days(first: dt.date, n: int) -> list[str]:
    return [partition_key(first + dt.timedelta(days=d), inst) for inst in INSTRUMENTS for d in range(n)]


@pytest.fixture(scope="module")
def emulator(synth_cache: Path) -> Iterator[EmulatorServer]:
    """An emulator that answers more than RATE requests/s (burst EMULATOR_BURST) with 429."""
    config = EmulatorConfig(
        host="127.0.0.1",
        port=0,
        cache_dir=synth_cache,
        scale=SCALE,
        exported_until=EXPORTED_UNTIL,
        faults=FaultConfig(rate_limit=RATE, rate_burst=EMULATOR_BURST),
    )
    with EmulatorServer(config) as server:
        yield server


@pytest.fixture(scope="module")
def stack(emulator: EmulatorServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DistributedStack]:
    """The whole distributed stack, stopped at the end of the module."""
    env = {
        "TARDIS_DATASETS_URL": emulator.datasets_url,
        "TARDIS_API_URL": emulator.api_url,
        "TARDIS_API_KEY": "distributed-test-key",
        "TICK_ASSETS_INSTRUMENTS": ",".join(INSTRUMENTS),
        "TICK_ASSETS_DATA_TYPES": ",".join(DATA_TYPES),
        "TICK_ASSETS_START_DATE": "2024-01-01",
        "TICK_ASSETS_REQUESTS_PER_SECOND": str(RATE),
        "TICK_ASSETS_REQUEST_BURST": "1",
        "TICK_ASSETS_LIMITER_LEASE_TTL": str(LEASE_TTL),
        "TICK_ASSETS_CELERY_VISIBILITY_TIMEOUT": str(VISIBILITY_TIMEOUT),
    }
    with DistributedStack(
        tmp_path_factory.mktemp("distributed"), env=env, backfill_interval=TEST_BACKFILL_INTERVAL
    ) as running:
        yield running


@pytest.fixture
def s3_env(stack: DistributedStack, monkeypatch: pytest.MonkeyPatch) -> DistributedStack:
    """This process reads the lake like any machine: the S3 endpoint and credentials in the environment."""
    assert stack.s3 is not None
    for name, value in stack.s3.env().items():
        monkeypatch.setenv(name, value)
    return stack


def _file(dataset: str, key: str) -> str:
    """The lake file of partition `key` of `dataset`."""
    day, instrument = parse_partition_key(key)
    return partition_relpath(dataset, *split_instrument(instrument), day)


def _asset_paths(stack: DistributedStack) -> list[list[str]]:
    nodes = stack.dagster.graphql("{ assetNodes { assetKey { path } isPartitioned } }")["assetNodes"]
    return [n["assetKey"]["path"] for n in nodes if n["isPartitioned"]]


def _materializations(stack: DistributedStack, path: list[str], keys: list[str]) -> list[tuple[str, int]]:
    """(partition, rows) of every materialization of `path` among `keys`, oldest first."""
    found = stack.dagster.graphql(_MATERIALIZATIONS, {"key": {"path": path}})["assetOrError"]
    events = (found or {}).get("assetMaterializations") or []
    out = []
    for event in reversed(events):
        if event["partition"] in keys:
            rows = [e["intValue"] for e in event["metadataEntries"] if e["label"] == "dagster/row_count"]
            out.append((event["partition"], rows[0] if rows else -1))
    return out


def _celery_steps(stack: DistributedStack, run_id: str) -> list[tuple[str, str]]:
    """(step key, Celery worker) of each step of the run sent to a worker, from Dagster's "Executing steps ... in
    celery worker" events."""
    logs = stack.dagster.graphql(_ENGINE_EVENTS, {"id": run_id})["logsForRun"]
    return [
        (event.get("stepKey") or "", entry["text"])
        for event in logs.get("events") or []
        for entry in event.get("metadataEntries") or []
        if entry["label"] == "Celery worker"
    ]


def _steps_per_worker(stack: DistributedStack, run_ids: list[str]) -> collections.Counter[str]:
    """Celery worker -> steps it ran."""
    return collections.Counter(worker for run_id in run_ids for _, worker in _celery_steps(stack, run_id))


def _lake_rows(stack: DistributedStack, tmp_path: Path) -> dict[str, dict[str, int]]:
    """Dataset -> lake file -> rows, read from the S3 lake by this process."""
    lake = open_lake(stack.lake_url, scratch=tmp_path / "reader")
    con = connect(lake)
    out: dict[str, dict[str, int]] = {}
    for dataset in lake.datasets():
        out[dataset] = {
            f: con.execute(f"SELECT count(*) FROM read_parquet('{lake.uri(f)}')").fetchall()[0][0]
            for f in lake.files(dataset)
        }
    return out


def _served(stack: DistributedStack) -> dict[str, tuple[str, int]]:
    """csv.gz file name -> (worker that downloaded it, rows), from the workers' private download caches."""
    out: dict[str, tuple[str, int]] = {}
    for name, worker in stack.celery.items():
        for path in (worker.root / "data" / "tardis").glob("*.csv.gz"):
            with gzip.open(path, "rb") as f:
                rows = max(sum(1 for _ in f) - 1, 0)
            assert path.name not in out, f"{path.name} downloaded by {out[path.name][0]} and {name}"
            out[path.name] = (name, rows)
    return out


def _worst_second(times: list[float]) -> int:
    """The most requests in any 1 s window."""
    times = sorted(times)
    worst, j = 0, 0
    for i, t in enumerate(times):
        while times[j] <= t - 1.0:
            j += 1
        worst = max(worst, i - j + 1)
    return worst


def test_a_backfill_over_two_workers_lands_every_partition_once_at_the_shared_rate(
    stack: DistributedStack, emulator: EmulatorServer, s3_env: DistributedStack, tmp_path: Path
) -> None:
    keys = _days(dt.date(2024, 1, 2), 3)
    paths = _asset_paths(stack)
    before = len(emulator.request_times())
    started = time.monotonic()
    backfill = stack.dagster.launch_backfill(paths, keys, title="distributed")
    state = stack.dagster.wait_for_backfill(backfill, timeout=900)
    wall = time.monotonic() - started
    assert state["status"] == "COMPLETED_SUCCESS", state

    # Every partition of every asset materialized exactly once, with the rows that are in the lake.
    lake = _lake_rows(stack, tmp_path)
    rows: dict[str, int] = {}
    for path in paths:
        name = "/".join(path)
        events = _materializations(stack, path, keys)
        assert sorted(p for p, _ in events) == sorted(keys), name  # each once
        assert {f: n for f, n in lake[name].items()} == {_file(name, k): n for k, n in events}, name
        rows[name] = sum(n for _, n in events)
        assert rows[name] > 0, name
    # The raw rows are the rows the emulator served, each file downloaded once by one worker.
    served = _served(stack)
    for data_type in DATA_TYPES:
        mine = {f: r for f, r in served.items() if f"_{data_type}_" in f}
        assert len(mine) == len(keys), data_type
        assert sum(r for _, r in mine.values()) == rows[f"raw/{data_type}"], data_type

    # Both workers ran steps, and every step ran on one of them.
    run_ids = [r["id"] for r in state["runs"]]
    per_worker = _steps_per_worker(stack, run_ids)
    assert set(per_worker) == {w.hostname for w in stack.celery.values()}, per_worker
    steps = stack.dagster.step_stats(run_ids)
    assert sum(per_worker.values()) == len(steps), "a step ran twice: it outlived the visibility timeout"
    longest = max(step["endTime"] - step["startTime"] for step in steps)
    assert longest < VISIBILITY_TIMEOUT / 2, (
        f"the longest step took {longest:.0f} s: raise VISIBILITY_TIMEOUT"
    )

    # One shared rate across both workers: never more than RATE + burst in a second, close to RATE throughout,
    # and not one 429.
    # (every request the limiter granted: the downloads and the exchange metadata each step reads first)
    times = emulator.request_times()[before:]
    assert len(times) > len(DATA_TYPES) * len(keys)
    span = max(times) - min(times)
    achieved = (len(times) - 1) / span
    gaps = [round(b - a, 2) for a, b in zip(sorted(times), sorted(times)[1:], strict=False)]
    assert _worst_second(times) <= RATE + EMULATOR_BURST, gaps
    assert 0.9 * RATE <= achieved <= RATE * 1.05 + 1 / span, gaps
    assert emulator.stats["counts"].get("rate_limited", 0) == 0

    # Nothing of the lake on any machine's own disk; no credential in any file of any machine.
    for machine in [stack.home / "control", *(w.root for w in stack.celery.values())]:
        assert not (machine / "data" / "lake").exists(), machine
    secrets = [stack.pg.password, stack.redis.password, stack.s3.secret_key, stack.env["TARDIS_API_KEY"]]
    assert [files_holding(s, stack.home) for s in secrets] == [[]] * len(secrets)
    print(
        f"\nbackfill of {len(paths)} assets x {len(keys)} partitions: {wall:.1f} s, {len(state['runs'])} runs; "
        f"steps per worker {dict(per_worker)} (longest {longest:.1f} s); rows per asset {rows}; "
        f"limiter: {len(times)} requests in {span:.1f} s = {achieved:.2f}/s (rate {RATE}), "
        f"worst second {_worst_second(times)}, 429s 0"
    )


def _live_leases(stack: DistributedStack, pids: set[int]) -> int:
    """Unexpired limiter leases held by `pids`, read from the limiter's table on Postgres."""
    assert stack.pg is not None
    with psycopg2.connect(stack.pg.url) as conn, conn.cursor() as cur:
        try:
            cur.execute(f"SELECT state FROM {TABLE}")
        except psycopg2.errors.UndefinedTable:  # no grant yet: the limiter makes its table on first use
            return 0
        states = [json.loads(text) for (text,) in cur.fetchall()]
    now = time.time()
    return sum(
        1 for state in states for lease in state["leases"].values() if lease[0] in pids and lease[3] > now
    )


def _download_started(stack: DistributedStack, run_id: str, timeout: float = 180) -> str:
    """The Celery worker running a download step of run `run_id`, once one has started (waits up to `timeout`)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for step, worker in _celery_steps(stack, run_id):
            if step.startswith("raw__"):
                return worker
        time.sleep(0.3)
    raise TimeoutError("no download step started")


def test_kill_9_of_a_worker_mid_download_gives_its_leases_back_and_a_rerun_completes(
    stack: DistributedStack, emulator: EmulatorServer, s3_env: DistributedStack, tmp_path: Path
) -> None:
    key = partition_key(dt.date(2024, 1, 8), INSTRUMENTS[0])
    paths = [["raw", "trades"]]
    emulator.set_faults(FaultConfig(rate_limit=RATE, rate_burst=EMULATOR_BURST, stall=1.0, stall_seconds=600))
    run_id = stack.dagster.launch_run(paths, key, title="kill -9")
    name = ""
    try:
        hostname = _download_started(stack, run_id)
        name = hostname.split("@")[0]
        # The download is stalled mid-body: its step holds a limiter lease on the server, renewed while it runs.
        pids = set(stack.worker_pids(name))
        deadline = time.monotonic() + 60
        while _live_leases(stack, pids) == 0:
            assert time.monotonic() < deadline, "the stalled download holds no lease"
            time.sleep(0.2)
        held = _live_leases(stack, pids)
        emulator.set_faults(FaultConfig(rate_limit=RATE, rate_burst=EMULATOR_BURST))
        stack.kill_worker(name)
        killed = time.monotonic()
        while _live_leases(stack, pids):
            assert time.monotonic() - killed < LEASE_TTL + 5, "the killed worker's leases did not lapse"
            time.sleep(0.1)
        leases_back = time.monotonic() - killed
        # The killed worker's step is handed on (acks late + visibility timeout); the run ends either way.
        status = stack.dagster.wait_for_run(run_id, timeout=600)
        first_outcome = time.monotonic() - killed
    finally:
        emulator.set_faults(FaultConfig(rate_limit=RATE, rate_burst=EMULATOR_BURST))
        if name and stack.celery[name].proc.poll() is not None:
            stack.start_worker(name)
            stack.wait_worker_ready(name)
    _check_lake(stack, paths, [key], tmp_path / "after", exact=status == "SUCCESS")
    # A re-run of the partition completes; nothing lost or duplicated in the lake.
    again = stack.dagster.wait_for_run(stack.dagster.launch_run(paths, key, title="re-run after kill -9"))
    assert again == "SUCCESS"
    _check_lake(stack, paths, [key], tmp_path / "rerun", exact=True)
    print(
        f"\nkill -9 of {hostname} mid-download holding {held} lease(s): leases back after {leases_back:.1f} s "
        f"(TTL {LEASE_TTL:.0f} s); the run ended {status} {first_outcome:.0f} s after the kill "
        f"(visibility timeout {VISIBILITY_TIMEOUT:.0f} s); re-run {again}"
    )


#: A download and a step downstream of it: lake writes and Dagster records on both sides of the fault.
_FAULT_PATHS = [["raw", "trades"], ["features", "trade_bars"]]


def _restart_postgres(stack: DistributedStack) -> None:
    assert stack.pg is not None
    stack.pg.stop("fast")
    time.sleep(5)
    stack.pg.start()


def _restart_s3(stack: DistributedStack) -> None:
    assert stack.s3 is not None
    stack.s3.restart(down_seconds=5)


@pytest.mark.parametrize(
    "server, restart, day",
    [("Postgres", _restart_postgres, dt.date(2024, 1, 12)), ("S3", _restart_s3, dt.date(2024, 1, 15))],
)
def test_a_server_restarted_mid_run_leaves_no_partition_recorded_without_its_file(
    stack: DistributedStack, s3_env: DistributedStack, tmp_path: Path, server: str, restart, day: dt.date
) -> None:
    """Postgres (Dagster's storage and the limiter) or the S3 lake down for 5 s while a download step runs."""
    key = partition_key(day, INSTRUMENTS[0])
    run_id = stack.dagster.launch_run(_FAULT_PATHS, key, title=f"{server} restart")
    _download_started(stack, run_id)
    restart(stack)
    outcome = _settle_and_check(stack, run_id, _FAULT_PATHS, key, tmp_path)
    print(f"\n{server} down 5 s during a download step: {outcome}")


def _check_lake(
    stack: DistributedStack, paths: list[list[str]], keys: list[str], tmp_path: Path, exact: bool
) -> None:
    """Every partition recorded as materialized has its file in the lake with the recorded rows (`exact`: and
    every partition of `keys` is recorded)."""
    lake = _lake_rows(stack, tmp_path)
    for path in paths:
        name = "/".join(path)
        latest = dict(_materializations(stack, path, keys))  # oldest first: the newest of each partition wins
        if exact:
            assert sorted(latest) == sorted(keys), name
        for key, rows in latest.items():
            assert lake.get(name, {}).get(_file(name, key)) == rows, (name, key, rows)


def _settle_and_check(
    stack: DistributedStack, run_id: str, paths: list[list[str]], key: str, tmp_path: Path
) -> str:
    """The run ends (either way) with no partition recorded without its file; if it did not succeed, a re-run
    of its partition completes and lands it once. Returns what happened."""
    started = time.monotonic()
    status = stack.dagster.wait_for_run(run_id, timeout=600)
    took = time.monotonic() - started
    _check_lake(stack, paths, [key], tmp_path / "after", exact=status == "SUCCESS")
    if status == "SUCCESS":
        return f"the run went on and succeeded ({took:.0f} s after the fault)"
    again = stack.dagster.wait_for_run(stack.dagster.launch_run(paths, key, title="re-run"))
    assert again == "SUCCESS"
    _check_lake(stack, paths, [key], tmp_path / "rerun", exact=True)
    return f"the run ended {status} ({took:.0f} s after the fault); the re-run succeeded"
