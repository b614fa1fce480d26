"""The lake as the store: a full disk or a failed publish loses nothing, lakes of earlier layouts are migrated, the catalog
is swapped in under readers that hold it open, and the download cache is scratch."""

from __future__ import annotations

import datetime as dt
import errno
import os
import subprocess
import sys
import uuid
from pathlib import Path

import duckdb
import pytest

from tick_assets.emulator.synth import write_dataset
from tick_assets.lake import LakeWriteError, LocalLake, Partition, connect, store_partition, store_query
from tick_assets.lake.book_layout import seconds_relpath, valid_seconds
from tick_assets.lake.errors import LakeError
from tick_assets.lake.ingest import DELETE, KEEP, DayRequest, ingest_days
from tick_assets.lake.migrate import LAYOUT_MARKER, check_layout, migrate_lake
from tick_assets.lake.parquet import legacy_options
from tick_assets.lake.schema import LEGACY_LAYOUT, lake_select, store_select, stored_columns
from tick_assets.lake.warehouse import open_catalog, publish_catalog
from tick_assets.stack.soak import fingerprint_file

DAY = dt.date(2024, 1, 2)
BOOK = Partition("raw/book_snapshot_25", "deribit", "BTC-PERPETUAL", DAY)


@pytest.fixture
def small_disk(tmp_path: Path):
    """A 1 MB tmpfs (root only); skipped where mounting is not allowed."""
    mount = tmp_path / f"disk-{uuid.uuid4().hex[:6]}"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True)
    if done.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _only_the_file(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_a_full_disk_fails_the_partition_and_keeps_the_stored_one(small_disk, tmp_path) -> None:
    small, big = tmp_path / "small.csv.gz", tmp_path / "big.csv.gz"
    write_dataset("deribit", "BTC-PERPETUAL", "book_snapshot_25", DAY, 300, small)
    write_dataset("deribit", "BTC-PERPETUAL", "book_snapshot_25", DAY, 100_000, big)  # ~1.4 MB of Parquet
    lake = LocalLake(small_disk / "lake")
    stored = store_partition(small, lake, BOOK.relpath, "book_snapshot_25")
    before = fingerprint_file(Path(stored.path))
    with pytest.raises(LakeWriteError, match="no space left on the device.*unchanged.*free space"):
        store_partition(big, lake, BOOK.relpath, "book_snapshot_25")
    assert fingerprint_file(Path(stored.path)) == before and before[0] == stored.rows
    # No temp left behind: the partition and its per-second file (tick_assets/lake/book_layout.py) only.
    assert _only_the_file(Path(stored.path).parent) == ["data.parquet", "data.seconds"]
    # A feature partition hitting the full disk the same way.
    feature = Partition("features/depth", "deribit", "BTC-PERPETUAL", DAY)
    with connect(lake) as con, pytest.raises(LakeWriteError, match="no space left"):
        store_query(con, lake, feature, "SELECT random() AS x FROM range(2000000)")
    assert not list((small_disk / "lake" / "features").rglob("*.tmp"))


def test_a_failed_publish_keeps_the_stored_partition(tmp_path, monkeypatch) -> None:
    src = tmp_path / "day.csv.gz"
    write_dataset("deribit", "BTC-PERPETUAL", "book_snapshot_25", DAY, 300, src)
    lake = LocalLake(tmp_path / "lake")
    stored = store_partition(src, lake, BOOK.relpath, "book_snapshot_25")
    before = fingerprint_file(Path(stored.path))

    def no_space(*_args, **_kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("tick_assets.lake.store.os.replace", no_space)
    with pytest.raises(LakeWriteError, match="no space left"):
        store_partition(src, lake, BOOK.relpath, "book_snapshot_25")
    assert fingerprint_file(Path(stored.path)) == before
    assert _only_the_file(Path(stored.path).parent) == ["data.parquet", "data.seconds"]


def _columns(path: Path) -> list[str]:
    with duckdb.connect() as con:
        return [
            r[0]
            for r in con.execute(
                f"DESCRIBE SELECT * FROM read_parquet('{path}', hive_partitioning = false)"
            ).fetchall()
        ]


def _read(path: Path, data_type: str, layout: str | None = None) -> list[tuple]:
    """A raw file's rows as readers see them (lake_select of the file's layout)."""
    with duckdb.connect() as con:
        select = lake_select(data_type, layout) if layout else lake_select(data_type)
        return con.execute(f"SELECT {select} FROM read_parquet('{path}')").fetchall()


def test_a_lake_v1_lake_is_refused_with_what_to_do_then_moved_by_rename_and_rewritten(tmp_path) -> None:
    src = tmp_path / "day.csv.gz"
    write_dataset("deribit", "BTC-PERPETUAL", "trades", DAY, 300, src)
    root = tmp_path / "lake"
    old = root / "trades" / "exchange_id=deribit" / "symbol_id=BTC-PERPETUAL" / f"date={DAY}" / "data.parquet"
    relpath = str(old.relative_to(root)).replace("trades/", "raw/trades/", 1)
    store_partition(src, LocalLake(root), relpath, "trades", legacy_options())  # as lake-v1 wrote it
    (root / "raw" / "trades").rename(root / "trades")
    (root / "raw").rmdir()
    before, inode = _read(old, "trades", LEGACY_LAYOUT), old.parent.stat().st_ino
    with pytest.raises(LakeError, match="lake-v1 layout.*tick-assets lake migrate"):
        check_layout(root)
    done = migrate_lake(root)
    new = root / relpath
    assert [(a.name, b) for a, b in done.moved] == [(f"date={DAY}", new.parent)] and done.rewritten == [
        relpath
    ]
    assert new.parent.stat().st_ino == inode and not (root / "trades").exists()  # moved by a rename
    assert _columns(new) == [c for c, _ in stored_columns("trades")] and _read(new, "trades") == before
    check_layout(root)
    assert (root / LAYOUT_MARKER).exists()


def test_lake_v2_raw_files_are_refused_then_rewritten_value_for_value_once(tmp_path) -> None:
    lake = LocalLake(tmp_path / "lake")
    book_src, trades_src = tmp_path / "book.csv.gz", tmp_path / "trades.csv.gz"
    write_dataset("deribit", "BTC-PERPETUAL", "book_snapshot_25", DAY, 2_000, book_src)
    write_dataset("deribit", "BTC-PERPETUAL", "trades", DAY, 2_000, trades_src)
    trades = Partition("raw/trades", "deribit", "BTC-PERPETUAL", DAY)
    store_partition(book_src, lake, BOOK.relpath, "book_snapshot_25", legacy_options())  # lake-v2 columns
    store_partition(trades_src, lake, trades.relpath, "trades")  # already lake-v3
    book_file, trades_file = lake.root / BOOK.relpath, lake.root / trades.relpath
    before, trades_bytes = _read(book_file, "book_snapshot_25", LEGACY_LAYOUT), trades_file.read_bytes()
    with pytest.raises(LakeError, match="lake-v2 columns.*book_snapshot_25.*tick-assets lake migrate"):
        check_layout(lake)
    assert not (lake.root / LAYOUT_MARKER).exists()
    done = migrate_lake(lake)
    assert done.rewritten == [BOOK.relpath] and done.moved == []
    assert _columns(book_file) == [c for c, _ in stored_columns("book_snapshot_25")]
    assert len(before) > 1_000 and _read(book_file, "book_snapshot_25") == before  # same values, same order
    assert trades_file.read_bytes() == trades_bytes  # a current file is left alone
    with connect(lake) as con:  # the rewritten book day gets its per-second file, as a conversion writes it
        assert valid_seconds(con, lake, BOOK.relpath) == lake.uri(seconds_relpath(BOOK.relpath))
    assert not (trades_file.parent / "data.seconds").exists()
    check_layout(lake)
    assert migrate_lake(lake).rewritten == []


def test_a_rewrite_that_does_not_read_back_the_same_keeps_the_old_file(tmp_path, monkeypatch) -> None:
    lake = LocalLake(tmp_path / "lake")
    src = tmp_path / "book.csv.gz"
    write_dataset("deribit", "BTC-PERPETUAL", "book_snapshot_25", DAY, 500, src)
    store_partition(src, lake, BOOK.relpath, "book_snapshot_25", legacy_options())
    before = (lake.root / BOOK.relpath).read_bytes()
    # a migration bug: level 0 of the asks' amounts taken from the bids (same columns, other values)
    wrong = store_select("book_snapshot_25").replace('"asks[0].amount"', '"bids[0].amount"', 1)
    monkeypatch.setattr("tick_assets.lake.migrate.store_select", lambda _t: wrong)
    with pytest.raises(LakeError, match="does not read back as the same rows; the old file is kept"):
        migrate_lake(lake)
    assert (lake.root / BOOK.relpath).read_bytes() == before and not (lake.root / LAYOUT_MARKER).exists()


def test_a_current_lake_that_cannot_take_the_marker_still_passes_its_check(tmp_path, monkeypatch) -> None:
    def read_only(_lake):
        raise LakeWriteError("read-only")

    monkeypatch.setattr("tick_assets.lake.migrate._mark", read_only)
    check_layout(LocalLake(tmp_path / "lake"))  # logs a warning, does not fail the step


def test_a_fresh_lake_is_marked_current_at_its_first_check(tmp_path) -> None:
    lake = LocalLake(tmp_path / "lake")
    check_layout(lake)
    assert (lake.root / LAYOUT_MARKER).read_text().strip() == '{"layout": "lake-v3"}'


def test_the_catalog_is_swapped_in_under_a_reader_that_holds_it_open(tmp_path) -> None:
    src = tmp_path / "day.csv.gz"
    write_dataset("deribit", "BTC-PERPETUAL", "trades", DAY, 300, src)
    lake = LocalLake(tmp_path / "lake")
    trades = Partition("raw/trades", "deribit", "BTC-PERPETUAL", DAY)
    rows = store_partition(src, lake, trades.relpath, "trades").rows
    catalog = tmp_path / "warehouse.duckdb"
    assert publish_catalog(catalog, lake, ["raw/trades"]) == ["raw.trades"]
    with open_catalog(catalog, lake) as notebook:  # a notebook holds the catalog read-only meanwhile
        assert notebook.execute("SELECT count(*) FROM raw.trades").fetchone() == (rows,)
        with connect(lake) as con:
            store_query(con, lake, Partition("features/x", "deribit", "BTC-PERPETUAL", DAY), "SELECT 1 AS a")
        assert publish_catalog(catalog, lake, ["raw/trades", "features/x"]) == ["raw.trades", "features.x"]
        assert notebook.execute("SELECT count(*) FROM raw.trades").fetchone() == (rows,)  # still works
    with open_catalog(catalog, lake) as fresh:
        assert fresh.execute("SELECT a, date FROM features.x").fetchall() == [(1, DAY)]
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith((".warehouse", "warehouse"))) == [
        "warehouse.duckdb"
    ]


@pytest.mark.parametrize("retention", [KEEP, DELETE])
def test_the_download_cache_keeps_or_drops_a_day_once_its_partition_is_stored(
    client, tmp_path, retention
) -> None:
    requests = [
        DayRequest("trades", "deribit", "BTC-PERPETUAL", DAY + dt.timedelta(days=i)) for i in range(2)
    ]
    results = ingest_days(client, tmp_path / "lake", requests, cache_retention=retention)
    assert all(r.ok for r in results)
    cached = [r.download.path.exists() for r in results]
    assert cached == ([True, True] if retention == KEEP else [False, False])
    assert all(os.path.exists(r.write.path) for r in results)
    with pytest.raises(ValueError, match="'keep' or 'delete'"):
        ingest_days(client, tmp_path / "lake", requests, cache_retention="sometimes")
    with duckdb.connect() as con:
        assert con.execute(f"SELECT count(*) FROM read_parquet('{results[0].write.path}')").fetchone()[0] > 0


def test_the_cli_migrates_the_old_layout_and_rebuilds_the_catalog(tmp_path, monkeypatch, capsys) -> None:
    from tick_assets.cli import main

    src = tmp_path / "day.csv.gz"
    write_dataset("deribit", "BTC-PERPETUAL", "trades", DAY, 300, src)
    data = tmp_path / "data"
    rows = store_partition(
        src, LocalLake(data / "lake"), Partition("raw/trades", "deribit", "X", DAY).relpath, "trades"
    ).rows
    (data / "lake" / "raw" / "trades").rename(data / "lake" / "trades")  # as lake-v1 laid it out
    monkeypatch.setenv("TICK_ASSETS_DATA_DIR", str(data))
    monkeypatch.delenv("TICK_ASSETS_LAKE", raising=False)
    assert main(["lake", "migrate"]) == 0
    assert "1 partitions moved under raw/, 0 raw files rewritten" in capsys.readouterr().out
    assert main(["warehouse"]) == 0
    assert "raw.trades" in capsys.readouterr().out
    with open_catalog(data / "warehouse.duckdb", data / "lake") as con:
        assert con.execute("SELECT count(*), any_value(symbol_id) FROM raw.trades").fetchall() == [
            (rows, "X")
        ]


def test_a_stray_wal_and_an_old_table_warehouse_never_break_or_lose_anything(tmp_path) -> None:
    src = tmp_path / "day.csv.gz"
    write_dataset("deribit", "BTC-PERPETUAL", "trades", DAY, 300, src)
    lake = LocalLake(tmp_path / "lake")
    store_partition(src, lake, Partition("raw/trades", "deribit", "BTC-PERPETUAL", DAY).relpath, "trades")
    catalog = tmp_path / "warehouse.duckdb"
    with duckdb.connect(str(catalog)) as old:  # the warehouse of the previous code version: real tables
        old.execute("CREATE SCHEMA features; CREATE TABLE features.mine AS SELECT 42 AS answer")
    publish_catalog(catalog, lake, ["raw/trades"])
    with duckdb.connect(str(tmp_path / "warehouse.duckdb.pre-lake-v2"), read_only=True) as kept:
        assert kept.execute("SELECT answer FROM features.mine").fetchall() == [(42,)]  # moved aside, not lost
    # Another process opened the catalog read-write, wrote to it and died: its WAL must not poison the next one.
    crash = "import duckdb, os, sys; c = duckdb.connect(sys.argv[1]); c.execute('CREATE TABLE t AS SELECT 1 AS x'); os._exit(0)"
    subprocess.run([sys.executable, "-c", crash, str(catalog)], check=True)
    assert Path(f"{catalog}.wal").exists()
    held = open_catalog(catalog, lake)  # and a reader holds the old catalog meanwhile
    publish_catalog(catalog, lake, ["raw/trades", "raw/quotes"])
    with open_catalog(catalog, lake) as fresh:  # sees the new catalog although `held` is still open
        names = {
            r[0] for r in fresh.execute("SELECT view_name FROM duckdb_views() WHERE NOT internal").fetchall()
        }
    assert {"trades", "quotes"} <= names
    assert held.execute("SELECT count(*) FROM raw.trades").fetchall()[0][0] > 0
    held.close()
    assert not Path(f"{catalog}.wal").exists()
