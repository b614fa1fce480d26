"""The same backfill on the single-machine profile and on the distributed one, on this machine.

Each profile runs `tick-assets demo`'s backfill (every partitioned asset, DAYS days x the instruments) against its
own bundled emulator: single = SQLite instance + multiprocess steps + local lake; distributed = Postgres instance
and limiter + Celery workers on redis-server + the lake on SeaweedFS S3 (tick_assets/stack/distributed.py). Both
run on the same cores, so the figure is the price of the distributed machinery where it cannot add cores: on a
cluster each worker brings its own. Prints the backfill's wall time of each and the ratio.

Run: .venv/bin/python bench/profiles.py [--days 3] [--scale 3000] [--workers 2] [--data-types trades,book_snapshot_25]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tick_assets.stack.demo import run_demo


def main() -> int:
    """Run both profiles and print their wall times."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=3)
    parser.add_argument("--scale", type=int, default=3000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--instruments", default="binance-futures:BTCUSDT,deribit:BTC-PERPETUAL")
    parser.add_argument("--data-types", default="trades,book_snapshot_25")
    args = parser.parse_args()
    os.environ["TICK_ASSETS_INSTRUMENTS"] = args.instruments
    os.environ["TICK_ASSETS_DATA_TYPES"] = args.data_types
    results = {}
    for profile in ("single", "distributed"):
        with tempfile.TemporaryDirectory(prefix=f"bench-{profile}-") as tmp:
            result = run_demo(
                dt.date(2024, 1, 2),
                args.days,
                args.scale,
                Path(tmp),
                port=0,
                say=lambda _: None,
                profile=profile,
                workers=args.workers,
            )
        if not result.ok:
            print(
                f"{profile}: backfill {result.backfill_status}, partitions {result.partitions}",
                file=sys.stderr,
            )
            return 1
        results[profile] = result
        print(
            f"{profile:<12} backfill {result.backfill_seconds:6.1f} s  ({result.runs} runs, "
            f"{sum(result.partitions.values())} asset partitions; {result.seconds:.0f} s with start and stop)",
            flush=True,
        )
    ratio = results["distributed"].backfill_seconds / results["single"].backfill_seconds
    print(f"distributed / single wall time: {ratio:.2f}x on {os.cpu_count()} cores ({args.workers} workers)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
