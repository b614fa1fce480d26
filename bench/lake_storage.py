"""Lake storage: Parquet bytes against the Tardis .csv.gz bytes per data type, old layout against new, and what
the new layout costs in conversion time.

For each of the 9 data types, a synthetic day at each --scale (the emulator's generator: binance-futures BTCUSDT,
deribit OPTIONS for options_chain with `scale` rows as the emulator serves it, plus bitmex XBTUSD trades for their
uuid ids), and the real Tardis samples in /work/shared/tardis_real_samples (gzipped at level 6, the emulator's
level): converts the .csv.gz with `tick_assets.lake.convert.write_partition` under the OLD layout
(`legacy_options()`, the files before issue 14: wide book levels, stored `*_utc` columns, zstd 3, 65,536-row row
groups, DuckDB's default V1 encodings and bloom filters) and the NEW one (`ConversionOptions()`, lake-v3), --reps times each, alternating old/new, every conversion in a fresh process (so its
peak RSS is its own). Times are medians: wall seconds, and CPU seconds (user + system of the process, both DuckDB
threads), which a busy 2-core machine disturbs less. Checks that both files read (lake_select) as the same rows
in the same order. Also prints a month of each data type (30 x the day) in the cache (gzip) and in the lake at
each scale.

Run: .venv/bin/python bench/lake_storage.py [--scales 200000,2000000] [--reps 5] [--workdir DIR]
Quick run: .venv/bin/python bench/lake_storage.py --scales 20000 --reps 1
One data type: .venv/bin/python bench/lake_storage.py --scales 2000000 --types book_snapshot_25 --reps 7
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import gzip
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SAMPLES = Path("/work/shared/tardis_real_samples")
DAY = dt.date(2024, 3, 1)
GZIP_LEVEL = 6
#: (exchange, symbol, data type) of the synthetic days, one per data type plus bitmex trades (uuid ids).
SYNTHETIC = [
    ("binance-futures", "BTCUSDT", "trades"),
    ("bitmex", "XBTUSD", "trades"),
    ("binance-futures", "BTCUSDT", "book_snapshot_25"),
    ("binance-futures", "BTCUSDT", "book_snapshot_5"),
    ("binance-futures", "BTCUSDT", "quotes"),
    ("binance-futures", "BTCUSDT", "book_ticker"),
    ("binance-futures", "BTCUSDT", "derivative_ticker"),
    ("binance-futures", "BTCUSDT", "liquidations"),
    ("binance-futures", "BTCUSDT", "incremental_book_L2"),
    ("deribit", "OPTIONS", "options_chain"),
]
MODES = ("old", "new")


@dataclass
class Case:
    """One .csv.gz to convert and what its conversions measured."""

    source: str  # "synthetic 200,000" or "real"
    name: str  # exchange:symbol
    data_type: str
    path: Path
    rows: int = 0
    runs: dict[str, list[dict]] | None = None

    @property
    def gzip_bytes(self) -> int:
        return self.path.stat().st_size

    def median(self, mode: str, key: str) -> float:
        assert self.runs is not None
        return statistics.median(r[key] for r in self.runs[mode])

    def lake_bytes(self, mode: str) -> int:
        assert self.runs is not None
        return self.runs[mode][0]["bytes"]


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _worker(mode: str, data_type: str, source: Path, out: Path) -> dict:
    """One conversion in this (fresh) process: rows, bytes, wall and CPU seconds, peak RSS."""
    from _perf_worker import peak_rss_mb

    from tick_assets.lake.convert import write_partition
    from tick_assets.lake.parquet import ConversionOptions, legacy_options

    out.unlink(missing_ok=True)
    options = legacy_options() if mode == "old" else ConversionOptions()
    cpu, started = _cpu_seconds(), time.perf_counter()
    write = write_partition(source, out, data_type, options)
    seconds, cpu = time.perf_counter() - started, _cpu_seconds() - cpu
    return {
        "rows": write.rows,
        "bytes": write.parquet_bytes,
        "seconds": seconds,
        "cpu": cpu,
        "peak_mb": peak_rss_mb(),
    }


def _run(mode: str, case: Case, out: Path) -> dict:
    done = subprocess.run(
        [sys.executable, __file__, "--_worker", mode, case.data_type, str(case.path), str(out)],
        check=True,
        capture_output=True,
        text=True,
        cwd=Path(__file__).parent,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def _same_rows(old: Path, new: Path, data_type: str) -> bool:
    """True if both files read (through lake_select of their layouts) as the same rows in the same order."""
    import duckdb

    from tick_assets.lake.schema import LEGACY_LAYOUT, lake_select

    with duckdb.connect() as con:
        a = f"SELECT row_number() OVER () AS n, * FROM (SELECT {lake_select(data_type, LEGACY_LAYOUT)} FROM read_parquet('{old}'))"
        b = f"SELECT row_number() OVER () AS n, * FROM (SELECT {lake_select(data_type)} FROM read_parquet('{new}'))"
        return all(
            con.execute(f"SELECT count(*) FROM ({x} EXCEPT ALL {y})").fetchall()[0][0] == 0
            for x, y in ((a, b), (b, a))
        )


def synthetic_cases(scale: int, work: Path, data_types: Sequence[str]) -> list[Case]:
    """Generate (or reuse) the synthetic days of one scale (of the given data types)."""
    from tick_assets.emulator import synth
    from tick_assets.emulator.options_chain import write_options_chain

    cases = []
    for exchange, symbol, data_type in (case for case in SYNTHETIC if case[2] in data_types):
        path = work / f"{exchange}_{data_type}_{DAY}_{symbol}_{scale}.csv.gz"
        if not path.exists():
            started = time.perf_counter()
            tmp = path.with_suffix(".tmp")
            if data_type == "options_chain":
                write_options_chain(exchange, "BTC", DAY, scale, tmp, GZIP_LEVEL)
            else:
                synth.write_dataset(exchange, symbol, data_type, DAY, scale, tmp, GZIP_LEVEL)
            tmp.rename(path)
            print(
                f"generated {path.name} in {time.perf_counter() - started:.1f} s", file=sys.stderr, flush=True
            )
        cases.append(Case(f"synthetic {scale:,}", f"{exchange}:{symbol}", data_type, path))
    return cases


def real_cases(work: Path) -> list[Case]:
    """The real samples, gzipped at the emulator's level."""
    cases = []
    for sample in sorted(SAMPLES.glob("*.csv")):
        with open(sample, newline="") as f:
            first = next(csv.DictReader(f))
        stem = sample.stem.split("__", 1)[1]
        # the four samples: one book_snapshot_25, one quotes, two trades
        data_type = (
            "book_snapshot_25" if "book_snapshot_25" in stem else "quotes" if "quotes" in stem else "trades"
        )
        path = work / f"real_{stem}.csv.gz"
        with open(sample, "rb") as src, gzip.open(path, "wb", compresslevel=GZIP_LEVEL) as dst:
            dst.write(src.read())
        cases.append(Case("real", f"{first['exchange']}:{first['symbol']}", data_type, path))
    return cases


