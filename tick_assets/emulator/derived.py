"""Data types the emulator derives from another of its files, so the two agree like the real ones do.

* `book_ticker` (the exchange's own best bid/ask channel, e.g. Binance `bookTicker`) carries the same top-of-book
  changes as `quotes` (Tardis's top of book from the L2 stream), received on its own connection: the same rows,
  each `local_timestamp` moved by a deterministic 0-400 µs, still in file order.
* the OPTIONS group's `quotes`: each `options_chain` row that has a bid or an ask (the chain carries every
  option's best bid and ask).

The OPTIONS quotes copy their cells as text, never re-formatted.
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
