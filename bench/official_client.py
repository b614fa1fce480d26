"""Race: our default download path against the official tardis-dev client, at server limits they are not told.

For each R (req/s) a fresh emulator enforces R with 429 + Retry-After above it; each client downloads the same
files into an empty folder in its own process: ours through `tick-assets download` with its defaults (rate 20/s,
burst 5, 8 in flight, the SQLite-shared limiter in a fresh DATA_DIR), the official through
`tardis_dev.download_datasets(..., concurrency=20)` with its other defaults. Printed: seconds, dataset requests,
429s, and the official's seconds / ours (>= 1.0 means ours is at least as fast).

Run: .venv/bin/python bench/official_client.py [--quick] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from run import Section, Target

EXCHANGE, SYMBOL = "binance-futures", "BTCUSDT"
DATA_TYPES = ("trades", "book_snapshot_25", "quotes")
FIRST = dt.date(2024, 1, 2)
RATES = (5.0, 10.0, 20.0, 40.0)
#: The emulated service's token bucket depth: twice our limiter's default burst (5), as in bench/run.py.
SERVER_BURST = 10
SCALE = 2000
MAX_429_SHARE = 0.01


def _emulator_config(work: Path, rate: float, port: int = 0):
    from tick_assets.emulator.faults import FaultConfig
    from tick_assets.emulator.server import EmulatorConfig

    return EmulatorConfig(
        port=port,
        cache_dir=work / "emulator",
        scale=SCALE,
        faults=FaultConfig(rate_limit=rate, rate_burst=SERVER_BURST),
    )


def _generate(work: Path, days: int) -> None:
    """Serve every file once, unthrottled, so generation stays out of the race (the emulator caches days)."""
    from tick_assets.emulator.server import EmulatorServer
    from tick_assets.tardis import TardisClient

    with (
        EmulatorServer(_emulator_config(work, 0)) as server,
        TardisClient(work / "warm", api_key="bench", datasets_url=server.datasets_url) as client,
    ):
        for data_type in DATA_TYPES:
            for i in range(days):
                client.download(EXCHANGE, data_type, SYMBOL, FIRST + dt.timedelta(days=i))


def _race(work: Path, who: str, rate: float, days: int, *, again: int = 0) -> dict:
    """One client in its own process against a fresh emulator at `rate`: seconds, requests, 429s, files.
    `again`: the port of ours' earlier run, to run once more on it (the limiter is keyed by host:port) with its
    DATA_DIR's limiter state kept and its download cache emptied."""
    from tick_assets.emulator.server import EmulatorServer

    out = work / f"{who}-{rate:g}"
    shutil.rmtree(out / "tardis" if again else out, ignore_errors=True)
    with EmulatorServer(_emulator_config(work, rate, again)) as server:
        done = subprocess.run(
            [sys.executable, __file__, "--worker", who, server.datasets_url, str(out), str(days)],
            capture_output=True,
            text=True,
            cwd=Path(__file__).resolve().parent.parent,
            env={k: v for k, v in os.environ.items() if not k.startswith(("TARDIS_", "TICK_ASSETS_"))},
        )
        counts = server.stats["counts"]
        first = min(server.request_times(("dataset",)), default=0.0)
    if done.returncode != 0:
        raise RuntimeError(f"{who} at R={rate:g} failed: {done.stderr[-3000:]}")
    files = sorted(p.name for p in out.rglob("*.csv.gz"))
    return {
        **json.loads(done.stdout.strip().splitlines()[-1]),
        "port": int(server.base_url.rsplit(":", 1)[1]),
        "requests": counts.get("dataset_requests", 0),
        "throttled": counts.get("rate_limited", 0),
        "files": files,
        "first": first,
    }


