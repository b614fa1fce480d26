"""Figures for the foundation: fault handling table, shared limiter across processes, generation and download speed.

Run: .venv/bin/python bench/foundation.py [--quick]
Everything runs against emulators on 127.0.0.1 started by this script and stopped at the end.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tick_assets.emulator.faults import FaultConfig
from tick_assets.emulator.server import EmulatorConfig, EmulatorServer
from tick_assets.emulator.synth import write_dataset
from tick_assets.tardis import RetryPolicy, TardisClient, TardisError
from tick_assets.tardis.ratelimit import LimiterConfig, MemoryBackend, RateLimiter

DAY0 = dt.date(2024, 1, 2)
WORKER = Path(__file__).with_name("_download_worker.py")


def _client(server: EmulatorServer, cache: Path, **kw) -> TardisClient:
    limiter = RateLimiter(MemoryBackend(), "bench", LimiterConfig(rate=1000, burst=1000, max_in_flight=16))
    kw.setdefault("retry", RetryPolicy(max_attempts=15, base_delay=0.02, max_delay=0.2, throttle_delay=1))
    kw.setdefault("api_key", "bench-key")
    return TardisClient(
        cache, datasets_url=server.datasets_url, api_url=server.api_url, limiter=limiter, **kw
    )


def fault_table(tmp: Path, files: int) -> list[str]:
    """Each fault at 30% per request over `files` downloads, compared byte for byte with a fault-free run."""
    common = {"port": 0, "cache_dir": tmp / "gen", "scale": 2000, "exported_until": dt.date(2024, 3, 1)}
    days = [DAY0 + dt.timedelta(days=i) for i in range(files)]
    with EmulatorServer(EmulatorConfig(**common)) as clean, _client(clean, tmp / "clean") as c:
        reference = {
            d: c.download("deribit", "book_snapshot_25", "BTC-PERPETUAL", d).path.read_bytes() for d in days
        }
    rows = [
        "| fault or bad input | injected | what the client did | result |",
        "|---|---|---|---|",
    ]
    for kind in ("throttle", "server_error", "reset", "truncate", "stall"):
        faults = FaultConfig(**{kind: 0.3}, seed=42, stall_seconds=3.0, retry_after_seconds=1)
        cache = tmp / f"f-{kind}"
        with EmulatorServer(EmulatorConfig(**common, faults=faults)) as server:
            with _client(server, cache, read_timeout=0.5) as c:
                t0 = time.monotonic()
                results = [c.download("deribit", "book_snapshot_25", "BTC-PERPETUAL", d) for d in days]
                seconds = time.monotonic() - t0
            injected = server.stats["counts"].get(f"fault_{kind}", 0)
        identical = sum(r.path.read_bytes() == reference[d] for r, d in zip(results, days, strict=True))
        retries = sum(r.retries for r in results)
        rows.append(
            f"| {kind} (30%) | {injected} | {retries} retries over {files} files, {seconds:.1f}s | "
            f"{identical}/{files} complete, byte-identical to fault-free |"
        )
    bad_inputs = [
        ("no API key, day 2 of month", {}, {"api_key": None}, ("deribit", "trades", "BTC-PERPETUAL", DAY0)),
        (
            "invalid API key",
            {"api_keys": frozenset({"good"})},
            {},
            ("deribit", "trades", "BTC-PERPETUAL", DAY0),
        ),
        ("unknown symbol", {}, {}, ("deribit", "trades", "NOPE", DAY0)),
        ("unknown exchange", {}, {}, ("nope", "trades", "BTC", DAY0)),
        (
            "HTML page with 200",
            {"faults": FaultConfig(html=1.0)},
            {},
            ("deribit", "trades", "BTC-PERPETUAL", DAY0),
        ),
        ("unknown data type", {}, {}, ("deribit", "book_snapshot_10", "BTC-PERPETUAL", DAY0)),
        ("symbol with path characters", {}, {}, ("deribit", "trades", "../../etc", DAY0)),
        ("malformed date", {}, {}, ("deribit", "trades", "BTC-PERPETUAL", "2024-02-30")),
        (
            "5xx on every attempt (3 allowed)",
            {"faults": FaultConfig(server_error=1.0)},
            {"retry": RetryPolicy(max_attempts=3, base_delay=0.01)},
            ("deribit", "trades", "BTC-PERPETUAL", DAY0),
        ),
    ]
    for label, server_kw, client_kw, args in bad_inputs:
        with EmulatorServer(EmulatorConfig(**{**common, **server_kw})) as server:
            with _client(server, tmp / "bad", **client_kw) as c:
                try:
                    c.download(*args)
                    outcome = "no error (unexpected)"
                except TardisError as exc:
                    outcome = f"{type(exc).__name__}: {str(exc)[:150]}"
            sent = server.stats["counts"].get("dataset_requests", 0)
        rows.append(f"| {label} | - | {sent} request(s) sent | {outcome} |")
    return rows


def limiter_table(tmp: Path, requests_total: int) -> list[str]:
    """Aggregate req/s of 1 and 4 processes sharing a 20 req/s limit, against a server that enforces 20 req/s."""
    rows = [
        "| processes x threads | requests | seconds | aggregate req/s | of limit | token-bucket bound R*T+burst "
        "| max in any 1 s window | 429s from the server's own 20 req/s bucket |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for processes in (1, 4):
        config = EmulatorConfig(
            port=0,
            cache_dir=tmp / "gen",
            scale=100,
            exported_until=dt.date(2024, 3, 1),
            faults=FaultConfig(rate_limit=20, rate_burst=20),
        )
        with EmulatorServer(config) as server:
            db = tmp / f"limiter-{processes}.sqlite"
            procs = [
                subprocess.Popen(
                    [
                        sys.executable,
                        str(WORKER),
                        server.datasets_url,
                        str(db),
                        str(tmp / f"w{processes}-{i}"),
                        str(requests_total // processes),
                    ],
                    stdout=subprocess.PIPE,
                    text=True,
                )
                for i in range(processes)
            ]
            times = sorted(t for p in procs for t in json.loads(p.communicate(timeout=300)[0]))
            throttled = server.stats["counts"].get("rate_limited", 0)
        seconds = times[-1] - times[0]
        rate = (len(times) - 1) / seconds
        bound = 20 * seconds + 5 + 1
        window = max(sum(1 for u in times[i:] if u - t < 1.0) for i, t in enumerate(times))
        rows.append(
            f"| {processes} x 4 | {len(times)} | {seconds:.2f} | {rate:.2f} | {rate / 20:.0%} "
            f"| {len(times)} <= {bound:.0f} | {window} | {throttled} |"
        )
    return rows


def generation_table(tmp: Path, book_scale: int, trade_scale: int) -> list[str]:
    """Rows/s of the synthetic generator (generate + CSV + gzip) and download MB/s over loopback."""
    rows = ["| dataset | scale | rows | gzip MB | seconds | rows/s |", "|---|---|---|---|---|---|"]
    gen = tmp / "speed"
    cases = [("book_snapshot_25", book_scale), ("trades", trade_scale)]
    for data_type, scale in cases:
        out = gen / f"v1-s{scale}" / "binance-futures" / data_type / f"{DAY0:%Y-%m-%d}_BTCUSDT.csv.gz"
        out.parent.mkdir(parents=True, exist_ok=True)
        t0 = time.monotonic()
        n = write_dataset("binance-futures", "BTCUSDT", data_type, DAY0, scale, out, compresslevel=1)
        seconds = time.monotonic() - t0
        rows.append(
            f"| {data_type} | {scale:,} | {n:,} | {out.stat().st_size / 1e6:.1f} | {seconds:.1f} | {n / seconds:,.0f} |"
        )
    rows += [
        "",
        "| download over loopback | MB | seconds | MB/s (incl. fsync + full gzip verify) |",
        "|---|---|---|---|",
    ]
    config = EmulatorConfig(port=0, cache_dir=gen, scale=book_scale, exported_until=dt.date(2024, 3, 1))
    with EmulatorServer(config) as server, _client(server, tmp / "dl") as c:
        r = c.download("binance-futures", "book_snapshot_25", "BTCUSDT", DAY0)
    rows.append(
        f"| book_snapshot_25 scale {book_scale:,} | {r.compressed_bytes / 1e6:.1f} | {r.seconds:.2f} | "
        f"{r.mb_per_second:.0f} |"
    )
    return rows


def main() -> None:
    """Print the three tables."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="smaller sizes (seconds instead of minutes)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tick-bench-") as d:
        tmp = Path(d)
        print("## Faults and bad input\n")
        print("\n".join(fault_table(tmp, 6 if args.quick else 20)))
        print("\n## Shared limiter, 20 req/s\n")
        print("\n".join(limiter_table(tmp, 80 if args.quick else 200)))
        print("\n## Generation and download speed\n")
        sizes = (20_000, 60_000) if args.quick else (500_000, 2_000_000)
        print("\n".join(generation_table(tmp, *sizes)))


if __name__ == "__main__":
    main()
