"""Subprocess for limiter tests: acquire N permits from a shared limiter, print start times as JSON.

argv: location rate burst n hold_seconds [max_in_flight [lease_ttl [key]]]; the location is a SQLite file or a
postgresql:// URL (`ratelimit.open_limiter`).
"""

from __future__ import annotations

import json
import sys
import time

from tick_assets.tardis.ratelimit import LimiterConfig, open_limiter


def main() -> None:
    """Run the worker."""
    location, rate, burst, n, hold = (
        sys.argv[1],
        float(sys.argv[2]),
        int(sys.argv[3]),
        int(sys.argv[4]),
        float(sys.argv[5]),
    )
    max_in_flight = int(sys.argv[6]) if len(sys.argv) > 6 else 8
    lease_ttl = float(sys.argv[7]) if len(sys.argv) > 7 else 60.0
    key = sys.argv[8] if len(sys.argv) > 8 else "tardis"
    config = LimiterConfig(rate=rate, burst=burst, max_in_flight=max_in_flight, lease_ttl=lease_ttl)
    limiter = open_limiter(location, key, config)
    starts = []
    for _ in range(n):
        permit = limiter.acquire()
        # time.time is comparable across processes; monotonic clocks are not guaranteed to be.
        starts.append(time.time())
        print(json.dumps({"granted": starts[-1]}), flush=True)
        time.sleep(hold)
        limiter.release(permit)
    print(json.dumps(starts), flush=True)


if __name__ == "__main__":
    main()
