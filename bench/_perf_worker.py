"""Subprocess of bench/run.py: one measured method in a fresh process, so its peak RSS is its own.

Prints one JSON line: {"rows", "seconds", "peak_mb", "out_bytes"}. Methods (argv[1]):
  lake SRC DST TYPE          the lake converter, as raw/<type> runs it (LakeResource defaults)
  duckdb_copy SRC DST        DuckDB's own COPY (SELECT * FROM read_csv(SRC)) TO DST (FORMAT parquet)
  pandas SRC DST TYPE        pandas.read_csv (typed) + DataFrame.to_parquet (zstd)
  gunzip SRC                 gzip -dc SRC > /dev/null (peak RSS of gzip itself)
  zlib SRC                   Python's gzip (zlib) decoding SRC to nothing: the single-stream floor in-process
  isal SRC                   ISA-L (isal.igzip) decoding SRC to nothing: the decoder the lake converter uses
  miss DATASETS API DST TYPE a cache miss as raw/<type> runs it: download over loopback + verify + convert
  depth LAKE DAY DB          features/depth as the asset runs it: the query (timed) and its partition file stored
  trade_bars LAKE DAY DB     features/trade_bars, the same way
  loop_depth SRC             the per-snapshot Python loop of a hand-written script over the csv.gz
  loop_bars SRC              the per-trade Python loop of a hand-written script building 1 s bars
"""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import json
import os
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPEATS = 3  # features: best of 3 after a warm-up, as the asset re-runs on a warm page cache


