"""Integrity checks of downloaded .csv.gz files: gzip magic, full decode (CRC and length), size.

The decode uses ISA-L (`isal`, about 3x zlib's speed) when it is installed and Python's gzip otherwise; both
check every member's CRC32 and length the same way.
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

try:
    from isal import igzip as _gzip
    from isal.igzip_lib import IsalError
except (
    ImportError
):  # pragma: no cover - isal is a dependency; the fallback keeps a notebook without it working
    _gzip = gzip  # type: ignore[assignment]
    IsalError = zlib.error  # type: ignore[assignment,misc]

GZIP_MAGIC = b"\x1f\x8b"
_CHUNK = 1 << 20
#: What a decoder raises on a corrupt or truncated gzip.
DECODE_ERRORS = (OSError, EOFError, zlib.error, IsalError)


class GzipIntegrityError(Exception):
    """The file is not a complete, valid gzip stream."""


@dataclass(frozen=True)
class GzipInfo:
    """What a full decode of a gzip file found."""

    compressed_bytes: int
    uncompressed_bytes: int

    @property
    def empty(self) -> bool:
        """True for an empty gzip: Tardis's 'no data for this day'."""
        return self.uncompressed_bytes == 0


def has_gzip_magic(head: bytes) -> bool:
    """Return True if the bytes start with the gzip magic number."""
    return head[:2] == GZIP_MAGIC


def open_gzip(raw: BinaryIO) -> BinaryIO:
    """A reading gzip stream over `raw` (every member; CRC and length checked at each member's end)."""
    return _gzip.GzipFile(fileobj=raw, mode="rb")  # type: ignore[return-value]


def verify_gzip(path: Path, sink: Callable[[bytes], object] | None = None) -> GzipInfo:
    """Decode the whole file (every member), checking CRC32 and length; raise GzipIntegrityError if bad.

    `sink`, if given, receives every decoded chunk in order: the decode that verifies a file can also feed its
    conversion, so a day is decoded once.
    """
    compressed = path.stat().st_size
    if compressed == 0:
        raise GzipIntegrityError(f"{path.name}: zero-byte file (an empty day is an empty gzip, not no bytes)")
    with open(path, "rb") as raw:
        head = raw.read(2)
        if not has_gzip_magic(head):
            raise GzipIntegrityError(f"{path.name}: not a gzip file (first bytes {head!r})")
        raw.seek(0)
        uncompressed = 0
        with open_gzip(raw) as gz:
            while chunk := _decoded(gz, path):
                uncompressed += len(chunk)
                if sink is not None:  # outside the decode's try: a failing sink is not a corrupt file
                    sink(chunk)
    return GzipInfo(compressed_bytes=compressed, uncompressed_bytes=uncompressed)


def _decoded(gz: BinaryIO, path: Path) -> bytes:
    try:
        return gz.read(_CHUNK)
    except DECODE_ERRORS as exc:
        raise GzipIntegrityError(f"{path.name}: corrupt or truncated gzip ({exc})") from exc
