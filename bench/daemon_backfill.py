"""A daemon-managed backfill of raw assets, launched over GraphQL like the UI's Materialize button.

Starts an emulator, a Dagster webserver and daemon on 127.0.0.1 (a fresh DAGSTER_HOME and data dir), launches
one backfill of DAYS x INSTRUMENTS for the chosen raw assets, waits for it, and checks every partition's rows
against the file the emulator served. Then waits for the automation sensor to refresh warehouse/views and
checks the warehouse totals.

Run: .venv/bin/python bench/daemon_backfill.py [--days 30] [--scale 20000] [--assets trades,book_snapshot_25]
"""

from __future__ import annotations

import argparse
import datetime as dt
import gzip
import tempfile
import time
from pathlib import Path

import duckdb

from tick_assets.emulator.server import EmulatorConfig, EmulatorServer
from tick_assets.lake import partition_file
from tick_assets.stack.localstack import DagsterStack

INSTRUMENTS = ["binance-futures:BTCUSDT", "deribit:BTC-PERPETUAL"]
_LAST_VIEWS = """{ assetOrError(assetKey: {path: ["warehouse", "views"]}) {
  ... on Asset { assetMaterializations(limit: 1) { runId timestamp } } } }"""


def _gzip_rows(path: Path) -> int:
    with gzip.open(path, "rb") as f:
        return max(0, sum(1 for _ in f) - 1)


def _wait_for_views(stack: DagsterStack, after: float, timeout: float) -> float | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        mats = stack.graphql(_LAST_VIEWS)["assetOrError"].get("assetMaterializations") or []
        if mats and float(mats[0]["timestamp"]) / 1000 > after:
            return float(mats[0]["timestamp"]) / 1000
        time.sleep(2)
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--start", default="2024-02-01")
    parser.add_argument("--scale", type=int, default=20000, help="book events per synthetic day")
    parser.add_argument("--assets", default="trades,book_snapshot_25")
    parser.add_argument(
        "--days-per-run",
        type=int,
        default=31,
        help="TICK_ASSETS_BACKFILL_DAYS_PER_RUN (1 = a run per partition)",
    )
    parser.add_argument("--tardis-pool", type=int, default=4, help="limit of pool `tardis`")
    parser.add_argument("--workdir", type=Path, help="keep everything here (default: a temp dir)")
    parser.add_argument(
        "--emulator-cache", type=Path, help="reuse generated days from here (leaves generation time out)"
    )
    args = parser.parse_args()

    work = args.workdir or Path(tempfile.mkdtemp(prefix="tick-backfill-"))
    data_dir, home = work / "data", work / "dagster_home"
    data_types = [t.strip() for t in args.assets.split(",")]
    start = dt.date.fromisoformat(args.start)
    days = [start + dt.timedelta(days=i) for i in range(args.days)]
    keys = [f"{d:%Y-%m-%d}|{inst}" for inst in INSTRUMENTS for d in days]

    with EmulatorServer(
        EmulatorConfig(port=0, cache_dir=args.emulator_cache or work / "emulator", scale=args.scale)
    ) as emulator:
        env = {
            "TARDIS_DATASETS_URL": emulator.datasets_url,
            "TARDIS_API_URL": emulator.api_url,
            "TARDIS_API_KEY": "emulator-accepts-any-key",
            "TICK_ASSETS_DATA_DIR": str(data_dir),
            "TICK_ASSETS_INSTRUMENTS": ",".join(INSTRUMENTS),
            "TICK_ASSETS_DATA_TYPES": ",".join(data_types),
            "TICK_ASSETS_BACKFILL_DAYS_PER_RUN": str(args.days_per_run),
        }
        with DagsterStack(home, env) as stack:
            stack.set_pool_limit("tardis", args.tardis_pool)
            stack.set_pool_limit("duckdb", 1)
            print(
                f"Dagster up at {stack.url} (DAGSTER_HOME={home}); launching {len(keys)} partitions x {data_types}"
            )
            launched = time.time()
            backfill_id = stack.launch_backfill(
                [["raw", t] for t in data_types], keys, title="bench backfill"
            )
            state = stack.wait_for_backfill(backfill_id, timeout=3600)
            wall = time.time() - launched
            views_at = _wait_for_views(stack, launched, timeout=180)

    print(
        f"\nbackfill {backfill_id}: {state['status']}, {state['numPartitions']} partitions, "
        f"{len(state['runs'])} runs, complete {wall:.1f} s after launch (as seen by polling)"
    )
    starts = [r["startTime"] for r in state["runs"] if r["startTime"]]
    ends = [r["endTime"] for r in state["runs"] if r["endTime"]]
    if starts and ends:
        print(
            f"first run started {min(starts) - launched:.1f} s after launch (backfill daemon tick, queue, run "
            f"process start); last run ended {max(ends) - launched:.1f} s after launch"
        )
    print("| run | range | status | seconds |\n|---|---|---|---|")
    for run in sorted(state["runs"], key=lambda r: r["startTime"] or 0):
        tags = {t["key"]: t["value"] for t in run["tags"]}
        rng = f"{tags.get('dagster/asset_partition_range_start')} .. {tags.get('dagster/asset_partition_range_end')}"
        secs = (run["endTime"] or 0) - (run["startTime"] or 0)
        print(f"| {run['id'][:8]} | {rng} | {run['status']} | {secs:.1f} |")

    print("\n| asset | partitions | rows in lake | rows served | equal |\n|---|---|---|---|---|")
    served_bytes = 0
    for data_type in data_types:
        lake_total = served_total = 0
        mismatched = []
        for inst in INSTRUMENTS:
            exchange, symbol = inst.split(":")
            for day in days:
                cached = data_dir / "tardis" / f"{exchange}_{data_type}_{day:%Y-%m-%d}_{symbol}.csv.gz"
                served = _gzip_rows(cached)
                served_bytes += cached.stat().st_size
                path = partition_file(data_dir / "lake", f"raw/{data_type}", exchange, symbol, day)
                rows = duckdb.sql(f"SELECT count(*) FROM read_parquet('{path}')").fetchall()[0][0]
                lake_total += rows
                served_total += served
                if rows != served:
                    mismatched.append(f"{day}|{inst}")
        print(f"| raw/{data_type} | {len(keys)} | {lake_total:,} | {served_total:,} | {not mismatched} |")
    print(
        f"\nemulator: {emulator.stats['counts'].get('dataset_requests')} dataset requests, "
        f"{emulator.stats['bytes_sent']:,} bytes sent; download cache holds {served_bytes:,} bytes"
    )
    if views_at is None:
        print("warehouse/views was not refreshed by the automation sensor within 180 s")
        return
    with duckdb.connect(str(data_dir / "warehouse.duckdb"), read_only=True) as con:
        for data_type in data_types:
            rows, parts = con.execute(
                f'SELECT count(*), count(DISTINCT (exchange, symbol, date)) FROM raw."{data_type}" '
                "WHERE date BETWEEN ? AND ?",
                [days[0], days[-1]],
            ).fetchone()
            print(
                f"warehouse raw.{data_type}: {rows:,} rows over {parts} partitions "
                f"(views refreshed {views_at - launched - wall:.0f} s after the backfill ended)"
            )


if __name__ == "__main__":
    main()
