"""Lakes written by earlier layouts, found and brought to the current one (`tick-assets lake migrate`).

- lake-v1 kept raw data types directly under the root (`<root>/<data_type>/...`): moved to `<root>/raw/...`.
- lake-v2 raw files stored book levels as 100 (or 20) columns and a copy of every timestamp as `*_utc`: rewritten
  in the lake-v3 columns (lake/schema.py), value for value, in file order.

A lake that has been checked (or migrated) holds the marker `raw/_layout.json`; `check_layout` then costs one
existence check.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from tick_assets.lake.book_layout import write_seconds
from tick_assets.lake.datasets import connect
from tick_assets.lake.errors import LakeError
from tick_assets.lake.layout import EXCHANGE_KEY, RAW, raw_dataset
from tick_assets.lake.parquet import ConversionOptions, copy_options
from tick_assets.lake.schema import (
    LAYOUT,
    LEGACY_LAYOUT,
    lake_select,
    layout_of,
    sql_string,
    store_select,
    stored_columns,
)
from tick_assets.lake.store import Lake, LocalLake, as_lake
from tick_assets.tardis.datatypes import DATA_TYPES

log = logging.getLogger(__name__)

#: Written once the lake's raw files are known to be of the current layout.
LAYOUT_MARKER = f"{RAW}/_layout.json"
MIGRATE_HINT = "Run `tick-assets lake migrate` once"


@dataclass
class Migration:
    """What `migrate_lake` did."""

    moved: list[tuple[Path, Path]] = field(default_factory=list)
    rewritten: list[str] = field(default_factory=list)


def old_layout_folders(root: Path) -> list[Path]:
    """The data type folders of a lake written in the lake-v1 layout (directly under the root)."""
    root = Path(root)
    return [root / t for t in DATA_TYPES if any((root / t).glob(f"{EXCHANGE_KEY}=*"))]


def file_layout(lake: Lake, data_type: str, relpath: str, con=None) -> str:
    """The layout of one raw file (lake-v2 or lake-v3); LakeError if its columns are of neither."""
    own = con is None
    con = con or connect(lake, threads=1)
    try:
        names = [
            r[0]
            for r in con.execute(
                f"DESCRIBE SELECT * FROM read_parquet({sql_string(lake.uri(relpath))}, hive_partitioning = false)"
            ).fetchall()
        ]
    finally:
        if own:
            con.close()
    layout = layout_of(data_type, names)
    if layout is None:
        raise LakeError(
            f"{lake.uri(relpath)}: its columns are neither the {LAYOUT} nor the {LEGACY_LAYOUT} columns of "
            f"{data_type}; it was not written by tick-assets. Move it out of the lake."
        )
    return layout


def legacy_files(lake: Lake, first_only: bool = False) -> list[tuple[str, str]]:
    """(data type, relpath) of every raw file in the lake-v2 columns, newest partitions first (`migrate_lake`
    rewrites oldest first, so an interrupted migration leaves its old files where this looks first); with
    `first_only`, at most one."""
    found = []
    with connect(lake, threads=1) as con:
        for data_type in DATA_TYPES:
            for relpath in reversed(lake.files(raw_dataset(data_type))):
                if file_layout(lake, data_type, relpath, con) == LEGACY_LAYOUT:
                    found.append((data_type, relpath))
                    if first_only:
                        return found
    return found


def check_layout(lake: Lake | Path) -> None:
    """Raise LakeError, saying how to migrate, if the lake holds raw partitions of an earlier layout; marks a
    lake found current so the next check is one existence check."""
    lake = as_lake(lake)
    if isinstance(lake, LocalLake):
        old = old_layout_folders(lake.root)
        if old:
            raise LakeError(
                f"The lake {lake.url} holds partitions in the lake-v1 layout ({', '.join(p.name for p in old)} "
                f"directly under the root; they now live under {RAW}/). {MIGRATE_HINT} (a rename, then a "
                f"rewrite of each raw file in the {LAYOUT} columns), then re-materialize at leisure: Dagster shows "
                f"them as outdated."
            )
    if lake.exists(LAYOUT_MARKER):
        return
    stale = legacy_files(lake, first_only=True)
    if stale:
        data_type, relpath = stale[0]
        raise LakeError(
            f"The lake {lake.url} holds raw partitions in the {LEGACY_LAYOUT} columns (e.g. {lake.uri(relpath)}: "
            f"{data_type} with stored *_utc columns{' and wide book levels' if 'book' in data_type else ''}). "
            f"{MIGRATE_HINT} to rewrite them in the {LAYOUT} columns (no download; the views and features read "
            "only the new columns), or delete them and re-materialize."
        )
    try:
        _mark(lake)
    except (
        LakeError,
        OSError,
    ) as exc:  # a read-only lake is current all the same; it is checked again next time
        log.warning("%s is current but its layout marker could not be written (%s)", lake.url, exc)


def _mark(lake: Lake) -> None:
    with lake.writing(LAYOUT_MARKER) as tmp:
        tmp.write_text(json.dumps({"layout": LAYOUT}) + "\n")


def _same_rows(con, data_type: str, old: str, new: str) -> bool:
    """True if the lake-v2 file `old` and the lake-v3 file `new` read as the same rows in the same order."""
    numbered = "SELECT row_number() OVER () AS n, * FROM (SELECT {cols} FROM read_parquet({src}))"
    a = numbered.format(cols=lake_select(data_type, LEGACY_LAYOUT), src=old)
    b = numbered.format(cols=lake_select(data_type), src=new)
    return all(
        con.execute(f"SELECT count(*) FROM ({x} EXCEPT ALL {y})").fetchall()[0][0] == 0
        for x, y in ((a, b), (b, a))
    )


def migrate_lake(lake: Lake | Path, options: ConversionOptions | None = None) -> Migration:
    """Bring a lake to the current layout: move lake-v1 folders under raw/ (a local lake), rewrite every lake-v2
    raw file in the lake-v3 columns (each published whole, so an interrupted run can be re-run), then mark it."""
    lake = as_lake(lake)
    options = options or ConversionOptions()
    done = Migration()
    if isinstance(lake, LocalLake):
        done.moved = migrate_folders(lake.root)
    with connect(lake) as con:
        for data_type, relpath in reversed(legacy_files(lake)):  # oldest first: see legacy_files
            source = sql_string(lake.uri(relpath))
            with lake.writing(relpath) as tmp:
                con.execute(
                    f"COPY (SELECT {store_select(data_type)} FROM read_parquet({source})) TO {sql_string(tmp)} "
                    f"({copy_options(options, data_type)})"
                )
                names = [
                    r[0]
                    for r in con.execute(
                        f"DESCRIBE SELECT * FROM read_parquet({sql_string(tmp)}, hive_partitioning = false)"
                    ).fetchall()
                ]
                if names != [c for c, _ in stored_columns(data_type)]:
                    raise LakeError(f"{relpath}: the rewrite gave columns {names}; the old file is kept")
                if not _same_rows(con, data_type, source, sql_string(tmp)):  # before it replaces the old file
                    raise LakeError(
                        f"{relpath}: the rewrite does not read back as the same rows; the old file is kept"
                    )
                write_seconds(con, lake, relpath, tmp, data_type, options)  # book days, as a conversion does
            done.rewritten.append(relpath)
    late = legacy_files(lake, first_only=True)
    if late:
        raise LakeError(
            f"{lake.uri(late[0][1])} was written in the {LEGACY_LAYOUT} columns during the migration: re-run it"
        )
    _mark(lake)
    return done


def migrate_folders(root: Path) -> list[tuple[Path, Path]]:
    """Move every lake-v1 data type folder under raw/ (merging into one that exists); returns (from, to) pairs."""
    moved = []
    for folder in old_layout_folders(root):
        target = Path(root) / RAW / folder.name
        target.mkdir(parents=True, exist_ok=True)
        for exchange_dir in sorted(folder.glob(f"{EXCHANGE_KEY}=*")):
            for partition in sorted(exchange_dir.glob("*/*")):  # symbol_id=/date=
                dest = target / partition.relative_to(folder)
                if dest.exists():
                    raise LakeError(
                        f"{partition} and {dest} both exist: keep one (the newer layout's is the one read) and re-run."
                    )
                dest.parent.mkdir(parents=True, exist_ok=True)
                os.replace(partition, dest)
                moved.append((partition, dest))
        _remove_empty_tree(folder)
    return moved


def _remove_empty_tree(folder: Path) -> None:
    for sub in sorted(folder.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        if sub.is_dir() and not any(sub.iterdir()):
            sub.rmdir()
    if folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()