def measure(cases: list[Case], reps: int, work: Path) -> None:
    """Convert every case `reps` times per mode, alternating old/new (the order flips each repetition)."""
    for case in cases:
        case.runs = {m: [] for m in MODES}
    for rep in range(reps):
        for case in cases:
            order = MODES if rep % 2 == 0 else MODES[::-1]
            for mode in order:
                case.runs[mode].append(_run(mode, case, work / f"{mode}.parquet"))  # type: ignore[index]
            if rep == 0:
                rows = {case.runs[m][0]["rows"] for m in MODES}  # type: ignore[index]
                assert len(rows) == 1, (case.name, case.data_type, rows)
                case.rows = rows.pop()
                assert _same_rows(work / "old.parquet", work / "new.parquet", case.data_type), (
                    case.name,
                    case.data_type,
                )
        print(f"repetition {rep + 1}/{reps} done", file=sys.stderr, flush=True)


def _mb(n: float) -> str:
    return f"{n / 1e6:,.2f}"


def table(cases: list[Case]) -> list[str]:
    """The markdown table: bytes, ratios to gzip, conversion times old and new."""
    lines = [
        "| source | exchange:symbol | data type | rows | gzip MB | lake MB old | lake MB new | old / gzip "
        "| new / gzip | wall s old | wall s new | new / old wall | CPU s old "
        "| CPU s new | new / old CPU | peak RSS MB old / new |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for c in cases:
        gz, old, new = c.gzip_bytes, c.lake_bytes("old"), c.lake_bytes("new")
        so, sn, co, cn = (c.median(m, k) for k in ("seconds", "cpu") for m in MODES)
        rss = "/".join(f"{max(r['peak_mb'] for r in c.runs[m]):,.0f}" for m in MODES)  # type: ignore[index]
        lines.append(
            f"| {c.source} | {c.name} | {c.data_type} | {c.rows:,} | {_mb(gz)} | {_mb(old)} | {_mb(new)} "
            f"| {old / gz:.2f} | **{new / gz:.2f}** | {so:.2f} | {sn:.2f} | {sn / so:.2f} "
            f"| {co:.2f} | {cn:.2f} | {cn / co:.2f} | {rss} |"
        )
    return lines


def totals(cases: list[Case]) -> list[str]:
    """Per source: the sum over data types (one instrument each) of bytes and median times."""
    lines = [
        "| source | gzip MB | lake MB old | lake MB new | old / gzip | new / gzip "
        "| wall s old | wall s new | new / old wall | CPU s old | CPU s new | new / old CPU |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for source in dict.fromkeys(c.source for c in cases):
        group = [c for c in cases if c.source == source]
        gz = sum(c.gzip_bytes for c in group)
        old, new = (sum(c.lake_bytes(m) for c in group) for m in MODES)
        so, sn, co, cn = (sum(c.median(m, k) for c in group) for k in ("seconds", "cpu") for m in MODES)
        lines.append(
            f"| {source} | {_mb(gz)} | {_mb(old)} | {_mb(new)} | {old / gz:.2f} | {new / gz:.2f} | "
            f"{so:.1f} | {sn:.1f} | {sn / so:.2f} | {co:.1f} | {cn:.1f} | {cn / co:.2f} |"
        )
    return lines


def month(cases: list[Case]) -> list[str]:
    """A month (30 days) of each synthetic data type, one instrument, at each scale: cache and lake GB."""
    lines = [
        "| scale (book events a day) | exchange:symbol | data type | rows a day | cache (gzip) GB a month "
        "| lake GB a month old | lake GB a month new |",
        "|---|---|---|---:|---:|---:|---:|",
    ]
    for source in dict.fromkeys(c.source for c in cases if c.source != "real"):
        group = [c for c in cases if c.source == source]
        for c in group:
            lines.append(
                f"| {source.split()[-1]} | {c.name} | {c.data_type} | {c.rows:,} | {30 * c.gzip_bytes / 1e9:.2f} "
                f"| {30 * c.lake_bytes('old') / 1e9:.2f} | {30 * c.lake_bytes('new') / 1e9:.2f} |"
            )
        main = [c for c in group if c.name != "bitmex:XBTUSD"]  # one instrument per data type
        gz = 30 * sum(c.gzip_bytes for c in main) / 1e9
        old, new = (30 * sum(c.lake_bytes(m) for c in main) / 1e9 for m in MODES)
        lines.append(
            f"| {source.split()[-1]} | all 9 data types | **total** | | {gz:.2f} | {old:.2f} | {new:.2f} |"
        )
    return lines


def main() -> None:
    """Generate the days, convert them old and new, print the tables."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scales", default="200000,2000000", help="book events a day, comma-separated")
    parser.add_argument("--reps", type=int, default=5, help="conversions per layout and file (medians)")
    parser.add_argument("--workdir", type=Path, default=None, help="keep the generated days here (reused)")
    parser.add_argument("--types", default="", help="only these data types, comma-separated (default: all)")
    parser.add_argument("--_worker", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args._worker:
        mode, data_type, source, out = args._worker
        print(json.dumps(_worker(mode, data_type, Path(source), Path(out))))
        return

    from tick_assets.lake.parquet import ConversionOptions, copy_options, legacy_options, parquet_version
    from tick_assets.tardis.datatypes import DATA_TYPES

    if args.workdir:
        args.workdir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        work = args.workdir or Path(tmp)
        cases = [c for c in real_cases(work) if not args.types or c.data_type in args.types.split(",")]
        for scale in (int(s) for s in args.scales.split(",")):
            cases += synthetic_cases(scale, work, args.types.split(",") if args.types else DATA_TYPES)
        started = time.perf_counter()
        measure(cases, args.reps, Path(tmp))
        print(f"Old: `{copy_options(legacy_options(), 'trades')}`  ")
        print(f"New: `{copy_options(ConversionOptions(), 'trades')}`  ")
        print(f"New, book snapshots: `{copy_options(ConversionOptions(), 'book_snapshot_25')}`  ")
        versions = {t: parquet_version(ConversionOptions(), t) for t in DATA_TYPES}
        print(f"New PARQUET_VERSION per data type: {', '.join(f'{t} {v}' for t, v in versions.items())}\n")
        print(
            f"Medians of {args.reps} conversions per layout and file (alternating, fresh process each); "
            f"gzip level {GZIP_LEVEL}; {time.perf_counter() - started:.0f} s in all.\n"
        )
        for line in table(cases):
            print(line)
        print()
        for line in totals(cases):
            print(line)
        print()
        for line in month(cases):
            print(line)


if __name__ == "__main__":
    main()
