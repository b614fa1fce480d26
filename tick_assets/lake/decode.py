"""Decode a csv.gz once, in a thread, into a pipe the conversion reads: the decode is also the file's check.

DuckDB reads the pipe as `/dev/fd/N`, so its own (zlib, single-stream) gzip reader is not used: the decode runs
on ISA-L beside DuckDB's parse instead of before it, and it verifies every member's CRC32 and length, which is
what makes a separate verifying pass over a fresh download unnecessary.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
from collections.abc import Iterator
from pathlib import Path

from tick_assets.tardis.integrity import GzipInfo, verify_gzip

#: Linux's F_SETPIPE_SZ: a 1 MB pipe buffer (the default cap of an unprivileged process) instead of 64 KB.
_F_SETPIPE_SZ = 1031
_PIPE_BYTES = 1 << 20


class _Stopped(Exception):
    """The reader is gone (cancelled): the decode stops at its next chunk."""


class DecodeFeed:
    """A decode of `source` writing into a pipe; `path` is what the reader opens, `finish()` the verdict."""

    def __init__(self, source: Path) -> None:
        self.source = source
        self._read_fd, self._write_fd = os.pipe()
        with contextlib.suppress(OSError):
            fcntl.fcntl(self._write_fd, _F_SETPIPE_SZ, _PIPE_BYTES)
        self._stop = threading.Event()
        self._info: GzipInfo | None = None
        self._error: BaseException | None = None
        self._finished = False
        self._thread = threading.Thread(target=self._run, name=f"decode {source.name}", daemon=True)
        self._thread.start()

    @property
    def path(self) -> str:
        """The pipe's path for a reader in this process (DuckDB's read_csv)."""
        return f"/dev/fd/{self._read_fd}"

    @property
    def finished(self) -> bool:
        """True once finish() was called (the pipe is closed)."""
        return self._finished

    def _write(self, chunk: bytes) -> None:
        view = memoryview(chunk)
        while view:
            if self._stop.is_set():
                raise _Stopped
            view = view[os.write(self._write_fd, view) :]

    def _run(self) -> None:
        try:
            self._info = verify_gzip(self.source, sink=self._write)
        except _Stopped:
            pass
        except BaseException as exc:  # handed to finish(): the reader's thread raises it
            self._error = exc
        finally:
            os.close(self._write_fd)

    def finish(self, *, abandon: bool = False) -> GzipInfo:
        """Wait for the decode to end (reading what the reader left) and return what it verified, or raise its
        GzipIntegrityError. `abandon` stops the decode instead (the conversion is being cancelled)."""
        if self._finished:
            raise RuntimeError(f"{self.source.name}: finish() called twice")
        self._finished = True
        if abandon:
            self._stop.set()
        # Drain: a reader that stopped early (a parse error) would otherwise leave the decode blocked on a full
        # pipe; reading on lets it run to the end, so a corrupt file is told apart from a bad value.
        try:
            while os.read(self._read_fd, _PIPE_BYTES):
                pass
            self._thread.join()
        finally:
            os.close(self._read_fd)  # interrupted while draining: the decode gets EPIPE and ends
        if self._error is not None:
            raise self._error
        if self._info is None:
            raise RuntimeError(f"{self.source.name}: decode abandoned")
        return self._info


@contextlib.contextmanager
def decoded(source: Path) -> Iterator[DecodeFeed]:
    """A DecodeFeed of `source`; on an exception in the block the decode is abandoned and its fds closed."""
    feed = DecodeFeed(source)
    try:
        yield feed
    except BaseException:
        if not feed.finished:
            with contextlib.suppress(Exception):
                feed.finish(abandon=True)
        raise
