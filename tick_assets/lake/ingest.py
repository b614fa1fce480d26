"""Download days through the Tardis client and write them as lake partitions, several days at once."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from tick_assets.lake.convert import ConversionOptions, PartitionWrite, store_partition
from tick_assets.lake.layout import partition_relpath, raw_dataset
from tick_assets.lake.store import Lake, as_lake
from tick_assets.tardis.client import DownloadResult, TardisClient
from tick_assets.tardis.errors import CancelledError, NotOfferedError
from tick_assets.tardis.integrity import GzipInfo
from tick_assets.waiting import as_completed_waking

#: Download cache retention: keep every csv.gz, or delete a day's file once its raw partition is stored.
KEEP, DELETE = "keep", "delete"


def check_retention(retention: str) -> str:
    """Return the retention if known, else raise ValueError naming the choices."""
    if retention not in (KEEP, DELETE):
        raise ValueError(f"cache retention {retention!r}: use {KEEP!r} or {DELETE!r}")
    return retention


class Cancelled(CancelledError):
    """The run was interrupted before this day started or was converted; nothing was written for it."""


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
    #: Why Tardis has no such dataset (the data type is not in the symbol's datasets.symbols[].dataTypes):
    #: the partition is an empty file that says so, not a failure that stays red for ever.
    not_offered: str | None = None

    @property
    def ok(self) -> bool:
        """True when the partition was written."""
        return self.error is None and self.write is not None


def ingest_day(
    client: TardisClient,
    lake: Lake | Path,
    request: DayRequest,
    options: ConversionOptions | None = None,
    *,
    conversion_slot: threading.Semaphore | None = None,
    stop: threading.Event | None = None,
    check_availability: bool = True,
    cache_retention: str = KEEP,
) -> DayResult:
    """Download one day (cache first) and write its partition; raises on failure, leaving the lake unchanged.

    A day whose verified file is in the cache needs no request at all; otherwise `check_availability` first
    checks it against /v1/exchanges (a day Tardis does not have fails without a dataset request). With
    `cache_retention="delete"` the day's csv.gz is deleted once its partition is stored (the cache is scratch).
    """
    check_retention(cache_retention)
    stop = stop or threading.Event()
    if stop.is_set():
        raise Cancelled(f"{request.key or request.day}: cancelled before it started")
    lake = as_lake(lake)
    dest = partition_relpath(raw_dataset(request.data_type), request.exchange, request.symbol, request.day)
    slot = conversion_slot or threading.Semaphore()
    # Errors name the file under its cache name, not the hidden temp a fresh download is verified under.
    _, final = client.resolve(request.exchange, request.data_type, request.symbol, request.day)
    writes: list[PartitionWrite] = []

    def convert(path: Path) -> GzipInfo:
        # The conversion is the download's verification: its decode checks CRC and length, and a corrupt file
        # raises GzipIntegrityError before anything is published, so the client downloads it again.
        with slot:
            if stop.is_set():
                raise Cancelled(f"{request.key or request.day}: cancelled after its download")
            write = store_partition(path, lake, dest, request.data_type, options, shown_as=final)
        writes.append(write)
        assert write.gzip is not None  # a conversion of a file always reports its decode
        return write.gzip

    try:
        download = client.download(
            request.exchange,
            request.data_type,
            request.symbol,
            request.day,
            check_availability=check_availability,
            stop=stop,
            verify=convert,
        )
    except NotOfferedError as exc:
        return DayResult(
            request, write=store_partition(None, lake, dest, request.data_type, options), not_offered=str(exc)
        )
    write = writes[-1]
    if cache_retention == DELETE:
        download.path.unlink(missing_ok=True)
    return DayResult(request, download, write)


def ingest_days(
    client: TardisClient,
    lake: Lake | Path,
    requests: Sequence[DayRequest],
    options: ConversionOptions | None = None,
    *,
    max_workers: int = 8,
    max_conversions: int = 2,
    check_availability: bool = True,
    cache_retention: str = KEEP,
    on_result: Callable[[DayResult], None] | None = None,
) -> list[DayResult]:
    """Produce many partitions concurrently (downloads paced by the client's shared limiter).

    Cached days need no network; a day outside Tardis's availability fails without a dataset request; every
    day is attempted even if some fail, and each result says what happened. Results come back in request
    order; `on_result` is called in the caller's thread as each one finishes.
    """
    lake = as_lake(lake)
    check_retention(cache_retention)
    results: list[DayResult | None] = [None] * len(requests)
    todo = list(range(len(requests)))
    if not todo:
        return []
    slot, stop = threading.Semaphore(max(1, max_conversions)), threading.Event()
    pool = ThreadPoolExecutor(max_workers=max(1, min(max_workers, len(todo))))
    try:
        futures = {
            pool.submit(
                ingest_day,
                client,
                lake,
                requests[i],
                options,
                conversion_slot=slot,
                stop=stop,
                check_availability=check_availability,
                cache_retention=cache_retention,
            ): i
            for i in todo
        }
        for future in as_completed_waking(futures):
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
