"""URL building, file naming and input validation match the official clients."""

from __future__ import annotations

import datetime as dt

import pytest

from tick_assets.tardis.errors import InvalidRequestError
from tick_assets.tardis.urls import (
    cache_file_name,
    dataset_url,
    normalize_symbol,
    parse_date,
    validate_data_type,
    validate_exchange,
    validate_symbol,
)

BASE = "https://datasets.tardis.dev/v1"


def test_official_curl_example_url_and_file_name() -> None:
    day = dt.date(2019, 11, 1)
    assert dataset_url(BASE, "deribit", "trades", day, "BTC-PERPETUAL") == (
        "https://datasets.tardis.dev/v1/deribit/trades/2019/11/01/BTC-PERPETUAL.csv.gz"
    )
    assert (
        cache_file_name("deribit", "trades", day, "BTC-PERPETUAL")
        == "deribit_trades_2019-11-01_BTC-PERPETUAL.csv.gz"
    )


@pytest.mark.parametrize(
    ("symbol", "normalized", "url_part", "file_part"),
    [
        ("btcusdt", "BTCUSDT", "BTCUSDT", "BTCUSDT"),
        ("BTC/USD:USD", "BTC-USD-USD", "BTC-USD-USD", "BTC-USD-USD"),
        ("??USDT", "??USDT", "%3F%3FUSDT", "--USDT"),
        ("ETH-25SEP20", "ETH-25SEP20", "ETH-25SEP20", "ETH-25SEP20"),
        ("BTC USD", "BTC USD", "BTC%20USD", "BTC USD"),
    ],
)
def test_symbol_normalisation_encoding_and_sanitising(symbol, normalized, url_part, file_part) -> None:
    day = dt.date(2024, 3, 1)
    assert normalize_symbol(symbol) == normalized
    assert dataset_url(BASE, "bitget-futures", "trades", day, symbol).endswith(
        f"/2024/03/01/{url_part}.csv.gz"
    )
    assert (
        cache_file_name("bitget-futures", "trades", day, symbol)
        == f"bitget-futures_trades_2024-03-01_{file_part}.csv.gz"
    )


@pytest.mark.parametrize("symbol", ["", "   ", "../../etc", "..", "a\\b", "BTC\nUSDT", "x" * 200, "."])
def test_symbols_that_could_escape_or_break_paths_are_rejected(symbol: str) -> None:
    with pytest.raises(InvalidRequestError, match="symbol"):
        validate_symbol(symbol)


def test_path_separators_are_normalised_not_followed() -> None:
    # '/' is turned into '-' like the official clients do, so a symbol can never name a directory.
    assert validate_symbol("btc/usdt") == "BTC-USDT"


@pytest.mark.parametrize("exchange", ["", "Binance", "bin/ance", "../x", "a b", "x" * 80])
def test_bad_exchange_ids_are_rejected(exchange: str) -> None:
    with pytest.raises(InvalidRequestError, match="Invalid exchange"):
        validate_exchange(exchange)


def test_unknown_data_type_names_the_valid_ones() -> None:
    with pytest.raises(InvalidRequestError, match="Unknown data type 'book_snapshot_10'.*book_snapshot_25"):
        validate_data_type("book_snapshot_10")


@pytest.mark.parametrize("value", ["2024-13-01", "20240101", "2024-02-30", "yesterday", "", "2024-1-5"])
def test_malformed_dates_are_rejected(value: str) -> None:
    with pytest.raises(InvalidRequestError, match="Malformed date"):
        parse_date(value)


def test_dates_parse() -> None:
    assert parse_date("2024-02-29") == dt.date(2024, 2, 29)
    assert parse_date(dt.datetime(2024, 1, 2, 15, 0)) == dt.date(2024, 1, 2)
