"""End to end, the way users drive it: a daemon backfill over GraphQL, and the `dagster` CLI (slow)."""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from tick_assets.lake import partition_file
from tick_assets.stack.localstack import DagsterStack, backfill_progress, write_instance_yaml
from tick_assets_tests.conftest import TEST_BACKFILL_INTERVAL
from tick_assets_tests.helpers.paths import REPO_ROOT

pytestmark = pytest.mark.slow
INSTRUMENTS = ["binance-futures:BTCUSDT", "deribit:BTC-PERPETUAL"]


def _env(emulator, data_dir: Path) -> dict[str, str]:
    return {
        "TARDIS_DATASETS_URL": emulator.datasets_url,
        "TARDIS_API_URL": emulator.api_url,
        "TARDIS_API_KEY": "e2e-key",
        "TICK_ASSETS_DATA_DIR": str(data_dir),
        "TICK_ASSETS_INSTRUMENTS": ",".join(INSTRUMENTS),
        "TICK_ASSETS_DATA_TYPES": "trades,book_snapshot_25",
        "TICK_ASSETS_BACKFILL_DAYS_PER_RUN": "2",
    }


def _served_rows(data_dir: Path, name: str) -> int:
    with gzip.open(data_dir / "tardis" / name, "rb") as f:
        return sum(1 for _ in f) - 1


def test_daemon_backfill_becomes_ranged_runs_with_every_row(emulator, tmp_path) -> None:
    data_dir = tmp_path / "data"
    days = ["2024-01-02", "2024-01-03", "2024-01-04"]
    keys = [f"{d}|{inst}" for inst in INSTRUMENTS for d in days]
    with DagsterStack(
        tmp_path / "home", _env(emulator, data_dir), backfill_interval=TEST_BACKFILL_INTERVAL
    ) as stack:
        stack.set_pool_limit("tardis", 2)
        backfill_id = stack.launch_backfill([["raw", "trades"]], keys)
        polled: list[dict] = []
        state = stack.wait_for_backfill(backfill_id, timeout=600, poll=1.0, progress=polled.append)
        # Every slot of pool `tardis` was given back when the runs ended.
        limits = stack.cli("instance", "concurrency", "get", "--all").replace('"', "")
        assert "tardis: 0 / 2 slots occupied" in limits
    assert state["status"] == "COMPLETED_SUCCESS", state
    # The progress query's fields exist in this Dagster's schema, and its last poll saw everything done.
    last = backfill_progress(polled[-1], elapsed=0)
    assert (last.runs_done, last.runs_failed, last.runs_running, last.runs_queued) == (4, 0, 0, 0)
    assert (last.partitions_done, last.partitions_total, last.partitions_failed) == (6, 6, 0)
    # 2 days per run: 2 instruments x (2 + 1 days) = 4 ranged runs instead of 6 single-partition runs.
    ranges = sorted(
        (tags["dagster/asset_partition_range_start"], tags["dagster/asset_partition_range_end"])
        for tags in ({t["key"]: t["value"] for t in run["tags"]} for run in state["runs"])
    )
    assert ranges == [
        ("2024-01-02|binance-futures:BTCUSDT", "2024-01-03|binance-futures:BTCUSDT"),
        ("2024-01-02|deribit:BTC-PERPETUAL", "2024-01-03|deribit:BTC-PERPETUAL"),
        ("2024-01-04|binance-futures:BTCUSDT", "2024-01-04|binance-futures:BTCUSDT"),
        ("2024-01-04|deribit:BTC-PERPETUAL", "2024-01-04|deribit:BTC-PERPETUAL"),
    ]
    for inst in INSTRUMENTS:
        exchange, symbol = inst.split(":")
        for day in days:
            path = partition_file(data_dir / "lake", "raw/trades", exchange, symbol, day)
            rows = duckdb.sql(f"SELECT count(*) FROM read_parquet('{path}')").fetchall()[0][0]
            assert rows == _served_rows(data_dir, f"{exchange}_trades_{day}_{symbol}.csv.gz") > 0


