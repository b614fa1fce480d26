"""Feature backfill steps at once: the one-DuckDB-file warehouse (commit 3cb333f) against the Parquet lake (issue 14).

Until 3cb333f every feature step wrote into data/warehouse.duckdb and ran in pool `duckdb` (limit 1), so the
feature steps of different partitions ran one at a time. The current tree writes one Parquet file per partition
and has no such pool. For each version this script starts the emulator and a Dagster webserver + daemon (the
current `DagsterStack`; "before" gets PYTHONPATH=<worktree of 3cb333f>, so every Dagster process imports the old
`tick_assets`), stops the automation sensor, backfills the raw assets, then launches two feature backfills at
the same moment (first and second half of the days) and measures wall time and step overlap from the step stats.
"after" holds a read-only DuckDB connection to the warehouse catalog open and queries it every second meanwhile;
`--before-with-notebook` tries the same against the old warehouse file (its writers need the file alone).

Run: timeout 2400 .venv/bin/python bench/feature_overlap.py [--days 4] [--scale 20000] [--before-with-notebook]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from tick_assets.emulator.server import EmulatorConfig, EmulatorServer
from tick_assets.lake.store import as_lake
from tick_assets.lake.warehouse import catalog_datasets, open_catalog, publish_catalog
from tick_assets.stack.localstack import TERMINAL_BACKFILL_STATUSES, DagsterStack

REPO = Path(__file__).resolve().parent.parent
BEFORE_COMMIT = "3cb333f"
BEFORE_TREE = Path("/tmp/tick-before")
INSTRUMENTS = ["binance-futures:BTCUSDT", "deribit:BTC-PERPETUAL"]
DATA_TYPES = ["trades", "book_snapshot_25"]
RAW_ASSETS = [["raw", t] for t in DATA_TYPES]
FEATURE_ASSETS = [["features", "depth"], ["features", "trade_bars"]]
FEATURE_STEPS = {"features__depth", "features__trade_bars"}
_ASSET_POOLS = "{ assetNodes { assetKey { path } pools } }"
_STEP_FAILURES = """
query($id: ID!) { logsForRun(runId: $id, limit: 5000) { __typename
  ... on EventConnection { events { __typename
    ... on ExecutionStepFailureEvent { stepKey error { message cause { message } } } } } } }
"""
_ACTIVE = {"QUEUED", "NOT_STARTED", "STARTING", "STARTED", "CANCELING"}


def ensure_worktree() -> Path:
    """The checkout of the "before" commit (created once, reused)."""
    if not (BEFORE_TREE / "tick_assets" / "definitions.py").exists():
        subprocess.run(
            ["git", "-C", str(REPO), "worktree", "add", "--detach", str(BEFORE_TREE), BEFORE_COMMIT],
            check=True,
        )
    return BEFORE_TREE


# ---------------------------------------------------------------------------------------------- interval maths


def _union(intervals: list[tuple[float, float]]) -> list[tuple[float, float]]:
    merged: list[tuple[float, float]] = []
    for start, end in sorted(intervals):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def _intersection_seconds(a: list[tuple[float, float]], b: list[tuple[float, float]]) -> float:
    total = 0.0
    for s1, e1 in _union(a):
        for s2, e2 in _union(b):
            total += max(0.0, min(e1, e2) - max(s1, s2))
    return total


def concurrency(intervals: list[tuple[float, float]]) -> tuple[int, float]:
    """(most intervals open at once, seconds during which 2 or more were open)."""
    events = sorted(
        [(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals], key=lambda x: (x[0], x[1])
    )
    most = open_now = 0
    two_plus = 0.0
    last = None
    for t, delta in events:
        if last is not None and open_now >= 2:
            two_plus += t - last
        open_now += delta
        most = max(most, open_now)
        last = t
    return most, two_plus


# ---------------------------------------------------------------------------------------------- the reader


@dataclass
class Reader:
    """A notebook: one read-only DuckDB connection to the warehouse held open, queried every second."""

    connect: Any  # () -> connection
    sql: str
    reads: int = 0
    errors: list[str] = field(default_factory=list)
    open_error: str | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _con: Any = None

    def start(self) -> Reader:
        try:
            self._con = self.connect()
        except Exception as exc:  # reported, the benchmark goes on
            self.open_error = f"{type(exc).__name__}: {exc}"
            return self
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self._con.execute(self.sql).fetchall()
                self.reads += 1
            except Exception as exc:
                self.errors.append(f"{type(exc).__name__}: {exc}")
            self._stop.wait(1.0)

    def close(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=30)
        if self._con is not None:
            self._con.close()


# ---------------------------------------------------------------------------------------------- one version


@dataclass
class Result:
    version: str
    partitions: int
    feature_steps: int = 0
    wall: float = 0.0
    step_sum: float = 0.0
    most: int = 0
    two_plus: float = 0.0
    across: float = 0.0
    runs_ok: int = 0
    runs_failed: int = 0
    first_step_after: float = 0.0
    last_run_end_after: float = 0.0
    notes: list[str] = field(default_factory=list)


def _poll_until_done(stack: DagsterStack, ids: list[str], timeout: float) -> tuple[list[dict], float]:
    """Poll the backfills every second until all are terminal with no active run; (states, time done)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        states = [stack.backfill(i) for i in ids]
        if all(
            s["status"] in TERMINAL_BACKFILL_STATUSES and not any(r["status"] in _ACTIVE for r in s["runs"])
            for s in states
        ):
            return states, time.time()
        time.sleep(1.0)
    raise TimeoutError(f"backfills {ids} not done after {timeout:.0f} s")


