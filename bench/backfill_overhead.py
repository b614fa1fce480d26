"""Where the orchestration time of a whole-graph daemon backfill goes, config by config, in one run.

Each config starts its own emulator-fed webserver + daemon (`DagsterStack`), backfills every asset of DAYS x 2
instruments over GraphQL and reads the timeline of the backfill from the instance's event log: launch -> first run
queued (backfill daemon tick) -> dequeued (run queue) -> run worker started -> first step -> last step -> last run
end -> backfill marked done (daemon tick) -> seen by polling. Overhead per partition = (wall - sum of every step's
compute) / partitions, as in bench/run.py. The baseline `before` runs the package as it was before issue 17
(commit BASELINE_REV) with Dagster's defaults for what the packaged dagster.yaml now sets.

Run: .venv/bin/python bench/backfill_overhead.py [--quick] [--configs defaults,tuned,tuned+fast-daemon]
"""

from __future__ import annotations

import argparse
import datetime as dt
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from run import Section, Target, stack_env

REPO = Path(__file__).resolve().parent.parent
INSTRUMENTS = ["binance-futures:BTCUSDT", "deribit:BTC-PERPETUAL"]
FIRST_DAY = dt.date(2024, 1, 2)
#: Dagster 1.13's own values for what `tuned` (the packaged dagster.yaml) sets.
DAGSTER_DEFAULTS = {
    "run_queue": {"dequeue_interval_seconds": 5, "dequeue_use_threads": False},
}
#: The package before issue 17's changes (the last commit of issue 16): the `before` config runs it.
BASELINE_REV = "1343bbe"
#: name -> (instance overrides, backfill daemon interval or None for Dagster's 30 s, run BASELINE_REV's code)
CONFIGS: dict[str, tuple[dict[str, dict[str, Any]], float | None, bool]] = {
    "before": (DAGSTER_DEFAULTS, None, True),
    "tuned": ({}, None, False),
    "tuned+fast-daemon": ({}, 2.0, False),
}
_BACKFILL_TIMES = """query($id: String!) { partitionBackfillOrError(backfillId: $id) {
  ... on PartitionBackfill { timestamp endTimestamp } } }"""
_ASSET_NODES = "{ assetNodes { assetKey { path } isPartitioned } }"
PHASES = [
    ("launch -> first run queued (backfill daemon tick)", "launched", "first_queued"),
    ("-> dequeued (run queue)", "first_queued", "first_dequeued"),
    ("-> run worker started", "first_dequeued", "first_run_start"),
    ("-> first step started", "first_run_start", "first_step"),
    ("first step -> last step ended", "first_step", "last_step"),
    ("-> last run ended", "last_step", "last_run_end"),
    ("-> backfill marked done (daemon tick)", "last_run_end", "done"),
    ("-> seen by polling", "done", "seen"),
]


