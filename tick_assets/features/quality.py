"""Data-quality figures of lake and feature partitions (SQL over Parquet or the warehouse). No Dagster imports."""

from __future__ import annotations

from pathlib import Path

import duckdb

from tick_assets.features.grid import MICROS_PER_DAY, DaySlice
from tick_assets.lake.schema import level, sql_string
from tick_assets.lake.store import Lake


def one_row(
    con: duckdb.DuckDBPyConnection, sql: str, params: list | None = None
) -> dict[str, float | int | None]:
    """The single row of `sql` as a dict keyed by column name."""
    cur = con.execute(sql, params)
    names = [d[0] for d in cur.description]
    return dict(zip(names, cur.fetchall()[0], strict=True))


def book_figures(
    con: duckdb.DuckDBPyConnection, lake: Lake | Path, day: DaySlice
) -> dict[str, float | int | None]:
    """Crossed/locked books, local_timestamp order and lag, and the longest silence of a book_snapshot_25 day."""
    src = day.lake_file_sql(lake, "raw/book_snapshot_25")
    return one_row(
        con,
        f"""
        WITH b AS (
            SELECT local_timestamp, timestamp, {level("bids", 0, "price")} AS bid, {level("asks", 0, "price")} AS ask,
                   lag(local_timestamp) OVER (ORDER BY file_row_number) AS prev_local
            FROM read_parquet({src}, file_row_number = true)
        ),
        gaps AS (  -- silences between snapshots, and from 00:00 to the first one and from the last one to 24:00
            SELECT local_timestamp - prev_local AS gap, prev_local AS since FROM b WHERE prev_local IS NOT NULL
            UNION ALL SELECT min(local_timestamp) - {day.start_us}, {day.start_us} FROM b
            UNION ALL SELECT {day.start_us + MICROS_PER_DAY} - max(local_timestamp), max(local_timestamp) FROM b
        )
        SELECT
            (SELECT count(*) FROM b) AS snapshots,
            (SELECT count(*) FROM b WHERE bid > ask) AS crossed,
            (SELECT count(*) FROM b WHERE bid = ask) AS locked,
            (SELECT count(*) FROM b WHERE local_timestamp < prev_local) AS local_timestamp_decreases,
            (SELECT count(*) FROM b WHERE local_timestamp < timestamp) AS local_before_exchange,
            (SELECT max(timestamp - local_timestamp) / 1000.0 FROM b) AS max_exchange_ahead_ms,
            (SELECT max(gap) / 1e6 FROM gaps) AS longest_silence_seconds,
            (SELECT arg_max(since, gap) FROM gaps) AS longest_silence_since_us
        """,
    )


def trade_figures(
    con: duckdb.DuckDBPyConnection, lake: Lake | Path, day: DaySlice
) -> dict[str, float | int | None]:
    """Invalid prices, amounts and sides, and duplicate trade ids of a trades day."""
    src = day.lake_file_sql(lake, "raw/trades")
    return one_row(
        con,
        f"""
        SELECT count(*) AS trades,
               count(*) FILTER (WHERE NOT (price > 0)) AS non_positive_price,
               count(*) FILTER (WHERE NOT (amount > 0)) AS non_positive_amount,
               count(*) FILTER (WHERE side IS NULL OR side NOT IN ('buy', 'sell', 'unknown')) AS bad_side,
               count(id) - count(DISTINCT id) AS duplicate_ids
        FROM read_parquet({src})
        """,
    )


def grid_figures(
    con: duckdb.DuckDBPyConnection, lake: Lake | Path, dataset: str, day: DaySlice, value_column: str | None
) -> dict:
    """Rows of one feature partition against the grid, and NULLs of `value_column` after its first value."""
    src = f"read_parquet({day.lake_file_sql(lake, dataset)})"
    missing = "0"
    if value_column:
        missing = (
            f"count(*) FILTER (WHERE {value_column} IS NULL AND ts > "
            f"(SELECT min(ts) FROM {src} WHERE {value_column} IS NOT NULL))"
        )
    in_day = (
        f"count(*) FILTER (WHERE ts >= make_timestamp({day.start_us})::TIMESTAMPTZ "
        f"AND ts < make_timestamp({day.start_us + MICROS_PER_DAY})::TIMESTAMPTZ "
        f"AND instrument = {sql_string(day.instrument)})"
    )
    figures = one_row(
        con,
        f"SELECT count(*) AS rows, count(DISTINCT ts) AS distinct_ts, {in_day} AS rows_in_day, "
        f"{missing} AS missing_after_first FROM {src}",
    )
    figures["expected_rows"] = MICROS_PER_DAY // day.step_us
    return figures
