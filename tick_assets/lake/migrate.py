"""The lake layout of code version lake-v1 (`<root>/<data_type>/...`) moved to `<root>/raw/<data_type>/...`."""

from __future__ import annotations

import os
from pathlib import Path

from tick_assets.lake.errors import LakeError
from tick_assets.lake.layout import EXCHANGE_KEY, RAW
from tick_assets.tardis.datatypes import DATA_TYPES


def old_layout_folders(root: Path) -> list[Path]:
    """The data type folders of a lake written in the lake-v1 layout (directly under the root)."""
    root = Path(root)
    return [root / t for t in DATA_TYPES if any((root / t).glob(f"{EXCHANGE_KEY}=*"))]


def check_layout(root: Path) -> None:
    """Raise LakeError, saying how to migrate, if the lake still has folders of the lake-v1 layout."""
    old = old_layout_folders(root)
    if old:
        raise LakeError(
            f"The lake {root} holds partitions in the old layout ({', '.join(p.name for p in old)} directly under "
            f"the root; they now live under {RAW}/). Run `tick-assets lake migrate` once to move them (a rename, "
            "no copy), then re-materialize at leisure: Dagster shows them as outdated (code version lake-v2)."
        )


def migrate_layout(root: Path) -> list[tuple[Path, Path]]:
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
