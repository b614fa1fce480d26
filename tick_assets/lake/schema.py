"""Columns of the lake: what a raw file stores and what a reader sees, derived from the Tardis CSV schemas.

A raw file (layout lake-v3) stores the Tardis values only: every CSV column, except that a book snapshot's levels
are four lists a row (`asks_price`, `asks_amount`, `bids_price`, `bids_amount`, level 0 first). Readers (the
warehouse views, `read_partitions`, previews) see the Tardis columns under their Tardis names (`asks[0].price`)
plus a UTC timestamp `<column>_utc` for each epoch-microsecond column: `lake_select` derives them exactly from
the stored values. Why lists and no stored `*_utc`: docs/STORAGE.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from tick_assets.tardis.datatypes import SCHEMAS, columns

#: Integer microsecond-epoch columns that readers get as a UTC timestamp named `<column>_utc`.
EPOCH_MICROS_COLUMNS: Final = frozenset({"timestamp", "local_timestamp", "funding_timestamp", "expiration"})

#: Columns the warehouse views add from the directory names (hive partitioning); not stored in the files.
PARTITION_COLUMNS: Final = (("exchange_id", "VARCHAR"), ("symbol_id", "VARCHAR"), ("date", "DATE"))

#: Book snapshot data types and their levels a side, stored as one list column per side and field.
BOOK_LEVELS: Final = {"book_snapshot_25": 25, "book_snapshot_5": 5}
BOOK_SIDES: Final = ("asks", "bids")
BOOK_FIELDS: Final = ("price", "amount")

#: The layout of raw files written now, and the one before it (wide book levels, stored `*_utc` columns).
LAYOUT: Final = "lake-v3"
LEGACY_LAYOUT: Final = "lake-v2"
LAYOUTS: Final = (LEGACY_LAYOUT, LAYOUT)

Columns = tuple[tuple[str, str], ...]


def quote(name: str) -> str:
    """Quote an identifier for DuckDB (column names such as `asks[0].price` need it)."""
    return '"' + name.replace('"', '""') + '"'


def level_list(side: str, field: str) -> str:
    """The stored list column of one side and field of a book snapshot: `asks_price`."""
    return f"{side}_{field}"


def level(side: str, index: int, field: str) -> str:
    """SQL for one book level's value in a stored book snapshot file (`asks_price[1]` is level 0's ask price)."""
    return f"{level_list(side, field)}[{index + 1}]"


def _utc_columns(data_type: str) -> Columns:
    return tuple(
        (f"{name}_utc", "TIMESTAMPTZ") for name in columns(data_type) if name in EPOCH_MICROS_COLUMNS
    )


def lake_columns(data_type: str) -> Columns:
    """Column names and DuckDB types a reader of the lake sees: the Tardis CSV columns, then `*_utc` timestamps."""
    return SCHEMAS[data_type] + _utc_columns(data_type)


def stored_columns(data_type: str, layout: str = LAYOUT) -> Columns:
    """Column names and DuckDB types of a raw lake file of `layout`."""
    if layout == LEGACY_LAYOUT:
        return lake_columns(data_type)
    if data_type not in BOOK_LEVELS:
        return SCHEMAS[data_type]
    lists = tuple((level_list(s, f), "DOUBLE[]") for s in BOOK_SIDES for f in BOOK_FIELDS)
    return tuple(c for c in SCHEMAS[data_type] if "[" not in c[0]) + lists


def csv_columns_struct(data_type: str) -> str:
    """The `columns={...}` argument of DuckDB read_csv that types every CSV column explicitly."""
    items = ", ".join(f"'{name}': '{sql_type}'" for name, sql_type in SCHEMAS[data_type])
    return "{" + items + "}"


def store_select(data_type: str, layout: str = LAYOUT) -> str:
    """SELECT list turning the Tardis CSV columns (as read_csv names them) into the stored columns of `layout`."""
    if layout == LEGACY_LAYOUT:
        parts = [quote(name) for name in columns(data_type)]
        parts += [
            f"make_timestamp({quote(name[: -len('_utc')])})::TIMESTAMPTZ AS {quote(name)}"
            for name, _ in _utc_columns(data_type)
        ]
        return ", ".join(parts)
    levels = BOOK_LEVELS.get(data_type)
    parts = [quote(name) for name, _ in SCHEMAS[data_type] if levels is None or "[" not in name]
    if levels is not None:
        for side in BOOK_SIDES:
            for field in BOOK_FIELDS:
                values = ", ".join(quote(f"{side}[{i}].{field}") for i in range(levels))
                parts.append(f"[{values}] AS {level_list(side, field)}")
    return ", ".join(parts)


def lake_select(data_type: str, layout: str = LAYOUT) -> str:
    """SELECT list giving every reader column (`lake_columns` order) from a raw file of `layout`: book levels
    under their Tardis names, `*_utc` from their int64 sources via make_timestamptz (exact, whatever the session
    time zone)."""
    if layout == LEGACY_LAYOUT:
        return ", ".join(quote(name) for name, _ in lake_columns(data_type))
    parts = []
    for name in columns(data_type):
        if data_type in BOOK_LEVELS and "[" in name:
            side, rest = name.split("[", 1)
            index, field = rest.split("].")
            parts.append(f"{level(side, int(index), field)} AS {quote(name)}")
        else:
            parts.append(quote(name))
    parts += [
        f"make_timestamptz({quote(name[: -len('_utc')])}) AS {quote(name)}"
        for name, _ in _utc_columns(data_type)
    ]
    return ", ".join(parts)


def empty_select(cols: Columns) -> str:
    """A zero-row SELECT with exactly the given columns and types."""
    listed = ", ".join(f"CAST(NULL AS {sql_type}) AS {quote(name)}" for name, sql_type in cols)
    return f"SELECT {listed} WHERE false"


def layout_of(data_type: str, names: list[str] | tuple[str, ...]) -> str | None:
    """The layout whose stored columns are exactly `names` (a raw file's columns), or None for neither."""
    for layout in LAYOUTS:
        if list(names) == [c for c, _ in stored_columns(data_type, layout)]:
            return layout
    return None


def sql_string(value: str | Path) -> str:
    """Quote a value as a DuckDB string literal."""
    return "'" + str(value).replace("'", "''") + "'"
