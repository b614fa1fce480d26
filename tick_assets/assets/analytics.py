"""analytics/microstructure_1m and analytics/daily_summary: downstream consumers of the features as DataFrames."""

import base64
import warnings
from pathlib import Path

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


def _utc(frame: pd.DataFrame, column: str) -> pd.DataFrame:
    # Analytics work in UTC whatever zone a frame's timestamps carry.
    frame[column] = pd.to_datetime(frame[column], utc=True)
    return frame


def build_analytics_assets(
    depth: dg.AssetsDefinition,
    trade_bars: dg.AssetsDefinition,
    *,
    partitions_def: dg.MultiPartitionsDefinition,
    backfill_policy: dg.BackfillPolicy,
) -> list[dg.AssetsDefinition]:
    """The two analytics assets over features/depth and features/trade_bars."""
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

    @dg.asset(
        key=["analytics", "daily_summary"],
        ins={"minutes": dg.AssetIn(microstructure_1m.key)},
        kinds={"pandas", "parquet", "matplotlib"},
        metadata={"dagster/table_name": "analytics.daily_summary"},
        **common,
    )
    def daily_summary(
        context: dg.AssetExecutionContext, minutes: pd.DataFrame, lake: LakeResource
    ) -> pd.DataFrame:
        """One row per day and instrument, with a chart of mid, spread, imbalance and volume over the day
        (shown here and saved under data/reports/daily_summary/)."""
        minutes = _utc(minutes, "minute")
        summary = microstructure.daily_summary(minutes)
        reports = Path(lake.data_dir) / "reports" / "daily_summary"
        # One row per partition: a handful per run, not market data.
        for row in summary.itertuples(index=False):
            key = partition_key(row.date.date(), row.instrument)
            day_minutes = minutes[
                (minutes["instrument"] == row.instrument) & (minutes["minute"].dt.floor("1D") == row.date)
            ]
            png = daily_chart_png(day_minutes, f"{row.instrument} {row.date:%Y-%m-%d} (UTC)")
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
                    }
                ),
                partition_key=key,
            )
        return summary

    return [microstructure_1m, daily_summary]
