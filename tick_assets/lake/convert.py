"""One Tardis .csv.gz day -> one typed zstd Parquet file, streamed through DuckDB and renamed into place."""

from __future__ import annotations

import io
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from tick_assets.durable import owned_temp, remove_abandoned_temps
from tick_assets.lake.book_layout import write_seconds
from tick_assets.lake.errors import CsvParseError, SchemaMismatchError
from tick_assets.lake.parquet import ConversionOptions, copy_options
from tick_assets.lake.schema import (
    csv_columns_struct,
    empty_select,
    lake_columns,
    lake_select,
    quote,
    sql_string,
    store_select,
    stored_columns,
)
from tick_assets.lake.store import Lake, LocalLake
from tick_assets.lake.verify import verifying
from tick_assets.tardis.datatypes import columns, header_line
from tick_assets.tardis.integrity import DECODE_ERRORS, GzipInfo, GzipIntegrityError, open_gzip, verify_gzip

#: Suffix of a conversion's own DuckDB spill folder under ConversionOptions.temp_directory.
SPILL_SUFFIX = ".spill"


@dataclass(frozen=True)
class PartitionWrite:
    """What a conversion wrote and what it cost."""

    path: str
    rows: int
    parquet_bytes: int
    seconds: float
    first_timestamp: int | None
    last_timestamp: int | None
    preview_columns: tuple[str, ...] = ()
    preview: tuple[tuple[Any, ...], ...] = field(default=())
    #: What the conversion's decode verified of the source (its CRC and length); None without a source.
    gzip: GzipInfo | None = None

    @property
    def empty(self) -> bool:
        """True for a day without data (an empty partition file with the full schema)."""
        return self.rows == 0

    @property
    def rows_per_second(self) -> float:
        """Rows converted per second."""
        return self.rows / self.seconds if self.seconds > 0 else 0.0


def read_header(source: Path) -> str | None:
    """Return the first line of a .csv.gz without its line break, or None for an empty file; raise
    GzipIntegrityError if the file is not a gzip or ends before its first line."""
    try:
        with open(source, "rb") as raw, open_gzip(raw) as gz:
            line = io.TextIOWrapper(gz, encoding="utf-8", newline="").readline()
    except DECODE_ERRORS as exc:
        raise GzipIntegrityError(f"{source.name}: corrupt or truncated gzip ({exc})") from exc
    return line.rstrip("\r\n") if line else None


def check_header(source: Path, data_type: str, header: str) -> None:
    """Raise SchemaMismatchError unless the CSV header is exactly the known one of the data type."""
    if header == header_line(data_type):
        return
    got = header.split(",")
    expected = columns(data_type)
    missing = [c for c in expected if c not in got]
    extra = [c for c in got if c not in expected]
    detail = f"missing {missing}, unexpected {extra}" if missing or extra else "same columns in another order"
    raise SchemaMismatchError(
        f"{source.name}: the CSV header of this {data_type} file differs from the known Tardis schema ({detail}). "
        "Tardis may have changed the format: update SCHEMAS in tick_assets/tardis/datatypes.py; nothing was written."
    )


def preview_columns(data_type: str, limit: int = 7) -> tuple[str, ...]:
    """The columns shown in previews: the UTC time then the first value columns of the data type."""
    values = [
        c for c, _ in lake_columns(data_type) if c not in {"exchange", "symbol"} and "timestamp" not in c
    ]
    return ("timestamp_utc", *values[: limit - 1])


def _connect(options: ConversionOptions, spill_dir: Path | None) -> duckdb.DuckDBPyConnection:
    config: dict[str, Any] = {
        "threads": options.threads,
        "memory_limit": options.memory_limit,
        "preserve_insertion_order": True,
    }
    if spill_dir is not None:
        config["temp_directory"] = str(spill_dir)
    con = duckdb.connect(":memory:", config=config)
    # The *_utc columns (stored by the lake-v2 layout, previewed) are TIMESTAMPTZ; fix the session zone so the
    # cast never depends on the machine's TZ.
    con.execute("SET TimeZone = 'UTC'")
    con.execute("SET enable_progress_bar = false")
    return con


def _copy_sql(source: Path | None, target: Path, data_type: str, options: ConversionOptions) -> str:
    """The COPY of the csv.gz `source`, or of no rows for None."""
    if source is None:
        query = empty_select(stored_columns(data_type, options.layout))
    else:
        query = (
            f"SELECT {store_select(data_type, options.layout)} FROM read_csv({sql_string(source)}, header = true, "
            f"columns = {csv_columns_struct(data_type)}, auto_detect = false, compression = 'gzip', "
            "delim = ',', quote = '\"', escape = '\"')"
        )
    return f"COPY ({query}) TO {sql_string(target)} ({copy_options(options, data_type)})"


