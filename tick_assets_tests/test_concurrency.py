"""Concurrency through the real daemon (slow): overlapping backfills and the same partitions materialized by
several runs at once land exactly the data of one clean run; cancelled and killed runs give their pool slots
back, so nothing deadlocks."""

from __future__ import annotations

import datetime as dt
import os
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest

from tick_assets.assets.sensors.dead_run_workers import run_worker
from tick_assets.emulator.faults import FaultConfig
from tick_assets.emulator.server import EmulatorConfig, EmulatorServer
from tick_assets.stack.localstack import DagsterStack
from tick_assets.stack.soak import compare, fingerprint, run_backfill
from tick_assets_tests.conftest import EXPORTED_UNTIL, TEST_BACKFILL_INTERVAL, TEST_SCALE
from tick_assets_tests.helpers.exposure import files_holding, listen_addresses

pytestmark = pytest.mark.slow
INSTRUMENTS = ["deribit:BTC-PERPETUAL"]  # one, to keep the daemon runs few enough for CI
#: The API key of these runs: after them no file of the data dir or the Dagster instance may hold it.
SECRET = "tk-CONCURRENCY-SECRET-4e1f9a"
GRAPH = [
    ["raw", "trades"],
    ["raw", "book_snapshot_25"],
    ["features", "depth"],
    ["features", "trade_bars"],
    ["analytics", "microstructure_1m"],
    ["analytics", "daily_summary"],
]


@dataclass
class Shared:
    """One webserver + daemon and one emulator for every test of this module (a stack takes ~30 s to start)."""

    stack: DagsterStack
    emulator: EmulatorServer
    data_dir: Path
    home: Path
    work: Path


@pytest.fixture(scope="module")
def shared(synth_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shared]:
    """The stack, with run monitoring intervals shorter than dagster.yaml's so slot release is quick to see."""
    work = tmp_path_factory.mktemp("concurrency")
    config = EmulatorConfig(
        host="127.0.0.1", port=0, cache_dir=synth_cache, scale=TEST_SCALE, exported_until=EXPORTED_UNTIL
    )
    emulator = EmulatorServer(config).start()
    overrides = {"run_monitoring": {"free_slots_after_run_end_seconds": 5, "poll_interval_seconds": 5}}
    data_dir, home = work / "data", work / "home"
    try:
        with DagsterStack(
            home,
            _env(emulator, data_dir),
            instance_overrides=overrides,
            backfill_interval=TEST_BACKFILL_INTERVAL,
        ) as stack:
            yield Shared(stack, emulator, data_dir, home, work)
    finally:
        emulator.stop()


def _env(emulator, data_dir: Path) -> dict[str, str]:
    return {
        "TARDIS_DATASETS_URL": emulator.datasets_url,
        "TARDIS_API_URL": emulator.api_url,
        "TARDIS_API_KEY": SECRET,
        "TICK_ASSETS_DATA_DIR": str(data_dir),
        "TICK_ASSETS_INSTRUMENTS": ",".join(INSTRUMENTS),
        "TICK_ASSETS_DATA_TYPES": "trades,book_snapshot_25",
        "TICK_ASSETS_BACKFILL_DAYS_PER_RUN": "2",
    }


def _keys(days: list[str]) -> list[str]:
    return [f"{d}|{i}" for i in INSTRUMENTS for d in days]


