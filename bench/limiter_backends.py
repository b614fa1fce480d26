"""The cost of one grant (acquire + release) on each limiter backend: memory, SQLite (one machine) and Postgres
(every machine; a throwaway cluster on 127.0.0.1 started here), with 1 and 4 threads, at a rate that never makes
anyone wait, so the figure is the backend's own cost. Prints grants per second and the ratio to SQLite.

Run: .venv/bin/python bench/limiter_backends.py [--grants 2000]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tick_assets.stack.postgres import PostgresServer
from tick_assets.tardis.ratelimit import LimiterConfig, MemoryBackend, RateLimiter, open_limiter

CONFIG = LimiterConfig(rate=1e6, burst=1_000_000, max_in_flight=64)


def grants_per_second(make: object, grants: int, threads: int) -> float:
    """Grants per second of `threads` threads, each with its own limiter from `make()`, sharing one key."""
    limiters = [make() for _ in range(threads)]
    for limiter in limiters:  # connect and create the key before timing
        limiter.release(limiter.acquire())

    def work(limiter: RateLimiter) -> None:
        for _ in range(grants // threads):
            limiter.release(limiter.acquire())

    started = time.perf_counter()
    workers = [threading.Thread(target=work, args=(limiter,)) for limiter in limiters]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return grants / (time.perf_counter() - started)


def main() -> None:
    """Print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grants", type=int, default=2000)
    args = parser.parse_args()
    memory = MemoryBackend()
    with tempfile.TemporaryDirectory() as tmp, PostgresServer() as pg:
        backends = {
            "memory (one process)": lambda: RateLimiter(memory, "bench", CONFIG),
            "SQLite file (one machine)": lambda: open_limiter(Path(tmp) / "limiter.sqlite", "bench", CONFIG),
            "Postgres on 127.0.0.1 (every machine)": lambda: open_limiter(pg.url, "bench", CONFIG),
        }
        rows = {
            (name, t): grants_per_second(make, args.grants, t)
            for name, make in backends.items()
            for t in (1, 4)
        }
    print("| backend | threads | grants/s | vs SQLite |")
    print("|---|---:|---:|---:|")
    for (name, threads), rate in rows.items():
        ratio = rate / rows[("SQLite file (one machine)", threads)]
        print(f"| {name} | {threads} | {rate:,.0f} | {ratio:.2f}x |")


if __name__ == "__main__":
    main()
