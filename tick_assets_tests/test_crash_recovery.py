"""kill -9 in the middle of each kind of write, then re-run: no partial file at a final path, no duplicate or
lost rows, and the next writer removes what the killed one left behind."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import duckdb
import pytest

from tick_assets.emulator.faults import FaultConfig
from tick_assets.emulator.synth import write_dataset
from tick_assets.features.grid import DaySlice
from tick_assets.lake.convert import ConversionOptions, write_partition
from tick_assets.lake.datasets import connect, store_query
from tick_assets.lake.store import LocalLake
from tick_assets.stack.soak import fingerprint_file
from tick_assets.tardis.integrity import verify_gzip
from tick_assets_tests.conftest import make_client
from tick_assets_tests.helpers.crash_worker import slice_query

REPO = Path(__file__).resolve().parents[1]
DAY = dt.date(2024, 1, 2)


def _one(sql: str) -> tuple:
    """The one row of `sql`, on a connection of its own (never DuckDB's shared default one)."""
    with duckdb.connect() as con:
        return con.execute(sql).fetchall()[0]


def _start_worker(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "tick_assets_tests.helpers.crash_worker", *args],
        cwd=REPO,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _kill_when(proc: subprocess.Popen, ready: Callable[[], bool], timeout: float = 60.0) -> None:
    """SIGKILL the worker as soon as `ready()` holds (it must still be running then)."""
    deadline = time.monotonic() + timeout
    try:
        while not ready():
            if proc.poll() is not None:
                pytest.fail(f"worker exited early ({proc.returncode}): {proc.stderr.read().decode()[-2000:]}")
            if time.monotonic() > deadline:
                pytest.fail("the worker never reached the point where it is killed")
            time.sleep(0.005)
        assert proc.poll() is None, "the write finished before it could be killed"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL


def _growing(folder: Path, pattern: str, min_bytes: int = 1) -> Callable[[], bool]:
    def ready() -> bool:
        try:
            return any(p.stat().st_size >= min_bytes for p in folder.rglob(pattern))
        except FileNotFoundError:  # renamed between listing and stat
            return False

    return ready


def test_kill_mid_download_leaves_no_cache_file_and_the_next_download_cleans_up(
    start_emulator, tmp_path
) -> None:
    stalling = start_emulator(FaultConfig(stall=1.0, stall_seconds=120))
    cache = tmp_path / "cache"
    worker = _start_worker("download", str(cache), stalling.datasets_url, stalling.api_url)
    # The temp is open and the body half sent (the client writes 1 MB chunks, so it may still be empty).
    _kill_when(worker, _growing(cache, "*.unconfirmed", min_bytes=0))

    # Killed mid-body: only the hidden temp exists, never the cache file.
    assert [p.name for p in cache.rglob("*.csv.gz")] == []
    assert len(list(cache.rglob("*.unconfirmed"))) == 1

    clean = start_emulator()
    result = make_client(clean, cache).download("deribit", "trades", "BTC-PERPETUAL", DAY)
    assert not result.from_cache and verify_gzip(result.path).uncompressed_bytes > 0
    assert list(cache.rglob("*.unconfirmed")) == []  # the dead worker's temp is gone
    reference = make_client(clean, tmp_path / "ref").download("deribit", "trades", "BTC-PERPETUAL", DAY)
    assert result.path.read_bytes() == reference.path.read_bytes()


def test_kill_mid_parquet_write_keeps_the_previous_partition_and_the_rerun_cleans_up(tmp_path) -> None:
    small, big = tmp_path / "small.csv.gz", tmp_path / "big.csv.gz"
    write_dataset("deribit", "BTC-PERPETUAL", "book_snapshot_25", DAY, 300, small)
    big_rows = write_dataset("deribit", "BTC-PERPETUAL", "book_snapshot_25", DAY, 150_000, big)
    dest, spill = tmp_path / "lake" / "date=2024-01-02" / "data.parquet", tmp_path / "lake" / "_tmp"
    previous = write_partition(small, dest, "book_snapshot_25")
    before = fingerprint_file(dest)

    worker = _start_worker("convert", str(big), str(dest), str(spill))
    _kill_when(worker, _growing(dest.parent, ".data.parquet.*.tmp"))

    # The final path still holds the previous partition, whole and readable; the half-written file is hidden.
    assert fingerprint_file(dest) == before and before[0] == previous.rows
    assert len(list(dest.parent.glob(".data.parquet.*.tmp"))) == 1
    assert len(list(spill.glob(".convert.*.spill"))) == 1

    rerun = write_partition(big, dest, "book_snapshot_25", ConversionOptions(temp_directory=spill))
    assert rerun.rows == big_rows and fingerprint_file(dest)[0] == big_rows
    # No temp left: the partition and its per-second file (tick_assets/lake/book_layout.py) only.
    assert sorted(p.name for p in dest.parent.iterdir()) == ["data.parquet", "data.seconds"]
    assert list(spill.iterdir()) == []


def test_kill_mid_feature_write_keeps_the_old_partition_and_the_rerun_has_no_duplicates(tmp_path) -> None:
    lake, marker, rows = LocalLake(tmp_path / "lake"), tmp_path / "inside", 400_000
    day = DaySlice("deribit", "BTC-PERPETUAL", DAY)
    other = DaySlice("deribit", "BTC-PERPETUAL", DAY + dt.timedelta(days=1))
    with connect(lake) as con:
        for d, n in ((day, rows), (other, 1000)):
            store_query(con, lake, d.partition("features/crash"), slice_query(d, n, 1.0))
    files = f"read_parquet('{tmp_path}/lake/features/crash/*/*/*/*.parquet')"
    table_sql = f"SELECT count(*), count(DISTINCT (instrument, ts)), sum(value) FROM {files}"
    folder = tmp_path / "lake" / day.partition("features/crash").relpath.rsplit("/", 1)[0]

    # The new version (value x 2) stalls after half its rows, while DuckDB writes the partition's temp file.
    worker = _start_worker("feature", str(tmp_path / "lake"), str(marker), DAY.isoformat(), str(rows), "2.0")
    _kill_when(worker, marker.exists)

    old_sum = rows * (rows - 1) / 2 + 1000 * 999 / 2
    assert _one(table_sql) == (
        rows + 1000,
        rows + 1000,
        old_sum,
    )  # the old partition, whole
    assert len(list(folder.glob(".data.parquet.*.tmp"))) == 1  # the dead writer's hidden temp
    with connect(lake) as con:
        store_query(con, lake, day.partition("features/crash"), slice_query(day, rows, 2.0))
    new_sum = rows * (rows - 1) + 1000 * 999 / 2
    assert _one(table_sql) == (rows + 1000, rows + 1000, new_sum)
    assert sorted(p.name for p in folder.iterdir()) == ["data.parquet"]  # the next writer removed the temp
