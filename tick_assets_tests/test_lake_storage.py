"""Lake storage layout (docs/STORAGE.md): files read back value for value, carry the chosen encodings and
compression, and take no more disk than the Tardis .csv.gz for trades, incremental_book_L2 and book snapshots."""

from __future__ import annotations

import csv
import datetime as dt
import gzip
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest

from tick_assets.emulator import synth
from tick_assets.emulator.options_chain import write_options_chain
from tick_assets.lake import write_partition
from tick_assets.lake.parquet import (
    PLAIN_DATA_TYPES,
    PLAIN_ROW_GROUP_SIZE,
    V2_DATA_TYPES,
    ConversionOptions,
    legacy_options,
    parquet_version,
)
from tick_assets.lake.schema import (
    BOOK_FIELDS,
    BOOK_LEVELS,
    BOOK_SIDES,
    EPOCH_MICROS_COLUMNS,
    LAYOUT,
    lake_columns,
    lake_select,
    quote,
    stored_columns,
)
from tick_assets.tardis.datatypes import DATA_TYPES, SCHEMAS

DAY = dt.date(2024, 3, 1)
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
MICROSECOND = dt.timedelta(microseconds=1)
_PARSE = {
    "BIGINT": int,
    "DOUBLE": float,
    "VARCHAR": str,
    "BOOLEAN": lambda v: {"true": True, "false": False}[v],
}
#: (exchange, symbol) of the emulator day of each data type.
_INSTRUMENT = {t: ("binance-futures", "BTCUSDT") for t in DATA_TYPES} | {
    "options_chain": ("deribit", "OPTIONS")
}
V2_ONLY = {
    "DELTA_BINARY_PACKED",
    "DELTA_LENGTH_BYTE_ARRAY",
    "DELTA_BYTE_ARRAY",
    "BYTE_STREAM_SPLIT",
    "RLE_DICTIONARY",
}


def _day(folder: Path, data_type: str, scale: int, instrument: tuple[str, str] | None = None) -> Path:
    """An emulator day as the emulator serves it (options_chain: `scale` rows of the deribit chain)."""
    exchange, symbol = instrument or _INSTRUMENT[data_type]
    path = folder / f"{exchange}_{data_type}_{DAY}_{symbol}_{scale}.csv.gz"
    if not path.exists():
        if data_type == "options_chain":
            write_options_chain(exchange, "BTC", DAY, scale, path)
        else:
            synth.write_dataset(exchange, symbol, data_type, DAY, scale, path)
    return path


