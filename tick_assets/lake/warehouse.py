"""The DuckDB warehouse: schema `raw` with one view per data type over the lake (hive partitioning)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import duckdb

from tick_assets.lake.convert import sql_string
from tick_assets.lake.layout import data_type_glob, partition_glob
from tick_assets.lake.schema import PARTITION_COLUMNS, empty_select, parquet_columns, quote

RAW_SCHEMA = "raw"


@dataclass(frozen=True)
class ViewInfo:
    """What a raw view currently covers."""

    name: str
    files: int
    rows: int
    first_date: str | None
    last_date: str | None


def _has_files(lake_root: Path, data_type: str) -> bool:
    return any(Path(lake_root).glob(partition_glob(data_type)))


def raw_view_sql(lake_root: Path, data_type: str) -> str:
    """CREATE OR REPLACE VIEW raw.<data_type>: every lake partition, plus `exchange_id`, `symbol_id` and `date`
    from the directory names (a WHERE on them skips files). Without any file yet, an empty view with the same columns."""
    name = f"{RAW_SCHEMA}.{quote(data_type)}"
    if not _has_files(lake_root, data_type):
        partition_cols = ", ".join(f"CAST(NULL AS {t}) AS {quote(c)}" for c, t in PARTITION_COLUMNS)
        body = empty_select(data_type).replace(" WHERE false", f", {partition_cols} WHERE false")
        return f"CREATE OR REPLACE VIEW {name} AS {body}"
    # Explicit columns: the same order as the placeholder view, whatever order DuckDB gives hive keys.
    columns = ", ".join(quote(c) for c, _ in (*parquet_columns(data_type), *PARTITION_COLUMNS))
    return (
        f"CREATE OR REPLACE VIEW {name} AS SELECT {columns} FROM read_parquet({sql_string(data_type_glob(lake_root, data_type))}, "
        "hive_partitioning = true, union_by_name = true, "
        "hive_types = {'exchange_id': VARCHAR, 'symbol_id': VARCHAR, 'date': DATE})"
    )


def ensure_raw_views(con: duckdb.DuckDBPyConnection, lake_root: Path, data_types: Iterable[str]) -> list[str]:
    """Create (or refresh) schema `raw` and one view per data type; idempotent. Returns the view names."""
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {RAW_SCHEMA}")
    names = []
    for data_type in data_types:
        con.execute(raw_view_sql(lake_root, data_type))
        names.append(f"{RAW_SCHEMA}.{data_type}")
    return names


def describe_raw_views(
    con: duckdb.DuckDBPyConnection, lake_root: Path, data_types: Iterable[str]
) -> list[ViewInfo]:
    """Partition files, rows and date range of each raw view (rows come from Parquet footers, no scan)."""
    infos = []
    for data_type in data_types:
        name = f"{RAW_SCHEMA}.{quote(data_type)}"
        rows, first, last = con.execute(f"SELECT count(*), min(date), max(date) FROM {name}").fetchone()
        files = sum(1 for _ in Path(lake_root).glob(partition_glob(data_type)))
        infos.append(
            ViewInfo(f"{RAW_SCHEMA}.{data_type}", files, int(rows), first and str(first), last and str(last))
        )
    return infos
