"""The warehouse slice writer: idempotent per (instrument, day), atomic, and strict about table columns."""

from __future__ import annotations

import datetime as dt

import duckdb
import pytest

from tick_assets.features.grid import DaySlice
from tick_assets.features.store import SliceWriter, TableSchemaError

DAY1 = DaySlice("deribit", "BTC-PERPETUAL", dt.date(2024, 1, 2), 60_000)
DAY2 = DaySlice("deribit", "BTC-PERPETUAL", dt.date(2024, 1, 3), 60_000)


def _grid(day: DaySlice, value: float) -> str:
    return (
        f"SELECT '{day.instrument}' AS instrument, make_timestamp(t)::TIMESTAMPTZ AS ts, {value} AS x "
        f"FROM ({day.grid_sql()})"
    )


def _slices(con: duckdb.DuckDBPyConnection) -> list[tuple]:
    return con.execute(
        "SELECT ts::DATE::VARCHAR, count(*), min(x), max(x) FROM features.t GROUP BY ALL ORDER BY ALL"
    ).fetchall()


def test_replacing_a_slice_is_idempotent_and_leaves_other_days_alone(tmp_path) -> None:
    with duckdb.connect(str(tmp_path / "w.duckdb")) as con:
        writer = SliceWriter(con, "features", "t")
        assert writer.replace(_grid(DAY1, 1.0), DAY1).rows == 1440
        writer.replace(_grid(DAY2, 2.0), DAY2)
        writer.replace(_grid(DAY1, 3.0), DAY1)  # re-run of day 1 with new values
        assert _slices(con) == [("2024-01-02", 1440, 3.0, 3.0), ("2024-01-03", 1440, 2.0, 2.0)]


def test_a_failing_query_keeps_the_old_slice(tmp_path) -> None:
    with duckdb.connect(str(tmp_path / "w.duckdb")) as con:
        writer = SliceWriter(con, "features", "t")
        writer.replace(_grid(DAY1, 1.0), DAY1)
        failing = _grid(DAY1, 1.0).replace(
            "1.0 AS x", "CASE WHEN t > 0 THEN error('disk gone') END::DOUBLE AS x"
        )
        with pytest.raises(duckdb.Error, match="disk gone"):
            writer.replace(failing, DAY1)
        assert _slices(con) == [("2024-01-02", 1440, 1.0, 1.0)]


def test_a_table_of_another_code_version_is_refused_with_the_fix(tmp_path) -> None:
    with duckdb.connect(str(tmp_path / "w.duckdb")) as con:
        SliceWriter(con, "features", "t").replace(_grid(DAY1, 1.0), DAY1)
        renamed = _grid(DAY2, 1.0).replace("AS x", "AS y")
        with pytest.raises(TableSchemaError, match=r"DROP TABLE features\.t"):
            SliceWriter(con, "features", "t").replace(renamed, DAY2)
        assert _slices(con) == [("2024-01-02", 1440, 1.0, 1.0)]