@pytest.mark.timeout(1500)  # 600 s backfill + 420 s automation + 240 s run ends + 120 s views, each a bound
def test_new_raw_partitions_flow_to_features_and_analytics_without_a_click(emulator, tmp_path) -> None:
    """Only the raw assets are backfilled; the automation sensor (on by default) materializes the rest."""
    data_dir = tmp_path / "data"
    key = "2024-01-03|deribit:BTC-PERPETUAL"
    derived = [
        ["features", "depth"],
        ["features", "trade_bars"],
        ["analytics", "microstructure_1m"],
        ["analytics", "daily_summary"],
    ]
    with DagsterStack(
        tmp_path / "home", _env(emulator, data_dir), backfill_interval=TEST_BACKFILL_INTERVAL
    ) as stack:
        stack.set_pool_limit("tardis", 2)
        backfill_id = stack.launch_backfill([["raw", "trades"], ["raw", "book_snapshot_25"]], [key])
        assert stack.wait_for_backfill(backfill_id, timeout=600)["status"] == "COMPLETED_SUCCESS"
        deadline = time.monotonic() + 420
        while time.monotonic() < deadline:
            done = {tuple(p): stack.materialized_partitions(p) for p in derived}
            if all(key in parts for parts in done.values()):
                break
            time.sleep(3)
        # A partition's materialization is recorded while its run still has steps (or its own end) to go.
        runs_end_by = time.monotonic() + 240
        final = {
            run_id: stack.wait_for_run(run_id, timeout=max(1.0, runs_end_by - time.monotonic()))
            for run_id in {p.get(key) for p in done.values()}
            if run_id
        }
        runs = {r["runId"]: r for r in stack.runs()}
        views: dict[str, str] = {}
        views_by = time.monotonic() + 120
        while not views and time.monotonic() < views_by:
            views = stack.materialized_partitions(["warehouse", "views"])
            time.sleep(0 if views else 3)
    assert set(final.values()) <= {"SUCCESS"}, final
    missing = [p for p, parts in done.items() if key not in parts]
    assert not missing, f"not materialized by automation within 7 min: {missing}"
    for parts in done.values():
        run = runs[parts[key]]
        assert run["status"] == "SUCCESS"
        assert "dagster/backfill" not in run["tags"]  # launched by the automation sensor, not by the backfill
        assert run["tags"].get("dagster/from_automation_condition") == "true", run["tags"]
        assert set(parts) == {key}  # only the new partition, nothing else
    assert views  # the warehouse views were refreshed too
    with duckdb.connect() as con:  # the feature partition is its own file in the lake
        rows = con.execute(
            f"SELECT count(*), count(mid) > 0 FROM read_parquet('{data_dir}/lake/features/depth/*/*/*/*.parquet') "
            "WHERE instrument = 'deribit:BTC-PERPETUAL'"
        ).fetchall()[0]
    assert rows == (86_400, True)


def test_dagster_cli_validates_and_materializes_a_partition(emulator, tmp_path) -> None:
    data_dir, home = tmp_path / "data", tmp_path / "home"
    write_instance_yaml(home)
    env = {**os.environ, **_env(emulator, data_dir), "DAGSTER_HOME": str(home)}
    dagster = str(Path(sys.executable).parent / "dagster")

    def run(*args: str) -> str:
        done = subprocess.run(
            [dagster, *args], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout + done.stderr

    assert "All code locations passed validation" in run("definitions", "validate", "-w", "workspace.yaml")
    key = "2024-01-05|deribit:BTC-PERPETUAL"
    out = run(
        "asset",
        "materialize",
        "-m",
        "tick_assets.definitions",
        "--select",
        "raw/book_snapshot_25",
        "--partition",
        key,
    )
    assert "RUN_SUCCESS" in out
    path = partition_file(data_dir / "lake", "raw/book_snapshot_25", "deribit", "BTC-PERPETUAL", "2024-01-05")
    rows = duckdb.sql(f"SELECT count(*) FROM read_parquet('{path}')").fetchall()[0][0]
    assert rows == _served_rows(data_dir, "deribit_book_snapshot_25_2024-01-05_BTC-PERPETUAL.csv.gz") > 0
    assert "e2e-key" not in out
