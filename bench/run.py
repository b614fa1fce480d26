"""The benchmark suite: every target of the platform as a ratio against a baseline measured in the same run.

Sections (all against emulators on 127.0.0.1 started here and stopped at the end):
  ingest     csv.gz -> typed Parquet (trades 2M rows, book_snapshot_25 500k and 2M rows, one day of every other
             type) vs DuckDB's own COPY, pandas read_csv + to_parquet, gunzip to /dev/null and the decoders alone
             (zlib, ISA-L); a whole cache miss (download over loopback + verify + convert) vs the conversion alone;
             rows/s, MB/s, peak RSS (fresh process each)
  features   features/depth and features/trade_bars on the same days vs the per-row Python loop of a script
  book       the order book kernel (numba) on an incremental_book_L2 day vs a plain-Python dict book
  large      real-size days (5M-row book_snapshot_25, 20M-row incremental_book_L2): conversion vs DuckDB COPY,
             features/book, peak RSS
  downloads  achieved req/s against an emulator enforcing R req/s: limiter at R with 1 and 4 processes, and a
             limiter set above the server's limit (429s, time against the ideal)
  official   ours (default settings) against the official tardis-dev client at server limits we are not told
             (bench/official_client.py)
  backfill   a 30-day x 2-instrument backfill of the whole graph through the Dagster daemon: wall time, runs,
             orchestration overhead per partition
  overhead   where a backfill's orchestration time goes, per partition (bench/backfill_overhead.py)
  scaling    a 30-day x 2-instrument feature backfill with 1, 2 and 4 step processes (bench/feature_scaling.py)
  depth      features/depth from the per-second file vs today's SQL and the loop, 500k and 5M rows, and what
             the per-second file costs the conversion (bench/features_depth.py)
  many       200 instruments from 2023: automation tick, asset page GraphQL, a year x 200 backfill's first run
             (bench/many_partitions.py)

Run: .venv/bin/python bench/run.py [--quick] [--only ingest,features,...] [--write docs/PERFORMANCE.md]
"""

from __future__ import annotations

import argparse
import datetime as dt
import gzip
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))

from tick_assets.emulator.synth import write_dataset  # noqa: E402
from tick_assets.lake import partition_file  # noqa: E402

DAY = dt.date(2024, 1, 2)
EXCHANGE, SYMBOL = "binance-futures", "BTCUSDT"
#: Generator scale per row wanted, by data type (trades are about a third of the book events, quotes a fifth ...).
SCALE_PER_ROW = {"trades": 3, "quotes": 5, "book_ticker": 5, "derivative_ticker": 10, "liquidations": 20}
#: The data types of the "every type" rows (one day each, against DuckDB's COPY); options_chain is deribit's.
EVERY_TYPE = (
    "trades",
    "book_snapshot_25",
    "book_snapshot_5",
    "incremental_book_L2",
    "quotes",
    "book_ticker",
    "derivative_ticker",
    "liquidations",
)


@dataclass
class Target:
    """One line of the summary: what we measured, against what, and the target it must meet."""

    benchmark: str
    ours: str
    baseline: str
    ratio: float | None
    target: str = ""
    met: bool | None = None

    def line(self) -> str:
        """The markdown row."""
        verdict = {True: "**yes**", False: "**no**", None: "-"}[self.met]
        ratio = "-" if self.ratio is None else f"{self.ratio:,.2f}x"
        return f"| {self.benchmark} | {self.ours} | {self.baseline} | {ratio} | {self.target or '-'} | {verdict} |"


@dataclass
class Section:
    """What a section adds to the report: summary rows and its own detail table."""

    name: str
    targets: list[Target] = field(default_factory=list)
    details: list[str] = field(default_factory=list)


def measure(method: str, *args: object) -> dict:
    """Run one method of _perf_worker.py in a fresh process and return its JSON line."""
    return run_json([str(BENCH / "_perf_worker.py"), method, *map(str, args)], method)