def _step_failures(stack: DagsterStack, run_id: str) -> list[tuple[str, str]]:
    found = stack.graphql(_STEP_FAILURES, {"id": run_id})["logsForRun"]
    if found["__typename"] != "EventConnection":
        return []
    return [
        (e["stepKey"], ((e.get("error") or {}).get("cause") or e.get("error") or {}).get("message", ""))
        for e in found["events"]
        if e["__typename"] == "ExecutionStepFailureEvent"
    ]


def _launch_halves(stack: DagsterStack, halves: list[list[str]], label: str) -> tuple[list[str], float]:
    launched = time.time()
    ids = [
        stack.launch_backfill(FEATURE_ASSETS, keys, title=f"{label} features half {n + 1}")
        for n, keys in enumerate(halves)
    ]
    return ids, launched


def _measure(
    stack: DagsterStack, result: Result, ids: list[str], launched: float, states: list[dict], done: float
):
    run_backfill = {r["id"]: n for n, s in enumerate(states) for r in s["runs"]}
    runs = [r for s in states for r in s["runs"]]
    steps = [s for s in stack.step_stats(list(run_backfill)) if s["stepKey"] in FEATURE_STEPS]
    spans = [(s["startTime"], s["endTime"]) for s in steps if s["startTime"] and s["endTime"]]
    result.feature_steps = len(steps)
    result.wall = done - launched
    result.step_sum = sum(e - s for s, e in spans)
    result.most, result.two_plus = concurrency(spans)
    by_half = [
        [
            (s["startTime"], s["endTime"])
            for s in steps
            if s["startTime"] and s["endTime"] and run_backfill[s["runId"]] == n
        ]
        for n in range(len(ids))
    ]
    result.across = _intersection_seconds(by_half[0], by_half[1]) if len(by_half) == 2 else 0.0
    result.runs_ok = sum(r["status"] == "SUCCESS" for r in runs)
    result.runs_failed = len(runs) - result.runs_ok
    cancelled = sum(r["status"] == "CANCELED" for r in runs)
    if cancelled:
        result.notes.append(f"{cancelled} of the failed runs were cancelled")
    result.first_step_after = min((s for s, _ in spans), default=launched) - launched
    result.last_run_end_after = max((r["endTime"] or 0 for r in runs), default=launched) - launched
    run_spans = [
        [(r["startTime"], r["endTime"]) for r in st["runs"] if r["startTime"] and r["endTime"]]
        for st in states
    ]
    most_runs, _ = concurrency([span for spans_ in run_spans for span in spans_])
    runs_across = _intersection_seconds(run_spans[0], run_spans[1]) if len(run_spans) == 2 else 0.0
    result.notes.append(
        f"runs: most {most_runs} at once; runs of the two backfills overlapped {runs_across:.1f} s"
    )
    other = {s["stepKey"] for s in stack.step_stats(list(run_backfill))} - FEATURE_STEPS
    if other:
        result.notes.append(f"other steps in the feature runs: {', '.join(sorted(other))}")
    result.notes.append(
        f"{len(runs)} runs; first feature step started {result.first_step_after:.1f} s after launch, "
        f"last run ended {result.last_run_end_after:.1f} s after launch, backfills seen done {result.wall:.1f} s"
    )


