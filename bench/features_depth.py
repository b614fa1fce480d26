"""features/depth on a book_snapshot_25 day of >= 500k rows against the usual per-snapshot Python loop.

The loop is what hand-written scripts do: for each snapshot row read the first 10 bid and ask levels, float()
them, and compute mid, spread, spread %, total bid and ask volume and their imbalance. It is timed on rows
already read into memory (the loop alone), and on top of reading the csv.gz. features/depth is timed on the
lake partition (Parquet) of the same day, computing the full feature set on the 1 s grid and writing it into a
DuckDB table (what the asset does). Same rows, same run.

Run: .venv/bin/python bench/features_depth.py [--rows 510000] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import gzip
import tempfile
import time
from pathlib import Path

import duckdb

from tick_assets.emulator.synth import write_dataset
from tick_assets.features.depth import depth_sql
from tick_assets.features.grid import DaySlice
from tick_assets.features.store import replace_slice
from tick_assets.lake import partition_file, write_partition

DAY = dt.date(2024, 1, 2)
LEVELS = 10


def python_loop(rows: list[list[str]], header: list[str]) -> list[tuple[float, ...]]:
    """The per-snapshot loop of a typical hand-written script (10 levels)."""
    col = {name: i for i, name in enumerate(header)}
    bid_p = [col[f"bids[{i}].price"] for i in range(LEVELS)]
    bid_q = [col[f"bids[{i}].amount"] for i in range(LEVELS)]
    ask_p = [col[f"asks[{i}].price"] for i in range(LEVELS)]
    ask_q = [col[f"asks[{i}].amount"] for i in range(LEVELS)]
    out = []
    for row in rows:
        bids = [(float(row[p]), float(row[q])) for p, q in zip(bid_p, bid_q, strict=True) if row[p]]
        asks = [(float(row[p]), float(row[q])) for p, q in zip(ask_p, ask_q, strict=True) if row[p]]
        best_bid, best_ask = bids[0][0], asks[0][0]
        mid = (best_bid + best_ask) / 2
        spread = best_ask - best_bid
        bid_volume = sum(q for _, q in bids)
        ask_volume = sum(q for _, q in asks)
        imbalance = (bid_volume - ask_volume) / (bid_volume + ask_volume)
        out.append((mid, spread, spread / mid * 100, bid_volume, ask_volume, imbalance))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=510_000, help="synthetic book events (~rows) of the day")
    parser.add_argument("--workdir", type=Path)
    args = parser.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="tick-depth-"))
    work.mkdir(parents=True, exist_ok=True)
    source = work / f"book_snapshot_25-{args.rows}.csv.gz"
    if not source.exists():
        write_dataset("binance-futures", "BTCUSDT", "book_snapshot_25", DAY, args.rows, source)
    lake = work / "lake"
    conversion = write_partition(
        source,
        partition_file(lake, "book_snapshot_25", "binance-futures", "BTCUSDT", DAY),
        "book_snapshot_25",
    )

    started = time.perf_counter()
    with gzip.open(source, "rt", newline="") as f:
        reader = csv.reader(f)
        header = next(reader)
        rows = list(reader)
    read_seconds = time.perf_counter() - started
    started = time.perf_counter()
    loop_out = python_loop(rows, header)
    loop_seconds = time.perf_counter() - started

    day = DaySlice("binance-futures", "BTCUSDT", DAY, 1000)
    with duckdb.connect(str(work / "bench.duckdb")) as con:
        replace_slice(con, "features", "depth", depth_sql(lake, day), day)  # warm-up: table creation, caches
        timings = []
        for _ in range(3):
            written = replace_slice(con, "features", "depth", depth_sql(lake, day), day)
            timings.append(written.seconds)
        features = con.execute("SELECT count(*), count(mid) FROM features.depth").fetchone()
        feature_columns = len(con.execute("DESCRIBE features.depth").fetchall())
        plan = con.execute(f"EXPLAIN {depth_sql(lake, day)}").fetchall()[0][1]
    depth_seconds = min(timings)
    n = len(rows)
    print(
        f"day: {n:,} book_snapshot_25 rows ({source.stat().st_size / 1e6:.1f} MB gzip); lake conversion took "
        f"{conversion.seconds:.2f} s\n"
    )
    print("| method | output | seconds | snapshots/s | vs loop alone |")
    print("|---|---|---|---|---|")
    print(
        f"| Python loop, 10 levels, rows already in memory | {len(loop_out):,} rows x 6 values | {loop_seconds:.2f} | {n / loop_seconds:,.0f} | 1.0x |"
    )
    print(
        f"| same loop incl. reading the csv.gz | same | {read_seconds + loop_seconds:.2f} | {n / (read_seconds + loop_seconds):,.0f} | {loop_seconds / (read_seconds + loop_seconds):.2f}x |"
    )
    print(
        f"| features/depth (DuckDB, 25 levels, 1 s grid, written to a table; best of 3: {', '.join(f'{t:.2f}' for t in timings)}) "
        f"| {features[0]:,} grid rows x {feature_columns} columns | {depth_seconds:.2f} | {n / depth_seconds:,.0f} | **{loop_seconds / depth_seconds:.0f}x** |"
    )
    print(
        f"\nASOF join in the plan: {'ASOF' in plan.upper()}; correlated subquery: {'DELIM' in plan.upper()}"
    )


if __name__ == "__main__":
    main()
