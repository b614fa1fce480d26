"""Feature backfills with 1, 2 and 4 step processes at once, over raw partitions already in the lake.

One emulator-fed webserver + daemon (`DagsterStack`) backfills raw/trades and raw/book_snapshot_25 over DAYS x 2
instruments first; then, for each N, a backfill of features/depth and features/trade_bars over the same partitions
(the default ranged runs: one per instrument, each run one step per asset). N step processes at once are N/2
runs at once x 2 steps each (the executor's `max_concurrent`, from the backfill's run config), and N = 1 is one
run at a time (a run-queue tag limit) x 1 step. Wall is from launch until the backfill is done; the backfill daemon
iterates every 2 s here (`DagsterStack.backfill_interval`) so its 30 s ticks do not drown the steps, and the
automation sensor is stopped (it would make the features itself once the raw partitions land).

Run: .venv/bin/python bench/feature_scaling.py [--quick] [--scale 100000] [--days 30]
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from run import Section, Target, stack_env

INSTRUMENTS = ["binance-futures:BTCUSDT", "deribit:BTC-PERPETUAL"]
FIRST_DAY = dt.date(2024, 1, 2)
FEATURES = [["features", "depth"], ["features", "trade_bars"]]
#: A run tagged so waits for the previous one: the N = 1 case.
SERIAL_TAG = "bench/one_run_at_a_time"
#: step processes at once -> (runs at once, steps per run)
SHAPES = {1: (1, 1), 2: (2, 1), 4: (2, 2)}


def _most_at_once(steps: list[dict[str, Any]]) -> int:
    """The largest number of steps whose [start, end] intervals overlap."""
    edges = sorted(
        [(s["startTime"], 1) for s in steps if s["startTime"] and s["endTime"]]
        + [(s["endTime"], -1) for s in steps if s["startTime"] and s["endTime"]]
    )
    most = now = 0
    for _, delta in edges:
        now += delta
        most = max(most, now)
    return most


def _backfill(stack, keys: list[str], processes: int) -> dict[str, Any]:
    runs_at_once, per_run = SHAPES[processes]
    tags = {SERIAL_TAG: "1"} if runs_at_once == 1 else None
    launched = time.time()
    backfill_id = stack.launch_backfill(
        FEATURES,
        keys,
        f"features x{processes}",
        run_config={"execution": {"config": {"max_concurrent": per_run}}},
        tags=tags,
    )
    state = stack.wait_for_backfill(backfill_id, timeout=1800, poll=0.5)
    wall = time.time() - launched
    steps = stack.step_stats([r["id"] for r in state["runs"]])
    timed = [s for s in steps if s["startTime"] and s["endTime"]]
    return {
        "processes": processes,
        "status": state["status"],
        "runs": len(state["runs"]),
        "steps": len(steps),
        "wall": wall,
        "compute": sum(s["endTime"] - s["startTime"] for s in timed),
        "span": max(s["endTime"] for s in timed) - min(s["startTime"] for s in timed),
        "most": _most_at_once(steps),
    }


def measure(work: Path, days: int, scale: int) -> tuple[float, list[dict[str, Any]]]:
    """Raw backfill once, then one feature backfill per N; (raw backfill s, results)."""
    from tick_assets.emulator.server import EmulatorConfig, EmulatorServer
    from tick_assets.stack.localstack import DagsterStack

    keys = [f"{FIRST_DAY + dt.timedelta(days=i)}|{inst}" for inst in INSTRUMENTS for i in range(days)]
    run_dir = work / f"features-{days}d-{scale}"
    with EmulatorServer(
        EmulatorConfig(port=0, cache_dir=work / f"emulator-{scale}", scale=scale)
    ) as emulator:
        env = stack_env(
            emulator, run_dir / "data", INSTRUMENTS, TICK_ASSETS_DATA_TYPES="trades,book_snapshot_25"
        )
        limits = {"tag_concurrency_limits": [{"key": SERIAL_TAG, "limit": 1}]}
        stack = DagsterStack(
            run_dir / "home",
            env,
            instance_overrides={"concurrency": {"runs": {"max_concurrent_runs": 4, **limits}}},
            backfill_interval=2.0,
        )
        with stack:
            # the features of the landed raw partitions are the backfills' to make, not the automation's
            stack.cli("sensor", "stop", "tick_assets_automation", "-w", str(stack.workspace))
            stack.set_pool_limit("tardis", 4)
            started = time.time()
            raw = stack.wait_for_backfill(
                stack.launch_backfill([["raw", "trades"], ["raw", "book_snapshot_25"]], keys, "raw"),
                timeout=1800,
                poll=0.5,
            )
            if raw["status"] != "COMPLETED_SUCCESS":
                raise RuntimeError(f"raw backfill {raw['status']}; see {run_dir}/home/*.log")
            raw_seconds = time.time() - started
            results = [_backfill(stack, keys, n) for n in SHAPES]
    return raw_seconds, results


def section(work: Path, quick: bool, days: int | None = None, scale: int | None = None) -> Section:
    """Wall time of a feature backfill with 1, 2 and 4 step processes, and the speed-up over 1."""
    days = days or (6 if quick else 30)
    scale = scale or (20_000 if quick else 100_000)
    raw_seconds, results = measure(work, days, scale)
    base = results[0]
    out = Section("feature scaling")
    out.details = [
        f"{days} days x 2 instruments, scale {scale} (book events per day); raw backfill first: "
        f"{raw_seconds:.0f} s. Ranged runs (one per instrument), backfill daemon every 2 s.",
        "",
        "| step processes | runs at once x steps per run | status | runs | steps | most at once | wall s | "
        "first step -> last step s | sum of step s | speed-up (wall) | speed-up (steps) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        runs_at_once, per_run = SHAPES[r["processes"]]
        out.details.append(
            f"| {r['processes']} | {runs_at_once} x {per_run} | {r['status']} | {r['runs']} | {r['steps']} | "
            f"{r['most']} | {r['wall']:.1f} | {r['span']:.1f} | {r['compute']:.1f} | "
            f"{base['wall'] / r['wall']:.2f}x | {base['span'] / r['span']:.2f}x |"
        )
    for r in results[1:]:
        out.targets.append(
            Target(
                f"feature backfill {days} days x 2 instruments, {r['processes']} step processes",
                f"{r['wall']:.1f} s wall",
                f"1 step process: {base['wall']:.1f} s",
                base["wall"] / r["wall"],
                "(report)",
                None,
            )
        )
    return out


def main() -> None:
    """Measure and print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="6 days at scale 20000")
    parser.add_argument("--days", type=int)
    parser.add_argument("--scale", type=int)
    parser.add_argument("--workdir", type=Path, help="keeps generated days between runs")
    args = parser.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="tick-features-"))
    result = section(work, args.quick, args.days, args.scale)
    print("| benchmark | ours | baseline | ratio | target | met |\n|---|---|---|---|---|---|")
    print("\n".join(t.line() for t in result.targets))
    print("\n" + "\n".join(result.details))


if __name__ == "__main__":
    main()
