"""Parquet schemas of the lake, derived from the Tardis CSV schemas (tardis.datatypes.SCHEMAS)."""

from __future__ import annotations

from typing import Final

from tick_assets.tardis.datatypes import SCHEMAS, columns

#: Integer microsecond-epoch columns that get a derived UTC timestamp column named `<column>_utc`.
EPOCH_MICROS_COLUMNS: Final = frozenset({"timestamp", "local_timestamp", "funding_timestamp", "expiration"})

#: Columns the warehouse views add from the directory names (hive partitioning); not stored in the files.
PARTITION_COLUMNS: Final = (("exchange_id", "VARCHAR"), ("symbol_id", "VARCHAR"), ("date", "DATE"))


def quote(name: str) -> str:
    """Quote an identifier for DuckDB (column names such as `asks[0].price` need it)."""
    return '"' + name.replace('"', '""') + '"'


def parquet_columns(data_type: str) -> tuple[tuple[str, str], ...]:
    """Column names and DuckDB types of a lake file: the CSV columns then the derived `*_utc` timestamps."""
    csv = SCHEMAS[data_type]
    derived = tuple((f"{name}_utc", "TIMESTAMPTZ") for name, _ in csv if name in EPOCH_MICROS_COLUMNS)
    return csv + derived


def csv_columns_struct(data_type: str) -> str:
    """The `columns={...}` argument of DuckDB read_csv that types every CSV column explicitly."""
    items = ", ".join(f"'{name}': '{sql_type}'" for name, sql_type in SCHEMAS[data_type])
    return "{" + items + "}"


def select_list(data_type: str, derived: bool = True) -> str:
    """SELECT list turning raw CSV columns into lake columns (derived timestamps via make_timestamp; without them
    if not `derived`)."""
    parts = [quote(name) for name in columns(data_type)]
    if derived:
        parts += [
            f"make_timestamp({quote(name)})::TIMESTAMPTZ AS {quote(name + '_utc')}"
            for name in columns(data_type)
            if name in EPOCH_MICROS_COLUMNS
        ]
    return ", ".join(parts)


def reader_select_list(data_type: str) -> str:
    """SELECT list giving every lake column (parquet_columns order) from a lake file, the `*_utc` ones re-derived
    from their int64 sources: for readers of files that do not store them (docs/STORAGE.md). make_timestamptz
    maps epoch microseconds exactly and whatever the session time zone; the columns stored under those names are
    not read, so the list works over files with and without them."""
    parts = [quote(name) for name in columns(data_type)]
    parts += [
        f"make_timestamptz({quote(name)}) AS {quote(name + '_utc')}"
        for name in columns(data_type)
        if name in EPOCH_MICROS_COLUMNS
    ]
    return ", ".join(parts)


def empty_select(data_type: str, derived: bool = True) -> str:
    """A zero-row SELECT with exactly the lake columns and types of a data type (without the derived `*_utc`
    ones if not `derived`)."""
    kept = parquet_columns(data_type) if derived else SCHEMAS[data_type]
    cols = ", ".join(f"CAST(NULL AS {sql_type}) AS {quote(name)}" for name, sql_type in kept)
    return f"SELECT {cols} WHERE false"
