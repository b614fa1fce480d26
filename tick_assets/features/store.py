"""Writing feature partitions into the warehouse: one transaction replaces one (instrument, day) slice."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import duckdb

from tick_assets.features.grid import MICROS_PER_DAY, DaySlice
from tick_assets.lake.schema import quote


class TableSchemaError(RuntimeError):
    """The warehouse table was written by another code version (its columns differ from the query's)."""


@dataclass(frozen=True)
class SliceWrite:
    """Rows written for one slice and how long the query and the commit took."""

    table: str
    rows: int
    seconds: float


@dataclass
class SliceWriter:
    """Replaces (instrument, day) slices of schema.table; the table's columns are checked once per writer."""

    con: duckdb.DuckDBPyConnection
    schema: str
    table: str
    _checked: bool = field(default=False, init=False)

    @property
    def name(self) -> str:
        """The table's qualified name, as written in the warehouse."""
        return f"{self.schema}.{self.table}"

    @property
    def _quoted(self) -> str:
        return f"{quote(self.schema)}.{quote(self.table)}"

    def _ensure_table(self, query: str) -> None:
        qualified = self._quoted
        exists = self.con.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE schema_name = ? AND table_name = ? AND NOT temporary",
            [self.schema, self.table],
        ).fetchone()[0]
        if not exists:
            self.con.execute(f"CREATE SCHEMA IF NOT EXISTS {quote(self.schema)}")
            self.con.execute(f"CREATE TABLE IF NOT EXISTS {qualified} AS SELECT * FROM ({query}) LIMIT 0")
            return
        expected = [(r[0], r[1]) for r in self.con.execute(f"DESCRIBE SELECT * FROM ({query})").fetchall()]
        existing = [(r[0], r[1]) for r in self.con.execute(f"DESCRIBE {qualified}").fetchall()]
        if existing != expected:
            changed = sorted(set(existing) ^ set(expected)) or "the column order"
            raise TableSchemaError(
                f"{self.name} holds the columns of another code version (differences: {changed}). "
                f"Drop it (DROP TABLE {self.name}) and re-materialize its partitions."
            )

    def replace(self, query: str, day: DaySlice) -> SliceWrite:
        """Run `query` and make its rows the only rows of `day` in the table, atomically (DELETE + INSERT in one
        transaction: a reader sees the old slice or the new one, a failure leaves the old one)."""
        started = time.perf_counter()
        self.con.execute("SET TimeZone = 'UTC'")
        if not self._checked:
            self._ensure_table(query)
            self._checked = True
        qualified = self._quoted
        self.con.execute("BEGIN TRANSACTION")
        try:
            self.con.execute(
                f"DELETE FROM {qualified} WHERE instrument = ? AND ts >= make_timestamp(?::BIGINT)::TIMESTAMPTZ "
                f"AND ts < make_timestamp(?::BIGINT)::TIMESTAMPTZ",
                [day.instrument, day.start_us, day.start_us + MICROS_PER_DAY],
            )
            rows = self.con.execute(f"INSERT INTO {qualified} SELECT * FROM ({query})").fetchone()[0]
            self.con.execute("COMMIT")
        except BaseException:
            self.con.execute("ROLLBACK")
            raise
        return SliceWrite(self.name, int(rows), time.perf_counter() - started)
