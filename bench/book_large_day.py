"""features/book on a real-size incremental_book_L2 day: peak RSS and time, next to the raw conversion of the day.

Three fresh processes (each its own peak RSS): generate the emulator's day (deep book), convert it to the lake
(`write_partition`, what raw/incremental_book_L2 does), and build features/book from the lake file and store it
(what the feature asset does per partition). Scale 13,500,000 gives ~20.7M L2 rows.

Run: .venv/bin/python bench/book_large_day.py [--scale 13500000] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

DAY = dt.date(2024, 1, 2)
INSTRUMENT = ("binance-futures", "BTCUSDT")


def _peak_rss_mb() -> float:
    """VmHWM of this process (ru_maxrss is carried over from the parent across exec on Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _step(mode: str, source: Path, lake: Path, scale: int) -> dict:
    """One step in this process: gen, convert or book."""
    from tick_assets.lake import LocalLake, connect, partition_file, write_partition

    started = time.perf_counter()
    if mode == "gen":
        from tick_assets.emulator.synth import write_dataset

        out: dict = {"rows": write_dataset(*INSTRUMENT, "incremental_book_L2", DAY, scale, source)}
    elif mode == "convert":
        dest = partition_file(lake, "raw/incremental_book_L2", *INSTRUMENT, DAY)
        written = write_partition(source, dest, "incremental_book_L2")
        out = {"rows": written.rows, "parquet_mb": written.parquet_bytes / 1e6}
    else:
        from tick_assets.features.book import book_features
        from tick_assets.features.grid import DaySlice
        from tick_assets.lake.datasets import store_query

        day = DaySlice(*INSTRUMENT, DAY)
        with connect(LocalLake(lake)) as con:
            table, samples = book_features(con, lake, day)
            con.register("book_day", table)
            stored = store_query(
                con, LocalLake(lake), day.partition("features/book"), "SELECT * FROM book_day"
            )
        out = {"rows": stored.rows, "messages": samples.stats.messages}
    out["seconds"] = time.perf_counter() - started
    out["peak_rss_mb"] = _peak_rss_mb()
    return out


def main() -> None:
    """Run the three steps in fresh processes and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=int, default=13_500_000)
    parser.add_argument("--workdir", type=Path)
    parser.add_argument("--_step", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args._step:
        mode, source, lake = args._step
        print(json.dumps(_step(mode, Path(source), Path(lake), args.scale)))
        return
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        source, lake = Path(tmp) / "l2.csv.gz", Path(tmp) / "lake"
        results = {}
        for mode in ("gen", "convert", "book"):
            done = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--scale",
                    str(args.scale),
                    "--_step",
                    mode,
                    str(source),
                    str(lake),
                ],
                capture_output=True,
                text=True,
                check=True,
            )
            results[mode] = json.loads(done.stdout.strip().splitlines()[-1])
    conv, book = results["convert"], results["book"]
    print(
        f"incremental_book_L2 day of scale {args.scale:,}: {conv['rows']:,} rows, {book['messages']:,} messages\n"
    )
    print("| step | seconds | peak RSS MB |")
    print("|---|---:|---:|")
    print(
        f"| raw conversion (csv.gz -> lake Parquet, {conv['parquet_mb']:.0f} MB) | {conv['seconds']:.1f} | {conv['peak_rss_mb']:,.0f} |"
    )
    print(
        f"| features/book (replay + {book['rows']:,} grid rows stored) | {book['seconds']:.1f} | {book['peak_rss_mb']:,.0f} |"
    )
    print(f"\nfeatures/book / conversion time: {book['seconds'] / conv['seconds']:.2f}x")


if __name__ == "__main__":
    main()