def _wait(condition: Callable[[], bool], what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(1)


def _days(run: dict) -> set[str]:
    """UTC days a ranged run covered (its partition range tags; one instrument here)."""
    start = run["tags"]["dagster/asset_partition_range_start"].split("|")[0]
    end = run["tags"]["dagster/asset_partition_range_end"].split("|")[0]
    first, last = dt.date.fromisoformat(start), dt.date.fromisoformat(end)
    return {str(first + dt.timedelta(days=i)) for i in range((last - first).days + 1)}


def _overlapping_pairs(runs: list[dict]) -> int:
    """Pairs of runs of different backfills that wrote a common partition at the same time."""
    spans = [r for r in runs if r["startTime"] and r["endTime"]]
    return sum(
        a["backfill"] != b["backfill"]
        and bool(_days(a) & _days(b))
        and a["startTime"] < b["endTime"]
        and b["startTime"] < a["endTime"]
        for i, a in enumerate(spans)
        for b in spans[i + 1 :]
    )


@pytest.mark.timeout(1200)
def test_overlapping_backfills_land_exactly_the_data_of_one_clean_run(shared: Shared, synth_cache) -> None:
    stack, emulator, data_dir, home = shared.stack, shared.emulator, shared.data_dir, shared.home
    emulator.set_faults(FaultConfig())
    launched = {
        "A days 2-3": _keys(["2024-01-02", "2024-01-03"]),
        "B days 3-4": _keys(["2024-01-03", "2024-01-04"]),
        "C day 3 again": _keys(["2024-01-03"]),
    }
    assert listen_addresses(stack.port) == {"127.0.0.1"}  # the UI is not reachable from the network
    stack.set_pool_limit("tardis", 4)
    ids = {name: stack.launch_backfill(GRAPH, keys, title=name) for name, keys in launched.items()}
    states = {name: stack.wait_for_backfill(i, timeout=900) for name, i in ids.items()}
    materialized = {tuple(p): stack.materialized_partitions(p) for p in GRAPH}
    slots = {pool: stack.pool_slots(pool) for pool in ("tardis",)}
    for name, state in states.items():
        assert state["status"] == "COMPLETED_SUCCESS", (name, state)
    runs = [
        {**r, "backfill": n, "tags": {t["key"]: t["value"] for t in r["tags"]}}
        for n, s in states.items()
        for r in s["runs"]
    ]
    assert all(r["status"] == "SUCCESS" for r in runs)
    # The same partitions really were written by two runs at once (day 3 is in every backfill).
    assert _overlapping_pairs(runs) > 0
    every_key = set(_keys(["2024-01-02", "2024-01-03", "2024-01-04"]))
    assert {p: set(parts) for p, parts in materialized.items()} == {tuple(p): every_key for p in GRAPH}
    assert slots == {"tardis": (0, 4)}  # every slot given back

    clean = run_backfill(
        EmulatorConfig(cache_dir=synth_cache, scale=TEST_SCALE, exported_until=EXPORTED_UNTIL),
        shared.work / "clean",
        dt.date(2024, 1, 2),
        3,
        INSTRUMENTS,
        ["trades", "book_snapshot_25"],
    )
    assert clean.failed_runs == 0
    # Only these days: other tests of the module write other days of raw/trades.
    found = {k: v for k, v in fingerprint(data_dir).items() if "date=2024-01-1" not in k}
    result = compare(clean.fingerprint, found)
    assert result == {
        "items": 3 * 6,  # a lake file per day of raw trades and book, both features and both analytics
        "rows_compared": sum(r for r, _ in clean.fingerprint.values()),
        "rows_lost": 0,
        "rows_extra": 0,
        "items_differing": 0,
    }
    assert not [p for p in data_dir.rglob("*") if p.name.endswith((".tmp", ".unconfirmed"))]
    print(
        f"runs {len(runs)}, overlapping pairs {_overlapping_pairs(runs)}, comparison {result}"
    )  # for the docs
    # The key was sent with every download, and is in no lake, cache, warehouse, report, event log, run or
    # compute log, or process log file.
    assert emulator.stats["counts"]["with_authorization"] >= 6
    assert files_holding(SECRET, data_dir, home) == []


def _parent(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="finds the run worker's children in /proc")
@pytest.mark.timeout(900)
def test_cancelled_and_killed_runs_give_their_pool_slots_back(shared: Shared) -> None:
    stack, emulator, data_dir, home = shared.stack, shared.emulator, shared.data_dir, shared.home
    # Every download stalls, so a run holds its `tardis` slot until it is cancelled or killed.
    emulator.set_faults(FaultConfig(stall=1.0, stall_seconds=600))
    days = ["2024-01-10", "2024-01-11", "2024-01-12"]
    stack.set_pool_limit("tardis", 1)
    instance = dg.DagsterInstance.from_config(str(home))
    try:
        # 1. The user cancels a backfill whose run holds the only slot.
        cancelled = stack.launch_backfill([["raw", "trades"]], [f"{days[0]}|deribit:BTC-PERPETUAL"])
        _wait(lambda: stack.pool_slots("tardis") == (1, 1), "the first run to take the slot", 300)
        stack.cancel_backfill(cancelled)
        state = stack.wait_for_backfill(cancelled, timeout=300)
        assert state["status"] == "CANCELED" and [r["status"] for r in state["runs"]] == ["CANCELED"]
        _wait(lambda: stack.pool_slots("tardis") == (0, 1), "the cancelled run's slot", 120)

        # 2. The run worker of the next one and the code server that launched it are killed with SIGKILL
        # (OOM killer, kill -9 of the whole tree, a reboot): nothing is left to tell Dagster. (A run worker
        # killed alone is reported by its code server, which Dagster does by itself.)
        killed = stack.launch_backfill([["raw", "trades"]], [f"{days[1]}|deribit:BTC-PERPETUAL"])
        _wait(lambda: stack.pool_slots("tardis") == (1, 1), "the second run to take the slot", 300)
        run_id = stack.backfill(killed)["runs"][0]["id"]
        _wait(lambda: run_worker(instance, run_id) is not None, "the run worker's pid", 60)
        pid = run_worker(instance, run_id)[0]
        code_server = _parent(pid)
        assert b"api\x00grpc" in Path(f"/proc/{code_server}/cmdline").read_bytes()
        for victim in [code_server, pid, *_descendants(pid)]:
            os.kill(victim, signal.SIGKILL)
        # Sensor dead_run_workers notices (30 s interval), then run monitoring frees the slot.
        _wait(
            lambda: instance.get_run_by_id(run_id).status == dg.DagsterRunStatus.FAILURE,
            "the killed run to be marked failed",
            180,
        )
        _wait(lambda: stack.pool_slots("tardis") == (0, 1), "the killed run's slot", 120)
        failure = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.RUN_FAILURE).records
        assert f"Run worker (pid {pid}) is gone" in failure[0].event_log_entry.dagster_event.message

        # 3. Nothing is stuck: with the network healthy again, a backfill of all three days completes.
        emulator.set_faults(FaultConfig())
        healthy = stack.launch_backfill([["raw", "trades"]], [f"{d}|deribit:BTC-PERPETUAL" for d in days])
        assert stack.wait_for_backfill(healthy, timeout=300)["status"] == "COMPLETED_SUCCESS"
        assert stack.pool_slots("tardis") == (0, 1)
    finally:
        instance.dispose()
    # The killed worker's half download was removed by the next download of the same file.
    assert not list(data_dir.rglob("*.unconfirmed"))
    assert (
        len([p for d in days for p in (data_dir / "lake" / "raw" / "trades").rglob(f"date={d}/data.parquet")])
        == 3
    )
    # Cancelled, killed and failed runs leave error texts and logs: none of them holds the key.
    assert files_holding(SECRET, data_dir, home) == []


