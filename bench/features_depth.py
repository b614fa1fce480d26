"""features/depth on book_snapshot_25 days (500k and 5M rows) against the per-snapshot Python loop of a script.

Baseline: `loop_depth` of bench/_perf_worker.py (10 levels a side, mid, spread, volumes, imbalance per snapshot,
csv.reader over the csv.gz), the same as bench/run.py's features section. Ours, each in a fresh process, best of
3 after a warm-up, as the asset runs it (the query plus the partition file stored):
  - features/depth now: `depth_query`, numpy over the day's per-second file (`lake/book_layout.py`);
  - features/depth before: `depth_sql` over the raw file (every level of every row), in the same process.
The two outputs are compared value for value. The per-second file is written by the conversion; its cost is
reported against the conversion of the same day (both in fresh processes).

Run: .venv/bin/python bench/features_depth.py [--quick] [--rows 500000 5000000] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pyarrow as pa

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(BENCH.parent))

from run import DAY, EXCHANGE, SYMBOL, Section, Target, _day_file, _rows_label, measure, run_json  # noqa: E402

DATA_TYPE = "book_snapshot_25"
RAW = f"raw/{DATA_TYPE}"
REPEATS = 3
GOAL = 50.0


def _worker(method: str, *args: object) -> dict:
    """Run one method of this script in a fresh process (imports before the clock) and return its JSON."""
    return run_json([str(Path(__file__).resolve()), "--worker", method, *map(str, args)], method)


def _seconds_file(lake_root: str) -> dict:
    """Write the per-second file of the day's raw partition, as the conversion does after its COPY."""
    from tick_assets.lake import LocalLake, partition_file
    from tick_assets.lake.book_layout import write_seconds
    from tick_assets.lake.convert import _connect
    from tick_assets.lake.parquet import ConversionOptions

    lake, options = LocalLake(lake_root), ConversionOptions()
    raw = partition_file(Path(lake_root), RAW, EXCHANGE, SYMBOL, DAY)
    with _connect(options, None) as con:
        started = time.perf_counter()
        uri = write_seconds(con, lake, raw.relative_to(lake_root).as_posix(), raw, DATA_TYPE, options)
        seconds = time.perf_counter() - started
    return {"seconds": seconds, "bytes": Path(uri).stat().st_size, "raw_bytes": raw.stat().st_size}


def _same_values(a: pa.Table, b: pa.Table) -> bool:
    """The same values bit for bit (NaN and -0.0 included) and NULLs in the same places."""
    import numpy as np

    for name in a.column_names:
        x, y = a.column(name).combine_chunks(), b.column(name).combine_chunks()
        if not np.array_equal(np.asarray(x.is_null()), np.asarray(y.is_null())):
            return False
        if str(x.type) == "double":
            if not np.array_equal(*(np.asarray(c.fill_null(0.0)).view(np.int64) for c in (x, y))):
                return False
        elif not x.equals(y):
            return False
    return True


def _depth(lake_root: str, out: str) -> dict:
    """features/depth now (depth_query) and before (depth_sql over the raw file), best of REPEATS each."""
    import pyarrow.parquet as pq

    from tick_assets.features.depth import depth_query, depth_sql, per_second_file
    from tick_assets.features.grid import DaySlice
    from tick_assets.lake import LocalLake, connect, store_query

    day = DaySlice(EXCHANGE, SYMBOL, DAY)
    lake, target = LocalLake(lake_root), LocalLake(out)
    runs = {
        "now": (day.partition("features/depth"), lambda con: depth_query(con, lake, day)),
        "before": (day.partition("features/depth_before"), lambda con: depth_sql(lake, day, False)),
    }
    timings: dict[str, list[float]] = {k: [] for k in runs}
    paths = {}
    with connect(lake) as con:
        for _ in range(REPEATS + 1):  # the first round warms the caches
            for name, (partition, query) in runs.items():
                started = time.perf_counter()
                written = store_query(con, target, partition, query(con))
                timings[name].append(time.perf_counter() - started)
                paths[name], rows = written.path, written.rows
        fast = per_second_file(lake, day, con) is not None
    now, before = (pq.read_table(paths[k]) for k in ("now", "before"))
    same = pq.read_schema(paths["now"]).equals(pq.read_schema(paths["before"])) and _same_values(now, before)
    return {
        "rows": rows,
        "now": min(timings["now"][1:]),
        "before": min(timings["before"][1:]),
        "same": same,
        "per_second_file": fast,
    }