@pytest.fixture(scope="module")
def days(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder the emulator days of this module are generated into once."""
    return tmp_path_factory.mktemp("storage-days")


def _csv_rows(source: Path, data_type: str) -> list[tuple]:
    kinds = [_PARSE[t] for _, t in SCHEMAS[data_type]]
    with gzip.open(source, "rt", newline="") as f:
        reader = csv.reader(f)
        next(reader)
        return [tuple(None if v == "" else k(v) for k, v in zip(kinds, row, strict=True)) for row in reader]


def _stored_rows(path: Path, data_type: str, layout: str) -> list[tuple]:
    """The file's rows through pyarrow (not our SQL), in stored column order, each `*_utc` as epoch microseconds."""
    table = pq.read_table(path)
    names = [c for c, _ in stored_columns(data_type, layout)]
    assert table.column_names == names
    cols = [table.column(c).to_pylist() for c in names]
    for i in (i for i, c in enumerate(names) if c.endswith("_utc")):
        cols[i] = [None if v is None else (v - EPOCH) // MICROSECOND for v in cols[i]]
    return list(zip(*cols, strict=True))


def _as_stored(row: tuple, data_type: str, layout: str) -> tuple:
    """A CSV row as the file of `layout` stores it: book levels as one list a side and field (lake-v3), or
    every value then the `*_utc` microseconds (lake-v2)."""
    names = [c for c, _ in SCHEMAS[data_type]]
    utc = tuple(row[i] for i, c in enumerate(names) if c in EPOCH_MICROS_COLUMNS)
    if layout != LAYOUT:
        return row + utc
    levels = BOOK_LEVELS.get(data_type)
    if levels is None:
        return row
    value = dict(zip(names, row, strict=True))
    lists = tuple(
        [value[f"{side}[{i}].{field}"] for i in range(levels)] for side in BOOK_SIDES for field in BOOK_FIELDS
    )
    return tuple(v for c, v in zip(names, row, strict=True) if "[" not in c) + lists


def _reader_rows(path: Path, data_type: str, layout: str) -> list[tuple]:
    """The file's rows through `lake_select` (what the views and lake_io read), `*_utc` as epoch microseconds."""
    cols = [quote(c) if t != "TIMESTAMPTZ" else f"epoch_us({quote(c)})" for c, t in lake_columns(data_type)]
    with duckdb.connect() as con:
        return con.execute(
            f"SELECT {', '.join(cols)} FROM (SELECT {lake_select(data_type, layout)} FROM read_parquet('{path}'))"
        ).fetchall()


def _assert_round_trip(source: Path, data_type: str, dest: Path, options: ConversionOptions) -> int:
    write_partition(source, dest, data_type, options)
    expected = _csv_rows(source, data_type)
    sources = [i for i, (c, _) in enumerate(SCHEMAS[data_type]) if c in EPOCH_MICROS_COLUMNS]
    stored, read = (
        _stored_rows(dest, data_type, options.layout),
        _reader_rows(dest, data_type, options.layout),
    )
    assert len(stored) == len(read) == len(expected) > 0
    for want, row, seen in zip(expected, stored, read, strict=True):
        assert row == _as_stored(want, data_type, options.layout)
        assert seen == want + tuple(
            want[i] for i in sources
        )  # every Tardis value, then the *_utc microseconds
    return len(stored)


def test_real_samples_read_back_value_for_value(real_fixtures_dir, tmp_path) -> None:
    samples = sorted(real_fixtures_dir.glob("*.csv.gz"))
    assert len(samples) == 4
    for source in samples:
        data_type = next(t for t in sorted(DATA_TYPES, key=len, reverse=True) if f"_{t}_" in source.name)
        for name, options in (("new", ConversionOptions()), ("old", legacy_options())):
            _assert_round_trip(source, data_type, tmp_path / f"{source.stem}.{name}.parquet", options)


@pytest.mark.parametrize("data_type", DATA_TYPES)
def test_emulator_day_reads_back_value_for_value(days, tmp_path, data_type) -> None:
    source = _day(days, data_type, 3_000)
    assert _assert_round_trip(source, data_type, tmp_path / "data.parquet", ConversionOptions()) > 0


def test_uuid_trade_ids_read_back_value_for_value(days, tmp_path) -> None:
    source = _day(days, "trades", 3_000, ("bitmex", "XBTUSD"))
    _assert_round_trip(source, "trades", tmp_path / "data.parquet", ConversionOptions())


def _chunks(path: Path) -> dict[str, list]:
    """Column chunk metadata of a file by column path (one entry per row group)."""
    meta = pq.ParquetFile(path).metadata
    out: dict[str, list] = {}
    for g in range(meta.num_row_groups):
        for c in range(meta.num_columns):
            chunk = meta.row_group(g).column(c)
            out.setdefault(chunk.path_in_schema, []).append(chunk)
    return out


def _encodings(chunks: list) -> set[str]:
    return {e for chunk in chunks for e in chunk.encodings}


@pytest.mark.parametrize(
    "data_type, doubles",
    [
        ("trades", ("price", "amount")),
        ("incremental_book_L2", ("price", "amount")),
        ("quotes", ("bid_price", "ask_amount")),
    ],
)
def test_v2_data_types_delta_encode_timestamps_and_dictionary_encode_prices(
    days, tmp_path, data_type, doubles
) -> None:
    assert data_type in V2_DATA_TYPES and parquet_version(ConversionOptions(), data_type) == "V2"
    dest = tmp_path / "data.parquet"
    write_partition(_day(days, data_type, 200_000), dest, data_type)
    meta = pq.ParquetFile(dest).metadata
    chunks = _chunks(dest)
    assert meta.format_version == "2.6"
    assert {c.compression for cs in chunks.values() for c in cs} == {"ZSTD"}
    assert all(c.bloom_filter_offset is None for cs in chunks.values() for c in cs)
    sizes = [meta.row_group(g).num_rows for g in range(meta.num_row_groups)]
    # DuckDB closes a row group at the first 2,048-row vector that reaches the size
    assert max(sizes) <= ConversionOptions().row_group_size + 2_048
    assert max(sizes) > 65_536 or len(sizes) == 1
    assert not [c for c in chunks if c.endswith("_utc")]  # readers derive them
    for column in ("timestamp", "local_timestamp"):
        assert _encodings(chunks[column]) == {"DELTA_BINARY_PACKED"}, column
    for column in doubles:
        assert _encodings(chunks[column]) == {"RLE_DICTIONARY"}, column
    assert _encodings(chunks["exchange"]) == {"RLE_DICTIONARY"}


def test_uuid_trade_ids_are_delta_length_encoded(days, tmp_path) -> None:
    dest = tmp_path / "data.parquet"
    write_partition(_day(days, "trades", 200_000, ("bitmex", "XBTUSD")), dest, "trades")
    assert _encodings(_chunks(dest)["id"]) == {"DELTA_LENGTH_BYTE_ARRAY"}


@pytest.mark.parametrize("data_type", sorted(PLAIN_DATA_TYPES))
def test_book_snapshots_store_levels_as_plain_lists(days, tmp_path, data_type) -> None:
    assert parquet_version(ConversionOptions(), data_type) == "V1"
    dest = tmp_path / "data.parquet"
    write_partition(_day(days, data_type, 50_000), dest, data_type)
    chunks = _chunks(dest)
    assert pq.ParquetFile(dest).metadata.format_version == "1.0"
    assert str(pq.read_schema(dest).field("asks_price").type) == "list<element: double>"
    meta = pq.ParquetFile(dest).metadata
    assert max(meta.row_group(g).num_rows for g in range(meta.num_row_groups)) <= PLAIN_ROW_GROUP_SIZE + 2_048
    assert {c.compression for cs in chunks.values() for c in cs} == {"ZSTD"}
    for column in ("timestamp", "asks_price.list.element", "bids_amount.list.element"):
        assert _encodings(chunks[column]) <= {"PLAIN", "RLE"}, column  # RLE: the list's levels


@pytest.mark.parametrize("data_type", sorted(set(DATA_TYPES) - V2_DATA_TYPES))
def test_v1_data_types_use_only_v1_encodings(days, tmp_path, data_type) -> None:
    assert parquet_version(ConversionOptions(), data_type) == "V1"
    dest = tmp_path / "data.parquet"
    write_partition(_day(days, data_type, 20_000), dest, data_type)
    chunks = _chunks(dest)
    assert pq.ParquetFile(dest).metadata.format_version == "1.0"
    assert {c.compression for cs in chunks.values() for c in cs} == {"ZSTD"}
    assert all(c.bloom_filter_offset is None for cs in chunks.values() for c in cs)
    assert not _encodings([c for cs in chunks.values() for c in cs]) & V2_ONLY
    assert _encodings(chunks["timestamp"]) <= {"PLAIN", "PLAIN_DICTIONARY"}


def test_legacy_options_keep_the_old_layout(days, tmp_path) -> None:
    dest = tmp_path / "data.parquet"
    write_partition(_day(days, "trades", 200_000), dest, "trades", legacy_options())
    chunks = _chunks(dest)
    meta = pq.ParquetFile(dest).metadata
    assert (
        meta.format_version == "1.0"
        and max(meta.row_group(g).num_rows for g in range(meta.num_row_groups)) <= 65_536
    )
    assert _encodings(chunks["timestamp"]) == {"PLAIN"}
    assert any(c.bloom_filter_offset is not None for c in chunks["side"])


@pytest.mark.parametrize("data_type", ["trades", "incremental_book_L2"])
def test_lake_file_is_no_bigger_than_the_gzip(days, tmp_path, data_type) -> None:
    source = _day(days, data_type, 200_000)
    new = write_partition(source, tmp_path / "new.parquet", data_type)
    old = write_partition(source, tmp_path / "old.parquet", data_type, legacy_options())
    assert new.rows > 60_000
    assert new.parquet_bytes <= source.stat().st_size
    assert new.parquet_bytes < 0.95 * old.parquet_bytes


@pytest.mark.parametrize("data_type, scale", [("book_snapshot_25", 50_000), ("book_snapshot_5", 200_000)])
def test_book_snapshot_is_no_bigger_than_the_gzip(days, tmp_path, data_type, scale) -> None:
    source = _day(days, data_type, scale)
    new = write_partition(source, tmp_path / "new.parquet", data_type)
    old = write_partition(source, tmp_path / "old.parquet", data_type, legacy_options())
    assert new.rows == old.rows > 40_000
    assert new.parquet_bytes <= source.stat().st_size
    assert new.parquet_bytes < 0.6 * old.parquet_bytes


@pytest.mark.parametrize("data_type", ["derivative_ticker", "book_snapshot_5"])
def test_lake_select_derives_the_utc_columns_exactly_whatever_the_zone(days, tmp_path, data_type) -> None:
    """Files without stored `*_utc` (lake-v3) read exactly like files that stored them (lake-v2)."""
    old, new = tmp_path / "old.parquet", tmp_path / "new.parquet"
    source = _day(days, data_type, 3_000)  # derivative_ticker: timestamp, local_timestamp, funding_timestamp
    write_partition(source, old, data_type, legacy_options())
    write_partition(source, new, data_type)
    with duckdb.connect() as con:
        con.execute("SET TimeZone = 'America/New_York'")  # the derivation must not depend on the zone
        stored = con.execute(
            f"SELECT {lake_select(data_type, 'lake-v2')} FROM read_parquet('{old}')"
        ).fetchall()
        query = f"SELECT {lake_select(data_type)} FROM read_parquet('{new}')"
        assert len(stored) > 0 and con.execute(query).fetchall() == stored
        types = dict(con.execute(f"SELECT column_name, column_type FROM (DESCRIBE {query})").fetchall())
        assert types == {
            c: t.replace("TIMESTAMPTZ", "TIMESTAMP WITH TIME ZONE") for c, t in lake_columns(data_type)
        }


def test_derived_files_are_written_in_small_row_groups_and_timed_with_their_query(tmp_path) -> None:
    """A 1 s feature day (86,400 rows) is several row groups (DuckDB writes them in parallel), whatever the raw
    row-group size; a query given as a function is built on the write's clock."""
    from tick_assets.lake import LocalLake, Partition, connect, store_query
    from tick_assets.lake.parquet import DERIVED_ROW_GROUP_SIZE

    lake = LocalLake(tmp_path / "lake")
    partition = Partition("features/example", "binance-futures", "BTCUSDT", DAY)
    built: list[float] = []

    def query() -> str:
        built.append(1.0)
        return "SELECT range AS i, range * 0.5 AS x FROM range(86400)"

    with connect(lake) as con:
        written = store_query(con, lake, partition, query, ConversionOptions(row_group_size=131_072))
    meta = pq.ParquetFile(written.path).metadata
    assert built == [1.0] and written.rows == 86_400
    # a target, not a cap: DuckDB closes a group at the first chunk boundary past it (one group before: 86,400)
    assert max(meta.row_group(i).num_rows for i in range(meta.num_row_groups)) < 2 * DERIVED_ROW_GROUP_SIZE
    assert pq.read_table(written.path).column("x").to_pylist()[-1] == 86_399 * 0.5
