"""Materialization metadata of lake partitions: sizes, timings, source, time range and a preview; and `figure`,
the one rounding of every float the UI shows (metadata, check figures, previews)."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import dagster as dg

from tick_assets.assets.offered import NOT_OFFERED
from tick_assets.lake import DayResult
from tick_assets.lake.schema import PARTITION_COLUMNS, lake_columns

#: Significant digits of a float figure: every digit of a price or a size, none of a binary artefact
#: (36986.649999999994 -> 36986.65).
SIGNIFICANT = 12
#: Significant digits of rates and ratios (returns, volatility, shares): a 1e-9 funding rate stays 1e-9.
RATIO_SIGNIFICANT = 6
_RATIO_WORDS = frozenset({"return", "vol", "ratio", "share", "rate", "imbalance", "funding"})


def figure(value: Any, significant: int = SIGNIFICANT, decimals: int | None = None) -> Any:
    """`value` with the digits that mean something: a float (or Decimal) to `significant` significant digits and
    at most `decimals` decimals; ints, bools, None, NaN, infinities and non-numbers come back unchanged."""
    if isinstance(value, Decimal):
        value = float(value)
    if not isinstance(value, float) or not math.isfinite(value):
        return value
    if decimals is not None:
        value = round(value, decimals)
    return float(f"{value:.{significant}g}") + 0.0  # + 0.0: no "-0.0"


def figure_rule(name: str) -> dict[str, int]:
    """How the figure called `name` is rounded: seconds to the ms, milliseconds to the µs, throughputs
    (`*_per_second`) and spreads in bps to 4 significant digits, rates and ratios to 6, anything else (prices,
    sizes) to 12."""
    words = set(name.lower().replace("/", "_").split("_"))
    if "seconds" in words and "per" not in words:
        return {"decimals": 3}
    if "ms" in words:
        return {"decimals": 3}
    if "per" in words or "bps" in words:
        return {"significant": 4}
    if words & _RATIO_WORDS:
        return {"significant": RATIO_SIGNIFICANT}
    return {}


def figures(values: Mapping[str, Any]) -> dict[str, Any]:
    """A metadata dict with each float rounded by `figure` as its name says (`figure_rule`); the rest as is."""
    return {name: figure(value, **figure_rule(name)) for name, value in values.items()}


def column_schema(data_type: str) -> dg.TableSchema:
    """The table schema of raw.<data_type> as Dagster shows it (lake columns plus the hive `date`)."""
    return dg.TableSchema(
        columns=[
            dg.TableColumn(name, sql_type)
            for name, sql_type in (*lake_columns(data_type), *PARTITION_COLUMNS)
        ]
    )


def _utc(micros: int) -> float:
    return micros / 1e6


def preview_markdown(columns: tuple[str, ...], rows: tuple[tuple[Any, ...], ...]) -> str:
    """A small markdown table of the first rows."""

    def cell(value: Any) -> str:
        if isinstance(value, dt.datetime):
            return value.strftime("%Y-%m-%d %H:%M:%S.%f")
        return "" if value is None else str(figure(value))

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def partition_metadata(result: DayResult) -> dict[str, Any]:
    """Everything one lake partition's materialization reports (never the API key: URLs carry none)."""
    if result.not_offered is not None:
        return not_offered_metadata(result)
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
        "download_seconds": download.seconds,
        # Transfer rate: the limiter wait is reported on its own, not folded into the speed.
        "download_mb_per_second": download.mb_per_second,
        "retries": download.retries,
        "limiter_wait_seconds": download.limiter_wait_seconds,
        "conversion_seconds": write.seconds,
        "conversion_rows_per_second": round(write.rows_per_second),  # a count: an int
        "path": dg.MetadataValue.path(str(write.path)),
    }
    if download.server_md5 is not None:
        # Tardis: x-md5 may not match files uploaded in chunks; size and the gzip decode are what decide.
        metadata["x_md5"] = download.server_md5
        metadata["x_md5_matches"] = bool(download.md5_matches)
        if not download.md5_matches:
            metadata["x_md5_note"] = (
                f"x-md5 differs from the MD5 of the bytes received ({download.md5}); Tardis says it may not "
                "match files uploaded in chunks. The file passed its Content-Length and full gzip checks."
            )
    if write.first_timestamp is not None and write.last_timestamp is not None:
        metadata["first_timestamp"] = dg.MetadataValue.timestamp(_utc(write.first_timestamp))
        metadata["last_timestamp"] = dg.MetadataValue.timestamp(_utc(write.last_timestamp))
    if write.preview:
        metadata["preview"] = dg.MetadataValue.md(preview_markdown(write.preview_columns, write.preview))
    return figures(metadata)


def not_offered_metadata(result: DayResult) -> dict[str, Any]:
    """The materialization of a partition Tardis has no dataset for: an empty file, and why, first in the UI."""
    assert result.not_offered is not None and result.write is not None
    return {
        NOT_OFFERED: result.not_offered,
        "dagster/row_count": 0,
        "no_data": True,
        "path": dg.MetadataValue.path(str(result.write.path)),
    }


def _size(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 1e6 else f"{n / 1e3:.0f} kB"


def describe_result(result: DayResult) -> str:
    """One log line per partition."""
    key = result.request.key
    if result.error is not None:
        return f"{key}: FAILED {type(result.error).__name__}: {result.error}"
    if result.not_offered is not None:
        return f"{key}: not offered by Tardis, wrote an empty partition ({result.not_offered})"
    assert result.download is not None and result.write is not None
    source = "from cache" if result.download.from_cache else f"{result.download.mb_per_second:.2f} MB/s"
    if result.write.empty:
        return f"{key}: no data (empty file from Tardis); wrote an empty partition"
    return (
        f"{key}: {result.write.rows:,} rows, {_size(result.download.compressed_bytes)} gzip ({source}, "
        f"{result.download.retries} retries, {result.download.limiter_wait_seconds:.2f} s limiter wait) -> "
        f"{_size(result.write.parquet_bytes)} Parquet in {result.write.seconds:.2f} s"
    )