def _head_source(work: Path) -> Path:
    """The package as committed at BASELINE_REV (`git archive`, read-only on the repository), for `before`."""
    dest = work / "head-src"
    if not (dest / "tick_assets").is_dir():
        dest.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(
            ["git", "archive", BASELINE_REV, "tick_assets"], cwd=REPO, capture_output=True, check=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    return dest


def partitioned_assets(stack) -> list[list[str]]:
    """Every partitioned asset of the code location: the whole graph a backfill of its partitions covers."""
    nodes = stack.graphql(_ASSET_NODES)["assetNodes"]
    return sorted(n["assetKey"]["path"] for n in nodes if n["isPartitioned"])


def busy_seconds(steps: list[dict[str, Any]]) -> float:
    """Seconds during which at least one step was computing (the union of the steps' intervals)."""
    spans = sorted((s["startTime"], s["endTime"]) for s in steps if s["startTime"] and s["endTime"])
    busy, until = 0.0, float("-inf")
    for start, end in spans:
        if end > until:
            busy += end - max(start, until)
            until = end
    return busy


def _timeline(home: Path, run_ids: list[str]) -> dict[str, float]:
    """First/last timestamps of the runs' lifecycle events, from the instance's event log."""
    from dagster import DagsterEventType, DagsterInstance
    from dagster._core.instance.ref import InstanceRef

    kinds = {
        DagsterEventType.RUN_ENQUEUED: "queued",
        DagsterEventType.RUN_STARTING: "dequeued",  # the run queue hands it to the launcher
        DagsterEventType.RUN_START: "run_start",
        DagsterEventType.STEP_START: "step_start",
        DagsterEventType.STEP_SUCCESS: "step_end",
        DagsterEventType.STEP_FAILURE: "step_end",
        DagsterEventType.RUN_SUCCESS: "run_end",
        DagsterEventType.RUN_FAILURE: "run_end",
    }
    seen: dict[str, list[float]] = {k: [] for k in set(kinds.values())}
    with DagsterInstance.from_ref(InstanceRef.from_dir(str(home))) as instance:
        for run_id in run_ids:
            for entry in instance.all_logs(run_id, of_type=set(kinds)):
                seen[kinds[entry.dagster_event.event_type]].append(entry.timestamp)
    return {
        "first_queued": min(seen["queued"]),
        "first_dequeued": min(seen["dequeued"]),
        "first_run_start": min(seen["run_start"]),
        "first_step": min(seen["step_start"]),
        "last_step": max(seen["step_end"]),
        "last_run_end": max(seen["run_end"]),
    }


def measure(work: Path, name: str, days: int, scale: int) -> dict[str, Any]:
    """One whole-graph backfill of `days` x 2 instruments under config `name`: wall, compute, timeline."""
    from tick_assets.emulator.server import EmulatorConfig, EmulatorServer
    from tick_assets.stack.localstack import DagsterStack

    overrides, interval, head_code = CONFIGS[name]
    keys = [f"{FIRST_DAY + dt.timedelta(days=i)}|{inst}" for inst in INSTRUMENTS for i in range(days)]
    run_dir = work / f"overhead-{name}"
    with EmulatorServer(EmulatorConfig(port=0, cache_dir=work / "emulator", scale=scale)) as emulator:
        env = stack_env(emulator, run_dir / "data", INSTRUMENTS)
        # BASELINE_REV's package first on the path and as working directory (`python -m` code servers put it first)
        cwd = _head_source(work) if head_code else REPO
        if head_code:
            env["PYTHONPATH"] = str(cwd)
        stack = DagsterStack(
            run_dir / "home", env, instance_overrides=overrides, backfill_interval=interval, cwd=cwd
        )
        with stack:
            stack.set_pool_limit("tardis", 4)
            assets = partitioned_assets(stack)
            launched = time.time()
            backfill_id = stack.launch_backfill(assets, keys, f"overhead {name}")
            state = stack.wait_for_backfill(backfill_id, timeout=3600, poll=0.5)
            seen = time.time()
            steps = stack.step_stats([r["id"] for r in state["runs"]])
            times = stack.graphql(_BACKFILL_TIMES, {"id": backfill_id})["partitionBackfillOrError"]
    compute = sum(s["endTime"] - s["startTime"] for s in steps if s["startTime"] and s["endTime"])
    timeline = {
        "launched": launched,
        **_timeline(run_dir / "home", [r["id"] for r in state["runs"]]),
        "done": times["endTimestamp"] or seen,
        "seen": seen,
    }
    return {
        "name": name,
        "status": state["status"],
        "runs": len(state["runs"]),
        "assets": len(assets),
        "steps": len(steps),
        "partitions": len(keys),
        "wall": seen - launched,
        "compute": compute,
        "overhead": (seen - launched - compute) / len(keys),
        # steps of both runs overlap, so their sum can exceed the wall: the time no step computes is the other view
        "idle": (seen - launched - busy_seconds(steps)) / len(keys),
        "timeline": timeline,
    }


def section(work: Path, quick: bool, configs: list[str] | None = None) -> Section:
    """The backfill-overhead section: every config's wall, compute, overhead and timeline."""
    days, scale = (5, 2000) if quick else (30, 2000)
    results = [measure(work, name, days, scale) for name in configs or list(CONFIGS)]
    base = results[0]
    out = Section("backfill overhead")
    out.details = [
        "| config | status | assets | runs | steps | wall s | sum of step compute s | overhead s per partition | no step computing, s per partition |",
        "|---|---|---|---|---|---|---|---|---|",
        *[
            f"| {r['name']} | {r['status']} | {r['assets']} | {r['runs']} | {r['steps']} | {r['wall']:.1f} | {r['compute']:.1f} | "
            f"{r['overhead']:.2f} | {r['idle']:.2f} |"
            for r in results
        ],
        "",
        "| phase (s) | " + " | ".join(r["name"] for r in results) + " |",
        "|---|" + "---|" * len(results),
    ]
    for label, start, end in PHASES:
        cells = [f"{r['timeline'][end] - r['timeline'][start]:.1f}" for r in results]
        out.details.append(f"| {label} | " + " | ".join(cells) + " |")
    for r in results[1:]:
        out.targets.append(
            Target(
                f"backfill {days} days x 2 instruments, whole graph, {r['name']}: orchestration overhead per "
                "partition",
                f"{r['overhead']:.2f} s ({r['wall']:.0f} s wall - {r['compute']:.0f} s step compute)",
                f"{base['name']}: {base['overhead']:.2f} s ({base['wall']:.0f} s wall)",
                base["wall"] / r["wall"],
                "<= 0.3 s per partition",
                r["overhead"] <= 0.3 and r["status"] == "COMPLETED_SUCCESS",
            )
        )
    return out


def main() -> None:
    """Measure the chosen configs and print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="5 days instead of 30")
    parser.add_argument("--configs", default=",".join(CONFIGS))
    parser.add_argument("--workdir", type=Path, help="keeps generated days between runs")
    args = parser.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="tick-overhead-"))
    result = section(work, args.quick, args.configs.split(","))
    print("| benchmark | ours | baseline | ratio | target | met |\n|---|---|---|---|---|---|")
    print("\n".join(t.line() for t in result.targets))
    print("\n" + "\n".join(result.details))


if __name__ == "__main__":
    main()
