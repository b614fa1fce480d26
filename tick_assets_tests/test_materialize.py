"""Ranged runs from the shell: `tick-assets materialize` and the function under it."""

from __future__ import annotations

import datetime as dt
import io
import os
import subprocess
import sys

import dagster as dg
import duckdb
import pytest

from tick_assets.assets.partitions import build_partitions
from tick_assets.assets.raw import build_raw_assets
from tick_assets.assets.warehouse import build_views_asset
from tick_assets.stack.materialize import RangeProgress, materialize_range, materialize_unpartitioned
from tick_assets.stack.progress import StatusLine
from tick_assets_tests.helpers.runs import resources

INSTRUMENTS = ["binance-futures:BTCUSDT", "deribit:BTC-PERPETUAL"]


def test_one_ranged_run_per_instrument_then_views(emulator, tmp_path) -> None:
    raw = build_raw_assets(["trades"], partitions_def=build_partitions("2024-01-01", INSTRUMENTS))
    defs = dg.Definitions(
        assets=[*raw, build_views_asset(raw)],
        resources=resources(emulator, tmp_path),
    )
    instance = dg.DagsterInstance.ephemeral()
    runs = materialize_range(
        defs,
        [dg.AssetKey(["raw", "trades"])],
        INSTRUMENTS,
        dt.date(2024, 1, 2),
        dt.date(2024, 1, 4),
        instance,
    )
    assert [(r.instrument, r.success, r.partitions) for r in runs] == [
        (inst, True, {"raw/trades": 3}) for inst in INSTRUMENTS
    ]
    assert len(instance.get_run_records()) == 2
    assert materialize_unpartitioned(defs, dg.AssetKey(["warehouse", "views"]), instance)
    with duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True) as con:
        got = con.sql("SELECT symbol, count(*) FROM raw.trades GROUP BY ALL ORDER BY ALL").fetchall()
    assert got == [("BTC-PERPETUAL", runs[1].rows["raw/trades"]), ("BTCUSDT", runs[0].rows["raw/trades"])]


@pytest.mark.slow
def test_readme_first_command_materializes_against_the_emulator(tmp_path) -> None:
    env = {**os.environ, "TICK_ASSETS_DATA_DIR": str(tmp_path / "data")}
    for name in ("DAGSTER_HOME", "TARDIS_DATASETS_URL", "TARDIS_API_URL", "TICK_ASSETS_INSTRUMENTS"):
        env.pop(name, None)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "tick_assets.cli",
            "materialize",
            "--emulator",
            "--scale",
            "2000",
            "--from",
            "2024-01-01",
            "--to",
            "2024-01-03",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "2 ranged runs" in done.stdout and "warehouse views ok" in done.stdout
    with duckdb.connect(str(tmp_path / "data" / "warehouse.duckdb"), read_only=True) as con:
        rows = con.sql(
            "SELECT count(DISTINCT (symbol, date)), count(*) FROM raw.book_snapshot_25"
        ).fetchall()[0]
    assert rows[0] == 4 and rows[1] > 0


def test_ranges_are_split_by_days_per_run(emulator, tmp_path) -> None:
    raw = build_raw_assets(["trades"], partitions_def=build_partitions("2024-01-01", INSTRUMENTS))
    defs = dg.Definitions(assets=raw, resources=resources(emulator, tmp_path))
    runs = materialize_range(
        defs,
        [dg.AssetKey(["raw", "trades"])],
        INSTRUMENTS[:1],
        dt.date(2024, 1, 2),
        dt.date(2024, 1, 6),
        dg.DagsterInstance.ephemeral(),
        days_per_run=2,
    )
    assert [(str(r.first_day), str(r.last_day), r.partitions["raw/trades"]) for r in runs] == [
        ("2024-01-02", "2024-01-03", 2),
        ("2024-01-04", "2024-01-05", 2),
        ("2024-01-06", "2024-01-06", 1),
    ]


def test_ranged_runs_show_runs_partitions_and_steps_as_they_go(emulator, tmp_path) -> None:
    raw = build_raw_assets(
        ["trades", "book_snapshot_25"], partitions_def=build_partitions("2024-01-01", INSTRUMENTS)
    )
    defs = dg.Definitions(assets=raw, resources=resources(emulator, tmp_path))
    keys = [dg.AssetKey(["raw", "trades"]), dg.AssetKey(["raw", "book_snapshot_25"])]
    instance = dg.DagsterInstance.ephemeral()
    out = io.StringIO()  # not a terminal: a plain line per change
    runs = materialize_range(
        defs, keys, INSTRUMENTS, dt.date(2024, 1, 2), dt.date(2024, 1, 3), instance, progress=StatusLine(out)
    )
    assert all(r.success for r in runs)
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("materialize: runs 0/2 done | partitions 0/8 |")
    assert lines[1].startswith("materialize: runs 0/2 done, 1 running | partitions 0/8 |")
    assert any(line.startswith("materialize: runs 1/2 done | partitions 4/8 |") for line in lines)
    assert lines[-1].startswith("materialize: runs 2/2 done | partitions 8/8 |")
    assert len(lines) == len(set(lines))  # only changes are printed

    # The listener follows each step in and out, and counts the partitions of the selected assets.
    tracker = RangeProgress(1, 4, frozenset(keys))
    seen = []
    run_id = instance.get_run_records()[0].dagster_run.run_id
    for entry in instance.all_logs(run_id):
        tracker.on_event(entry)
        seen.append(tracker.progress().steps)
    assert ("raw__trades",) in seen or ("raw__book_snapshot_25",) in seen
    assert tracker.progress().steps == () and tracker.progress().partitions_done == 4
