"""Materialization metadata of lake partitions: sizes, timings, source, time range and a preview."""

from __future__ import annotations

import datetime as dt
from typing import Any

import dagster as dg

from tick_assets.lake import DayResult
from tick_assets.lake.schema import PARTITION_COLUMNS, parquet_columns


def column_schema(data_type: str) -> dg.TableSchema:
    """The table schema of raw.<data_type> as Dagster shows it (lake columns plus the hive `date`)."""
    return dg.TableSchema(
        columns=[
            dg.TableColumn(name, sql_type)
            for name, sql_type in (*parquet_columns(data_type), *PARTITION_COLUMNS)
        ]
    )


def _utc(micros: int) -> float:
    return micros / 1e6


def preview_markdown(columns: tuple[str, ...], rows: tuple[tuple[Any, ...], ...]) -> str:
    """A small markdown table of the first rows."""

    def cell(value: Any) -> str:
        if isinstance(value, dt.datetime):
            return value.strftime("%Y-%m-%d %H:%M:%S.%f")
        return "" if value is None else str(value)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def partition_metadata(result: DayResult) -> dict[str, Any]:
    """Everything one lake partition's materialization reports (never the API key: URLs carry none)."""
    download, write = result.download, result.write
    assert download is not None and write is not None
    metadata: dict[str, Any] = {
        "dagster/row_count": write.rows,
        "no_data": write.empty,
        "gzip_bytes": download.compressed_bytes,
        "csv_bytes": download.uncompressed_bytes,
        "parquet_bytes": write.parquet_bytes,
        "source_url": dg.MetadataValue.url(download.url),
        "from_cache": download.from_cache,
        "download_seconds": round(download.seconds, 3),
        # Transfer rate: the limiter wait is reported on its own, not folded into the speed.
        "download_mb_per_second": round(download.mb_per_second, 2),
        "retries": download.retries,
        "limiter_wait_seconds": round(download.limiter_wait_seconds, 3),
        "conversion_seconds": round(write.seconds, 3),
        "conversion_rows_per_second": round(write.rows_per_second),
        "path": dg.MetadataValue.path(str(write.path)),
    }
    if write.first_timestamp is not None and write.last_timestamp is not None:
        metadata["first_timestamp"] = dg.MetadataValue.timestamp(_utc(write.first_timestamp))
        metadata["last_timestamp"] = dg.MetadataValue.timestamp(_utc(write.last_timestamp))
    if write.preview:
        metadata["preview"] = dg.MetadataValue.md(preview_markdown(write.preview_columns, write.preview))
    return metadata


def _size(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 1e6 else f"{n / 1e3:.0f} kB"


def describe_result(result: DayResult) -> str:
    """One log line per partition."""
    key = result.request.key
    if result.error is not None:
        return f"{key}: FAILED {type(result.error).__name__}: {result.error}"
    assert result.download is not None and result.write is not None
    source = "from cache" if result.download.from_cache else f"{result.download.mb_per_second:.2f} MB/s"
    if result.write.empty:
        return f"{key}: no data (empty file from Tardis); wrote an empty partition"
    return (
        f"{key}: {result.write.rows:,} rows, {_size(result.download.compressed_bytes)} gzip ({source}, "
        f"{result.download.retries} retries, {result.download.limiter_wait_seconds:.2f} s limiter wait) -> "
        f"{_size(result.write.parquet_bytes)} Parquet in {result.write.seconds:.2f} s"
    )
