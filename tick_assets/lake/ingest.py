"""Download days through the Tardis client and write them as lake partitions, several days at once."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

from tick_assets.lake.convert import ConversionOptions, PartitionWrite, write_partition
from tick_assets.lake.layout import partition_file
from tick_assets.tardis.client import DownloadResult, TardisClient
from tick_assets.tardis.errors import TardisError
from tick_assets.tardis.urls import validate_symbol


class Cancelled(Exception):
    """The run was interrupted before this day started; nothing was downloaded or written for it."""


@dataclass(frozen=True)
class DayRequest:
    """One lake partition to produce; `key` is the caller's name for it (e.g. a Dagster partition key)."""

    data_type: str
    exchange: str
    symbol: str
    day: dt.date
    key: str = ""


@dataclass(frozen=True)
class DayResult:
    """The outcome of one request: the download and the Parquet write, or the error that stopped it."""

    request: DayRequest
    download: DownloadResult | None = None
    write: PartitionWrite | None = None
    error: Exception | None = None

    @property
    def ok(self) -> bool:
        """True when the partition was written."""
        return self.error is None and self.write is not None


def ingest_day(
    client: TardisClient,
    lake_root: Path,
    request: DayRequest,
    options: ConversionOptions | None = None,
    *,
    conversion_slot: threading.Semaphore | None = None,
    stop: threading.Event | None = None,
) -> DayResult:
    """Download one day (cache first) and write its partition; raises on failure, leaving the lake unchanged."""
    stop = stop or threading.Event()
    if stop.is_set():
        raise Cancelled(f"{request.key or request.day}: cancelled before it started")
    download = client.download(request.exchange, request.data_type, request.symbol, request.day, stop=stop)
    dest = partition_file(lake_root, request.data_type, request.exchange, request.symbol, request.day)
    with conversion_slot or threading.Semaphore():
        if stop.is_set():
            raise Cancelled(
                f"{request.key or request.day}: cancelled after its download (it is in the cache)"
            )
        write = write_partition(download.path, dest, request.data_type, options)
    return DayResult(request, download, write)


def _availability_errors(client: TardisClient, requests: Sequence[DayRequest]) -> dict[int, Exception]:
    """Check every day against /v1/exchanges metadata first, so unavailable days fail before any download."""
    errors: dict[int, Exception] = {}
    details: dict[str, object] = {}
    for i, req in enumerate(requests):
        if req.exchange not in details:
            try:
                details[req.exchange] = client.exchange_details(req.exchange)
            except TardisError as exc:
                details[req.exchange] = exc
        found = details[req.exchange]
        if isinstance(found, Exception):
            errors[i] = found
            continue
        try:
            found.check_day(req.data_type, validate_symbol(req.symbol), req.day)  # type: ignore[attr-defined]
        except TardisError as exc:
            errors[i] = exc
    return errors


def ingest_days(
    client: TardisClient,
    lake_root: Path,
    requests: Sequence[DayRequest],
    options: ConversionOptions | None = None,
    *,
    max_workers: int = 8,
    max_conversions: int = 2,
    check_availability: bool = True,
    on_result: Callable[[DayResult], None] | None = None,
) -> list[DayResult]:
    """Produce many partitions concurrently (downloads paced by the client's shared limiter).

    Days outside Tardis's availability fail at once without a request; every other day is attempted even if
    some fail, and each result says what happened. Results come back in request order; `on_result` is called
    in the caller's thread as each one finishes.
    """
    results: list[DayResult | None] = [None] * len(requests)
    failed_early = _availability_errors(client, requests) if check_availability else {}
    for i, exc in failed_early.items():
        results[i] = DayResult(requests[i], error=exc)
        if on_result:
            on_result(results[i])
    todo = [i for i in range(len(requests)) if i not in failed_early]
    if not todo:
        return [r for r in results if r is not None]
    slot, stop = threading.Semaphore(max(1, max_conversions)), threading.Event()
    pool = ThreadPoolExecutor(max_workers=max(1, min(max_workers, len(todo))))
    try:
        futures = {
            pool.submit(
                ingest_day, client, lake_root, requests[i], options, conversion_slot=slot, stop=stop
            ): i
            for i in todo
        }
        for future in as_completed(futures):
            i = futures[future]
            try:
                results[i] = future.result()
            except Exception as exc:  # every day gets its own verdict; the caller decides how to fail
                results[i] = DayResult(requests[i], error=exc)
            if on_result:
                on_result(results[i])
    except BaseException:
        # Interrupted (run terminated, Ctrl-C): start nothing new, cut downloads in flight (a stalled read would
        # otherwise hold the run for the read timeout); a conversion in progress finishes or stops at a checkpoint.
        stop.set()
        client.abort_in_flight()
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
    return [r for r in results if r is not None]