def run_version(
    label: str,
    pythonpath: Path | None,
    work: Path,
    args: argparse.Namespace,
    keys: list[str],
    halves: list[list[str]],
) -> list[Result]:
    vdir = work / label
    shutil.rmtree(vdir, ignore_errors=True)
    data_dir, home = vdir / "data", vdir / "dagster_home"
    vdir.mkdir(parents=True)
    results = []
    with EmulatorServer(
        EmulatorConfig(port=0, cache_dir=work / "emulator_cache", scale=args.scale)
    ) as emulator:
        env = {
            "TARDIS_DATASETS_URL": emulator.datasets_url,
            "TARDIS_API_URL": emulator.api_url,
            "TARDIS_API_KEY": "bench",
            "TICK_ASSETS_DATA_DIR": str(data_dir),
            "TICK_ASSETS_INSTRUMENTS": ",".join(INSTRUMENTS),
            "TICK_ASSETS_DATA_TYPES": ",".join(DATA_TYPES),
            "TICK_ASSETS_BACKFILL_DAYS_PER_RUN": "1",
        }
        if pythonpath:
            env["PYTHONPATH"] = str(pythonpath)
        # Not the repository root as working directory: `python -m dagster ...` (run workers) puts the working
        # directory first on sys.path, which would shadow PYTHONPATH with the current tick_assets.
        loaded = subprocess.run(
            [sys.executable, "-c", "import tick_assets; print(tick_assets.__file__)"],
            env={**os.environ, **env},
            cwd=vdir,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        print(f"[{label}] Dagster processes import {loaded}", flush=True)
        with DagsterStack(home, env, cwd=vdir) as stack:
            print(f"[{label}] Dagster up at {stack.url} (DAGSTER_HOME={home})", flush=True)
            out = stack.cli("sensor", "stop", "tick_assets_automation", "-w", str(stack.workspace))
            print(f"[{label}] {(out.strip().splitlines() or [''])[-1]}", flush=True)
            stack.set_pool_limit("tardis", 4)
            if pythonpath:
                stack.set_pool_limit("duckdb", 1)
            pools = {
                "/".join(n["assetKey"]["path"]): n["pools"]
                for n in stack.graphql(_ASSET_POOLS)["assetNodes"]
                if n["assetKey"]["path"][0] == "features"
            }
            print(f"[{label}] pools of the feature assets as the webserver loaded them: {pools}", flush=True)

            t = time.time()
            raw_id = stack.launch_backfill(RAW_ASSETS, keys, title=f"{label} raw")
            raw = stack.wait_for_backfill(raw_id, timeout=1800, poll=2)
            print(
                f"[{label}] raw backfill {raw['status']}: {len(raw['runs'])} runs in {time.time() - t:.0f} s",
                flush=True,
            )
            if raw["status"] != "COMPLETED_SUCCESS":
                raise RuntimeError(f"[{label}] raw backfill {raw_id} ended {raw['status']}")

            reader = None
            if pythonpath is None:  # after: a notebook holds the catalog open during the feature backfills
                warehouse = data_dir / "warehouse.duckdb"
                lake = as_lake(data_dir / "lake")
                views = publish_catalog(warehouse, lake, catalog_datasets(lake, DATA_TYPES))
                print(f"[{label}] published catalog {warehouse} with {views}", flush=True)
                reader = Reader(
                    lambda: open_catalog(warehouse, lake),
                    'SELECT count(*), count(DISTINCT symbol_id) FROM raw."trades"',
                ).start()

            result = Result(label, len(keys))
            ids, launched = _launch_halves(stack, halves, label)
            states, done = _poll_until_done(stack, ids, timeout=1800)
            _measure(stack, result, ids, launched, states, done)
            if reader is not None:
                reader.close()
                result.notes.append(
                    f"read-only reader of warehouse.duckdb held open: {reader.reads} reads, "
                    f"{len(reader.errors)} errors{' ' + reader.errors[0] if reader.errors else ''}"
                    f"{' open failed: ' + reader.open_error if reader.open_error else ''}"
                )
            failures = [f for r in states for run in r["runs"] for f in _step_failures(stack, run["id"])]
            for step, message in failures[:3]:
                result.notes.append(f"step failure {step}: {message.strip().splitlines()[0][:200]}")
            results.append(result)
            print(f"[{label}] {result}", flush=True)

            if pythonpath and args.before_with_notebook:
                results.append(_before_with_reader(stack, data_dir, halves, keys, label))
            automation_runs = [r for r in stack.runs() if "dagster/backfill" not in r["tags"]]
            print(
                f"[{label}] runs not from a backfill (automation sensor): {len(automation_runs)}", flush=True
            )
    return results


def _before_with_reader(
    stack: DagsterStack, data_dir: Path, halves: list[list[str]], keys: list[str], label: str
) -> Result:
    """Hold the old warehouse file open read-only and backfill the features again: watch the first failure."""
    warehouse = data_dir / "warehouse.duckdb"
    reader = Reader(
        lambda: duckdb.connect(str(warehouse), read_only=True), "SELECT count(*) FROM features.depth"
    ).start()
    result = Result(f"{label} + read-only reader", len(keys))
    ids, launched = _launch_halves(stack, halves, f"{label}-reader")
    first_failure = None
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        states = [stack.backfill(i) for i in ids]
        runs = [r for s in states for r in s["runs"]]
        steps = stack.step_stats([r["id"] for r in runs]) if runs else []
        if any(s["stepKey"] in FEATURE_STEPS and s["status"] == "FAILURE" for s in steps):
            first_failure = time.time() - launched
            break
        if all(s["status"] in TERMINAL_BACKFILL_STATUSES for s in states) and not any(
            r["status"] in _ACTIVE for r in runs
        ):
            break
        time.sleep(1.0)
    stopped = time.time()
    for backfill_id in ids:
        state = stack.backfill(backfill_id)
        if state["status"] not in TERMINAL_BACKFILL_STATUSES:
            stack.cancel_backfill(backfill_id)
    states, done = _poll_until_done(stack, ids, timeout=900)
    reader.close()
    _measure(stack, result, ids, launched, states, done)
    result.notes.append(
        f"reader: {reader.reads} reads, {len(reader.errors)} errors"
        f"{' open failed: ' + reader.open_error if reader.open_error else ''}; "
        + (
            f"first feature step failed {first_failure:.0f} s after launch, then both backfills were cancelled "
            f"({done - stopped:.0f} s to wind down)"
            if first_failure is not None
            else "no feature step failed"
        )
    )
    failures = [f for r in states for run in r["runs"] for f in _step_failures(stack, run["id"])]
    for step, message in failures[:2]:
        result.notes.append(f"step failure {step}: {message.strip().splitlines()[0][:240]}")
    print(f"[{label}] {result}", flush=True)
    return result


# ---------------------------------------------------------------------------------------------- main


def table(results: list[Result]) -> str:
    lines = [
        "| version | partitions | feature steps | wall s | sum of step s | most at once | s with 2+ "
        "| s across backfills | runs ok/failed |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r.version} | {r.partitions} x 2 assets | {r.feature_steps} | {r.wall:.1f} | {r.step_sum:.1f} "
            f"| {r.most} | {r.two_plus:.1f} | {r.across:.1f} | {r.runs_ok}/{r.runs_failed} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=4)
    parser.add_argument("--start", default="2024-02-01")
    parser.add_argument("--scale", type=int, default=20000, help="book events per synthetic day")
    parser.add_argument("--workdir", type=Path, help="keep everything here (default: a temp dir)")
    parser.add_argument(
        "--before-with-notebook",
        action="store_true",
        help="also backfill the old features while a read-only connection holds warehouse.duckdb",
    )
    args = parser.parse_args()
    if args.days < 2:
        parser.error("--days must be at least 2 (two backfills of half the days each)")

    work = args.workdir or Path(tempfile.mkdtemp(prefix="tick-overlap-"))
    work.mkdir(parents=True, exist_ok=True)
    start = dt.date.fromisoformat(args.start)
    days = [start + dt.timedelta(days=i) for i in range(args.days)]
    keys = [f"{d:%Y-%m-%d}|{inst}" for inst in INSTRUMENTS for d in days]
    mid = len(days) // 2
    halves = [
        [f"{d:%Y-%m-%d}|{inst}" for inst in INSTRUMENTS for d in part] for part in (days[:mid], days[mid:])
    ]
    before_tree = ensure_worktree()
    print(f"work dir {work}; {len(keys)} partitions; before = {before_tree} ({BEFORE_COMMIT})", flush=True)

    results = run_version("before", before_tree, work, args, keys, halves)
    results += run_version("after", None, work, args, keys, halves)

    print(f"\n## {args.days} days x {len(INSTRUMENTS)} instruments, scale {args.scale}\n")
    print(table(results))
    before = next(r for r in results if r.version == "before")
    after = next(r for r in results if r.version == "after")
    print(f"\nwall before/after: {before.wall / after.wall:.2f}x")
    print(
        f"machine: {os.cpu_count()} cores, shared and noisy (single run, figures vary by 10-20 %); "
        "max_concurrent_runs 4, pool tardis 4" + ", pool duckdb 1 (before)"
    )
    for r in results:
        for note in r.notes:
            print(f"- {r.version}: {note}")


if __name__ == "__main__":
    main()
