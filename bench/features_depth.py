"""features/depth on a book_snapshot_25 day of >= 500k rows against the usual per-snapshot Python loop.

The loop is what hand-written scripts do: for each snapshot row read the first 10 bid and ask levels, float()
them, and compute mid, spread, spread %, total bid and ask volume and their imbalance. It is timed twice: as a
script runs it (streaming the csv.gz row by row through csv.reader), and alone on rows already parsed into
memory (the strictest baseline). features/depth is timed on the lake partition (Parquet) of the same day,
computing the full feature set on the 1 s grid: the query alone, and the query plus the transaction that
replaces the slice in an on-disk DuckDB table (what the asset does per partition). Same rows, same run.

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

from tick_assets.emulator.synth import write_dataset
from tick_assets.features.depth import depth_sql
from tick_assets.features.grid import DaySlice
from tick_assets.lake import LocalLake, connect, partition_file, store_query, write_partition

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


def _runs(timings: list[float]) -> str:
    return ", ".join(f"{t:.2f}" for t in timings)


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
        partition_file(lake, "raw/book_snapshot_25", "binance-futures", "BTCUSDT", DAY),
        "book_snapshot_25",
    )

    started = time.perf_counter()
    with gzip.open(source, "rt", newline="") as f:
        reader = csv.reader(f)
        script_out = python_loop(reader, next(reader))
    script_seconds = time.perf_counter() - started
    with gzip.open(source, "rt", newline="") as f:
        reader = csv.reader(f)
        header = next(reader)
        rows = list(reader)
    started = time.perf_counter()
    loop_out = python_loop(rows, header)
    loop_seconds = time.perf_counter() - started
    assert script_out == loop_out
    del rows

    day = DaySlice("binance-futures", "BTCUSDT", DAY, 1000)
    target = LocalLake(work / "out")
    with connect(LocalLake(lake)) as con:
        store_query(con, target, day.partition("features/depth"), depth_sql(lake, day))  # warm-up: caches
        timings, query_timings = [], []
        for _ in range(3):
            written = store_query(con, target, day.partition("features/depth"), depth_sql(lake, day))
            timings.append(written.seconds)
            started = time.perf_counter()
            con.execute(f"CREATE OR REPLACE TEMP TABLE depth_only AS {depth_sql(lake, day)}")
            query_timings.append(time.perf_counter() - started)
        stored = f"read_parquet('{written.path}')"
        features = con.execute(f"SELECT count(*), count(mid) FROM {stored}").fetchone()
        feature_columns = len(con.execute(f"DESCRIBE SELECT * FROM {stored}").fetchall())
        plan = con.execute(f"EXPLAIN {depth_sql(lake, day)}").fetchall()[0][1]
    depth_seconds, query_seconds = min(timings), min(query_timings)
    n = len(loop_out)
    print(
        f"day: {n:,} book_snapshot_25 rows ({source.stat().st_size / 1e6:.1f} MB gzip); lake conversion took "
        f"{conversion.seconds:.2f} s\n"
    )
    shape = f"{features[0]:,} grid rows x {feature_columns} columns"
    table = [
        (
            "Python loop as a script runs it: csv.reader over the csv.gz, 10 levels",
            "508,700 rows x 6 values",
            script_seconds,
        ),
        ("same loop alone, rows already parsed in memory", "same", loop_seconds),
        (
            f"features/depth query alone (DuckDB, 25 levels, 1 s grid; best of 3: {_runs(query_timings)})",
            shape,
            query_seconds,
        ),
        (
            f"features/depth as the asset runs it: query + replace the slice in an on-disk table (best of 3: {_runs(timings)})",
            shape,
            depth_seconds,
        ),
    ]
    print("| method | output | seconds | snapshots/s | vs script | vs loop alone |")
    print("|---|---|---|---|---|---|")
    for label, output, seconds in table:
        print(
            f"| {label} | {output} | {seconds:.2f} | {n / seconds:,.0f} | {script_seconds / seconds:.1f}x | {loop_seconds / seconds:.1f}x |"
        )
    print(
        f"\nplan: {plan.upper().count('READ_PARQUET')} Parquet scans, correlated subquery (DELIM join): "
        f"{'DELIM' in plan.upper()}"
    )


if __name__ == "__main__":
    main()
