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


@dataclass(frozen=True)
class SymbolSpec:
    """One dataset symbol: its availability and the parameters of its synthetic market."""

    id: str
    type: str  # 'perpetual' | 'spot'
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
                SymbolSpec("BTCUSDT", "perpetual", _D(2019, 11, 17), DERIVATIVE_TYPES, 42000.0, 1, 1, 1, 3),
                SymbolSpec("ETHUSDT", "perpetual", _D(2019, 11, 27), DERIVATIVE_TYPES, 2300.0, 1, 2, 1, 3),
            ),
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
            ),
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
        ),
        ExchangeSpec(
            "binance",
            "Binance Spot",
            _D(2019, 3, 30),
            (SymbolSpec("BTCUSDT", "spot", _D(2019, 3, 30), SPOT_TYPES, 42000.0, 1, 2, 1, 5),),
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