def section(work: Path, quick: bool) -> Section:
    """features/depth against the Python loop on the 500k-row day (target 50x) and the 5M-row day (reported)."""
    return _section(work, [500_000] if quick else [500_000, 5_000_000])


def _section(work: Path, sizes: list[int]) -> Section:
    section = Section("features/depth")
    section.details = [
        "| day | method | seconds | vs loop |",
        "|---|---|---:|---:|",
    ]
    for rows in sizes:
        source = _day_file(work, DATA_TYPE, rows)
        lake_root = work / f"lake-{DATA_TYPE}-{rows}"
        raw = (
            lake_root
            / RAW
            / f"exchange_id={EXCHANGE}"
            / f"symbol_id={SYMBOL}"
            / f"date={DAY}"
            / "data.parquet"
        )
        conversion = measure("lake", source, raw, DATA_TYPE)  # the day's conversion, fresh process
        built = _worker("seconds", lake_root)  # the per-second file, as the conversion writes it
        ours = _worker("depth", lake_root, work / f"features-depth-{rows}")
        loop = measure("loop_depth", source)
        n, label = loop["rows"], _rows_label(rows)
        day = f"{DATA_TYPE} {label} ({n:,} rows)"
        cost = built["seconds"] / conversion["seconds"]
        section.details += [
            f"| {day} | Python loop per row over the csv.gz (loop_depth) | {loop['seconds']:.2f} | 1.0x |",
            f"| {day} | features/depth before: SQL over every level of every row (query + file stored) | "
            f"{ours['before']:.3f} | {loop['seconds'] / ours['before']:.1f}x |",
            f"| {day} | features/depth now: numpy over the per-second file (query + file stored; same values: "
            f"{ours['same']}) | {ours['now']:.3f} | {loop['seconds'] / ours['now']:.1f}x |",
            f"| {day} | conversion (csv.gz -> raw Parquet, as raw/{DATA_TYPE} runs it) | "
            f"{conversion['seconds']:.2f} | - |",
            f"| {day} | per-second file written after the conversion ({built['bytes'] / 1e6:.1f} MB beside "
            f"{built['raw_bytes'] / 1e6:.1f} MB) | {built['seconds']:.2f} | - |",
        ]
        ratio = loop["seconds"] / ours["now"]
        section.targets += [
            Target(
                f"features/depth on {DATA_TYPE} {label}",
                f"{ours['now']:.3f} s (before: {ours['before']:.2f} s)",
                f"Python loop {loop['seconds']:.1f} s",
                ratio,
                f">= {GOAL:g}x" if rows == 500_000 else "(report)",
                (ratio >= GOAL and ours["same"] and ours["per_second_file"]) if rows == 500_000 else None,
            ),
            Target(
                f"features/depth on {DATA_TYPE} {label}: per-second file, cost vs the conversion",
                f"{built['seconds']:.2f} s",
                f"conversion {conversion['seconds']:.2f} s",
                cost,
                "(report)",
            ),
        ]
    return section


def main() -> None:
    """Print the section's summary and detail tables (or run one worker method with --worker)."""
    if len(sys.argv) > 2 and sys.argv[1] == "--worker":
        method, args = sys.argv[2], sys.argv[3:]
        print(json.dumps({"seconds": _seconds_file, "depth": _depth}[method](*args)))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the 500k-row day only")
    parser.add_argument("--rows", type=int, nargs="+", help="book_snapshot_25 days of about these rows")
    parser.add_argument("--workdir", type=Path)
    args = parser.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="tick-depth-"))
    work.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    result = _section(work, args.rows) if args.rows else section(work, args.quick)
    print(
        f"measured {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC in {time.perf_counter() - started:.0f} s\n"
    )
    print("| benchmark | ours | baseline | ratio | target | met |\n|---|---|---|---|---|---|")
    print("\n".join(t.line() for t in result.targets))
    print()
    print("\n".join(result.details))


if __name__ == "__main__":
    main()
