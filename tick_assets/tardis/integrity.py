"""Integrity checks of downloaded .csv.gz files: gzip magic, full decode (CRC and length), size."""

from __future__ import annotations

import gzip
import zlib
from dataclasses import dataclass
from pathlib import Path

GZIP_MAGIC = b"\x1f\x8b"
_CHUNK = 1 << 20


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


def verify_gzip(path: Path) -> GzipInfo:
    """Decode the whole file (every member), checking CRC32 and length; raise GzipIntegrityError if bad."""
    compressed = path.stat().st_size
    if compressed == 0:
        raise GzipIntegrityError(f"{path.name}: zero-byte file (an empty day is an empty gzip, not no bytes)")
    with open(path, "rb") as raw:
        head = raw.read(2)
        if not has_gzip_magic(head):
            raise GzipIntegrityError(f"{path.name}: not a gzip file (first bytes {head!r})")
        raw.seek(0)
        uncompressed = 0
        try:
            with gzip.GzipFile(fileobj=raw, mode="rb") as gz:
                while chunk := gz.read(_CHUNK):
                    uncompressed += len(chunk)
        except (OSError, EOFError, zlib.error) as exc:
            raise GzipIntegrityError(f"{path.name}: corrupt or truncated gzip ({exc})") from exc
    return GzipInfo(compressed_bytes=compressed, uncompressed_bytes=uncompressed)