def _worker(who: str, url: str, out: Path, days: int) -> None:
    """Download the race's files with `who`'s client and print {"seconds": ...}."""
    start, end = FIRST, FIRST + dt.timedelta(days=days)
    if who == "official":
        from tardis_dev import download_datasets

        started, wall = time.perf_counter(), time.time()
        download_datasets(
            EXCHANGE,
            list(DATA_TYPES),
            [SYMBOL],
            start.isoformat(),
            end.isoformat(),
            api_key="bench",
            download_dir=str(out),
            endpoint=url,
            concurrency=20,
        )
    else:
        os.environ.update(
            TARDIS_DATASETS_URL=url,
            TARDIS_API_URL=url,
            TARDIS_API_KEY="bench",
            TICK_ASSETS_DATA_DIR=str(out),
        )
        # imported before the clock starts, like tardis_dev above
        import tick_assets.emulator.server  # the CLI imports it to parse its arguments
        import tick_assets.tardis.shared  # noqa: F401
        from tick_assets import cli

        argv = ["download", f"{EXCHANGE}:{SYMBOL}", "--data-types", ",".join(DATA_TYPES)]
        argv += ["--from", start.isoformat(), "--to", end.isoformat()]
        started, wall = time.perf_counter(), time.time()
        with contextlib.redirect_stdout(io.StringIO()):
            code = cli.main(argv)
        if code != 0:
            raise SystemExit(f"tick-assets download exited {code}")
    print(json.dumps({"seconds": time.perf_counter() - started, "start": wall}))


def section(work: Path, quick: bool, rates: tuple[float, ...] = RATES) -> Section:
    """Ours vs the official client at each R: speed ratio and 429 share."""
    days = 10 if quick else 29
    work.mkdir(parents=True, exist_ok=True)
    _generate(work, days)
    files = days * len(DATA_TYPES)
    result = Section("official client")
    result.details = [
        f"{files} files ({days} days x {', '.join(DATA_TYPES)} of {EXCHANGE} {SYMBOL}, emulator scale {SCALE}); "
        f"server bucket {SERVER_BURST} deep; neither client is told R. Ideal: (files - bucket) / R. A later run: "
        "ours again on a fresh emulator, its download cache emptied, the limiter state in DATA_DIR kept (what "
        "the next run or step on the machine finds).",
        "",
        "| R req/s | ideal s | ours s (to 1st request) | ours requests | ours 429s | official s (to 1st request) | "
        "official requests | official 429s | official s / ours s | ours, a later run: s, 429s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for rate in rates:
        # alternate who goes first, so a noisy neighbour does not always hit the same client
        order = ("ours", "official") if int(rate) % 2 else ("official", "ours")
        runs = {who: _race(work, who, rate, days) for who in order}
        ours, official = runs["ours"], runs["official"]
        later = _race(work, "ours", rate, days, again=ours["port"])
        if ours["files"] != official["files"] or len(ours["files"]) != files:
            raise RuntimeError(f"R={rate:g}: the clients downloaded different files")
        ratio = official["seconds"] / ours["seconds"]
        ideal = max(0, files - SERVER_BURST) / rate  # the server's bucket full at the start, then R
        share = ours["throttled"] / max(1, ours["requests"])
        result.details.append(
            f"| {rate:g} | {ideal:.1f} | {ours['seconds']:.1f} ({ours['first'] - ours['start']:.2f}) | "
            f"{ours['requests']} | {ours['throttled']} | {official['seconds']:.1f} "
            f"({official['first'] - official['start']:.2f}) | {official['requests']} | {official['throttled']} | "
            f"{ratio:.2f} | {later['seconds']:.1f}, {later['throttled']} |"
        )
        result.targets.append(
            Target(
                f"download {files} files, server limit R = {rate:g} req/s (not told): ours vs tardis-dev",
                f"{ours['seconds']:.1f} s, {ours['throttled']}/{ours['requests']} x 429 ({share:.1%})",
                f"{official['seconds']:.1f} s, {official['throttled']}/{official['requests']} x 429",
                ratio,
                ">= 1.0x official and <= 1% 429",
                ratio >= 1.0 and share <= MAX_429_SHARE,
            )
        )
    return result


def main() -> None:
    """Run the race alone and print its table."""
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        _worker(sys.argv[2], sys.argv[3], Path(sys.argv[4]), int(sys.argv[5]))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10 days instead of 29")
    parser.add_argument("--workdir", type=Path, help="keeps generated days between runs")
    parser.add_argument("--rates", default=",".join(f"{r:g}" for r in RATES), help="server limits to race at")
    args = parser.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="tick-race-"))
    started = time.perf_counter()
    result = section(work, args.quick, tuple(float(r) for r in args.rates.split(",")))
    print("| benchmark | ours | baseline | ratio | target | met |\n|---|---|---|---|---|---|")
    print("\n".join(t.line() for t in result.targets))
    print("\n" + "\n".join(result.details))
    print(f"\n({time.perf_counter() - started:.0f} s)", file=sys.stderr)


if __name__ == "__main__":
    main()