def write_partition(
    source: Path | None, dest: Path, data_type: str, options: ConversionOptions | None = None
) -> PartitionWrite:
    """Convert a verified Tardis .csv.gz into the local Parquet file `dest`, replacing any previous one atomically
    (see `store_partition`)."""
    dest = Path(dest).absolute()
    return store_partition(source, LocalLake(dest.parent), dest.name, data_type, options)


def store_partition(
    source: Path | None,
    lake: Lake,
    relpath: str,
    data_type: str,
    options: ConversionOptions | None = None,
    *,
    shown_as: Path | None = None,
) -> PartitionWrite:
    """Convert a Tardis .csv.gz into the lake file `relpath`, published whole (a reader sees the old
    partition or the new one; a failure leaves the old one).

    The CSV is streamed (DuckDB read_csv -> COPY), so memory stays bounded by `options.memory_limit` whatever
    the file size. An empty gzip (or a header-only CSV), or no `source` at all (a data type Tardis does not
    offer for the instrument), gives an empty file with the full schema.
    """
    options = options or ConversionOptions()
    started = time.perf_counter()
    source = None if source is None else Path(source)
    header = None if source is None else _checked_header(source, data_type, shown_as or source)
    shown = preview_columns(data_type)
    gzip_info: GzipInfo | None = None
    with lake.writing(relpath) as tmp, _spill_dir(options) as spill_dir, _connect(options, spill_dir) as con:
        if source is None:
            con.execute(_copy_sql(None, tmp, data_type, options))
        elif header is None:
            gzip_info = verify_gzip(source)  # an empty gzip: still checked whole before it counts as a day
            con.execute(_copy_sql(None, tmp, data_type, options))
        else:
            gzip_info = _copy_verified(con, source, tmp, data_type, options, shown_as or source)
        rows, first, last = con.execute(
            f"SELECT count(*), min(timestamp), max(timestamp) FROM read_parquet({sql_string(tmp)})"
        ).fetchall()[0]
        write_seconds(
            con, lake, relpath, tmp, data_type, options
        )  # book days: the grid's rows, published first
        preview = con.execute(
            f"SELECT {', '.join(quote(c) for c in shown)} FROM (SELECT {lake_select(data_type, options.layout)} "
            f"FROM read_parquet({sql_string(tmp)}) LIMIT {options.preview_rows})"
        ).fetchall()
        size = tmp.stat().st_size
    return PartitionWrite(
        path=lake.uri(relpath),
        rows=int(rows),
        gzip=gzip_info,
        parquet_bytes=size,
        seconds=time.perf_counter() - started,
        first_timestamp=first,
        last_timestamp=last,
        preview_columns=shown,
        preview=tuple(tuple(r) for r in preview),
    )


def _checked_header(source: Path, data_type: str, shown_as: Path) -> str | None:
    """The CSV header of `source` (None for an empty file), checked against the data type's schema; a header that
    only looks wrong because the file is corrupt raises GzipIntegrityError (so the file is downloaded again)."""
    try:
        header = read_header(source)
        if header is not None:
            check_header(shown_as, data_type, header)
    except (SchemaMismatchError, UnicodeDecodeError):
        verify_gzip(source)  # the header is read before the CRC check that ends the decode
        raise
    return header


def _copy_verified(
    con: duckdb.DuckDBPyConnection,
    source: Path,
    target: Path,
    data_type: str,
    options: ConversionOptions,
    shown_as: Path,
) -> GzipInfo:
    """COPY the CSV of `source` into `target` while a thread verifies the gzip; return what it verified.

    A corrupt or truncated gzip raises GzipIntegrityError even when DuckDB parsed it (the caller's `lake.writing`
    then discards the file); a bad value in an intact file raises CsvParseError.
    """
    with verifying(source) as check:
        try:
            con.execute(_copy_sql(source, target, data_type, options))
        except duckdb.InterruptException:
            raise
        except duckdb.Error as exc:
            check.result()  # a corrupt or truncated file, not a bad value, if the verification fails
            if not isinstance(exc, (duckdb.ConversionException, duckdb.InvalidInputException)):
                raise
            raise CsvParseError(
                f"{shown_as.name}: a value does not parse as its {data_type} column type "
                f"({str(exc).splitlines()[0]}). The file is an intact gzip, so Tardis served it like this; "
                f"nothing was written. Report it, or delete the cached file {shown_as} to download it again."
            ) from None
        return check.result()


@contextmanager
def _spill_dir(options: ConversionOptions) -> Iterator[Path | None]:
    """A DuckDB spill folder of this conversion's own (concurrent conversions must not share temp files)."""
    if options.temp_directory is None:
        yield None
        return
    options.temp_directory.mkdir(parents=True, exist_ok=True)
    remove_abandoned_temps(options.temp_directory, SPILL_SUFFIX)
    spill = owned_temp(options.temp_directory / "convert", SPILL_SUFFIX)
    spill.mkdir()
    try:
        yield spill
    finally:
        shutil.rmtree(spill, ignore_errors=True)
