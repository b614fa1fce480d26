"""raw.<data_type> views over the lake: typed even when empty, span days, prune by date, idempotent."""

from __future__ import annotations

import datetime as dt

import duckdb

from tick_assets.emulator.synth import write_dataset
from tick_assets.lake import describe_raw_views, ensure_raw_views, partition_file, write_partition
from tick_assets.lake.schema import lake_columns

VIEW_COLUMNS = [c for c, _ in lake_columns("trades")] + ["exchange_id", "symbol_id", "date"]


def _lake(tmp_path, days, symbols=("BTC-PERPETUAL", "ETH-PERPETUAL")) -> dict[tuple[str, dt.date], int]:
    rows = {}
    for symbol in symbols:
        for day in days:
            src = tmp_path / f"{symbol}-{day}.csv.gz"
            rows[(symbol, day)] = write_dataset("deribit", symbol, "trades", day, 300, src)
            write_partition(
                src, partition_file(tmp_path / "lake", "raw/trades", "deribit", symbol, day), "trades"
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
        assert rel.columns == VIEW_COLUMNS
        (info,) = describe_raw_views(con, tmp_path / "lake", ["trades"])
        assert (info.files, info.rows, info.first_date) == (0, 0, None)


def test_views_span_days_and_symbols_and_filter_by_date(tmp_path) -> None:
    days = [dt.date(2024, 1, 2) + dt.timedelta(days=i) for i in range(4)]
    rows = _lake(tmp_path, days)
    # An in-progress write of another run must stay invisible to readers.
    (
        partition_file(tmp_path / "lake", "raw/trades", "deribit", "BTC-PERPETUAL", days[0]).parent
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
        described = con.sql("DESCRIBE raw.trades").fetchall()
        assert [r[0] for r in described] == VIEW_COLUMNS  # same columns as the placeholder view
        types = dict((r[0], r[1]) for r in described)
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


def _gz(path, text: str):
    import gzip

    with gzip.open(path, "wt") as f:
        f.write(text)
    return path


def test_grouped_and_odd_symbols_keep_their_row_values(tmp_path) -> None:
    """A grouped dataset (symbol id PERPETUALS) keeps each row's instrument; odd ids round-trip via symbol_id."""
    import pandas as pd

    from tick_assets.tardis.datatypes import header_line

    lake = tmp_path / "lake"
    rows = "binance-futures,BTCUSDT,1,2,a,buy,10,1\nbinance-futures,ETHUSDT,3,4,b,sell,20,2\n"
    src = _gz(tmp_path / "grouped.csv.gz", header_line("liquidations") + "\n" + rows)
    for symbol in ("PERPETUALS", "A/B=C?%"):
        write_partition(
            src,
            partition_file(lake, "raw/liquidations", "binance-futures", symbol, "2024-01-02"),
            "liquidations",
        )
    with duckdb.connect() as con:
        ensure_raw_views(con, lake, ["liquidations"])
        got = con.sql(
            "SELECT exchange_id, symbol_id, symbol, count(*) FROM raw.liquidations GROUP BY ALL ORDER BY ALL"
        ).fetchall()
        assert got == [
            ("binance-futures", "A-B=C?%", "BTCUSDT", 1),  # '/' normalised like the official client
            ("binance-futures", "A-B=C?%", "ETHUSDT", 1),
            ("binance-futures", "PERPETUALS", "BTCUSDT", 1),
            ("binance-futures", "PERPETUALS", "ETHUSDT", 1),
        ]
        assert con.sql("SELECT count(*) FROM raw.liquidations WHERE symbol = 'ETHUSDT'").fetchall() == [(2,)]
    # The lake folder is also a valid hive dataset for pandas/pyarrow (no column clashes with directory keys).
    frame = pd.read_parquet(lake / "raw" / "liquidations")
    assert sorted(frame["symbol"]) == ["BTCUSDT", "BTCUSDT", "ETHUSDT", "ETHUSDT"]


def test_lake_path_with_glob_characters_is_refused_with_what_to_do(tmp_path) -> None:
    import pytest

    from tick_assets.lake import LakeError

    root = tmp_path / "my data [v1]" / "lake"
    days = [dt.date(2024, 1, 2)]
    src = tmp_path / "t.csv.gz"
    write_dataset("deribit", "BTC-PERPETUAL", "trades", days[0], 300, src)
    write_partition(src, partition_file(root, "raw/trades", "deribit", "BTC-PERPETUAL", days[0]), "trades")
    with duckdb.connect() as con, pytest.raises(LakeError, match="TICK_ASSETS_DATA_DIR"):
        ensure_raw_views(con, root, ["trades"])


def test_book_views_and_raw_reads_give_the_tardis_columns_value_for_value(
    tmp_path, real_fixtures_dir
) -> None:
    """Book levels stored as lists read back under their Tardis names, in file order, through the view and
    through read_partitions (what lake_io gives an asset), on the real sample."""
    import pandas as pd

    from tick_assets.lake import LocalLake, Partition, read_partitions

    (source,) = real_fixtures_dir.glob("binance-futures_book_snapshot_25_*.csv.gz")
    day = dt.date(2020, 9, 1)
    lake = tmp_path / "lake"
    write_partition(
        source,
        partition_file(lake, "raw/book_snapshot_25", "binance-futures", "BTCUSDT", day),
        "book_snapshot_25",
    )
    csv = pd.read_csv(source)
    csv["timestamp_utc"] = pd.to_datetime(csv["timestamp"], unit="us", utc=True)
    with duckdb.connect() as con:
        con.execute("SET TimeZone = 'UTC'")
        ensure_raw_views(con, lake, ["book_snapshot_25"])
        view = con.sql("SELECT * FROM raw.book_snapshot_25").df()
    assert list(view.columns) == [c for c, _ in lake_columns("book_snapshot_25")] + [
        "exchange_id",
        "symbol_id",
        "date",
    ]
    pd.testing.assert_frame_equal(view[csv.columns], csv, check_dtype=False)
    wanted = ["timestamp_utc", "asks[0].price", "bids[24].amount"]
    frame = read_partitions(
        LocalLake(lake), [Partition("raw/book_snapshot_25", "binance-futures", "BTCUSDT", day)], wanted
    )
    assert list(frame.columns) == ["instrument", "date", *wanted]
    pd.testing.assert_frame_equal(frame[wanted], csv[wanted], check_dtype=False)
    assert (frame["instrument"] == "binance-futures:BTCUSDT").all()
