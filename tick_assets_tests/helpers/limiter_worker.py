"""Subprocess for limiter tests: acquire N permits from a shared SQLite limiter, print start times as JSON."""

from __future__ import annotations

import json
import sys
import time

from tick_assets.tardis.ratelimit import LimiterConfig, sqlite_limiter


def main() -> None:
    """Run the worker: argv = db rate burst n hold_seconds."""
    db, rate, burst, n, hold = (
        sys.argv[1],
        float(sys.argv[2]),
        int(sys.argv[3]),
        int(sys.argv[4]),
        float(sys.argv[5]),
    )
    limiter = sqlite_limiter(db, "tardis", LimiterConfig(rate=rate, burst=burst, max_in_flight=8))
    starts = []
    for _ in range(n):
        permit = limiter.acquire()
        # time.time is comparable across processes; monotonic clocks are not guaranteed to be.
        starts.append(time.time())
        time.sleep(hold)
        limiter.release(permit)
    print(json.dumps(starts))


if __name__ == "__main__":
    main()
