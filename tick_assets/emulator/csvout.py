"""Write pyarrow tables as Tardis-format gzipped CSV: LF, hand-written header, atomic rename, bounded memory.

Format (what datasets.tardis.dev serves): the header line exactly as `datatypes.header_line`, then one line per
row, LF line endings with a trailing newline, nothing quoted, numbers in shortest form (pyarrow prints `9682`,
`0.001`, `42123.4`), empty cells for nulls, booleans `true`/`false`. A day without data is an empty gzip
(gzip of zero bytes, no header line). The gzip header has mtime 0 and no file name, so output is reproducible.
"""

from __future__ import annotations

import contextlib
import gzip
import os
import queue
import tempfile
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

import pyarrow as pa
import pyarrow.csv as pacsv

from tick_assets.tardis import datatypes

DEFAULT_COMPRESSLEVEL = 6
#: Rows formatted per pyarrow CSV call: bounds the size of one uncompressed block (~100 MB for 104 columns).
DEFAULT_BATCH_ROWS = 131_072
#: What Tardis serves for a day without data: a gzip stream of zero bytes.
EMPTY_GZIP = gzip.compress(b"", compresslevel=DEFAULT_COMPRESSLEVEL, mtime=0)

_WRITE_OPTIONS = pacsv.WriteOptions(include_header=False, quoting_style="none", batch_size=8192)
_QUEUE_DEPTH = 3  # formatted blocks waiting for the compressor thread


class _GzipPipe:
    """A gzip writer fed through a small queue: zlib (which releases the GIL) runs beside CSV formatting."""

    def __init__(self, raw: BinaryIO, compresslevel: int) -> None:
        self._gz = gzip.GzipFile(filename="", mode="wb", compresslevel=compresslevel, fileobj=raw, mtime=0)
        self._queue: queue.Queue[object] = queue.Queue(maxsize=_QUEUE_DEPTH)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="csvout-gzip", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            if self._error is None:
                try:
                    self._gz.write(item)  # type: ignore[arg-type]
                except BaseException as exc:  # re-raised in the caller's thread
                    self._error = exc

    def write(self, data: bytes | pa.Buffer) -> None:
        """Queue a block for compression; raise a compressor error from an earlier block."""
        if self._error is not None:
            raise self._error
        self._queue.put(data)

    def close(self, *, abort: bool = False) -> None:
        """Drain the queue, stop the thread and finish the gzip stream (skipped on abort)."""
        self._queue.put(None)
        self._thread.join()
        if abort:
            return
        if self._error is not None:
            raise self._error
        self._gz.close()


def _check_columns(table: pa.Table | pa.RecordBatch, data_type: str) -> None:
    expected = list(datatypes.columns(data_type))
    if list(table.schema.names) != expected:
        raise ValueError(f"{data_type}: columns {table.schema.names} != expected {expected}")


@contextlib.contextmanager
def _atomic_file(out: Path) -> Iterator[BinaryIO]:
    """A temp file in the target's directory, renamed over the target only if the block succeeds."""
    fd, tmp_name = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb", buffering=1 << 20) as raw:
            yield raw
        os.chmod(tmp_name, 0o644)
        os.replace(tmp_name, out)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise


def write_csv_gz(
    out_path: str | os.PathLike[str],
    data_type: str,
    tables: Iterable[pa.Table | pa.RecordBatch],
    compresslevel: int = DEFAULT_COMPRESSLEVEL,
    batch_rows: int = DEFAULT_BATCH_ROWS,
) -> int:
    """Stream tables (all with the data type's columns) into one Tardis .csv.gz; return the row count."""
    header = (datatypes.header_line(data_type) + "\n").encode()
    rows = 0
    with _atomic_file(Path(out_path)) as raw:
        pipe = _GzipPipe(raw, compresslevel)
        try:
            for table in tables:
                _check_columns(table, data_type)
                for start in range(0, table.num_rows, batch_rows):
                    part = table.slice(start, batch_rows)
                    sink = pa.BufferOutputStream()
                    pacsv.write_csv(part, sink, _WRITE_OPTIONS)
                    if rows == 0:
                        pipe.write(header)
                    pipe.write(sink.getvalue())
                    rows += part.num_rows
        except BaseException:
            pipe.close(abort=True)
            raise
        pipe.close()
    return rows


def write_table(
    out_path: str | os.PathLike[str],
    data_type: str,
    table: pa.Table,
    compresslevel: int = DEFAULT_COMPRESSLEVEL,
) -> int:
    """Write one table as a Tardis .csv.gz (an empty table gives an empty gzip); return the row count."""
    return write_csv_gz(out_path, data_type, [table], compresslevel)


def write_empty(out_path: str | os.PathLike[str]) -> None:
    """Atomically write the empty gzip Tardis serves for a day without data."""
    with _atomic_file(Path(out_path)) as raw:
        raw.write(EMPTY_GZIP)


def csv_rows(table: pa.Table | pa.RecordBatch) -> bytes:
    """The Tardis CSV lines of a table's rows (no header), exactly as write_csv_gz formats them."""
    sink = pa.BufferOutputStream()
    if table.num_rows:
        pacsv.write_csv(table, sink, _WRITE_OPTIONS)
    return sink.getvalue().to_pybytes()


def gzip_bytes_per_row(lines: bytes, compresslevel: int = DEFAULT_COMPRESSLEVEL) -> float:
    """Gzip size per line of some CSV lines (no header), at the emulator's compression level by default."""
    rows = lines.count(b"\n")
    if rows == 0:
        raise ValueError("no rows to measure")
    return len(gzip.compress(lines, compresslevel=compresslevel, mtime=0)) / rows
