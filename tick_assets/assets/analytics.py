"""analytics/microstructure_1m and analytics/daily_summary: downstream consumers of the features as DataFrames."""

import base64
import warnings
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd

from tick_assets.assets.features import FOLLOW_UPSTREAM
from tick_assets.assets.metadata import figures
from tick_assets.assets.partitions import partition_key
from tick_assets.assets.resources import LAKE_IO, LakeResource
from tick_assets.durable import write_file_atomically
from tick_assets.features import microstructure
from tick_assets.features.charts import daily_chart_png
from tick_assets.tardis.urls import sanitize_for_file_name

# `backfill_policy` is beta in Dagster 1.13 and is what makes backfills ranged runs: used knowingly, not a warning.
warnings.filterwarnings(
    "ignore", r"Parameter `backfill_policy` of function `asset` is currently in beta", dg.BetaWarning
)

CODE_VERSION = "analytics-v3"  # v3: one Parquet file per partition in the lake (v2: nothing crosses midnight)
SUMMARY_CODE_VERSION = (
    "analytics-v4"  # daily_summary v4: the deep-book columns and panels from analytics/book_1m
)
BOOK_1M_CODE_VERSION = "book-1m-v1"
#: The daily summary columns from analytics/book_1m, also shown in its metadata.
_DEEP_SUMMARY = {*microstructure.BOOK_DAILY_MEANS, *(f"book_ofi_{k}" for k in microstructure.BOOK_OFI_LEVELS)}


def _utc(frame: pd.DataFrame, column: str) -> pd.DataFrame:
    # Analytics work in UTC whatever zone a frame's timestamps carry.
    frame[column] = pd.to_datetime(frame[column], utc=True)
    return frame


