"""Writing feature partitions into the warehouse: one transaction replaces one (instrument, day) slice."""

from __future__ import annotations

import time
from dataclasses import dataclass

import duckdb

from tick_assets.features.grid import DaySlice
from tick_assets.lake.schema import quote


@dataclass(frozen=True)
class SliceWrite:
    """Rows written for one slice and how long the query took."""

    table: str
    rows: int
    seconds: float


def replace_slice(
    con: duckdb.DuckDBPyConnection, schema: str, table: str, query: str, day: DaySlice
) -> SliceWrite:
    """Run `query` and make its rows the only rows of `day` in schema.table, atomically (DELETE + INSERT in one
    transaction: a reader sees the old slice or the new one, a failure leaves the old one)."""
    name = f"{quote(schema)}.{quote(table)}"
    started = time.perf_counter()
    con.execute("SET TimeZone = 'UTC'")
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {quote(schema)}")
    con.execute(f"CREATE TABLE IF NOT EXISTS {name} AS SELECT * FROM ({query}) LIMIT 0")
    expected = [r[0] for r in con.execute(f"DESCRIBE SELECT * FROM ({query})").fetchall()]
    existing = [r[0] for r in con.execute(f"DESCRIBE {name}").fetchall()]
    if existing != expected:
        raise RuntimeError(
            f"{schema}.{table} has the columns of another code version ({len(existing)} vs {len(expected)}). "
            f"Drop it (DROP TABLE {schema}.{table}) and re-materialize its partitions."
        )
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute(
            f"DELETE FROM {name} WHERE instrument = ? AND ts >= make_timestamp(?::BIGINT)::TIMESTAMPTZ "
            f"AND ts < make_timestamp(?::BIGINT)::TIMESTAMPTZ",
            [day.instrument, day.start_us, day.start_us + 86_400_000_000],
        )
        rows = con.execute(f"INSERT INTO {name} SELECT * FROM ({query})").fetchone()[0]
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return SliceWrite(f"{schema}.{table}", int(rows), time.perf_counter() - started)