def peak_rss_mb() -> float:
    """VmHWM of this process (ru_maxrss is not used: Linux carries it over from the parent across exec)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _lake(src: str, dst: str, data_type: str) -> Callable[[], int]:
    from tick_assets.assets.resources import LakeResource
    from tick_assets.lake import write_partition

    options = LakeResource(data_dir=str(Path(dst).parent)).conversion_options()
    return lambda: write_partition(Path(src), Path(dst), data_type, options).rows


def _duckdb_copy(src: str, dst: str) -> Callable[[], int]:
    import duckdb

    def run() -> int:
        with duckdb.connect() as con:
            con.execute(f"COPY (SELECT * FROM read_csv('{src}')) TO '{dst}' (FORMAT parquet)")
            return con.execute(f"SELECT count(*) FROM read_parquet('{dst}')").fetchone()[0]

    return run


def _pandas(src: str, dst: str, data_type: str) -> Callable[[], int]:
    import pandas as pd
    import pyarrow  # noqa: F401 - to_parquet's engine, imported before the clock starts

    from tick_assets.tardis.datatypes import SCHEMAS

    kinds = {"BIGINT": "int64", "DOUBLE": "float64", "VARCHAR": "string", "BOOLEAN": "boolean"}

    def run() -> int:
        frame = pd.read_csv(src, dtype={c: kinds[t] for c, t in SCHEMAS[data_type]})
        frame.to_parquet(dst, compression="zstd", index=False)
        return len(frame)

    return run


def _gunzip(src: str) -> Callable[[], int]:
    def run() -> int:
        with open(os.devnull, "wb") as sink:
            subprocess.run(["gzip", "-dc", src], stdout=sink, check=True)
        return 0

    return run


def _decode(module: str, src: str) -> Callable[[], int]:
    import gzip as zlib_gzip

    from isal import igzip

    opener = {"zlib": zlib_gzip.open, "isal": igzip.open}[module]

    def run() -> int:
        with opener(src, "rb") as f:
            while f.read(1 << 20):
                pass
        return 0

    return run


def _miss(datasets_url: str, api_url: str, dst: str, data_type: str) -> Callable[[], int]:
    from tick_assets.assets.resources import LakeResource
    from tick_assets.lake import DayRequest, ingest_day
    from tick_assets.tardis import TardisClient

    work = Path(dst)
    options = LakeResource(data_dir=str(work)).conversion_options()
    client = TardisClient(work / "cache", api_key="bench", datasets_url=datasets_url, api_url=api_url)
    request = DayRequest(data_type, "binance-futures", "BTCUSDT", dt.date(2024, 1, 2))

    def run() -> int:
        with client:
            result = ingest_day(client, work / "lake", request, options)
        assert not result.download.from_cache
        return result.write.rows

    return run


def _feature(name: str, lake: str, day: str, out: str) -> tuple[int, float]:
    from tick_assets.features.depth import depth_query
    from tick_assets.features.grid import DaySlice
    from tick_assets.features.trade_bars import trade_bars_sql
    from tick_assets.lake import LocalLake, connect, store_query

    def query() -> str:  # as the assets call them (store_query times the call with the write)
        return depth_query(con, source, grid) if name == "depth" else trade_bars_sql(source, grid)

    grid = DaySlice("binance-futures", "BTCUSDT", dt.date.fromisoformat(day))
    source, target = (
        LocalLake(lake),
        LocalLake(out),
    )  # the feature partition is stored like the asset stores it
    with connect(source) as con:
        store_query(con, target, grid.partition(f"features/{name}"), query)  # warm-up: caches
        written = [
            store_query(con, target, grid.partition(f"features/{name}"), query) for _ in range(REPEATS)
        ]
    return written[0].rows, min(w.seconds for w in written)


def loop_depth(src: str, levels: int = 10) -> int:
    """Per snapshot: the first `levels` levels a side, float() them; mid, spread, volumes and imbalance."""
    out = []
    with gzip.open(src, "rt", newline="") as f:
        reader = csv.reader(f)
        col = {name: i for i, name in enumerate(next(reader))}
        sides = [
            [(col[f"{s}[{i}].price"], col[f"{s}[{i}].amount"]) for i in range(levels)]
            for s in ("bids", "asks")
        ]
        for row in reader:
            bids = [(float(row[p]), float(row[q])) for p, q in sides[0] if row[p]]
            asks = [(float(row[p]), float(row[q])) for p, q in sides[1] if row[p]]
            best_bid, best_ask = bids[0][0], asks[0][0]
            mid = (best_bid + best_ask) / 2
            bid_volume, ask_volume = sum(q for _, q in bids), sum(q for _, q in asks)
            imbalance = (bid_volume - ask_volume) / (bid_volume + ask_volume)
            out.append((mid, best_ask - best_bid, bid_volume, ask_volume, imbalance))
    return len(out)


def loop_bars(src: str) -> int:
    """Per trade: bucket by the second of its exchange timestamp; OHLC, volume, notional, buy/sell, count."""
    bars: dict[int, list[float]] = {}
    rows = 0
    with gzip.open(src, "rt", newline="") as f:
        reader = csv.reader(f)
        col = {name: i for i, name in enumerate(next(reader))}
        ts_i, price_i, amount_i, side_i = col["timestamp"], col["price"], col["amount"], col["side"]
        for row in reader:
            rows += 1
            second, price, amount = int(row[ts_i]) // 1_000_000, float(row[price_i]), float(row[amount_i])
            bar = bars.get(second)
            if bar is None:
                bars[second] = [price, price, price, price, amount, price * amount, 0.0, 0.0, 1]
                bar = bars[second]
            else:
                bar[1], bar[2], bar[3] = max(bar[1], price), min(bar[2], price), price
                bar[4] += amount
                bar[5] += price * amount
                bar[8] += 1
            bar[6 if row[side_i] == "buy" else 7] += amount
    return rows


def main() -> None:
    """Run argv[1] on argv[2:] and print the JSON line (imports happen before the clock starts)."""
    method, args = sys.argv[1], sys.argv[2:]
    out_path = args[1] if method in ("lake", "duckdb_copy", "pandas") else None
    if method in ("depth", "trade_bars"):
        rows, seconds = _feature(method, *args)
    else:
        prepared = {
            "lake": _lake,
            "duckdb_copy": _duckdb_copy,
            "pandas": _pandas,
            "gunzip": _gunzip,
            "zlib": lambda src: _decode("zlib", src),
            "isal": lambda src: _decode("isal", src),
            "miss": _miss,
            "loop_depth": lambda src: lambda: loop_depth(src),
            "loop_bars": lambda src: lambda: loop_bars(src),
        }[method](*args)
        started = time.perf_counter()
        rows = prepared()
        seconds = time.perf_counter() - started
    peak = (
        resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024 if method == "gunzip" else peak_rss_mb()
    )
    out_bytes = Path(out_path).stat().st_size if out_path else 0
    print(json.dumps({"rows": rows, "seconds": seconds, "peak_mb": peak, "out_bytes": out_bytes}))


if __name__ == "__main__":
    main()
