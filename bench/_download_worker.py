"""Subprocess of bench/foundation.py and bench/run.py: N real downloads (4 threads) through a SQLite-shared limiter; prints start times."""

from __future__ import annotations

import datetime as dt
import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor

from tick_assets.tardis import LimiterConfig, TardisClient, sqlite_limiter


def main() -> None:
    """argv: datasets_url limiter_db cache_dir n [rate]."""
    url, db, cache, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    rate = float(sys.argv[5]) if len(sys.argv) > 5 else 20.0
    limiter = sqlite_limiter(db, "bench", LimiterConfig(rate=rate, burst=5, max_in_flight=8))
    with TardisClient(cache, api_key="bench", datasets_url=url, api_url=url, limiter=limiter) as client:

        def one(i: int) -> float:
            before = time.time()
            day = dt.date(2024, 1, 2 + i % 28)
            result = client.download("deribit", "trades", "BTC-PERPETUAL", day, force=True)
            # Start time of the request = when the limiter let it go.
            return before + result.limiter_wait_seconds

        # Like a ranged Dagster run: several days in flight at once in one process.
        with ThreadPoolExecutor(max_workers=4) as pool:
            starts = list(pool.map(one, range(n)))
    print(json.dumps(starts))


if __name__ == "__main__":
    main()
