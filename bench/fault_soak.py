"""Fault soak: a backfill of the whole graph through Dagster, fault-free and then with faults on, compared.

Faults (per dataset request, deterministic by seed): 429 with Retry-After, 5xx, connection reset mid-body,
truncated gzip, and stalls longer than the read timeout. Every partition must end materialized, and every lake
file (raw, features, analytics) must equal the fault-free run's (rows and an order-independent checksum of all values).

Run: .venv/bin/python bench/fault_soak.py [--days 10] [--scale 2000] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import shutil
import tempfile
from pathlib import Path

from tick_assets import settings
from tick_assets.emulator.faults import FaultConfig
from tick_assets.emulator.server import EmulatorConfig
from tick_assets.stack.soak import compare, run_backfill

INSTRUMENTS = ["binance-futures:BTCUSDT", "deribit:BTC-PERPETUAL"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=10)
    parser.add_argument("--scale", type=int, default=2000, help="emulator book events per day")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workdir", type=Path)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    work = args.workdir or Path(tempfile.mkdtemp(prefix="tick-soak-"))
    for sub in ("clean", "faulty"):
        shutil.rmtree(work / sub, ignore_errors=True)
    first, types = dt.date(2024, 1, 2), settings.raw_data_types()
    faults = FaultConfig(
        throttle=0.1, server_error=0.1, reset=0.05, truncate=0.05, stall=0.05, stall_seconds=4, seed=args.seed
    )
    cache = work / "synth"
    clean = run_backfill(
        EmulatorConfig(cache_dir=cache, scale=args.scale),
        work / "clean",
        first,
        args.days,
        INSTRUMENTS,
        types,
    )
    faulty = run_backfill(
        EmulatorConfig(cache_dir=cache, scale=args.scale, faults=faults),
        work / "faulty",
        first,
        args.days,
        INSTRUMENTS,
        types,
        read_timeout_seconds=1.5,
    )
    result = compare(clean.fingerprint, faulty.fingerprint)
    partitions = args.days * len(INSTRUMENTS)
    print(
        f"{args.days} days x {len(INSTRUMENTS)} instruments, {len(types)} raw data types + features + analytics "
        f"({len(clean.partitions)} assets x {partitions} partitions), emulator scale {args.scale}\n"
    )
    print("| run | seconds | runs failed | partitions materialized | dataset requests | faults injected |")
    print("|---|---|---|---|---|---|")
    for name, run in (("fault-free", clean), ("faults on", faulty)):
        injected = ", ".join(f"{k} {v}" for k, v in sorted(run.faults.items())) or "none"
        print(
            f"| {name} | {run.seconds:.1f} | {run.failed_runs} of {run.runs} | {sum(run.partitions.values())} of "
            f"{partitions * len(run.partitions)} | {run.emulator.get('dataset_requests', 0)} | {injected} |"
        )
    print(
        f"\ncompared: {result['items']} lake files, {result['rows_compared']:,} rows; "
        f"rows lost {result['rows_lost']}, rows duplicated/extra {result['rows_extra']}, "
        f"files or tables differing {result['items_differing']}"
    )


if __name__ == "__main__":
    main()
