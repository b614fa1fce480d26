"""analytics/microstructure_1m and analytics/daily_summary: downstream consumers of the features as DataFrames."""

import base64
from pathlib import Path

import dagster as dg
import pandas as pd

from tick_assets.assets.features import FOLLOW_UPSTREAM, partition_expr
from tick_assets.assets.metadata import figures
from tick_assets.assets.resources import DUCKDB_POOL, LakeResource
from tick_assets.features import microstructure
from tick_assets.features.charts import daily_chart_png
from tick_assets.tardis.durable import write_file_atomically
from tick_assets.tardis.urls import sanitize_for_file_name

CODE_VERSION = "analytics-v2"  # v2: returns, OFI and variance never cross midnight


def _utc(frame: pd.DataFrame, column: str) -> pd.DataFrame:
    # DuckDB hands TIMESTAMPTZ over in the session's zone; analytics work in UTC whatever the machine says.
    frame[column] = pd.to_datetime(frame[column], utc=True)
    return frame


def _partition_key(instrument: str, when: pd.Timestamp) -> str:
    return f"{when:%Y-%m-%d}|{instrument}"


def build_analytics_assets(
    depth: dg.AssetsDefinition,
    trade_bars: dg.AssetsDefinition,
    partitions_def: dg.MultiPartitionsDefinition,
    backfill_policy: dg.BackfillPolicy,
) -> list[dg.AssetsDefinition]:
    """The two analytics assets over features/depth and features/trade_bars."""
    common = {
        "partitions_def": partitions_def,
        "backfill_policy": backfill_policy,
        "pool": DUCKDB_POOL,
        "group_name": "analytics",
        "io_manager_key": "warehouse_io",
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
        kinds={"pandas", "duckdb"},
        metadata={
            "partition_expr": partition_expr("minute"),
            "dagster/table_name": "analytics.microstructure_1m",
        },
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
                partition_key=_partition_key(instrument, day),
            )
        return minutes

    @dg.asset(
        key=["analytics", "daily_summary"],
        ins={"minutes": dg.AssetIn(microstructure_1m.key)},
        kinds={"pandas", "duckdb", "matplotlib"},
        metadata={"partition_expr": partition_expr("date"), "dagster/table_name": "analytics.daily_summary"},
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
            key = _partition_key(row.instrument, row.date)
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
