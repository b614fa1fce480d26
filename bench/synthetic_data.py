"""Synthetic Tardis days: how they compress next to the real samples, and how fast the largest days generate.

1. Bytes per row. For every data type with a real head in /work/shared/tardis_real_samples/, gzip (level 6, the
   emulator's default) the real rows and the first as many rows of a synthetic day (same exchange and symbol where
   the catalog has it; huobi-dm-swap quotes against deribit BTC-PERPETUAL, the closest USD-sized inverse
   contract), and the whole synthetic day. The heads are tiny (10 rows for three of the four samples), so the head
   figure is the median over --days days.
2. Generation speed at real day sizes: a book_snapshot_25 day of >= 5M rows and an incremental_book_L2 day of
   >= 20M rows (binance-futures BTCUSDT), each generated through SyntheticSource (the emulator's on-disk cache,
   temp file + rename) in a fresh process so its peak RSS is its own; then a second lookup is timed (cache hit).

Run: .venv/bin/python bench/synthetic_data.py [--snapshot-scale 5400000] [--l2-scale 13500000]
     [--compare-scale 500000] [--days 3] [--workdir DIR]
Quick run: .venv/bin/python bench/synthetic_data.py --snapshot-scale 200000 --l2-scale 200000
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tick_assets.emulator import csvout, synth

SAMPLES = Path("/work/shared/tardis_real_samples")
DAY = dt.date(2024, 3, 1)
#: (data type, real sample file, its exchange:symbol, synthetic exchange, synthetic symbol)
CASES = [
    (
        "book_snapshot_25",
        "nautechsystems__binance-futures_book_snapshot_25_BTCUSDT.csv",
        "binance-futures:BTCUSDT",
        "binance-futures",
        "BTCUSDT",
    ),
    ("trades", "nautechsystems__tardis_trades.csv", "binance-futures:BTCUSDT", "binance-futures", "BTCUSDT"),
    ("trades", "nautechsystems__bitmex_trades_XBTUSD.csv", "bitmex:XBTUSD", "bitmex", "XBTUSD"),
    (
        "quotes",
        "nautechsystems__huobi-dm-swap_quotes_BTC-USD.csv",
        "huobi-dm-swap:BTC-USD",
        "deribit",
        "BTC-PERPETUAL",
    ),
]
TARGET_ROWS = {"book_snapshot_25": 5_000_000, "incremental_book_L2": 20_000_000}


def _head_bytes_per_row(
    exchange: str, symbol: str, data_type: str, day: dt.date, scale: int, rows: int
) -> float:
    """Gzip bytes per row of the first `rows` rows of a synthetic day (only its first chunk is generated)."""
    head = next(synth.iter_tables(exchange, symbol, data_type, day, scale)).slice(0, rows)
    return csvout.gzip_bytes_per_row(csvout.csv_rows(head))


def _full_day_bytes_per_row(
    exchange: str, symbol: str, data_type: str, scale: int, work: Path
) -> tuple[int, float]:
    """(rows, gzip bytes per row) of a whole synthetic day written as the emulator writes it."""
    path = work / f"{exchange}_{data_type}_{symbol}_{scale}.csv.gz"
    rows = synth.write_dataset(exchange, symbol, data_type, DAY, scale, path)
    size = path.stat().st_size
    path.unlink()
    return rows, size / rows


def compressibility(compare_scale: int, days: int, work: Path) -> list[str]:
    """The bytes-per-row table as markdown lines."""
    lines = [
        f"Bytes per row, gzip level {csvout.DEFAULT_COMPRESSLEVEL} (synthetic at scale {compare_scale:,}; head = "
        f"median of {days} days)",
        "",
        "| data type | real exchange:symbol | synthetic exchange:symbol | head rows | real B/row | synthetic B/row "
        "| ratio | synthetic full day rows | synthetic full day B/row |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for data_type, sample, real_name, exchange, symbol in CASES:
        body = (SAMPLES / sample).read_bytes().split(b"\n", 1)[1]
        rows = body.count(b"\n")
        real = csvout.gzip_bytes_per_row(body)
        heads = [
            _head_bytes_per_row(
                exchange, symbol, data_type, DAY + dt.timedelta(days=7 * i), compare_scale, rows
            )
            for i in range(days)
        ]
        synthetic = statistics.median(heads)
        full_rows, full = _full_day_bytes_per_row(exchange, symbol, data_type, compare_scale, work)
        lines.append(
            f"| {data_type} | {real_name} | {exchange}:{symbol} | {rows:,} | {real:.1f} | {synthetic:.1f} | "
            f"{synthetic / real:.2f} | {full_rows:,} | {full:.1f} |"
        )
    return lines


def _worker(data_type: str, scale: int, cache: Path) -> dict:
    """Generate one day through SyntheticSource in this (fresh) process; report rows, time, size and peak RSS."""
    from _perf_worker import peak_rss_mb

    from tick_assets.emulator.sources import SyntheticSource

    source = SyntheticSource(cache, scale, exported_until=DAY + dt.timedelta(days=1))
    started = time.perf_counter()
    path = source.lookup("binance-futures", data_type, DAY, "BTCUSDT").path
    seconds = time.perf_counter() - started
    assert path is not None
    started = time.perf_counter()
    again = source.lookup("binance-futures", data_type, DAY, "BTCUSDT").path
    hit = time.perf_counter() - started
    assert again == path
    import gzip

    with gzip.open(path, "rb") as f:
        count = sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 24), b"")) - 1
    leftovers = [p.name for p in path.parent.iterdir() if p.name.endswith(".tmp")]
    return {
        "rows": count,
        "seconds": seconds,
        "gzip_bytes": path.stat().st_size,
        "peak_mb": peak_rss_mb(),
        "cache_hit_s": hit,
        "temp_files_left": leftovers,
    }


def speed(snapshot_scale: int, l2_scale: int, work: Path) -> list[str]:
    """Generation speed at the largest scale, each day in a fresh process."""
    lines = [
        "Generation at the largest scale (binance-futures BTCUSDT, SyntheticSource: generate + gzip level 6 + "
        "temp file + rename, fresh process each)",
        "",
        "| data type | scale | rows | target rows | seconds | rows/s | gzip MB | gzip MB/s | B/row | peak RSS MB "
        "| cache hit s |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for data_type, scale in (("book_snapshot_25", snapshot_scale), ("incremental_book_L2", l2_scale)):
        cache = work / "cache"
        out = subprocess.run(
            [sys.executable, __file__, "--_worker", data_type, str(scale), str(cache)],
            check=True,
            capture_output=True,
            text=True,
            cwd=Path(__file__).parent,
        )
        r = json.loads(out.stdout.strip().splitlines()[-1])
        mb = r["gzip_bytes"] / 1e6
        target = TARGET_ROWS[data_type]
        flag = "" if r["rows"] >= target else " (below)"
        lines.append(
            f"| {data_type} | {scale:,} | {r['rows']:,} | {target:,}{flag} | {r['seconds']:.1f} | "
            f"{r['rows'] / r['seconds']:,.0f} | {mb:,.1f} | {mb / r['seconds']:.1f} | "
            f"{r['gzip_bytes'] / r['rows']:.1f} | {r['peak_mb']:,.0f} | {r['cache_hit_s']:.4f} |"
        )
        if r["temp_files_left"]:
            lines.append(f"temp files left behind: {r['temp_files_left']}")
    return lines


def main() -> None:
    """Print the bytes-per-row table and the generation speed at the largest scale."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--snapshot-scale", type=int, default=5_400_000, help="book events of the snapshot day"
    )
    parser.add_argument("--l2-scale", type=int, default=13_500_000, help="book events of the L2 day")
    parser.add_argument(
        "--compare-scale", type=int, default=500_000, help="scale of the compressibility days"
    )
    parser.add_argument("--days", type=int, default=3, help="days whose head figures are averaged (median)")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--skip-compare", action="store_true")
    parser.add_argument("--_worker", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args._worker:
        data_type, scale, cache = args._worker
        print(json.dumps(_worker(data_type, int(scale), Path(cache))))
        return
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        work = Path(tmp)
        if not args.skip_compare:
            for line in compressibility(args.compare_scale, args.days, work):
                print(line, flush=True)
            print()
        if not args.skip_speed:
            for line in speed(args.snapshot_scale, args.l2_scale, work):
                print(line, flush=True)


if __name__ == "__main__":
    main()
