"""Data types the emulator derives from another of its files, so the two agree like the real ones do.

* `book_ticker` (the exchange's own best bid/ask channel, e.g. Binance `bookTicker`) carries the same top-of-book
  changes as `quotes` (Tardis's top of book from the L2 stream), received on its own connection: the same rows,
  each `local_timestamp` moved by a deterministic 0-400 µs, still in file order.
* the OPTIONS group's `quotes`: each `options_chain` row that has a bid or an ask (the chain carries every
  option's best bid and ask), and its `trades`: some of those updates as taker trades at the touch.

The OPTIONS quotes and trades copy the chain's cells as text, never re-formatted.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from tick_assets.emulator import csvout
from tick_assets.emulator.groups import read_text_table
from tick_assets.tardis import datatypes

#: The book_ticker stream's extra receive delay is uniform in [0, this) microseconds.
BOOK_TICKER_DELAY_US = 400


def book_ticker_tables(quotes: Iterable[pa.Table]) -> Iterator[pa.Table]:
    """The book_ticker day of a quotes day, table by table: the same rows, each `local_timestamp` moved by a
    deterministic delay of its own value (so chunking changes nothing), kept non-decreasing across tables."""
    floor = np.iinfo(np.int64).min
    for table in quotes:
        local = pc.cast(table["local_timestamp"], pa.int64()).to_numpy(zero_copy_only=False)
        stamp = pc.cast(table["timestamp"], pa.int64()).to_numpy(zero_copy_only=False)
        x = local.astype(np.uint64) * np.uint64(
            0x9E3779B97F4A7C15
        )  # a SplitMix-style hash: machine independent
        x ^= x >> np.uint64(31)
        delay = (x % np.uint64(BOOK_TICKER_DELAY_US)).astype(np.int64)
        # Receive times stay non-decreasing (files are in receive order) and never precede the exchange's stamp.
        moved = np.maximum(np.maximum.accumulate(np.maximum(local + delay, floor)), stamp)
        if moved.size:
            floor = int(moved[-1])
        column = pc.cast(pa.array(moved, pa.int64()), table.schema.field("local_timestamp").type)
        yield table.set_column(table.schema.get_field_index("local_timestamp"), "local_timestamp", column)


def write_quotes_from_chain(chain_file: Path, out_path: Path, compresslevel: int) -> int:
    """Write the OPTIONS group's quotes: each options_chain row that has a bid or an ask."""
    chain = read_text_table(chain_file, "options_chain")
    if chain is None:
        return csvout.write_csv_gz(out_path, "quotes", [], compresslevel)
    quoted = chain.filter(pc.or_(pc.is_valid(chain["bid_price"]), pc.is_valid(chain["ask_price"])))
    names = list(datatypes.columns("quotes"))
    return csvout.write_csv_gz(out_path, "quotes", [quoted.select(names)], compresslevel)


def write_trades_from_chain(chain_file: Path, out_path: Path, compresslevel: int) -> int:
    """Write the OPTIONS group's trades: about one chain update in six that has both a bid and an ask becomes
    a taker trade at the touch (a buy lifts the ask, a sell hits the bid) of 0.1-5 contracts."""
    chain = read_text_table(chain_file, "options_chain")
    if chain is None:
        return csvout.write_csv_gz(out_path, "trades", [], compresslevel)
    both = chain.filter(pc.and_(pc.is_valid(chain["bid_price"]), pc.is_valid(chain["ask_price"])))
    local = pc.cast(both["local_timestamp"], pa.int64()).to_numpy(zero_copy_only=False)
    x = local.astype(np.uint64) * np.uint64(0xBF58476D1CE4E5B9)
    x ^= x >> np.uint64(29)
    picked = np.flatnonzero(x % np.uint64(6) == 0)
    trades = both.take(pa.array(picked, pa.int64()))
    buy = (x[picked] >> np.uint64(8)) % np.uint64(2) == 0
    price = pc.if_else(pa.array(buy), trades["ask_price"], trades["bid_price"])
    amount = pc.cast(pa.array(((x[picked] >> np.uint64(16)) % np.uint64(50) + 1) / 10.0), pa.string())
    first_id = 200_000_000 + int(local[0] // 1_000_000 % 86_400) * 100 if local.size else 0
    ids = pc.cast(pa.array(first_id + np.arange(picked.size, dtype=np.int64)), pa.string())
    table = pa.table(
        [
            trades["exchange"],
            trades["symbol"],
            trades["timestamp"],
            trades["local_timestamp"],
            ids,
            pa.array(np.where(buy, "buy", "sell")),
            price,
            amount,
        ],
        names=list(datatypes.columns("trades")),
    )
    return csvout.write_csv_gz(out_path, "trades", [table], compresslevel)
