"""Conversion of one book_snapshot_25 day (csv.gz -> typed zstd Parquet): throughput and peak memory.

Compares the lake converter (DuckDB read_csv streamed into COPY ... TO parquet) with the usual hand-written
baseline (pandas.read_csv of the whole day, then DataFrame.to_parquet), each in a fresh process so peak RSS is
its own. Runs a day of >= 500k rows and one twice that size to show memory stays flat as files grow.

Run: .venv/bin/python bench/lake_conversion.py [--rows 510000] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import datetime as dt
import gzip
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _perf_worker import peak_rss_mb

DAY = dt.date(2024, 1, 2)


def _worker(method: str, source: Path, out: Path) -> dict:
    started = time.perf_counter()
    if method == "idle":
        import duckdb  # noqa: F401
        import pandas  # noqa: F401

        rows = 0
    elif method.startswith("lake"):
        from tick_assets.lake import ConversionOptions, write_partition

        threads = int(method.split(":")[1]) if ":" in method else 1
        rows = write_partition(source, out, "book_snapshot_25", ConversionOptions(threads=threads)).rows
    elif method == "pandas":
        import pandas as pd

        from tick_assets.tardis.datatypes import SCHEMAS

        dtypes = {
            c: {"BIGINT": "int64", "DOUBLE": "float64", "VARCHAR": "string"}[t]
            for c, t in SCHEMAS["book_snapshot_25"]
        }
        frame = pd.read_csv(source, dtype=dtypes)
        frame.to_parquet(out, compression="zstd", index=False)
        rows = len(frame)
    else:
        raise SystemExit(f"unknown method {method}")
    seconds = time.perf_counter() - started
    peak_mb = peak_rss_mb()
    return {
        "rows": rows,
        "seconds": seconds,
        "peak_mb": peak_mb,
        "parquet_bytes": out.stat().st_size if out.exists() else 0,
    }


def _measure(method: str, source: Path, out: Path) -> dict:
    out.unlink(missing_ok=True)
    done = subprocess.run(
        [sys.executable, __file__, "--worker", method, str(source), str(out)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def _day_file(work: Path, rows: int) -> Path:
    from tick_assets.emulator.synth import write_dataset

    path = work / f"binance-futures_book_snapshot_25_{DAY}_BTCUSDT-{rows}.csv.gz"
    if not path.exists():
        started = time.perf_counter()
        n = write_dataset("binance-futures", "BTCUSDT", "book_snapshot_25", DAY, rows, path)
        print(f"generated {n:,} rows in {time.perf_counter() - started:.1f} s -> {path}", file=sys.stderr)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=510_000, help="synthetic book events (~rows) of the day")
    parser.add_argument("--workdir", type=Path)
    parser.add_argument("--worker", nargs=3, metavar=("METHOD", "SOURCE", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        method, source, out = args.worker
        print(json.dumps(_worker(method, Path(source), Path(out))))
        return

    work = args.workdir or Path(tempfile.mkdtemp(prefix="tick-conv-"))
    work.mkdir(parents=True, exist_ok=True)
    idle = _measure("idle", work / "none", work / "none.parquet")
    print(f"python + duckdb + pandas imported: {idle['peak_mb']:.0f} MB RSS (the floor of every row below)\n")
    print(
        "| day | method | rows | seconds | rows/s | CSV MB/s | gzip MB/s | peak RSS MB | Parquet MB | speed vs pandas | memory vs pandas |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for size in (args.rows, 2 * args.rows):
        source = _day_file(work, size)
        with gzip.open(source, "rb") as f:
            csv_bytes = sum(len(chunk) for chunk in iter(lambda: f.read(1 << 20), b""))
        gz_bytes = source.stat().st_size
        results = {
            m: _measure(m, source, work / f"{m.replace(':', '_')}.parquet")
            for m in ("pandas", "lake", "lake:2")
        }
        base = results["pandas"]
        for method, r in results.items():
            label = {
                "pandas": "pandas read_csv + to_parquet (baseline)",
                "lake": "lake converter (DuckDB, 1 thread)",
                "lake:2": "lake converter (DuckDB, 2 threads)",
            }[method]
            print(
                f"| {size:,} | {label} | {r['rows']:,} | {r['seconds']:.2f} | {r['rows'] / r['seconds']:,.0f} | "
                f"{csv_bytes / 1e6 / r['seconds']:.0f} | {gz_bytes / 1e6 / r['seconds']:.1f} | {r['peak_mb']:.0f} | "
                f"{r['parquet_bytes'] / 1e6:.1f} | {base['seconds'] / r['seconds']:.2f}x | "
                f"{r['peak_mb'] / base['peak_mb']:.2f}x |"
            )
    print(f"\nCPU: {os.cpu_count()} cores; CSV MB = uncompressed bytes of the day file.")


if __name__ == "__main__":
    main()
