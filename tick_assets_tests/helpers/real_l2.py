"""An incremental_book_L2 stream derived from a real book_snapshot_25 head, so the book replay and its proof run on
real prices and sizes (no real L2 sample exists in ../shared/tardis_real_samples).

The first snapshot row becomes the L2 snapshot message; every later row becomes one update message: each level
whose size changed or that is new, with its new size, and a delete (`amount = 0`) for each level that left. The
values are the CSV's own text, never re-formatted, so the rebuilt top 25 must equal each real snapshot exactly.
"""

from __future__ import annotations

import csv
import gzip
from pathlib import Path

SAMPLES = Path(__file__).resolve().parents[2].parent / "shared" / "tardis_real_samples"
REAL_BOOK_SNAPSHOT_25 = SAMPLES / "nautechsystems__binance-futures_book_snapshot_25_BTCUSDT.csv"
L2_HEADER = ["exchange", "symbol", "timestamp", "local_timestamp", "is_snapshot", "side", "price", "amount"]


def _levels(row: dict[str, str], side: str) -> dict[str, str]:
    """{price text: amount text} of one side of a snapshot row (empty levels left out)."""
    out = {}
    for i in range(25):
        price, amount = row.get(f"{side}[{i}].price", ""), row.get(f"{side}[{i}].amount", "")
        if price:
            out[price] = amount
    return out


def write_l2_from_snapshots(snapshot_csv: Path, out_gz: Path) -> int:
    """Write the L2 day (gzip CSV) whose book after message i is snapshot row i; returns the rows written."""
    with open(snapshot_csv, newline="") as f:
        rows = list(csv.DictReader(f))
    written = 0
    with gzip.open(out_gz, "wt", newline="") as out:
        w = csv.writer(out, lineterminator="\n")
        w.writerow(L2_HEADER)
        previous: dict[str, dict[str, str]] = {"bids": {}, "asks": {}}
        for n, row in enumerate(rows):
            head = [row["exchange"], row["symbol"], row["timestamp"], row["local_timestamp"]]
            for side, name in (("bids", "bid"), ("asks", "ask")):
                now = _levels(row, side)
                if n == 0:
                    changes = list(now.items())
                else:
                    changes = [(p, a) for p, a in now.items() if previous[side].get(p) != a]
                    changes += [(p, "0") for p in previous[side] if p not in now]
                for price, amount in changes:
                    w.writerow([*head, "true" if n == 0 else "false", name, price, amount])
                    written += 1
                previous[side] = now
    return written
