"""Where the lake's bytes live: a local folder (temp file + rename) behind one small interface.

Every writer of a partition (raw conversions, features, analytics, a user's asset through the IO manager)
goes through `Lake.writing`: it writes a private temp file and the lake publishes it whole, so a reader sees
the old partition or the new one, never half, and a failed write (a full disk, a crash) leaves the stored
version and no temp behind. Readers get a path or URI DuckDB can open.
"""

from __future__ import annotations

import errno
import os
import re
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tick_assets.durable import fsync_path, owned_temp, remove_abandoned_temps
from tick_assets.lake.errors import LakeError
from tick_assets.lake.layout import TEMP_SUFFIX, check_glob_safe, partition_glob


class LakeWriteError(LakeError):
    """A partition could not be stored (no space, a failed upload); the stored version is unchanged."""


class PartitionMissingError(LakeError, FileNotFoundError):
    """A partition a step needs is not in the lake."""


class Lake(ABC):
    """The lake root: where partition files are published and read (paths relative to the root, with '/')."""

    @property
    @abstractmethod
    def url(self) -> str:
        """The root as a user writes it: a folder, or `s3://bucket/prefix`."""

    @abstractmethod
    def uri(self, relpath: str) -> str:
        """What DuckDB opens for a file or glob under the root."""

    @abstractmethod
    def exists(self, relpath: str) -> bool:
        """True if the file is in the lake."""

    @abstractmethod
    def files(self, dataset: str) -> list[str]:
        """Every partition file of a dataset, relative to the root, sorted."""

    @abstractmethod
    def datasets(self) -> list[str]:
        """Every dataset that holds at least one partition (e.g. `raw/trades`, `features/depth`)."""

    @abstractmethod
    @contextmanager
    def writing(self, relpath: str) -> Iterator[Path]:
        """Yield a private local temp path; when the block ends without error, publish it whole at `relpath`."""

    def require(self, relpath: str, hint: str = "") -> str:
        """The URI of a file that must exist; PartitionMissingError (saying what to materialize) otherwise."""
        if not self.exists(relpath):
            raise PartitionMissingError(
                f"{self.uri(relpath)} is missing: {hint or 'materialize its asset partition first'}."
            )
        return self.uri(relpath)

    def dataset_glob(self, dataset: str) -> str:
        """The read_parquet glob of every partition of a dataset (hive keys exchange_id, symbol_id, date)."""
        return self.uri(partition_glob(dataset))

    def prepare(self, con) -> None:  # noqa: B027 - a no-op for lakes DuckDB reads natively
        """Make a DuckDB connection able to read this lake's URIs."""


class LocalLake(Lake):
    """A lake in a local (or mounted) folder: temp file in the partition's folder, fsync, atomic rename."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root).absolute()

    def __repr__(self) -> str:
        return f"LocalLake({str(self.root)!r})"

    @property
    def url(self) -> str:
        """The root folder."""
        return str(self.root)

    def uri(self, relpath: str) -> str:
        """The absolute path."""
        return str(self.root / relpath)

    def dataset_glob(self, dataset: str) -> str:
        """The glob of a dataset's files (the root checked to be glob-safe: DuckDB reads `*?[]{}` as patterns)."""
        check_glob_safe(str(self.root))
        return super().dataset_glob(dataset)

    def exists(self, relpath: str) -> bool:
        """True if the file exists."""
        return (self.root / relpath).is_file()

    def files(self, dataset: str) -> list[str]:
        """Partition files of a dataset, relative to the root."""
        return sorted(p.relative_to(self.root).as_posix() for p in self.root.glob(partition_glob(dataset)))

    def datasets(self) -> list[str]:
        """Every dataset that holds at least one partition (e.g. `raw/trades`, `features/depth`)."""
        found = {
            p.parent.relative_to(self.root).as_posix() for p in self.root.rglob("exchange_id=*") if p.is_dir()
        }
        return sorted(d for d in found if "/" in d)

    @contextmanager
    def writing(self, relpath: str) -> Iterator[Path]:
        """Temp file beside the final one, renamed into place once written and fsynced."""
        dest = self.root / relpath
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            remove_abandoned_temps(dest.parent, TEMP_SUFFIX)
        except OSError as exc:
            raise write_error(dest, exc) from exc
        tmp = owned_temp(dest, TEMP_SUFFIX)
        try:
            with write_errors(dest):
                yield tmp
            try:
                fsync_path(tmp)
                os.replace(tmp, dest)
                fsync_path(dest.parent)
            except OSError as exc:
                raise write_error(dest, exc) from exc
        finally:
            tmp.unlink(missing_ok=True)


def is_disk_full(exc: BaseException) -> bool:
    """A full disk, as the OS reports it or as DuckDB does (its own IOException, no errno)."""
    return (
        getattr(exc, "errno", None) == errno.ENOSPC or "No space left" in str(exc) or "Disk full" in str(exc)
    )


@contextmanager
def write_errors(dest: Path | str) -> Iterator[None]:
    """Turn a failure of the block writing the temp file of `dest` into LakeWriteError (any OSError, and a
    full disk however it is reported); other errors pass through."""
    try:
        yield
    except OSError as exc:
        raise write_error(dest, exc) from exc
    except Exception as exc:
        if is_disk_full(exc):
            raise write_error(dest, exc) from exc
        raise


def failed_folder(exc: BaseException) -> Path | None:
    """The folder of the file or folder the OS or DuckDB could not write, if the error names it."""
    name = getattr(exc, "filename", None)
    if not name:
        found = re.search(r'Could not write file \\?"([^"\\]+)', str(exc))
        name = found.group(1) if found else None
    return Path(name).parent if name else None


def write_error(dest: Path | str, exc: BaseException) -> LakeWriteError:
    """The LakeWriteError of a failed write of `dest`: what went wrong, that nothing stored changed, what to do."""
    if is_disk_full(exc):
        # The full disk is not always the partition's: an S3 lake stages uploads in a scratch folder, and every
        # conversion makes its DuckDB spill folder under the scratch folder. Name the one that was refused.
        folder = failed_folder(exc)
        why = "no space left on the device" + (f" of {folder}" if folder else "")
        todo = (
            "free space on that disk (the lake's folder, or the scratch folder under TICK_ASSETS_DATA_DIR that "
            "holds S3 uploads and DuckDB spill files; or point TICK_ASSETS_LAKE / TICK_ASSETS_DATA_DIR at a disk "
            "with room) and re-run"
        )
    else:
        why = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else exc!r}"
        todo = "check the folder's permissions and space, then re-run"
    return LakeWriteError(
        f"Could not store {dest}: {why}. The stored partition (if any) is unchanged and no temp file is left; {todo}."
    )


def as_lake(lake: Lake | Path | str) -> Lake:
    """`lake` itself, or the lake at a root folder or URL (so notebook callers may pass a path)."""
    return lake if isinstance(lake, Lake) else open_lake(lake)


def open_lake(url: str | Path, scratch: Path | None = None) -> Lake:
    """The lake at `url`: a local folder, or `s3://bucket/prefix` (uploads staged under `scratch`, by default
    the system temp folder)."""
    text = str(url)
    if text.startswith("s3://"):
        from tick_assets.lake.s3 import S3Lake

        return S3Lake(text, scratch or Path(tempfile.gettempdir()) / "tick-assets")
    if "://" in text:
        raise LakeError(f"Unsupported lake root {text!r}: use a local folder or s3://bucket/prefix.")
    return LocalLake(text)
