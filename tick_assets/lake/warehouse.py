"""The DuckDB warehouse: a catalog of views over the lake (schemas `raw`, `features`, `analytics`, yours).

The catalog holds no data. It is rebuilt whole into a temp file that replaces `warehouse.duckdb` atomically,
so no writer ever locks the live file: readers (notebooks, IO managers) may hold it open read-only at any time,
and keep the catalog they opened until they reconnect. Views glob their dataset's partition files, so a new
partition shows up without a refresh; a new dataset needs one.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import duckdb

from tick_assets.durable import fsync_path, owned_temp, remove_abandoned_temps
from tick_assets.lake.datasets import HIVE_TYPES
from tick_assets.lake.layout import RAW, raw_data_type, raw_dataset, validate_dataset
from tick_assets.lake.migrate import check_layout
from tick_assets.lake.schema import (
    PARTITION_COLUMNS,
    empty_select,
    lake_columns,
    lake_select,
    quote,
    sql_string,
)
from tick_assets.lake.store import Lake, as_lake

RAW_SCHEMA = RAW
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ViewInfo:
    """What a view currently covers."""

    name: str
    files: int
    rows: int
    first_date: str | None
    last_date: str | None


def view_name(dataset: str) -> str:
    """`features/depth` -> `features.depth` (deeper paths join the rest with `__`)."""
    schema, *rest = validate_dataset(dataset).split("/")
    return f"{schema}.{'__'.join(rest)}"


def _quoted_view(dataset: str) -> str:
    schema, name = view_name(dataset).split(".", 1)
    return f"{quote(schema)}.{quote(name)}"


def view_sql(lake: Lake, dataset: str) -> str | None:
    """CREATE OR REPLACE VIEW over every partition of a dataset, plus `exchange_id`, `symbol_id` and `date` from the
    directory names (a WHERE on them skips files). A raw data type without files gets an empty view with its
    columns; another dataset without files gets none (None)."""
    name = _quoted_view(dataset)
    raw_type = raw_data_type(dataset)
    if not lake.files(dataset):
        if raw_type is None:
            return None
        return (
            f"CREATE OR REPLACE VIEW {name} AS {empty_select((*lake_columns(raw_type), *PARTITION_COLUMNS))}"
        )
    # Raw views list their columns (the Tardis names, `*_utc` derived: lake/schema.py) in the order of the
    # placeholder view, whatever order DuckDB gives hive keys. No union_by_name: it would read every file's footer
    # each time the view is bound (thousands of GETs on S3); every file of a dataset has the columns of its code
    # version (migrate.check_layout keeps old raw files out), and a new version re-materializes them.
    partition_cols = ", ".join(quote(c) for c, _ in PARTITION_COLUMNS)
    columns = f"{lake_select(raw_type)}, {partition_cols}" if raw_type else "*"
    return (
        f"CREATE OR REPLACE VIEW {name} AS SELECT {columns} FROM read_parquet({sql_string(lake.dataset_glob(dataset))}, "
        f"hive_partitioning = true, hive_types = {HIVE_TYPES})"
    )


def catalog_datasets(lake: Lake, data_types: Iterable[str] = (), datasets: Iterable[str] = ()) -> list[str]:
    """The datasets the catalog shows: every raw data type asked for, the given datasets, and any dataset found
    in the lake (a researcher's own assets included)."""
    found = {raw_dataset(t) for t in data_types} | set(datasets) | set(lake.datasets())
    return sorted(found)


def build_catalog(con: duckdb.DuckDBPyConnection, lake: Lake | Path, datasets: Iterable[str]) -> list[str]:
    """Create (or refresh) one view per dataset in `con`; idempotent. Returns the view names."""
    lake = as_lake(lake)
    names = []
    for dataset in datasets:
        sql = view_sql(lake, dataset)
        if sql is None:
            continue
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {quote(dataset.split('/')[0])}")
        con.execute(sql)
        names.append(view_name(dataset))
    return names


def ensure_raw_views(
    con: duckdb.DuckDBPyConnection, lake: Lake | Path, data_types: Iterable[str]
) -> list[str]:
    """Create (or refresh) schema `raw` and one view per data type in `con`; idempotent."""
    return build_catalog(con, lake, [raw_dataset(t) for t in data_types])


def publish_catalog(path: Path, lake: Lake | Path, datasets: Iterable[str]) -> list[str]:
    """Build the catalog of `datasets` into a new file and swap it in for `path` atomically (readers holding the
    old file are not disturbed and no lock on the live file is taken). Returns the view names."""
    lake = as_lake(lake)
    check_layout(lake)  # views of the current columns over files of an older layout would not bind
    path = Path(path).absolute()
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_abandoned_temps(path.parent, ".tmp")
    keep_old_tables(path)
    tmp = owned_temp(path, ".tmp")
    try:
        with duckdb.connect(str(tmp)) as con:
            lake.prepare(con)
            names = build_catalog(con, lake, datasets)
            con.execute("CHECKPOINT")
        fsync_path(tmp)
        os.replace(tmp, path)
        # A WAL beside the live file (a writer killed in it, or a read-write connection someone opened) would be
        # replayed against the new file and make it unreadable; nothing legitimately writes the catalog in place.
        Path(f"{path}.wal").unlink(missing_ok=True)
        fsync_path(path.parent)
    finally:
        tmp.unlink(missing_ok=True)
        Path(f"{tmp}.wal").unlink(missing_ok=True)
    return names


def open_catalog(path: Path, lake: Lake | Path) -> duckdb.DuckDBPyConnection:
    """A read-only connection to the catalog that can read its lake (UTC session): what a notebook should use.

    The file is attached to an in-memory database, so each call sees the catalog as published now (DuckDB would
    hand a second connect() to the same path the database it already has open, with the old views)."""
    con = duckdb.connect(":memory:")
    con.execute("SET TimeZone = 'UTC'")
    as_lake(lake).prepare(con)
    con.execute(f"ATTACH {sql_string(str(path))} AS catalog (READ_ONLY)")
    con.execute("USE catalog")
    return con


def keep_old_tables(path: Path) -> Path | None:
    """Move aside a warehouse written before the lake was the store (it holds tables, maybe a user's own), so the
    catalog never overwrites data; returns where it went."""
    if not Path(path).exists():
        return None
    try:
        with duckdb.connect(":memory:") as con:
            con.execute(f"ATTACH {sql_string(str(path))} AS old (READ_ONLY)")
            tables = con.execute(
                "SELECT count(*) FROM duckdb_tables() WHERE database_name = 'old'"
            ).fetchall()[0][0]
    except duckdb.Error:
        return None  # unreadable: a catalog is rebuilt over it, nothing of value can be read from it anyway
    if not tables:
        return None
    kept = Path(f"{path}.pre-lake-v2")
    os.replace(path, kept)
    Path(f"{path}.wal").unlink(missing_ok=True)
    log.warning(
        "%s held %d tables of the warehouse before the lake was the store; moved to %s (the catalog of views "
        "replaces it; features and analytics are re-materialized into the lake)",
        path,
        tables,
        kept,
    )
    return kept


def describe_views(
    con: duckdb.DuckDBPyConnection, lake: Lake | Path, datasets: Iterable[str]
) -> list[ViewInfo]:
    """Partition files, rows and date range of each dataset's view (rows come from Parquet footers, no scan)."""
    lake = as_lake(lake)
    infos = []
    for dataset in datasets:
        files = len(lake.files(dataset))
        if files == 0 and not dataset.startswith(f"{RAW}/"):
            continue
        rows, first, last = con.execute(
            f"SELECT count(*), min(date), max(date) FROM {_quoted_view(dataset)}"
        ).fetchall()[0]
        infos.append(ViewInfo(view_name(dataset), files, int(rows), first and str(first), last and str(last)))
    return infos


def describe_raw_views(
    con: duckdb.DuckDBPyConnection, lake: Lake | Path, data_types: Iterable[str]
) -> list[ViewInfo]:
    """`describe_views` of the raw data types."""
    return describe_views(con, lake, [raw_dataset(t) for t in data_types])
