"""The exchanges, symbols and data types the emulator serves, with their market parameters."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

DERIVATIVE_TYPES = (
    "trades",
    "book_snapshot_25",
    "book_snapshot_5",
    "quotes",
    "incremental_book_L2",
    "derivative_ticker",
    "liquidations",
)
SPOT_TYPES = ("trades", "book_snapshot_25", "book_snapshot_5", "quotes", "incremental_book_L2")
#: Binance also publishes its own best bid/ask channel (bookTicker) as `book_ticker`.
BINANCE_DERIVATIVE_TYPES = (*DERIVATIVE_TYPES, "book_ticker")
BINANCE_SPOT_TYPES = (*SPOT_TYPES, "book_ticker")
#: What grouped ids offer (the real lists come from datasets.symbols; these follow published examples).
GROUP_TYPES = {
    "PERPETUALS": ("trades", "derivative_ticker", "liquidations"),
    "FUTURES": ("trades", "derivative_ticker", "liquidations"),
    "SPOT": ("trades",),
    "OPTIONS": ("trades", "quotes", "options_chain"),
}
#: The symbol type whose instruments a grouped id holds.
GROUP_MEMBER_TYPE = {"PERPETUALS": "perpetual", "FUTURES": "future", "SPOT": "spot", "OPTIONS": "option"}


@dataclass(frozen=True)
class SymbolSpec:
    """One dataset symbol: its availability and the parameters of its synthetic market."""

    id: str
    type: str  # 'perpetual' | 'spot' | 'future'
    available_since: dt.date
    data_types: tuple[str, ...]
    base_price: float
    tick_units: int  # tick size = tick_units / 10**price_decimals
    price_decimals: int
    lot_units: int  # lot size = lot_units / 10**amount_decimals
    amount_decimals: int
    trade_id_style: str = "numeric"  # 'numeric' | 'uuid'
    available_to: dt.date | None = None

    @property
    def tick_size(self) -> float:
        """Price increment of the book."""
        return self.tick_units / 10**self.price_decimals

    @property
    def lot_size(self) -> float:
        """Amount increment of orders and trades."""
        return self.lot_units / 10**self.amount_decimals


@dataclass(frozen=True)
class ExchangeSpec:
    """One exchange of the emulator and the dataset symbols it lists."""

    id: str
    name: str
    available_since: dt.date
    symbols: tuple[SymbolSpec, ...]
    #: Case of the exchange's own symbol ids in availableSymbols (Binance: lower; Deribit, BitMEX: upper).
    native_case: str = "upper"
    #: Grouped dataset ids (PERPETUALS, SPOT, FUTURES, OPTIONS): one file holds every instrument of the kind.
    groups: tuple[str, ...] = ()
    #: The underlying of the OPTIONS group's chain.
    options_underlying: str = "BTC"

    def group_members(self, group: str) -> tuple[SymbolSpec, ...]:
        """The catalog symbols a grouped file holds (none for OPTIONS: its chain is generated whole)."""
        return tuple(s for s in self.symbols if s.type == GROUP_MEMBER_TYPE[group])

    def group_available_since(self, group: str) -> dt.date:
        """First day of a grouped dataset: its earliest member's (the exchange's for OPTIONS)."""
        members = self.group_members(group)
        return min((s.available_since for s in members), default=self.available_since)

    def native_symbol_id(self, dataset_id: str) -> str:
        """The exchange-native id of a dataset symbol, in the exchange's own case."""
        return dataset_id.lower() if self.native_case == "lower" else dataset_id

    def symbol(self, symbol_id: str) -> SymbolSpec | None:
        """Return the symbol with this dataset id, or None."""
        return next((s for s in self.symbols if s.id == symbol_id), None)


_D = dt.date

CATALOG: dict[str, ExchangeSpec] = {
    e.id: e
    for e in (
        ExchangeSpec(
            "binance-futures",
            "Binance USDT Futures",
            _D(2019, 11, 17),
            (
                SymbolSpec(
                    "BTCUSDT", "perpetual", _D(2019, 11, 17), BINANCE_DERIVATIVE_TYPES, 42000.0, 1, 1, 1, 3
                ),
                SymbolSpec(
                    "ETHUSDT", "perpetual", _D(2019, 11, 27), BINANCE_DERIVATIVE_TYPES, 2300.0, 1, 2, 1, 3
                ),
            ),
            native_case="lower",
            groups=("PERPETUALS",),
        ),
        ExchangeSpec(
            "deribit",
            "Deribit",
            _D(2019, 3, 30),
            (
                SymbolSpec(
                    "BTC-PERPETUAL", "perpetual", _D(2019, 3, 30), DERIVATIVE_TYPES, 42000.0, 5, 1, 10, 0
                ),
                SymbolSpec(
                    "ETH-PERPETUAL", "perpetual", _D(2019, 3, 30), DERIVATIVE_TYPES, 2300.0, 5, 2, 1, 0
                ),
                # A dated future: listed 2023-09-29, expired 2024-03-29 08:00 UTC (its data ends that day).
                SymbolSpec(
                    "BTC-29MAR24",
                    "future",
                    _D(2023, 9, 29),
                    DERIVATIVE_TYPES,
                    42500.0,
                    25,
                    1,
                    10,
                    0,
                    available_to=_D(2024, 3, 30),
                ),
            ),
            groups=("PERPETUALS", "FUTURES", "OPTIONS"),
        ),
        ExchangeSpec(
            "bitmex",
            "BitMEX",
            _D(2019, 3, 30),
            (
                SymbolSpec(
                    "XBTUSD", "perpetual", _D(2019, 3, 30), DERIVATIVE_TYPES, 42000.0, 5, 1, 100, 0, "uuid"
                ),
            ),
            groups=("PERPETUALS",),
        ),
        ExchangeSpec(
            "binance",
            "Binance Spot",
            _D(2019, 3, 30),
            (
                SymbolSpec("BTCUSDT", "spot", _D(2019, 3, 30), BINANCE_SPOT_TYPES, 42000.0, 1, 2, 1, 5),
                SymbolSpec("ETHUSDT", "spot", _D(2019, 3, 30), BINANCE_SPOT_TYPES, 2300.0, 1, 2, 1, 4),
            ),
            native_case="lower",
            groups=("SPOT",),
        ),
        # A symbol that needs percent-encoding in the URL and sanitising in the file name.
        ExchangeSpec(
            "bitget-futures",
            "Bitget Futures",
            _D(2023, 1, 1),
            (SymbolSpec("??USDT", "perpetual", _D(2023, 1, 1), ("trades",), 1.0, 1, 4, 1, 0),),
        ),
    )
}
