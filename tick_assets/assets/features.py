"""features/depth, features/trade_bars and features/book: the raw lake partitions on a fixed UTC grid, in the lake."""

import warnings
from collections.abc import Callable

import dagster as dg
import duckdb

from tick_assets.assets.metadata import figures
from tick_assets.assets.offered import NOT_OFFERED, not_offered_upstream
from tick_assets.assets.partitions import day_slices
from tick_assets.assets.reporting import PartitionOutcome, report
from tick_assets.assets.resources import LAKE_IO, FeatureSettings, LakeResource
from tick_assets.features.book import grid_table
from tick_assets.features.depth import depth_query
from tick_assets.features.grid import DaySlice
from tick_assets.features.quality import one_row
from tick_assets.features.trade_bars import trade_bars_sql
from tick_assets.lake.datasets import store_query
from tick_assets.lake.schema import sql_string
from tick_assets.lake.store import Lake

# `backfill_policy` is beta in Dagster 1.13 and is what makes backfills ranged runs: used knowingly, not a warning.
warnings.filterwarnings(
    "ignore", r"Parameter `backfill_policy` of function `asset` is currently in beta", dg.BetaWarning
)

FEATURES_SCHEMA = "features"

#: Since this partition was last requested or updated. Unlike `since_last_handled()`, leaves out
#: `initial_evaluation()`: on a condition's first tick that node is true for every partition, and Dagster stores it
#: as a key list (286k keys per asset at 200 instruments from 2023): a first tick of ~1 min. Without it the first
#: tick only starts the cursor, as before: `any_deps_updated` is empty on a first evaluation.
HANDLED = (dg.AutomationCondition.newly_requested() | dg.AutomationCondition.newly_updated()).with_label(
    "handled"
)

#: Materialize a partition once its raw upstream partition has (newly) landed and nothing upstream is running.
FOLLOW_UPSTREAM = (
    dg.AutomationCondition.any_deps_updated().since(HANDLED)
    & ~dg.AutomationCondition.any_deps_missing()
    & ~dg.AutomationCondition.any_deps_in_progress()
    & ~dg.AutomationCondition.in_progress()
    & dg.AutomationCondition.all_deps_blocking_checks_passed()
).with_label("after its upstream partitions land and pass their blocking checks")


#: The SQL of one partition's rows, on the step's connection (which it may register relations on).
FeatureQuery = Callable[[duckdb.DuckDBPyConnection, Lake, DaySlice, FeatureSettings], str]


def _sql_only(query: Callable[[Lake, DaySlice], str]) -> FeatureQuery:
    return lambda _con, lake, day, _settings: query(lake, day)


def _book_query(con: duckdb.DuckDBPyConnection, lake: Lake, day: DaySlice, settings: FeatureSettings) -> str:
    con.register("features_book_day", grid_table(con, lake, day, settings.book_depth))
    return "SELECT * FROM features_book_day"