def best_of(run: Callable[..., dict], *args: object, most: int = 3, budget: float = 30.0) -> dict:
    """The fastest of up to `most` calls `run(*args)` (fewer once they took `budget` seconds): a sub-second step
    varies by 10-30% between fresh processes on this machine, more than the differences measured."""
    results = [run(*args)]
    while len(results) < most and sum(r["seconds"] for r in results) < budget:
        results.append(run(*args))
    return min(results, key=lambda r: r["seconds"])


def stack_env(emulator: Any, data_dir: Path, instruments: list[str], **extra: str) -> dict[str, str]:
    """The environment of a benchmark's Dagster stack against `emulator` (an EmulatorServer): its URLs, a key,
    the data folder and the instruments, plus `extra` (e.g. TICK_ASSETS_DATA_TYPES)."""
    return {
        "TARDIS_DATASETS_URL": emulator.datasets_url,
        "TARDIS_API_URL": emulator.api_url,
        "TARDIS_API_KEY": "bench",
        "TICK_ASSETS_DATA_DIR": str(data_dir),
        "TICK_ASSETS_INSTRUMENTS": ",".join(instruments),
        **extra,
    }


def run_json(args: list[str], what: str) -> dict:
    """Run a Python script (`args`) in a fresh process from the repository root; return its last line as JSON."""
    done = subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=BENCH.parent)
    if done.returncode != 0:
        raise RuntimeError(f"{what} failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _day_file(work: Path, data_type: str, rows: int) -> Path:
    """A synthetic Tardis day of about `rows` rows (generated once per work dir)."""
    # The generator's scale is book events per day; the other types come out at a fraction of it.
    scale = rows * SCALE_PER_ROW.get(data_type, 1)
    path = work / f"{EXCHANGE}_{data_type}_{DAY}_{SYMBOL}-{rows}.csv.gz"
    if not path.exists():
        started = time.perf_counter()
        n = write_dataset(EXCHANGE, SYMBOL, data_type, DAY, scale, path)
        print(f"  generated {n:,} {data_type} rows in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    return path


def _csv_bytes(path: Path) -> int:
    with gzip.open(path, "rb") as f:
        return sum(len(chunk) for chunk in iter(lambda: f.read(1 << 20), b""))


def _rows_label(n: int) -> str:
    return f"{n / 1e6:g}M" if n >= 1_000_000 else f"{n // 1000}k"


INGEST_LABELS = {
    "lake": "lake converter (ours)",
    "miss": "cache miss: download over loopback + verify + convert (ours)",
    "duckdb_copy": "DuckDB COPY read_csv -> parquet",
    "pandas": "pandas read_csv + to_parquet",
    "gunzip": "gunzip > /dev/null",
    "zlib": "decoder alone: zlib (Python gzip)",
    "isal": "decoder alone: ISA-L (isal.igzip, ours)",
}


def _fixtures(work: Path, source: Path, data_type: str) -> Path:
    """A folder the emulator serves byte for byte: the day file under the official client's name."""
    folder = work / f"fixtures-{source.stem}"
    folder.mkdir(exist_ok=True)
    link = folder / f"{EXCHANGE}_{data_type}_{DAY}_{SYMBOL}.csv.gz"
    if not link.exists():
        link.symlink_to(source)
    return folder


def _measure_miss(work: Path, source: Path, data_type: str) -> dict:
    """The cache miss of `source`: an emulator in this process serves it, the worker downloads and converts."""
    import shutil

    from tick_assets.emulator.server import EmulatorConfig, EmulatorServer

    target = work / f"miss-{source.stem}"
    shutil.rmtree(target, ignore_errors=True)
    config = EmulatorConfig(cache_dir=work / "emulator", fixtures=_fixtures(work, source, data_type))
    with EmulatorServer(config) as server:
        return measure("miss", server.datasets_url, server.api_url, target, data_type)


def _ingest_rows(section: Section, day: str, n: int, csv_mb: float, gz_mb: float, runs: dict) -> None:
    for method, r in runs.items():
        section.details.append(
            f"| {day} | {INGEST_LABELS[method]} | {r['rows'] or n:,} | {r['seconds']:.2f} | {n / r['seconds']:,.0f} | "
            f"{csv_mb / r['seconds']:.0f} | {gz_mb / r['seconds']:.1f} | {r['peak_mb']:.0f} | "
            f"{r['out_bytes'] / 1e6:.1f} |"
        )


def ingest(work: Path, sizes: dict[str, list[int]], every_type_rows: int) -> Section:
    """csv.gz -> Parquet: the lake converter (and a whole cache miss) against DuckDB COPY, pandas, gunzip and the
    decoders alone, each in a fresh process; then one day of every other data type against DuckDB COPY."""
    section = Section("ingest")
    section.details = [
        "| day | method | rows | seconds | rows/s | CSV MB/s | gzip MB/s | peak RSS MB | Parquet MB |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    days = [(t, rows, True) for t, counts in sizes.items() for rows in counts]
    days += [(t, every_type_rows, False) for t in EVERY_TYPE if t not in sizes]
    for data_type, rows, full in days:
        source = _day_file(work, data_type, rows)
        csv_mb, gz_mb = _csv_bytes(source) / 1e6, source.stat().st_size / 1e6
        lake_root = work / f"lake-{data_type}-{rows}"
        dest = partition_file(lake_root, f"raw/{data_type}", EXCHANGE, SYMBOL, DAY)
        runs = {  # the three compared in the targets: best of 3 each
            "lake": best_of(measure, "lake", source, dest, data_type),
            "miss": best_of(_measure_miss, work, source, data_type),
            "duckdb_copy": best_of(measure, "duckdb_copy", source, work / "copy.parquet"),
        }
        if full:
            runs["pandas"] = measure("pandas", source, work / "pandas.parquet", data_type)
            runs["gunzip"] = measure("gunzip", source)
        runs["zlib"] = measure("zlib", source)
        runs["isal"] = measure("isal", source)
        n = runs["lake"]["rows"]
        label = f"{data_type} {_rows_label(rows)}" if full else data_type
        _ingest_rows(section, f"{label} ({n:,} rows, {gz_mb:.0f} MB gzip)", n, csv_mb, gz_mb, runs)
        ours = runs["lake"]
        speed = f"{n / ours['seconds'] / 1e6:.2f}M rows/s, {csv_mb / ours['seconds']:.0f} MB/s"
        goals = (("duckdb_copy", 1.0), ("pandas", 2.0)) if full else (("duckdb_copy", 1.0),)
        for base, goal in goals:
            ratio = runs[base]["seconds"] / ours["seconds"]
            section.targets.append(
                Target(
                    f"ingest {label}: speed vs {INGEST_LABELS[base]}",
                    speed,
                    f"{n / runs[base]['seconds'] / 1e6:.2f}M rows/s",
                    ratio,
                    f">= {goal}x",
                    ratio >= goal,
                )
            )
        miss = runs["miss"]["seconds"] / ours["seconds"]
        section.targets.append(
            Target(
                f"ingest {label}: cache miss (download + verify + convert) vs the conversion alone",
                f"{runs['miss']['seconds']:.2f} s",
                f"{ours['seconds']:.2f} s",
                miss,
                "<= 1.15x (one decode per day)",
                miss <= 1.15,
            )
        )
        if full:
            floor = ours["seconds"] / runs["zlib"]["seconds"]
            section.targets.append(
                Target(
                    f"ingest {label}: conversion time vs the zlib decode alone",
                    f"{ours['seconds']:.2f} s",
                    f"zlib {runs['zlib']['seconds']:.2f} s, ISA-L {runs['isal']['seconds']:.2f} s",
                    floor,
                    "<= 1.3x (moonshot)",
                    floor <= 1.3,
                )
            )
        if data_type == "book_snapshot_25" and rows >= 2_000_000 and full:
            section.targets.append(
                Target(
                    f"ingest book_snapshot_25 {_rows_label(rows)}: peak RSS",
                    f"{ours['peak_mb']:.0f} MB",
                    f"pandas {runs['pandas']['peak_mb']:.0f} MB",
                    ours["peak_mb"] / runs["pandas"]["peak_mb"],
                    "<= 1536 MB",
                    ours["peak_mb"] <= 1536,
                )
            )
    return section


def _book_step(mode: str, source: Path, lake: Path) -> dict:
    """One step of bench/book_large_day.py (convert or book) in a fresh process."""
    return run_json(
        [str(BENCH / "book_large_day.py"), "--_step", mode, str(source), str(lake)], f"book_large_day {mode}"
    )


def large(work: Path, book_rows: int, l2_scale: int) -> Section:
    """Real-size days: a 5M-row book_snapshot_25 day and a 20M-row incremental_book_L2 day, converted (ours
    against DuckDB's COPY) and, for the L2 day, features/book; time and peak RSS, each in a fresh process."""
    section = Section("real-size days")
    section.details = [
        "| day | step | rows | seconds | rows/s | peak RSS MB | output MB |",
        "|---|---|---|---|---|---|---|",
    ]
    book = _day_file(work, "book_snapshot_25", book_rows)
    l2 = work / f"{EXCHANGE}_incremental_book_L2_{DAY}_{SYMBOL}-s{l2_scale}.csv.gz"
    if not l2.exists():
        started = time.perf_counter()
        write_dataset(EXCHANGE, SYMBOL, "incremental_book_L2", DAY, l2_scale, l2)
        print(f"  generated the L2 day in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    for data_type, source in (("book_snapshot_25", book), ("incremental_book_L2", l2)):
        lake_root = work / f"lake-large-{data_type}"
        dest = partition_file(lake_root, f"raw/{data_type}", EXCHANGE, SYMBOL, DAY)
        ours = measure("lake", source, dest, data_type)
        copy = measure("duckdb_copy", source, work / "copy-large.parquet")
        (work / "copy-large.parquet").unlink(missing_ok=True)
        n = ours["rows"]
        day = f"{data_type} ({n:,} rows, {source.stat().st_size / 1e6:.0f} MB gzip)"
        steps = [("lake converter (ours)", ours), ("DuckDB COPY read_csv -> parquet", copy)]
        if data_type == "incremental_book_L2":
            built = _book_step("book", source, lake_root)
            steps.append(
                (
                    "features/book (replay + grid stored)",
                    {
                        "rows": built["rows"],
                        "seconds": built["seconds"],
                        "peak_mb": built["peak_rss_mb"],
                        "out_bytes": 0,
                    },
                )
            )
        for label, r in steps:
            section.details.append(
                f"| {day} | {label} | {r['rows'] or n:,} | {r['seconds']:.2f} | {n / r['seconds']:,.0f} | "
                f"{r['peak_mb']:,.0f} | {r['out_bytes'] / 1e6:.0f} |"
            )
        ratio = copy["seconds"] / ours["seconds"]
        section.targets.append(
            Target(
                f"real-size {data_type} {_rows_label(n)}: conversion speed vs DuckDB COPY",
                f"{ours['seconds']:.1f} s, peak RSS {ours['peak_mb']:,.0f} MB",
                f"{copy['seconds']:.1f} s, peak RSS {copy['peak_mb']:,.0f} MB",
                ratio,
                ">= 1.0x, peak RSS <= 1536 MB",
                ratio >= 1.0 and ours["peak_mb"] <= 1536,
            )
        )
        if data_type == "incremental_book_L2":
            section.targets.append(
                Target(
                    f"real-size incremental_book_L2 {_rows_label(n)}: features/book",
                    f"{built['seconds']:.1f} s, peak RSS {built['peak_rss_mb']:,.0f} MB",
                    f"conversion {ours['seconds']:.1f} s",
                    built["seconds"] / ours["seconds"],
                    "peak RSS <= 1536 MB",
                    built["peak_rss_mb"] <= 1536,
                )
            )
    return section


def features(work: Path, sizes: dict[str, list[int]]) -> Section:
    """features/depth and features/trade_bars on the ingest section's days, against per-row Python loops."""
    section = Section("features")
    section.details = [
        "| day | method | output rows | seconds | input rows/s |",
        "|---|---|---|---|---|",
    ]
    cases = [("depth", "book_snapshot_25", "loop_depth", 50.0), ("trade_bars", "trades", "loop_bars", None)]
    for feature, data_type, loop, goal in cases:
        for rows in sizes.get(data_type, []):
            source = _day_file(work, data_type, rows)
            lake_root = work / f"lake-{data_type}-{rows}"
            if not partition_file(lake_root, f"raw/{data_type}", EXCHANGE, SYMBOL, DAY).exists():
                measure(
                    "lake",
                    source,
                    partition_file(lake_root, f"raw/{data_type}", EXCHANGE, SYMBOL, DAY),
                    data_type,
                )
            ours = measure(feature, lake_root, DAY, work / f"features-{feature}-{rows}")
            base = measure(loop, source)
            n = base["rows"]
            day = f"{data_type} {_rows_label(rows)} ({n:,} rows)"
            section.details += [
                f"| {day} | features/{feature} as the asset runs it (query + partition file stored, best of 3) | "
                f"{ours['rows']:,} | {ours['seconds']:.3f} | {n / ours['seconds']:,.0f} |",
                f"| {day} | Python loop per row over the csv.gz ({loop}) | {n:,} | {base['seconds']:.2f} | "
                f"{n / base['seconds']:,.0f} |",
            ]
            ratio = base["seconds"] / ours["seconds"]
            section.targets.append(
                Target(
                    f"features/{feature} on {data_type} {_rows_label(rows)}",
                    f"{ours['seconds']:.2f} s",
                    f"Python loop {base['seconds']:.1f} s",
                    ratio,
                    f">= {goal:g}x" if goal else "",
                    ratio >= goal if goal else None,
                )
            )
    return section


def book(work: Path, scale: int) -> Section:
    """The book kernel against the plain-Python dict book on one L2 day (bench/book_kernel.py, fresh process)."""
    done = subprocess.run(
        [
            sys.executable,
            str(BENCH / "book_kernel.py"),
            "--scale",
            str(scale),
            "--workdir",
            str(work),
            "--json",
        ],
        capture_output=True,
        text=True,
        check=True,
        cwd=BENCH.parent,
    )
    f = json.loads(done.stdout.strip().splitlines()[-1])
    n = f["rows"]
    section = Section("book")
    section.details = [
        f"incremental_book_L2 day of scale {scale:,} (the emulator's deep book): {n:,} rows, {f['messages']:,} "
        f"messages, up to {f['max_levels']:,} levels a side",
        "",
        "| method | seconds | M rows/s |",
        "|---|---:|---:|",
        f"| plain-Python dict book, rows in memory, final book read once | {f['loop_s']:.2f} | {n / f['loop_s'] / 1e6:.2f} |",
        f"| kernel (numba), the same, one core | {f['kernel_s']:.3f} | {n / f['kernel_s'] / 1e6:.1f} |",
        f"| plain-Python dict book read every 60 s ({f['coarse_samples']:,} samples, top 50 sorted) | {f['loop_coarse_s']:.2f} | {n / f['loop_coarse_s'] / 1e6:.2f} |",
        f"| kernel read at the same samples (top 50, 5 bands over the whole book) | {f['coarse_s']:.3f} | {n / f['coarse_s'] / 1e6:.1f} |",
        f"| kernel sampled on the 1 s grid (top 50, 5 bands over the whole book) | {f['grid_s']:.3f} | {n / f['grid_s'] / 1e6:.1f} |",
        f"| the same from the lake Parquet (DuckDB + kernel: features/book) | {f['parquet_s']:.3f} | {n / f['parquet_s'] / 1e6:.1f} |",
    ]
    rate = n / f["kernel_s"]
    section.targets.append(
        Target(
            "book kernel read every 60 s (top 50 + bands)",
            f"{f['coarse_s']:.2f} s",
            f"plain-Python dict book, top 50 sorted: {f['loop_coarse_s']:.1f} s",
            f["loop_coarse_s"] / f["coarse_s"],
        )
    )
    section.targets.append(
        Target(
            "book kernel, one core (rows in memory)",
            f"{rate / 1e6:.1f}M rows/s",
            f"plain-Python dict book {n / f['loop_s'] / 1e6:.2f}M rows/s",
            f["loop_s"] / f["kernel_s"],
            ">= 10M rows/s",
            rate >= 10e6,
        )
    )
    return section


def _download_run(server, work: Path, name: str, processes: int, requests: int, rate: float) -> dict:
    """`processes` workers x 4 threads sharing one SQLite limiter at `rate`; start times of every request."""
    db = work / f"limiter-{name}.sqlite"
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                str(BENCH / "_download_worker.py"),
                server.datasets_url,
                str(db),
                str(work / f"dl-{name}-{i}"),
                str(requests // processes),
                str(rate),
            ],
            stdout=subprocess.PIPE,
            text=True,
            cwd=BENCH.parent,
        )
        for i in range(processes)
    ]
    starts = sorted(t for p in procs for t in json.loads(p.communicate()[0]))
    return {"starts": starts, "seconds": starts[-1] - starts[0]}


def _generate_days(config) -> None:
    """Serve every day the workers ask for once, unthrottled, so generation time stays out of the rates."""
    import dataclasses

    from tick_assets.emulator.server import EmulatorServer
    from tick_assets.tardis import TardisClient

    quiet = dataclasses.replace(config, faults=type(config.faults)())
    with (
        EmulatorServer(quiet) as server,
        TardisClient(config.cache_dir / "warm", api_key="bench", datasets_url=server.datasets_url) as client,
    ):
        for i in range(28):  # the worker's days: 2024-01-02 + i % 28
            client.download("deribit", "trades", "BTC-PERPETUAL", dt.date(2024, 1, 2 + i))


def downloads(work: Path, rate: float, requests: int) -> Section:
    """Achieved request rate against an emulator that enforces `rate` req/s.

    The server's token bucket allows a burst of 10, the limiter's 5: a client bucket as deep as the server's
    would be refused whenever network jitter brings two requests closer than 1/R at the server.
    """
    from tick_assets.emulator.faults import FaultConfig
    from tick_assets.emulator.server import EmulatorConfig, EmulatorServer

    section = Section("downloads")
    section.details = [
        "| limiter | processes x threads | requests | seconds | req/s | of R | 429s | busiest 1 s window |",
        "|---|---|---|---|---|---|---|---|",
    ]
    cases = [("at R", 1, rate), ("at R", 4, rate), ("at 2R (above the server's limit)", 1, 2 * rate)]
    results = {}
    for label, processes, limiter_rate in cases:
        config = EmulatorConfig(
            port=0,
            cache_dir=work / "emulator",
            scale=100,
            exported_until=dt.date(2024, 3, 1),
            faults=FaultConfig(rate_limit=rate, rate_burst=10),
        )
        _generate_days(config)
        with EmulatorServer(config) as server:
            run = _download_run(
                server, work, f"{processes}-{limiter_rate:g}", processes, requests, limiter_rate
            )
            throttled = server.stats["counts"].get("rate_limited", 0)
        starts, seconds = run["starts"], run["seconds"]
        achieved = (len(starts) - 1) / seconds
        busiest = max(sum(1 for t in starts if s <= t < s + 1) for s in starts)
        results[(label, processes)] = (achieved, throttled, seconds)
        section.details.append(
            f"| {label} ({limiter_rate:g} req/s) | {processes} x 4 | {len(starts)} | {seconds:.1f} | {achieved:.1f} | "
            f"{achieved / rate:.2f} | {throttled} | {busiest} |"
        )
    for processes in (1, 4):
        achieved, throttled, _ = results[("at R", processes)]
        section.targets.append(
            Target(
                f"downloads, limiter at R = {rate:g} req/s, {processes} process(es): achieved rate",
                f"{achieved:.1f} req/s, {throttled} x 429",
                f"R = {rate:g} req/s",
                achieved / rate,
                ">= 0.9x and <= 1.0x (+ burst), 0 x 429",
                0.9 <= achieved / rate <= 1.0 + 5 / (requests / rate) and throttled == 0,
            )
        )
    achieved, throttled, seconds = results[("at 2R (above the server's limit)", 1)]
    ideal = (requests - 1) / rate
    section.targets.append(
        Target(
            f"downloads, limiter at 2R = {2 * rate:g} req/s over a server at R: time vs ideal",
            f"{seconds:.1f} s, {throttled} x 429",
            f"ideal {ideal:.1f} s at R",
            ideal / seconds,
            "(report)",
            None,
        )
    )
    return section


def backfill(work: Path, days: int, scale: int) -> Section:
    """A whole-graph backfill through webserver + daemon; orchestration overhead from the runs' step stats."""
    from tick_assets import settings
    from tick_assets.emulator.server import EmulatorConfig, EmulatorServer
    from tick_assets.stack.localstack import DagsterStack

    instruments = ["binance-futures:BTCUSDT", "deribit:BTC-PERPETUAL"]
    first = dt.date(2024, 1, 2)
    keys = [f"{first + dt.timedelta(days=i)}|{inst}" for inst in instruments for i in range(days)]
    data_dir, home = work / "backfill-data", work / "backfill-home"
    with EmulatorServer(EmulatorConfig(port=0, cache_dir=work / "emulator", scale=scale)) as emulator:
        env = stack_env(emulator, data_dir, instruments)
        with DagsterStack(home, env) as stack:
            stack.set_pool_limit("tardis", 4)
            assets = [["raw", t] for t in settings.raw_data_types()] + [
                ["features", "depth"],
                ["features", "trade_bars"],
                ["analytics", "microstructure_1m"],
                ["analytics", "daily_summary"],
            ]
            launched = time.time()
            state = stack.wait_for_backfill(
                stack.launch_backfill(assets, keys, "bench"), timeout=7200, poll=1
            )
            wall = time.time() - launched
            steps = stack.step_stats([r["id"] for r in state["runs"]])
    compute = sum(s["endTime"] - s["startTime"] for s in steps if s["startTime"] and s["endTime"])
    runs_wall = sum(r["endTime"] - r["startTime"] for r in state["runs"] if r["startTime"] and r["endTime"])
    asset_partitions = len(assets) * len(keys)
    overhead = (wall - compute) / len(keys)
    section = Section("backfill")
    section.details = [
        "| backfill | status | runs | steps | wall s | sum of step compute s | sum of run wall s | per partition: wall s | overhead s |",
        "|---|---|---|---|---|---|---|---|---|",
        f"| {days} days x {len(instruments)} instruments, {len(assets)} assets ({asset_partitions} asset partitions), "
        f"scale {scale} | {state['status']} | {len(state['runs'])} | {len(steps)} | {wall:.0f} | {compute:.0f} | "
        f"{runs_wall:.0f} | {wall / len(keys):.2f} | {overhead:.2f} |",
    ]
    section.targets.append(
        Target(
            f"backfill {days} days x 2 instruments, whole graph: orchestration overhead per partition",
            f"{overhead:.2f} s ({wall:.0f} s wall - {compute:.0f} s step compute, / {len(keys)} partitions)",
            f"{len(state['runs'])} runs, {state['status']}",
            None,
            "<= 1 s per partition",
            overhead <= 1.0 and state["status"] == "COMPLETED_SUCCESS",
        )
    )
    return section


def _section_of(module: str, work: Path, quick: bool) -> Section:
    """The section of another bench module (each also runs alone: `bench/<module>.py`)."""
    import importlib

    sub = work / module
    sub.mkdir(exist_ok=True)
    return importlib.import_module(module).section(sub, quick)


def machine() -> str:
    """One line describing where the numbers come from."""
    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
        mem = next(
            int(line.split()[1]) // (1024 * 1024)
            for line in Path("/proc/meminfo").read_text().splitlines()
            if line.startswith("MemTotal")
        )
    except (OSError, StopIteration):
        mem = 0
    import duckdb
    import pandas

    return (
        f"{cpu}, {os.cpu_count()} cores, {mem} GB RAM, {platform.system()} {platform.release()}; Python "
        f"{platform.python_version()}, DuckDB {duckdb.__version__}, pandas {pandas.__version__}"
    )


def main() -> None:
    """Run the chosen sections and print (or write) the report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="a tenth of the sizes, 5-day backfill (smoke run)"
    )
    parser.add_argument(
        "--only",
        default="ingest,features,depth,large,downloads,official,overhead,scaling,many",
        help="comma-separated sections (also: book, backfill)",
    )
    parser.add_argument("--workdir", type=Path, help="keeps generated days between runs")
    parser.add_argument("--write", type=Path, help="also write the report to this markdown file")
    args = parser.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="tick-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    div = 10 if args.quick else 1
    sizes = {"trades": [2_000_000 // div], "book_snapshot_25": [500_000 // div, 2_000_000 // div]}
    runners: dict[str, Callable[[], Section]] = {
        "ingest": lambda: ingest(work, sizes, every_type_rows=1_000_000 // div),
        "features": lambda: features(work, sizes),
        "book": lambda: book(work, scale=2_000_000 // div),
        "large": lambda: large(work, book_rows=5_000_000 // div, l2_scale=13_500_000 // div),
        "official": lambda: _section_of("official_client", work, args.quick),
        "overhead": lambda: _section_of("backfill_overhead", work, args.quick),
        "scaling": lambda: _section_of("feature_scaling", work, args.quick),
        "many": lambda: _section_of("many_partitions", work, args.quick),
        "depth": lambda: _section_of("features_depth", work, args.quick),
        "downloads": lambda: downloads(work, rate=20, requests=200 // div * 2),
        "backfill": lambda: backfill(work, days=5 if args.quick else 30, scale=2000),
    }
    sections = []
    for name in args.only.split(","):
        print(f"running {name} ...", file=sys.stderr)
        started = time.perf_counter()
        sections.append(runners[name]())
        print(f"  {name} took {time.perf_counter() - started:.0f} s", file=sys.stderr)
    lines = [
        f"Measured {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC on {machine()}.",
        f"Command: `.venv/bin/python bench/run.py{' --quick' if args.quick else ''}"
        f"{'' if args.only == parser.get_default('only') else ' --only ' + args.only}`",
        "",
        "| benchmark | ours | baseline | ratio | target | met |",
        "|---|---|---|---|---|---|",
        *[t.line() for s in sections for t in s.targets],
    ]
    for s in sections:
        lines += ["", f"### {s.name}", "", *s.details]
    report = "\n".join(lines)
    print(report)
    if args.write:
        args.write.write_text(
            args.write.read_text().split("<!-- bench -->")[0] + "<!-- bench -->\n" + report + "\n"
        )


if __name__ == "__main__":
    main()
