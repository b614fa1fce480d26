"""csv.gz -> Parquet conversion: real Tardis samples typed and valued right, every emulator data type, errors."""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import os
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from tick_assets.durable import owned_temp
from tick_assets.emulator.catalog import DERIVATIVE_TYPES
from tick_assets.emulator.synth import write_dataset
from tick_assets.lake import CsvParseError, SchemaMismatchError, write_partition
from tick_assets.lake.schema import lake_columns, lake_select, stored_columns
from tick_assets.tardis.datatypes import SCHEMAS, header_line

_PY_TYPES = {"BIGINT": int, "DOUBLE": float, "VARCHAR": str, "BOOLEAN": lambda v: v == "true"}


def _rows(path: Path, data_type: str) -> list[dict]:
    """The file's rows as a reader sees them (Tardis column names, `*_utc` derived)."""
    with duckdb.connect() as con:
        con.execute("SET TimeZone = 'UTC'")
        rel = con.sql(f"SELECT {lake_select(data_type)} FROM read_parquet('{path}')")
        return [dict(zip(rel.columns, row, strict=True)) for row in rel.fetchall()]


def _types(path: Path, data_type: str | None = None) -> list[tuple[str, str]]:
    """Column names and types of the file itself, or as a reader of `data_type` sees it."""
    select = "*" if data_type is None else lake_select(data_type)
    with duckdb.connect() as con:
        return [
            (r[0], r[1]) for r in con.sql(f"DESCRIBE SELECT {select} FROM read_parquet('{path}')").fetchall()
        ]


def _timestamp_types(cols) -> list[tuple[str, str]]:
    return [(c, t.replace("TIMESTAMPTZ", "TIMESTAMP WITH TIME ZONE")) for c, t in cols]


def _gz(path: Path, text: str) -> Path:
    with gzip.open(path, "wt", newline="") as f:
        f.write(text)
    return path


@pytest.mark.parametrize(
    "pattern, data_type",
    [
        ("binance-futures_book_snapshot_25_*", "book_snapshot_25"),
        ("bitmex_trades_*", "trades"),
        ("huobi-dm-swap_quotes_*", "quotes"),
        ("binance-futures_trades_*", "trades"),
    ],
)
def test_real_samples_convert_with_the_right_types_and_values(
    real_fixtures_dir, tmp_path, pattern, data_type
) -> None:
    (source,) = real_fixtures_dir.glob(pattern + ".csv.gz")
    write = write_partition(source, tmp_path / "data.parquet", data_type)
    with gzip.open(source, "rt", newline="") as f:
        expected = list(csv.DictReader(f))
    got = _rows(write.path, data_type)
    assert write.rows == len(got) == len(expected) > 0
    assert _types(write.path) == list(stored_columns(data_type))
    assert _types(write.path, data_type) == _timestamp_types(lake_columns(data_type))
    kinds = dict(SCHEMAS[data_type])
    for want, row in zip(expected, got, strict=True):
        for column, text in want.items():
            value = None if text == "" else _PY_TYPES[kinds[column]](text)
            assert row[column] == value, (column, text)
        assert row["timestamp_utc"] == dt.datetime.fromtimestamp(
            int(want["timestamp"]) / 1e6, dt.timezone.utc
        )
        assert int(row["local_timestamp_utc"].timestamp() * 1e6 + 0.5) == int(want["local_timestamp"])
    assert write.first_timestamp == min(int(r["timestamp"]) for r in expected)
    assert write.last_timestamp == max(int(r["timestamp"]) for r in expected)


def test_real_trade_sample_keeps_uuid_ids_and_sides(real_fixtures_dir, tmp_path) -> None:
    (source,) = real_fixtures_dir.glob("bitmex_trades_*.csv.gz")
    first = _rows(write_partition(source, tmp_path / "data.parquet", "trades").path, "trades")[0]
    assert first["id"] == "ccc3c1fa-212c-e8b0-1706-9b9c4f3d5ecf"
    assert (first["side"], first["price"], first["amount"]) == ("sell", 8531.5, 2152.0)


@pytest.mark.parametrize("data_type", sorted(DERIVATIVE_TYPES))
def test_every_emulated_data_type_converts_with_its_schema(tmp_path, data_type) -> None:
    source = tmp_path / "in.csv.gz"
    rows = write_dataset("deribit", "BTC-PERPETUAL", data_type, dt.date(2024, 1, 2), 400, source)
    write = write_partition(source, tmp_path / "data.parquet", data_type)
    assert write.rows == rows > 0
    assert _types(write.path) == list(stored_columns(data_type))
    assert _types(write.path, data_type) == _timestamp_types(lake_columns(data_type))
    if data_type == "incremental_book_L2":
        flags = duckdb.sql(f"SELECT DISTINCT is_snapshot FROM '{write.path}' ORDER BY 1").fetchall()
        assert flags == [(False,), (True,)]


def test_empty_gzip_and_header_only_files_become_empty_partitions(tmp_path) -> None:
    for name, text in (("empty", ""), ("header", header_line("trades") + "\n")):
        write = write_partition(
            _gz(tmp_path / f"{name}.csv.gz", text), tmp_path / name / "data.parquet", "trades"
        )
        assert write.empty and write.rows == 0 and write.first_timestamp is None and write.preview == ()
        assert _types(write.path) == list(stored_columns("trades"))


