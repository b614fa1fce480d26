"""Verify a csv.gz (CRC32 and length of every member) in a thread while DuckDB converts it: no pass before.

DuckDB's gzip reader does not check the CRC (a flipped bit in a member reads as other values, silently), so the
conversion alone is no verification; and feeding DuckDB the decoded CSV through a pipe makes its parse serial
(about 1.8x slower on a 2-core book day, docs/PERFORMANCE.md). So the ISA-L decode that verifies the file runs
beside the conversion, on a fraction of one core, and the conversion's result is published only if it passes.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from pathlib import Path

from tick_assets.tardis.integrity import GzipInfo, verify_gzip


class _Stopped(Exception):
    """The conversion ended without needing the verdict (it failed or was interrupted)."""


class BackgroundVerify:
    """`verify_gzip(source)` running in a thread; `result()` waits for its verdict."""

    def __init__(self, source: Path) -> None:
        self.source = source
        self._stop = threading.Event()
        self._info: GzipInfo | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=f"verify {source.name}", daemon=True)
        self._thread.start()

    def _check_stop(self, _chunk: bytes) -> None:
        if self._stop.is_set():
            raise _Stopped

    def _run(self) -> None:
        try:
            self._info = verify_gzip(self.source, sink=self._check_stop)
        except _Stopped:
            pass
        except BaseException as exc:  # handed to result(): the caller's thread raises it
            self._error = exc

    def result(self) -> GzipInfo:
        """The verified sizes, or the GzipIntegrityError (or read error) the decode raised."""
        self._thread.join()
        if self._error is not None:
            raise self._error
        if self._info is None:
            raise RuntimeError(f"{self.source.name}: verification abandoned")
        return self._info

    def abandon(self) -> None:
        """Stop the decode at its next chunk and wait for the thread."""
        self._stop.set()
        self._thread.join()


@contextlib.contextmanager
def verifying(source: Path) -> Iterator[BackgroundVerify]:
    """A BackgroundVerify of `source`; abandoned if the block raises before asking for its result."""
    check = BackgroundVerify(source)
    try:
        yield check
    except BaseException:
        check.abandon()
        raise
