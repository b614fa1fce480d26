"""The book kernel (tick_assets/book/kernel.py, numba) against a plain-Python dict book on one L2 day.

Both rebuild the book of the same incremental_book_L2 day and sample it on the 1 s grid (top 50 levels and the
depth within 5-100 bps of the mid over the whole book): the plain-Python one is `tick_assets.book.reference`
(a dict per side and a loop per row, the oracle of the tests). Both are timed on rows already in memory (numpy
arrays for the kernel, a list of tuples for the loop), on one core; the kernel also from the lake Parquet file
(DuckDB decoding the columns in record batches, then the kernel: what features/book does). Checks that both give
the same samples.

Run: .venv/bin/python bench/book_kernel.py [--scale 2000000] [--workdir DIR] [--json]
(bench/run.py's `book` section runs it with --json: one line of figures instead of the table)
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import tempfile
import time
from pathlib import Path

import duckdb
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tick_assets.book import BookReplay, replay_lake_file
from tick_assets.book.reference import reference_replay
from tick_assets.book.replay import DEFAULT_BANDS_BPS, L2_COLUMNS_SQL
from tick_assets.emulator.synth import write_dataset
from tick_assets.features.book import grid_times
from tick_assets.features.grid import DaySlice
from tick_assets.lake import write_partition

DAY = dt.date(2024, 1, 2)
DEPTH = 50


def _best_of(runs: int, fn) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(runs):
        started = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - started)
    return best, out


def main() -> None:
    """Generate (or reuse) the day, time both, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=int, default=2_000_000, help="book events of the synthetic day")
    parser.add_argument("--workdir", type=Path)
    parser.add_argument("--json", action="store_true", help="print one JSON line of figures")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        work = args.workdir or Path(tmp)
        source = work / f"l2_{args.scale}.csv.gz"
        if not source.exists():
            write_dataset("binance-futures", "BTCUSDT", "incremental_book_L2", DAY, args.scale, source)
        parquet = work / f"l2_{args.scale}.parquet"
        write_partition(source, parquet, "incremental_book_L2")
        grid = grid_times(DaySlice("binance-futures", "BTCUSDT", DAY))
        with duckdb.connect(config={"threads": 1}) as con:
            cols = con.sql(f"SELECT {L2_COLUMNS_SQL} FROM read_parquet('{parquet}')").fetchnumpy()
            arrays = [
                np.asarray(cols[k]) for k in ("local_timestamp", "is_snapshot", "is_ask", "price", "amount")
            ]
            n = arrays[0].size
            BookReplay(grid[:2]).feed(
                *(a[:100] for a in arrays)
            )  # compile (cached on disk after the first run)

            def kernel():
                replay = BookReplay(grid, depth=DEPTH)
                replay.feed(*arrays)
                return replay.finish()

            kernel_s, ours = _best_of(3, kernel)
            parquet_s, _ = _best_of(
                3, lambda: replay_lake_file(con, str(parquet), BookReplay(grid, depth=DEPTH))
            )
        rows = list(zip(*(a.tolist() for a in arrays), strict=True))
        loop_s, ref = _best_of(1, lambda: reference_replay(rows, grid, DEPTH, DEFAULT_BANDS_BPS))
    for name in ("top_price", "top_size", "band_depth", "levels", "last_ts", "messages"):
        np.testing.assert_array_equal(getattr(ours, name), getattr(ref, name), err_msg=name)
    levels = ours.levels[ours.levels[:, 0] >= 0]
    if args.json:
        figures = {"rows": n, "loop_s": loop_s, "kernel_s": kernel_s, "parquet_s": parquet_s}
        print(json.dumps(figures | {"max_levels": int(levels.max()), "messages": ours.stats.messages}))
        return
    print(
        f"day: {n:,} incremental_book_L2 rows (scale {args.scale:,}), {ours.stats.messages:,} messages, "
        f"levels per side median {int(np.median(levels[:, 0]))} / {int(np.median(levels[:, 1]))}, max "
        f"{int(levels.max())}; samples: {grid.size:,} (1 s grid), top {DEPTH}, bands {DEFAULT_BANDS_BPS} bps\n"
    )
    print("| method | seconds | M rows/s | vs plain Python |")
    print("|---|---:|---:|---:|")
    print(
        f"| plain-Python dict book (tick_assets.book.reference), rows in memory | {loop_s:.2f} | {n / loop_s / 1e6:.2f} | 1.0x |"
    )
    print(
        f"| compiled kernel (numba), rows in memory, one core | {kernel_s:.3f} | {n / kernel_s / 1e6:.1f} | {loop_s / kernel_s:.0f}x |"
    )
    print(
        f"| kernel from the lake Parquet (DuckDB 1 thread + kernel) | {parquet_s:.3f} | {n / parquet_s / 1e6:.1f} | {loop_s / parquet_s:.0f}x |"
    )
    print("\nsamples identical to the plain-Python book: yes")


if __name__ == "__main__":
    main()
