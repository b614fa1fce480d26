"""The book kernel (tick_assets/book/kernel.py, numba) against a plain-Python dict book on one L2 day.

Both rebuild the book of the same incremental_book_L2 day (the emulator's deep book) and read the whole final
book once: the plain-Python one is `tick_assets.book.reference.dict_book` (a dict per side and a loop per row, as
a hand-written script keeps a book), on rows already in memory (a list of tuples; numpy arrays for the kernel),
one core. Checks that both end with the same book, level for level. The kernel is also timed sampled on the 1 s grid (top 50 levels and the depth
within 5-100 bps of the mid over the whole book: the plain-Python sampler is too slow on a deep book to time), and
from the lake Parquet file (DuckDB decoding the columns in record batches, then the kernel: what features/book
does).

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
from tick_assets.book.reference import dict_book
from tick_assets.book.replay import DEFAULT_BANDS_BPS, L2_COLUMNS_SQL
from tick_assets.emulator.synth import write_dataset
from tick_assets.features.book import grid_times
from tick_assets.features.grid import DaySlice
from tick_assets.lake import write_partition

DAY = dt.date(2024, 1, 2)
DEPTH = 50
WHOLE_BOOK = 100_000  # levels a side read at the final sample: all of them
COARSE = (
    60  # the plain-Python book read every 60 s: sorting a deep dict book at all 86,400 points takes minutes
)


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
            end = [int(arrays[0][-1])]  # one sample after the last message: the whole final book
            BookReplay(grid[:2]).feed(
                *(a[:100] for a in arrays)
            )  # compile (cached on disk after the first run)

            def kernel(samples, depth):
                replay = BookReplay(samples, depth=depth)
                replay.feed(*arrays)
                return replay.finish()

            kernel_s, ours = _best_of(3, lambda: kernel(end, WHOLE_BOOK))
            grid_s, sampled = _best_of(3, lambda: kernel(grid, DEPTH))
            parquet_s, _ = _best_of(
                3, lambda: replay_lake_file(con, str(parquet), BookReplay(grid, depth=DEPTH))
            )
        rows = list(zip(*(a.tolist() for a in arrays), strict=True))
        loop_s, (bids, asks, _) = _best_of(1, lambda: dict_book(rows))
        coarse = grid[::COARSE]
        loop_coarse_s, (_, _, tops) = _best_of(1, lambda: dict_book(rows, coarse, DEPTH))
        coarse_s, coarse_ours = _best_of(3, lambda: kernel(coarse, DEPTH))
    for k, (top_bids, top_asks) in enumerate(tops):
        assert coarse_ours.top_price[k, 0, : len(top_bids)].tolist() == [p for p, _ in top_bids]
        assert coarse_ours.top_size[k, 1, : len(top_asks)].tolist() == [q for _, q in top_asks]
    for side, book in ((0, bids), (1, asks)):
        levels = sorted(book.items(), reverse=side == 0)
        got = ours.top_price[0, side, : len(levels)], ours.top_size[0, side, : len(levels)]
        assert ours.levels[0, side] == len(levels)
        assert got[0].tolist() == [p for p, _ in levels] and got[1].tolist() == [q for _, q in levels]
    if args.json:
        figures = {
            "rows": n,
            "loop_s": loop_s,
            "kernel_s": kernel_s,
            "grid_s": grid_s,
            "parquet_s": parquet_s,
            "loop_coarse_s": loop_coarse_s,
            "coarse_s": coarse_s,
            "coarse_samples": len(coarse),
        }
        print(
            json.dumps(figures | {"max_levels": int(sampled.levels.max()), "messages": ours.stats.messages})
        )
        return
    levels = sampled.levels[sampled.levels[:, 0] >= 0]
    print(
        f"day: {n:,} incremental_book_L2 rows (scale {args.scale:,}), {ours.stats.messages:,} messages, "
        f"levels per side median {int(np.median(levels[:, 0]))} / {int(np.median(levels[:, 1]))}, max "
        f"{int(levels.max())}\n"
    )
    print("| method | seconds | M rows/s | vs its plain-Python baseline |")
    print("|---|---:|---:|---:|")
    for name, seconds, baseline in (
        (
            "plain-Python dict book (tick_assets.book.reference), rows in memory, the final book read once",
            loop_s,
            loop_s,
        ),
        ("compiled kernel (numba), the same, one core", kernel_s, loop_s),
        (
            f"plain-Python dict book read every {COARSE} s ({len(coarse):,} samples, top {DEPTH} sorted)",
            loop_coarse_s,
            loop_coarse_s,
        ),
        (f"kernel read every {COARSE} s (the same samples, with the bands)", coarse_s, loop_coarse_s),
        (
            f"kernel sampled on the 1 s grid ({grid.size:,} samples: top {DEPTH}, bands {DEFAULT_BANDS_BPS} bps)",
            grid_s,
            None,
        ),
        (
            "the same from the lake Parquet (DuckDB 1 thread + kernel): what features/book does",
            parquet_s,
            None,
        ),
    ):
        ratio = f"{baseline / seconds:.1f}x" if baseline else "n/a (too slow to time in Python)"
        print(f"| {name} | {seconds:.3f} | {n / seconds / 1e6:.2f} | {ratio} |")
    print("\nthe final book is identical to the plain-Python book's, level for level")


if __name__ == "__main__":
    main()