def build_analytics_assets(
    depth: dg.AssetsDefinition,
    trade_bars: dg.AssetsDefinition,
    book: dg.AssetsDefinition | None = None,
    *,
    partitions_def: dg.MultiPartitionsDefinition,
    backfill_policy: dg.BackfillPolicy,
) -> list[dg.AssetsDefinition]:
    """The analytics assets over features/depth and features/trade_bars, and over features/book when the whole
    book is built (analytics/book_1m, whose deep-liquidity columns the daily summary and chart then show)."""
    common = {
        "partitions_def": partitions_def,
        "backfill_policy": backfill_policy,
        "group_name": "analytics",
        "io_manager_key": LAKE_IO,
        "code_version": CODE_VERSION,
        "automation_condition": FOLLOW_UPSTREAM,
    }

    @dg.asset(
        key=["analytics", "microstructure_1m"],
        ins={
            "depth": dg.AssetIn(depth.key, metadata={"columns": microstructure.DEPTH_INPUT_COLUMNS}),
            "trade_bars": dg.AssetIn(
                trade_bars.key, metadata={"columns": microstructure.TRADE_INPUT_COLUMNS}
            ),
        },
        kinds={"pandas", "parquet"},
        metadata={"dagster/table_name": "analytics.microstructure_1m"},
        **common,
    )
    def microstructure_1m(
        context: dg.AssetExecutionContext, depth: pd.DataFrame, trade_bars: pd.DataFrame
    ) -> pd.DataFrame:
        """1-minute bars per instrument: mid OHLC, log return, realized vol (1 s returns), mean spread and
        imbalance, volume, VWAP, signed volume and level-1 order-flow imbalance (Cont, Kukanov, Stoikov)."""
        minutes = microstructure.microstructure_1m(_utc(depth, "ts"), _utc(trade_bars, "ts"))
        for (instrument, day), part in minutes.groupby(["instrument", minutes["minute"].dt.floor("1D")]):
            context.add_asset_metadata(
                figures({"dagster/row_count": len(part), "volume": float(part["volume"].sum())}),
                partition_key=partition_key(day.date(), instrument),
            )
        return minutes

    book_1m = None if book is None else _book_minutes_asset(book, common)
    summary_ins = {"minutes": dg.AssetIn(microstructure_1m.key)}
    if book_1m is not None:
        summary_ins["book_minutes"] = dg.AssetIn(book_1m.key)

    @dg.asset(
        key=["analytics", "daily_summary"],
        ins=summary_ins,
        kinds={"pandas", "parquet", "matplotlib"},
        metadata={"dagster/table_name": "analytics.daily_summary"},
        **(common | {"code_version": SUMMARY_CODE_VERSION if book is not None else CODE_VERSION}),
    )
    def daily_summary(
        context: dg.AssetExecutionContext, lake: LakeResource, **inputs: pd.DataFrame
    ) -> pd.DataFrame:
        """One row per day and instrument, with a chart of mid, spread, imbalance and volume over the day, and
        of the whole book's depth and order flow when features/book is built (shown here and saved under
        data/reports/daily_summary/)."""
        minutes = _utc(inputs["minutes"], "minute")
        book_minutes = inputs.get("book_minutes")
        if book_minutes is not None:
            book_minutes = _utc(book_minutes, "minute")
        summary = microstructure.daily_summary(minutes, book_minutes)
        reports = Path(lake.data_dir) / "reports" / "daily_summary"
        # One row per partition: a handful per run, not market data.
        for row in summary.itertuples(index=False):
            key = partition_key(row.date.date(), row.instrument)
            day_minutes = minutes[
                (minutes["instrument"] == row.instrument) & (minutes["minute"].dt.floor("1D") == row.date)
            ]
            day_book = None
            if book_minutes is not None:
                day_book = book_minutes[
                    (book_minutes["instrument"] == row.instrument)
                    & (book_minutes["minute"].dt.floor("1D") == row.date)
                ]
            png = daily_chart_png(day_minutes, f"{row.instrument} {row.date:%Y-%m-%d} (UTC)", day_book)
            path = reports / sanitize_for_file_name(row.instrument) / f"{row.date:%Y-%m-%d}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            write_file_atomically(path, png)
            context.add_asset_metadata(
                figures(
                    {
                        "chart": dg.MetadataValue.md(
                            f"![daily chart](data:image/png;base64,{base64.b64encode(png).decode()})"
                        ),
                        "chart_path": dg.MetadataValue.path(str(path)),
                        "dagster/row_count": 1,
                        "mid_close": float(row.mid_close),
                        "log_return": float(row.log_return),
                        "realized_vol": float(row.realized_vol),
                        "spread_bps_mean": float(row.spread_bps_mean),
                        "volume": float(row.volume),
                        "trades": int(row.trades),
                        **{c: float(getattr(row, c)) for c in summary.columns if c in _DEEP_SUMMARY},
                    }
                ),
                partition_key=key,
            )
        return summary

    return [microstructure_1m, *([book_1m] if book_1m is not None else []), daily_summary]


def _book_minutes_asset(book: dg.AssetsDefinition, common: dict[str, Any]) -> dg.AssetsDefinition:
    @dg.asset(
        key=["analytics", "book_1m"],
        ins={"book": dg.AssetIn(book.key, metadata={"columns": microstructure.BOOK_INPUT_COLUMNS})},
        kinds={"pandas", "parquet"},
        metadata={"dagster/table_name": "analytics.book_1m"},
        **(common | {"code_version": BOOK_1M_CODE_VERSION}),
    )
    def book_1m(context: dg.AssetExecutionContext, book: pd.DataFrame) -> pd.DataFrame:
        """1-minute bars of the whole rebuilt book: depth at 25 levels against depth within 25 and 100 bps,
        the 100 bps imbalance, levels per side, order-flow imbalance at 1/10/50 levels, messages, crossed or
        locked share and staleness."""
        minutes = microstructure.book_1m(_utc(book, "ts"))
        for (instrument, day), part in minutes.groupby(["instrument", minutes["minute"].dt.floor("1D")]):
            context.add_asset_metadata(
                figures(
                    {
                        "dagster/row_count": len(part),
                        "depth_100bps_mean": float(part["depth_100bps_mean"].mean()),
                        "depth_25_levels_mean": float(part["depth_25_levels_mean"].mean()),
                    }
                ),
                partition_key=partition_key(day.date(), instrument),
            )
        return minutes

    return book_1m