def test_schema_drift_fails_and_keeps_the_stored_partition(tmp_path) -> None:
    good = _gz(tmp_path / "good.csv.gz", header_line("trades") + "\nderibit,BTC-PERPETUAL,1,2,a,buy,10,1\n")
    dest = tmp_path / "p" / "data.parquet"
    write_partition(good, dest, "trades")
    before = dest.read_bytes()
    drifted = _gz(
        tmp_path / "drift.csv.gz", header_line("trades") + ",fee\nderibit,BTC-PERPETUAL,1,2,a,buy,10,1,0\n"
    )
    with pytest.raises(SchemaMismatchError, match=r"unexpected \['fee'\].*datatypes.py"):
        write_partition(drifted, dest, "trades")
    assert dest.read_bytes() == before
    assert sorted(p.name for p in dest.parent.iterdir()) == ["data.parquet"]


def test_unparseable_value_fails_with_the_file_name_and_leaves_no_temp(tmp_path) -> None:
    bad = _gz(tmp_path / "bad.csv.gz", header_line("trades") + "\nderibit,BTC-PERPETUAL,1,2,a,buy,ten,1\n")
    dest = tmp_path / "p" / "data.parquet"
    with pytest.raises(CsvParseError, match="bad.csv.gz"):
        write_partition(bad, dest, "trades")
    assert not dest.exists() and list(dest.parent.iterdir()) == []


def test_temp_files_of_dead_writers_are_removed_and_live_ones_kept(tmp_path) -> None:
    dest = tmp_path / "p" / "data.parquet"
    dest.parent.mkdir()
    gone = subprocess.Popen([sys.executable, "-c", "pass"])  # a process that no longer runs
    gone.wait()
    host = owned_temp(dest, ".tmp").name.split(".")[-4]
    of_dead = dest.parent / f".data.parquet.{host}.{gone.pid}.aa.tmp"
    of_live = dest.parent / f".data.parquet.{host}.{os.getppid()}.bb.tmp"  # the test runner's parent
    of_other_host = dest.parent / ".data.parquet.elsewhere.1.cc.tmp"
    old_other_host = dest.parent / ".data.parquet.elsewhere.2.dd.tmp"
    for temp in (of_dead, of_live, of_other_host, old_other_host):
        temp.write_bytes(b"x")
    two_days_ago = time.time() - 2 * 86400
    os.utime(old_other_host, (two_days_ago, two_days_ago))
    write_partition(_gz(tmp_path / "e.csv.gz", ""), dest, "trades")
    # A live writer's temp (even another host's, which cannot be checked) stays until it is a day old.
    assert sorted(p.name for p in dest.parent.iterdir()) == sorted(
        ["data.parquet", of_live.name, of_other_host.name]
    )


def test_parallel_conversion_keeps_the_file_row_order(tmp_path) -> None:
    # Two DuckDB threads parse and write in parallel; the depth features rely on the file's receive-time order.
    source = tmp_path / "book.csv.gz"
    rows = write_dataset("deribit", "BTC-PERPETUAL", "book_snapshot_25", dt.date(2024, 1, 2), 150_000, source)
    write = write_partition(source, tmp_path / "data.parquet", "book_snapshot_25")
    assert write.rows == rows
    with gzip.open(source, "rt", newline="") as f:
        reader = csv.reader(f)
        col = next(reader).index("local_timestamp")
        expected = [int(r[col]) for r in reader]
    got = duckdb.sql(f"SELECT local_timestamp FROM read_parquet('{write.path}')").fetchnumpy()[
        "local_timestamp"
    ]
    assert got.tolist() == expected


def test_a_flipped_bit_duckdb_reads_silently_is_refused_by_the_conversions_crc_check(tmp_path) -> None:
    from tick_assets.tardis.integrity import GzipIntegrityError

    rows = "".join(
        f"deribit,BTC-PERPETUAL,{1704153600000000 + i},{1704153600001000 + i},{i},buy,4211{i % 10}.5,1.0\n"
        for i in range(1000)
    )
    body = (header_line("trades") + "\n" + rows).encode()
    stored = bytearray(gzip.compress(body, compresslevel=0))  # stored blocks: the CSV's bytes as they are
    at = stored.index(b"42115.5")
    stored[at + 4] ^= 0x01  # '5' -> '4': still a price, another one; the gzip's CRC32 no longer matches
    bad = tmp_path / "day.csv.gz"
    bad.write_bytes(bytes(stored))
    prices = duckdb.sql(f"SELECT sum(price) FROM read_csv('{bad}', header = true)").fetchall()[0][0]
    assert prices == sum(42110.5 + i % 10 for i in range(1000)) - 1  # DuckDB read another value, silently
    dest = tmp_path / "lake" / "data.parquet"
    with pytest.raises(GzipIntegrityError, match="CRC"):
        write_partition(bad, dest, "trades")
    assert not dest.exists() and not [p for p in dest.parent.iterdir() if p.is_file()]