def _build_feature_asset(
    name: str,
    upstream: dg.AssetsDefinition,
    query: FeatureQuery,
    summary_sql: str,
    description: str,
    partitions_def: dg.MultiPartitionsDefinition,
    backfill_policy: dg.BackfillPolicy,
    code_version: str | None = None,
) -> dg.AssetsDefinition:
    # v2: one Parquet file per partition in the lake (was a warehouse table)
    code_version = code_version or f"{name}-v2"
    dataset = f"{FEATURES_SCHEMA}/{name}"

    @dg.asset(
        key=[FEATURES_SCHEMA, name],
        description=description,
        deps=[upstream],
        partitions_def=partitions_def,
        backfill_policy=backfill_policy,
        group_name="features",
        kinds={"duckdb", "sql", "parquet"},
        code_version=code_version,
        io_manager_key=LAKE_IO,
        automation_condition=FOLLOW_UPSTREAM,
        metadata={"dagster/table_name": f"{FEATURES_SCHEMA}.{name}"},
    )
    def feature_asset(
        context: dg.AssetExecutionContext, lake: LakeResource, features: FeatureSettings
    ) -> dg.MaterializeResult:
        outcomes = []
        # An instrument Tardis has no such raw data for still gets its (empty) grid, marked as such.
        not_offered = not_offered_upstream(context.instance, [upstream.key], context.partition_keys)
        with lake.connect() as con:
            for key, day in day_slices(context.partition_keys, features.grid_step_ms):
                try:
                    written = store_query(
                        con,
                        lake.lake,
                        day.partition(dataset),
                        lambda day=day: query(con, lake.lake, day, features),  # timed with the write
                        lake.conversion_options(),
                    )
                    summary = one_row(
                        con, summary_sql.format(source=f"read_parquet({sql_string(written.path)})")
                    )
                except Exception as exc:  # one verdict per partition; report() fails the step
                    context.log.error(f"{key}: {type(exc).__name__}: {exc}")
                    outcomes.append(PartitionOutcome(key, error=exc))
                    continue
                context.log.info(f"{key}: {written.rows:,} grid rows in {written.seconds:.2f} s")
                metadata = figures(
                    {
                        "dagster/row_count": written.rows,
                        "grid_step_ms": day.step_ms,
                        "seconds": written.seconds,
                        "parquet_bytes": written.bytes,
                        "path": dg.MetadataValue.path(written.path),
                        **{k: v for k, v in summary.items() if v is not None},
                    }
                )
                if key in not_offered:
                    metadata = {
                        NOT_OFFERED: f"empty grid, the upstream is not offered: {not_offered[key]}",
                        **metadata,
                    }
                elif day.grouped:
                    metadata = {
                        "grouped_dataset": f"{day.instrument} holds many instruments: an empty grid (features "
                        "are per instrument; add the members you want, e.g. binance:BTCUSDT, to "
                        "TICK_ASSETS_INSTRUMENTS)",
                        **metadata,
                    }
                outcomes.append(PartitionOutcome(key, metadata))
        return report(context, partitions_def, code_version, outcomes)

    return feature_asset


def build_feature_assets(
    book: dg.AssetsDefinition,
    trades: dg.AssetsDefinition,
    *,
    partitions_def: dg.MultiPartitionsDefinition,
    backfill_policy: dg.BackfillPolicy,
) -> list[dg.AssetsDefinition]:
    """features/depth (from raw/book_snapshot_25) and features/trade_bars (from raw/trades)."""
    return [
        _build_feature_asset(
            "depth",
            book,
            lambda con, lake, day, _settings: depth_query(con, lake, day),
            "SELECT count(mid) AS rows_with_book, avg(spread_bps) AS mean_spread_bps, sum(updates) AS book_updates "
            "FROM {source}",
            "Order book on a fixed UTC grid (last snapshot at or before each point): mid, spread, microprice, "
            "depth and notional at 1/5/10/25 levels, imbalance, depth within 10/25/50 bps, staleness, updates.",
            partitions_def,
            backfill_policy,
        ),
        _build_feature_asset(
            "trade_bars",
            trades,
            _sql_only(trade_bars_sql),
            "SELECT count(open) AS rows_with_trades, sum(trades) AS trades, sum(volume) AS volume "
            "FROM {source}",
            "Trades on the same grid, bar t = [t, t + step): OHLC, volume, notional, VWAP, count, buy, sell "
            "and signed (taker) volume.",
            partitions_def,
            backfill_policy,
        ),
    ]


def build_book_asset(
    l2: dg.AssetsDefinition,
    *,
    partitions_def: dg.MultiPartitionsDefinition,
    backfill_policy: dg.BackfillPolicy,
) -> dg.AssetsDefinition:
    """features/book: the whole book rebuilt from raw/incremental_book_L2, on the grid of features/depth."""
    return _build_feature_asset(
        "book",
        l2,
        _book_query,
        "SELECT count(mid) AS rows_with_book, avg(spread_bps) AS mean_spread_bps, sum(messages) AS messages, "
        "max(bid_levels) AS max_bid_levels, max(ask_levels) AS max_ask_levels, "
        "avg(bid_depth_100bps + ask_depth_100bps) AS mean_depth_100bps, count(*) FILTER (WHERE crossed) AS "
        "crossed_rows FROM {source}",
        "The whole order book rebuilt from incremental_book_L2 (a compiled kernel, tick_assets/book) on the grid "
        "of features/depth: top N levels (setting book_depth), touch, mid, spread, microprice, depth and notional "
        "at 1/5/10/25/50/N levels, depth within 5/10/25/50/100 bps of the mid over the whole book, imbalances, "
        "order-flow imbalance at 1/5/10/25/50/N levels, levels per side, staleness, messages per interval, "
        "crossed/locked.",
        partitions_def,
        backfill_policy,
        code_version="book-v2",  # v2: the ofi_k columns
    )
