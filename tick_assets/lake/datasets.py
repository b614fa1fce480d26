"""Derived lake datasets (features, analytics, your own): a SQL query or a DataFrame stored as one partition,
and partitions read back as one DataFrame. No Dagster imports: a notebook can call these directly."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import duckdb
import pandas as pd

from tick_assets.lake.errors import LakeError
from tick_assets.lake.layout import DATE_KEY, EXCHANGE_KEY, SYMBOL_KEY, partition_relpath, raw_data_type
from tick_assets.lake.parquet import ConversionOptions, copy_options, derived_options
from tick_assets.lake.schema import lake_columns, lake_select, quote, sql_string
from tick_assets.lake.store import Lake

#: Columns every frame read from the lake carries: the partition's instrument (`exchange:SYMBOL`) and UTC day.
INSTRUMENT_COLUMN, DATE_COLUMN = "instrument", DATE_KEY
#: Columns a stored file never holds: the directory keys give them back on read.
HIVE_COLUMNS = (EXCHANGE_KEY, SYMBOL_KEY, DATE_KEY)
HIVE_TYPES = "{'exchange_id': VARCHAR, 'symbol_id': VARCHAR, 'date': DATE}"


@dataclass(frozen=True)
class Partition:
    """One (exchange, symbol, UTC day) partition of a dataset."""

    dataset: str
    exchange: str
    symbol: str
    day: dt.date

    @property
    def instrument(self) -> str:
        """`exchange:SYMBOL`."""
        return f"{self.exchange}:{self.symbol}"

    @property
    def relpath(self) -> str:
        """The partition file relative to the lake root."""
        return partition_relpath(self.dataset, self.exchange, self.symbol, self.day)


@dataclass(frozen=True)
class StoredPartition:
    """What storing one partition wrote."""

    path: str
    rows: int
    bytes: int
    seconds: float


def connect(lake: Lake, threads: int = 2, memory_limit: str = "2GB") -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection (UTC session) that can read the lake: the engine of one step."""
    con = duckdb.connect(":memory:", config={"threads": threads, "memory_limit": memory_limit})
    con.execute("SET TimeZone = 'UTC'")
    con.execute("SET enable_progress_bar = false")
    lake.prepare(con)
    return con


def store_query(
    con: duckdb.DuckDBPyConnection,
    lake: Lake,
    partition: Partition,
    query: str | Callable[[], str],
    options: ConversionOptions | None = None,
) -> StoredPartition:
    """Run `query` and store its rows as the partition's one file, replacing any previous one whole.

    `query` may be a function giving the SELECT: it is called on the clock of `seconds` (a query that computes
    its rows when built, like `features.depth_query`, is timed whole)."""
    started = time.perf_counter()
    select = query() if callable(query) else query
    layout = copy_options(derived_options(options or ConversionOptions()))
    with lake.writing(partition.relpath) as tmp:
        con.execute(f"COPY ({select}) TO {sql_string(tmp)} ({layout})")
        rows = con.execute(f"SELECT count(*) FROM read_parquet({sql_string(tmp)})").fetchall()[0][0]
        size = tmp.stat().st_size
    return StoredPartition(lake.uri(partition.relpath), int(rows), size, time.perf_counter() - started)


def store_frame(
    lake: Lake, partition: Partition, frame: pd.DataFrame, options: ConversionOptions | None = None
) -> StoredPartition:
    """Store a DataFrame as the partition's one file (without the directory-key columns, which come back on
    read), replacing any previous one whole."""
    if frame.columns.empty:
        raise LakeError(
            f"{partition.dataset} {partition.day} {partition.instrument}: the DataFrame has no columns, so there "
            "is no schema to store; return the columns even when a day has no rows"
        )
    if DATE_COLUMN in frame.columns and len(frame):
        days = pd.to_datetime(frame[DATE_COLUMN]).dt.date
        if not (days == partition.day).all():
            raise LakeError(
                f"{partition.dataset} {partition.day} {partition.instrument}: its `date` column holds other days "
                f"({sorted(set(days) - {partition.day})[:3]}); `date` is the partition's UTC day (the directory "
                "key): rename the column if it means something else"
            )
    # A meaningful index (a named one, a DatetimeIndex) is kept as a column; row numbers are dropped.
    plain = all(n is None for n in frame.index.names) and not isinstance(frame.index, pd.DatetimeIndex)
    kept = frame.reset_index(drop=plain)
    kept = kept.drop(columns=[c for c in HIVE_COLUMNS if c in kept.columns])
    with connect(lake, threads=1) as con:
        con.register("frame_to_store", kept)
        return store_query(con, lake, partition, "SELECT * FROM frame_to_store", options)


def read_partitions(
    lake: Lake,
    partitions: Sequence[Partition],
    columns: Sequence[str] | None = None,
    con: duckdb.DuckDBPyConnection | None = None,
    *,
    polars: bool = False,
) -> pd.DataFrame:
    """The rows of `partitions` (one dataset) as one DataFrame, in partition order, with `instrument` and
    `date` (the partition's UTC day); `columns` selects what else is read (the rest stays on disk). With
    `polars`, a polars DataFrame (polars must be installed)."""
    if not partitions:
        raise ValueError("read_partitions needs at least one partition")
    uris = [
        lake.require(p.relpath, f"materialize {p.dataset} for {p.day} {p.instrument} first")
        for p in partitions
    ]
    own = con is None
    con = con or connect(lake)
    try:
        files = "[" + ", ".join(sql_string(u) for u in uris) + "]"
        source = f"read_parquet({files}, hive_partitioning = true, union_by_name = true, hive_types = {HIVE_TYPES})"
        raw_type = raw_data_type(partitions[0].dataset)
        if raw_type is not None:  # raw files store lists and no *_utc: read them under the reader's columns
            hive = ", ".join(HIVE_COLUMNS)
            source = f"(SELECT {lake_select(raw_type)}, {hive} FROM {source})"
            available = [c for c, _ in lake_columns(raw_type)] + list(HIVE_COLUMNS)
        else:
            available = [
                r[0]
                for r in con.execute(f"DESCRIBE SELECT * FROM read_parquet({sql_string(uris[0])})").fetchall()
            ]
        wanted = list(columns) if columns is not None else [c for c in available if c not in HIVE_COLUMNS]
        unknown = [c for c in wanted if c not in available and c not in (INSTRUMENT_COLUMN, DATE_COLUMN)]
        if unknown:
            raise KeyError(f"{partitions[0].dataset} has no column(s) {unknown}; its columns are {available}")
        select = [quote(c) for c in wanted if c not in (INSTRUMENT_COLUMN, DATE_COLUMN)]
        instrument = (
            quote(INSTRUMENT_COLUMN)
            if INSTRUMENT_COLUMN in available
            else f"{EXCHANGE_KEY} || ':' || {SYMBOL_KEY}"
        )
        select = [f"{instrument} AS {INSTRUMENT_COLUMN}", f"{DATE_KEY}", *select]
        # DuckDB keeps insertion order (files in list order, rows in file order).
        query = f"SELECT {', '.join(select)} FROM {source}"
        if polars:
            import polars as pl

            return pl.from_arrow(con.sql(query).to_arrow_table())
        return con.execute(query).df()
    finally:
        if own:
            con.close()
