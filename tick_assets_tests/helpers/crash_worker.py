"""Subprocess for crash tests: start one write (download, Parquet conversion, feature partition) and get killed.

argv[1] picks the write; the parent test waits until the write is in progress and sends SIGKILL.
"""

from __future__ import annotations

import datetime as dt
import sys
import time
from pathlib import Path

from tick_assets.features.grid import DaySlice
from tick_assets.lake.convert import ConversionOptions, write_partition
from tick_assets.lake.datasets import connect, store_query
from tick_assets.lake.store import LocalLake
from tick_assets.tardis import TardisClient


def download(cache_dir: str, datasets_url: str, api_url: str) -> None:
    """Download one trades day from an emulator that stalls mid-body (the parent kills us meanwhile)."""
    client = TardisClient(
        cache_dir, api_key="crash-key", datasets_url=datasets_url, api_url=api_url, read_timeout=600
    )
    client.download("deribit", "trades", "BTC-PERPETUAL", dt.date(2024, 1, 2))


def convert(source: str, dest: str, temp_directory: str) -> None:
    """Convert a large book day with its spill folder under `temp_directory` (the parent kills us mid-write)."""
    options = ConversionOptions(temp_directory=Path(temp_directory))
    write_partition(Path(source), Path(dest), "book_snapshot_25", options)


def slice_query(day: DaySlice, rows: int, factor: float, stall_at: int | None = None) -> str:
    """`rows` rows of one day in a feature-like table; `value` = i * factor tells two versions apart."""
    where = "" if stall_at is None else " WHERE stall(i) >= 0"
    return (
        f"SELECT '{day.instrument}' AS instrument, make_timestamp({day.start_us} + i * 1000)::TIMESTAMPTZ AS ts, "
        f"i * {factor} AS value FROM range({rows}) t(i){where}"
    )


def feature(lake_root: str, marker: str, day: str, rows: str, factor: str) -> None:
    """Store one feature partition; the query stalls after half its rows, mid-write (the parent kills us)."""
    half = int(rows) // 2
    lake = LocalLake(lake_root)

    def stall(i: int) -> int:
        if i == half:
            Path(marker).write_text("writing the partition")
            time.sleep(600)
        return i

    slice_ = DaySlice("deribit", "BTC-PERPETUAL", dt.date.fromisoformat(day))
    with connect(lake) as con:
        con.create_function("stall", stall, ["BIGINT"], "BIGINT", side_effects=True)
        store_query(
            con, lake, slice_.partition("features/crash"), slice_query(slice_, int(rows), float(factor), half)
        )


if __name__ == "__main__":
    {"download": download, "convert": convert, "feature": feature}[sys.argv[1]](*sys.argv[2:])
