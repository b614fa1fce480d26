"""Grouped datasets (one file, many instruments) and derived data types, as the emulator serves them."""

from __future__ import annotations

import datetime as dt
import gzip
import itertools

import pytest
import requests

from tick_assets.emulator.derived import BOOK_TICKER_DELAY_US
from tick_assets.tardis import errors
from tick_assets.tardis.datatypes import header_line

DAY = dt.date(2024, 1, 2)


def _rows(client, exchange: str, data_type: str, symbol: str) -> list[list[str]]:
    path = client.download(exchange, data_type, symbol, DAY, check_availability=True).path
    lines = gzip.decompress(path.read_bytes()).decode().splitlines()
    assert lines[0] == header_line(data_type)
    return [line.split(",") for line in lines[1:]]


def test_grouped_ids_are_listed_with_their_own_data_types(client) -> None:
    details = client.exchange_details("deribit")
    assert {"PERPETUALS", "FUTURES", "OPTIONS"} <= set(details.symbols)
    assert details.symbols["OPTIONS"].data_types == ("trades", "quotes", "options_chain")
    assert "liquidations" in details.symbols["PERPETUALS"].data_types
    assert "SPOT" in client.exchange_details("binance").symbols
    body = requests.get(f"{client.api_url}/exchanges/deribit", timeout=5).json()
    assert "OPTIONS" not in {s["id"] for s in body["availableSymbols"]}  # not an exchange instrument


@pytest.mark.parametrize(
    ("exchange", "group", "data_type", "members"),
    [
        ("binance", "SPOT", "trades", ["BTCUSDT", "ETHUSDT"]),
        ("deribit", "PERPETUALS", "derivative_ticker", ["BTC-PERPETUAL", "ETH-PERPETUAL"]),
        ("binance-futures", "PERPETUALS", "trades", ["BTCUSDT", "ETHUSDT"]),
    ],
)
def test_a_grouped_file_holds_every_member_in_receive_order(
    client, exchange, group, data_type, members
) -> None:
    grouped = _rows(client, exchange, data_type, group)
    assert sorted({r[1] for r in grouped}) == members
    received = [int(r[3]) for r in grouped]
    assert received == sorted(received)
    # Text for text: exactly the members' own rows, nothing re-formatted, nothing lost or added, and each
    # member's rows in their own file order (rows of one receive time keep it, in member order).
    own = {m: [",".join(r) for r in _rows(client, exchange, data_type, m)] for m in members}
    assert sorted(",".join(r) for r in grouped) == sorted(line for lines in own.values() for line in lines)
    for m in members:
        assert [",".join(r) for r in grouped if r[1] == m] == own[m]
    ties = [(a, b) for a, b in itertools.pairwise(grouped) if a[3] == b[3] and a[1] != b[1]]
    assert all(members.index(a[1]) < members.index(b[1]) for a, b in ties)


def test_options_group_has_a_chain_of_many_instruments_and_quotes_from_it(client) -> None:
    chain = _rows(client, "deribit", "options_chain", "OPTIONS")
    assert len({r[1] for r in chain}) > 20 and {r[4] for r in chain} == {"call", "put"}
    quotes = _rows(client, "deribit", "quotes", "OPTIONS")
    quoted = [r for r in chain if r[9] or r[12]]  # a bid or an ask
    assert len(quotes) == len(quoted) and quotes[0][:4] == quoted[0][:4]
    # Trades at the touch of chain updates: a buy at that update's ask, a sell at its bid.
    touch = {(r[1], r[3]): (r[9], r[12]) for r in chain if r[9] and r[12]}
    trades = _rows(client, "deribit", "trades", "OPTIONS")
    assert 0 < len(trades) < len(touch) and {t[5] for t in trades} == {"buy", "sell"}
    for t in trades:
        bid, ask = touch[(t[1], t[3])]
        assert t[6] == (ask if t[5] == "buy" else bid) and 0.1 <= float(t[7]) <= 5.0
    assert [int(t[4]) for t in trades] == sorted(int(t[4]) for t in trades)  # ids ascend


def test_data_types_a_group_does_not_offer_are_refused_with_400(client) -> None:
    with pytest.raises(errors.NotOfferedError, match="does not offer 'book_snapshot_25' for OPTIONS"):
        client.download("deribit", "book_snapshot_25", "OPTIONS", DAY, check_availability=True)
    with pytest.raises(errors.BadRequestError, match="invalid data type 'book_snapshot_25' for OPTIONS"):
        client.download("deribit", "book_snapshot_25", "OPTIONS", DAY)


def test_book_ticker_carries_the_quotes_changes_on_its_own_clock(client) -> None:
    quotes, ticker = (
        _rows(client, "binance", "quotes", "BTCUSDT"),
        _rows(client, "binance", "book_ticker", "BTCUSDT"),
    )
    assert len(ticker) == len(quotes) > 0
    assert [r[:3] + r[4:] for r in ticker] == [r[:3] + r[4:] for r in quotes]
    delays = [int(t[3]) - int(q[3]) for t, q in zip(ticker, quotes, strict=True)]
    assert min(delays) >= 0 and max(delays) < BOOK_TICKER_DELAY_US + 1000
    received = [int(r[3]) for r in ticker]
    assert received == sorted(received) and all(int(r[3]) >= int(r[2]) for r in ticker)
    assert "book_ticker" not in client.exchange_details("deribit").symbols["BTC-PERPETUAL"].data_types
