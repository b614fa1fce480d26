"""The proof figures of features/book (what its asset checks report) on emulator days of several scales, and on an
L2 stream derived from the real book_snapshot_25 head.

Per scale: two emulator days of incremental_book_L2 and the first day's book_snapshot_25 go into a fresh lake;
`proof_figures` rebuilds the first day's book, compares its top 25 with every snapshot and its closing book with the
second day's opening snapshot. Prints one markdown table.

Run: .venv/bin/python bench/book_proof.py [--scales 20000,200000,2000000] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import datetime as dt
import gzip
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tick_assets.emulator.synth import write_dataset
from tick_assets.features.book_proof import proof_figures
from tick_assets.features.grid import DaySlice
from tick_assets.lake import LocalLake, connect, partition_file, write_partition
from tick_assets_tests.helpers.real_l2 import REAL_BOOK_SNAPSHOT_25, write_l2_from_snapshots

DAY = dt.date(2024, 1, 2)
INSTRUMENT = ("binance-futures", "BTCUSDT")
COLUMNS = [
    ("l2_rows", "L2 rows", "{:,}"),
    ("snapshots_compared", "snapshots compared", "{:,}"),
    ("match_rate", "top-25 match", "{:.4f}"),
    ("bid_top25_overlap", "bid overlap D/D+1", "{:.2f}"),
    ("ask_top25_overlap", "ask overlap D/D+1", "{:.2f}"),
    ("bid_same_size_share", "bid same size", "{:.2f}"),
    ("ask_same_size_share", "ask same size", "{:.2f}"),
    ("mid_change_bps", "mid change bps", "{:.2f}"),
    ("pre_snapshot_rows", "pre-snapshot rows", "{:,}"),
    ("resnapshots", "re-snapshots", "{:,}"),
    ("absent_deletes", "absent deletes", "{:,}"),
    ("crossed_seconds", "crossed s", "{:.1f}"),
    ("locked_seconds", "locked s", "{:.1f}"),
]


def _store(lake: Path, source: Path, data_type: str, day: dt.date) -> None:
    write_partition(source, partition_file(lake, f"raw/{data_type}", *INSTRUMENT, day), data_type)


def emulator_figures(work: Path, scale: int, first: dt.date = DAY) -> dict:
    """Proof figures of the first of two emulator days at `scale`."""
    lake = work / f"lake-{scale}-{first}"
    for data_type, day in (
        ("incremental_book_L2", first),
        ("incremental_book_L2", first + dt.timedelta(days=1)),
        ("book_snapshot_25", first),
    ):
        source = work / f"{data_type}-{scale}-{day}.csv.gz"
        write_dataset(*INSTRUMENT, data_type, day, scale, source)
        _store(lake, source, data_type, day)
        source.unlink()
    with connect(LocalLake(lake)) as con:
        return proof_figures(con, lake, DaySlice(*INSTRUMENT, first))


def real_figures(work: Path) -> dict:
    """Proof figures of the L2 stream derived from the real binance-futures book_snapshot_25 head."""
    lake, day = work / "lake-real", dt.date(2020, 9, 1)
    l2, snapshots = work / "real-l2.csv.gz", work / "real-snapshots.csv.gz"
    write_l2_from_snapshots(REAL_BOOK_SNAPSHOT_25, l2)
    snapshots.write_bytes(gzip.compress(REAL_BOOK_SNAPSHOT_25.read_bytes()))
    _store(lake, l2, "incremental_book_L2", day)
    _store(lake, snapshots, "book_snapshot_25", day)
    with connect(LocalLake(lake)) as con:
        return proof_figures(con, lake, DaySlice(*INSTRUMENT, day))


def _cell(figures: dict, key: str, fmt: str) -> str:
    value = figures.get(key)
    return "n/a" if value is None else fmt.format(value)


def main() -> None:
    """Print the proof figures table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scales", default="20000,200000,2000000")
    parser.add_argument(
        "--more-days",
        default="2024-01-05,2024-01-07",
        help="more first days at 200,000 (2024-01-07 is a Sunday: the emulator starts each week at rest)",
    )
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        work = Path(tmp)
        rows = []
        for scale in (int(s) for s in args.scales.split(",")):
            started = time.perf_counter()
            rows.append((f"emulator {DAY} ({DAY:%a}), scale {scale:,}", emulator_figures(work, scale)))
            print(f"scale {scale:,}: {time.perf_counter() - started:.0f} s", file=sys.stderr)
        for day in (dt.date.fromisoformat(d) for d in args.more_days.split(",") if d):
            rows.append((f"emulator {day} ({day:%a}), scale 200,000", emulator_figures(work, 200_000, day)))
        rows.append(("real head, derived L2 (no next day)", real_figures(work)))
    print("| day | " + " | ".join(label for _, label, _ in COLUMNS) + " |")
    print("|---|" + "---:|" * len(COLUMNS))
    for name, figures in rows:
        print(f"| {name} | " + " | ".join(_cell(figures, k, f) for k, _, f in COLUMNS) + " |")


if __name__ == "__main__":
    main()
