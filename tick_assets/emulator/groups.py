"""Grouped datasets (PERPETUALS, SPOT, FUTURES, OPTIONS): one day file holding many instruments.

Tardis serves a grouped id as one file per day whose `symbol` column carries each row's real instrument, in
`local_timestamp` order like every dataset file. The emulator builds it from its members' own day files, kept
text for text (cells are never re-formatted), merged by receive time with ties kept in member order. A grouped
day is built in memory (its members' rows as text), which is fine at the emulator's scales.
"""

from __future__ import annotations

import gzip
from collections.abc import Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from tick_assets.emulator import csvout
from tick_assets.tardis import datatypes


def read_text_table(path: Path, data_type: str) -> pa.Table | None:
    """A Tardis .csv.gz as a table of strings (empty cells null), or None for an empty gzip."""
    with gzip.open(path, "rb") as f:
        if not f.read(1):
            return None
    names = datatypes.columns(data_type)
    return pacsv.read_csv(
        path,
        read_options=pacsv.ReadOptions(column_names=list(names), skip_rows=1),
        convert_options=pacsv.ConvertOptions(
            column_types=dict.fromkeys(names, pa.string()), strings_can_be_null=True, null_values=[""]
        ),
    )


def _by_receive_time(tables: Sequence[pa.Table]) -> pa.Table:
    merged = pa.concat_tables(tables)
    # sort_indices is stable: rows of one local_timestamp keep their file and member order.
    order = pc.sort_indices(pc.cast(merged["local_timestamp"], pa.int64()))
    return merged.take(order)


def write_grouped(member_files: Sequence[Path], data_type: str, out_path: Path, compresslevel: int) -> int:
    """Merge the members' day files of one data type into one grouped day file; return its row count."""
    tables = [t for t in (read_text_table(p, data_type) for p in member_files) if t is not None]
    merged = [_by_receive_time(tables)] if tables else []  # no rows: an empty gzip, like Tardis
    return csvout.write_csv_gz(out_path, data_type, merged, compresslevel)
