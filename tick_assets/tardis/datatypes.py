"""Tardis dataset types and their CSV schemas, as data (see reference/tardis_api.md section 2)."""

from __future__ import annotations

from typing import Final

COMMON_COLUMNS: Final = (
    ("exchange", "VARCHAR"),
    ("symbol", "VARCHAR"),
    ("timestamp", "BIGINT"),
    ("local_timestamp", "BIGINT"),
)


def _book_snapshot_columns(levels: int) -> tuple[tuple[str, str], ...]:
    cols: list[tuple[str, str]] = []
    for i in range(levels):
        cols += [
            (f"asks[{i}].price", "DOUBLE"),
            (f"asks[{i}].amount", "DOUBLE"),
            (f"bids[{i}].price", "DOUBLE"),
            (f"bids[{i}].amount", "DOUBLE"),
        ]
    return tuple(cols)


_TRADE_LIKE: Final = (
    ("id", "VARCHAR"),
    ("side", "VARCHAR"),
    ("price", "DOUBLE"),
    ("amount", "DOUBLE"),
)

_QUOTE_LIKE: Final = (
    ("ask_amount", "DOUBLE"),
    ("ask_price", "DOUBLE"),
    ("bid_price", "DOUBLE"),
    ("bid_amount", "DOUBLE"),
)

#: Column names and DuckDB types of every Tardis CSV dataset, in file order.
SCHEMAS: Final[dict[str, tuple[tuple[str, str], ...]]] = {
    "trades": COMMON_COLUMNS + _TRADE_LIKE,
    "incremental_book_L2": COMMON_COLUMNS
    + (
        ("is_snapshot", "BOOLEAN"),
        ("side", "VARCHAR"),
        ("price", "DOUBLE"),
        ("amount", "DOUBLE"),
    ),
    "book_snapshot_25": COMMON_COLUMNS + _book_snapshot_columns(25),
    "book_snapshot_5": COMMON_COLUMNS + _book_snapshot_columns(5),
    "quotes": COMMON_COLUMNS + _QUOTE_LIKE,
    "book_ticker": COMMON_COLUMNS + _QUOTE_LIKE,
    "derivative_ticker": COMMON_COLUMNS
    + (
        ("funding_timestamp", "BIGINT"),
        ("funding_rate", "DOUBLE"),
        ("predicted_funding_rate", "DOUBLE"),
        ("open_interest", "DOUBLE"),
        ("last_price", "DOUBLE"),
        ("index_price", "DOUBLE"),
        ("mark_price", "DOUBLE"),
    ),
    "liquidations": COMMON_COLUMNS + _TRADE_LIKE,
    "options_chain": COMMON_COLUMNS
    + (
        ("type", "VARCHAR"),
        ("strike_price", "DOUBLE"),
        ("expiration", "BIGINT"),
        ("open_interest", "DOUBLE"),
        ("last_price", "DOUBLE"),
        ("bid_price", "DOUBLE"),
        ("bid_amount", "DOUBLE"),
        ("bid_iv", "DOUBLE"),
        ("ask_price", "DOUBLE"),
        ("ask_amount", "DOUBLE"),
        ("ask_iv", "DOUBLE"),
        ("mark_price", "DOUBLE"),
        ("mark_iv", "DOUBLE"),
        ("underlying_index", "VARCHAR"),
        ("underlying_price", "DOUBLE"),
        ("delta", "DOUBLE"),
        ("gamma", "DOUBLE"),
        ("vega", "DOUBLE"),
        ("theta", "DOUBLE"),
        ("rho", "DOUBLE"),
    ),
}

#: Every dataset type the Tardis Datasets API serves.
DATA_TYPES: Final = tuple(SCHEMAS)


def columns(data_type: str) -> tuple[str, ...]:
    """Return the CSV header column names of a data type, in file order."""
    return tuple(name for name, _ in SCHEMAS[data_type])


def header_line(data_type: str) -> str:
    """Return the exact CSV header line (without newline) Tardis writes for a data type."""
    return ",".join(columns(data_type))