def _feature_spans(stack: DagsterStack, state: dict, label: str) -> list[tuple[str, str, float, float, str]]:
    """(backfill, step, start, end, run id) of every feature step of a backfill's runs."""
    steps = stack.step_stats([r["id"] for r in state["runs"]])
    return [
        (label, s["stepKey"], s["startTime"], s["endTime"], s["runId"][:8])
        for s in steps
        if s["stepKey"] in ("features__depth", "features__trade_bars") and s["startTime"] and s["endTime"]
    ]


def overlap(spans: list[tuple[str, str, float, float]]) -> dict[str, float]:
    """Seconds during which 2+ feature steps ran, the most at once, and the seconds two backfills' steps overlapped."""
    edges = sorted([(s[2], 1) for s in spans] + [(s[3], -1) for s in spans])
    running, most, together, last = 0, 0, 0.0, None
    for when, change in edges:
        if last is not None and running >= 2:
            together += when - last
        running += change
        most, last = max(most, running), when
    across = sum(max(0.0, min(a[3], b[3]) - max(a[2], b[2])) for a in spans for b in spans if a[0] < b[0])
    return {"seconds_2_or_more": together, "most_at_once": most, "seconds_across_backfills": across}


@pytest.mark.timeout(900)
def test_two_feature_backfills_run_at_once_while_a_notebook_holds_the_warehouse(shared: Shared) -> None:
    from tick_assets.lake.store import LocalLake
    from tick_assets.lake.warehouse import catalog_datasets, open_catalog, publish_catalog

    stack, data_dir = shared.stack, shared.data_dir
    lake = LocalLake(data_dir / "lake")
    warehouse = data_dir / "warehouse.duckdb"
    if not warehouse.exists():
        publish_catalog(warehouse, lake, catalog_datasets(lake, ["trades", "book_snapshot_25"]))
    stack.set_pool_limit(
        "tardis", 4
    )  # as the README says to (with the default limit of 1, runs queue on downloads)
    notebook = open_catalog(warehouse, lake)  # a researcher's read-only connection, held open throughout
    before = notebook.execute("SELECT count(*) FROM raw.trades").fetchone()[0]
    graph = [
        ["raw", "trades"],
        ["raw", "book_snapshot_25"],
        ["features", "depth"],
        ["features", "trade_bars"],
    ]
    ids = {
        # Two ranged runs each (2 days per run here): four runs at once at most (max_concurrent_runs).
        "A": stack.launch_backfill(
            graph, _keys([f"2024-01-{d}" for d in (20, 21, 22, 23)]), title="features A"
        ),
        "B": stack.launch_backfill(
            graph, _keys([f"2024-01-{d}" for d in (24, 25, 26, 27)]), title="features B"
        ),
    }
    reads = 0
    deadline = time.monotonic() + 600
    while not all(stack.backfill(i)["status"] != "REQUESTED" for i in ids.values()):
        assert time.monotonic() < deadline, "backfills did not finish"
        assert notebook.execute("SELECT count(*) FROM raw.trades").fetchone()[0] >= before
        reads += 1
        time.sleep(1)
    states = {name: stack.wait_for_backfill(i, timeout=120) for name, i in ids.items()}
    assert {n: s["status"] for n, s in states.items()} == {"A": "COMPLETED_SUCCESS", "B": "COMPLETED_SUCCESS"}
    spans = [span for name, state in states.items() for span in _feature_spans(stack, state, name)]
    assert sorted((name, step) for name, step, *_ in spans) == sorted(
        (n, f"features__{f}") for n in ("A", "B") for f in ("depth", "trade_bars") for _ in range(2)
    )
    measured = overlap(spans)
    print(f"feature steps {spans}\noverlap {measured}")
    # Feature steps no longer queue on one database lock: at least two of them ran at the same moment.
    assert measured["most_at_once"] >= 2 and measured["seconds_2_or_more"] > 0, measured
    # The notebook kept reading throughout and still reads now; a fresh connection sees the new partitions.
    assert reads > 0 and notebook.execute("SELECT count(*) FROM raw.trades").fetchone()[0] >= before
    notebook.close()
    publish_catalog(warehouse, lake, catalog_datasets(lake))  # what warehouse/views does after new partitions
    with open_catalog(warehouse, lake) as fresh:
        rows = fresh.execute(
            "SELECT count(*) FROM features.depth WHERE date BETWEEN '2024-01-20' AND '2024-01-27'"
        ).fetchone()[0]
    assert rows == 8 * 86_400
    print(
        f"feature steps {spans}\noverlap {measured}, notebook reads during the backfills {reads}"
    )  # for the note
