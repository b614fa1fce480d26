"""raw.<data_type> views over the lake: typed even when empty, span days, prune by date, idempotent."""

from __future__ import annotations

import datetime as dt

import duckdb

from tick_assets.emulator.synth import write_dataset
from tick_assets.lake import describe_raw_views, ensure_raw_views, partition_file, write_partition
from tick_assets.lake.schema import parquet_columns


def _lake(tmp_path, days, symbols=("BTC-PERPETUAL", "ETH-PERPETUAL")) -> dict[tuple[str, dt.date], int]:
    rows = {}
    for symbol in symbols:
        for day in days:
            src = tmp_path / f"{symbol}-{day}.csv.gz"
            rows[(symbol, day)] = write_dataset("deribit", symbol, "trades", day, 300, src)
            write_partition(
                src, partition_file(tmp_path / "lake", "trades", "deribit", symbol, day), "trades"
            )
    return rows


def test_views_exist_and_are_typed_before_any_data(tmp_path) -> None:
    with duckdb.connect(str(tmp_path / "warehouse.duckdb")) as con:
        assert ensure_raw_views(con, tmp_path / "lake", ["trades", "book_snapshot_25"]) == [
            "raw.trades",
            "raw.book_snapshot_25",
        ]
        rel = con.sql("SELECT * FROM raw.trades WHERE date BETWEEN '2024-01-01' AND '2024-01-31'")
        assert rel.fetchall() == []
        assert rel.columns == [c for c, _ in parquet_columns("trades")] + ["date"]
        (info,) = describe_raw_views(con, tmp_path / "lake", ["trades"])
        assert (info.files, info.rows, info.first_date) == (0, 0, None)


def test_views_span_days_and_symbols_and_filter_by_date(tmp_path) -> None:
    days = [dt.date(2024, 1, 2) + dt.timedelta(days=i) for i in range(4)]
    rows = _lake(tmp_path, days)
    # An in-progress write of another run must stay invisible to readers.
    (
        partition_file(tmp_path / "lake", "trades", "deribit", "BTC-PERPETUAL", days[0]).parent
        / ".data.parquet.x.tmp"
    ).write_bytes(b"partial")
    with duckdb.connect(str(tmp_path / "warehouse.duckdb")) as con:
        ensure_raw_views(con, tmp_path / "lake", ["trades"])
        ensure_raw_views(con, tmp_path / "lake", ["trades"])  # idempotent
        got = con.execute(
            "SELECT symbol, date, count(*) FROM raw.trades WHERE date BETWEEN ? AND ? GROUP BY ALL ORDER BY ALL",
            [days[1], days[2]],
        ).fetchall()
        assert got == [(s, d, rows[(s, d)]) for s in ("BTC-PERPETUAL", "ETH-PERPETUAL") for d in days[1:3]]
        types = dict((r[0], r[1]) for r in con.sql("DESCRIBE raw.trades").fetchall())
        assert (
            types["date"] == "DATE"
            and types["price"] == "DOUBLE"
            and types["timestamp_utc"].startswith("TIMESTAMP")
        )
        (info,) = describe_raw_views(con, tmp_path / "lake", ["trades"])
        assert (info.files, info.rows) == (8, sum(rows.values()))
        assert (info.first_date, info.last_date) == ("2024-01-02", "2024-01-05")
        plan = con.execute(
            "EXPLAIN ANALYZE SELECT count(*) FROM raw.trades WHERE date = '2024-01-03'"
        ).fetchall()
        assert "Total Files Read: 2" in plan[0][1]  # hive pruning: 2 of the 8 files are opened
