"""Data-quality asset checks on raw books, raw trades and the feature grids (figures reported as metadata)."""

from collections.abc import Callable
from typing import Any

import dagster as dg
import duckdb
from dagster_duckdb import DuckDBResource

from tick_assets.assets.features import DUCKDB_POOL
from tick_assets.assets.partitions import day_slices
from tick_assets.assets.resources import FeatureSettings, LakeResource
from tick_assets.features import quality
from tick_assets.features.grid import DaySlice

Figures = dict[str, Any]
#: Share of crossed snapshots tolerated before the book check fails (exchanges do publish a few).
MAX_CROSSED_SHARE = 0.001
#: Share of snapshots whose local_timestamp precedes the exchange's tolerated (clock skew) before a warning.
MAX_LOCAL_BEFORE_EXCHANGE_SHARE = 0.01
#: A longer gap between book snapshots is reported as a warning.
MAX_SILENCE_SECONDS = 60.0


def _verdict(
    context: dg.AssetCheckExecutionContext,
    keyed: list[tuple[str, Figures]],
    passes: Callable[[Figures], bool],
    severity: dg.AssetCheckSeverity,
    description: str,
) -> dg.AssetCheckResult:
    """One result for the step's partitions: passed when every partition passes; figures as metadata."""
    failing = [key for key, figures in keyed if not passes(figures)]
    if len(keyed) == 1:
        metadata: dict[str, Any] = {k: v for k, v in keyed[0][1].items() if v is not None}
    else:
        names = list(keyed[0][1])
        rows = ["| partition | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
        rows += [f"| {key} | " + " | ".join(str(f[n]) for n in names) + " |" for key, f in keyed]
        metadata = {
            "partitions": len(keyed),
            "failing_partitions": failing,
            "figures": dg.MetadataValue.md("\n".join(rows)),
        }
    return dg.AssetCheckResult(
        passed=not failing, severity=severity, metadata=metadata, description=description
    )


def build_raw_checks(
    book: dg.AssetsDefinition | None,
    trades: dg.AssetsDefinition | None,
    partitions_def: dg.MultiPartitionsDefinition,
) -> list[dg.AssetChecksDefinition]:
    """Checks of raw/book_snapshot_25 and raw/trades (run on the lake files, no warehouse)."""
    checks: list[dg.AssetChecksDefinition] = []

    def per_day(
        context, lake: LakeResource, figures: Callable[[duckdb.DuckDBPyConnection, Any, DaySlice], Figures]
    ):
        with duckdb.connect() as con:
            return [
                (key, figures(con, lake.root, day))
                for key, day in day_slices(partitions_def, context.partition_keys)
            ]

    if book is not None:

        @dg.asset_check(asset=book, partitions_def=partitions_def, blocking=True, name="book_not_crossed")
        def book_not_crossed(
            context: dg.AssetCheckExecutionContext, lake: LakeResource
        ) -> dg.AssetCheckResult:
            """Best bid below best ask: fails (blocking) above 0.1% crossed snapshots; locked books are counted."""
            keyed = per_day(context, lake, quality.book_figures)
            keyed = [(k, {n: f[n] for n in ("snapshots", "crossed", "locked")}) for k, f in keyed]
            return _verdict(
                context,
                keyed,
                lambda f: f["crossed"] <= MAX_CROSSED_SHARE * max(1, f["snapshots"]),
                dg.AssetCheckSeverity.ERROR,
                "crossed books (bid > ask) must stay rare",
            )

        @dg.asset_check(
            asset=book, partitions_def=partitions_def, blocking=True, name="local_timestamp_in_order"
        )
        def local_timestamp_in_order(
            context: dg.AssetCheckExecutionContext, lake: LakeResource
        ) -> dg.AssetCheckResult:
            """local_timestamp never decreases in file order (blocking: the grid sampling relies on it)."""
            keyed = per_day(context, lake, quality.book_figures)
            keyed = [(k, {n: f[n] for n in ("snapshots", "local_timestamp_decreases")}) for k, f in keyed]
            return _verdict(
                context,
                keyed,
                lambda f: f["local_timestamp_decreases"] == 0,
                dg.AssetCheckSeverity.ERROR,
                "receive times must not go backwards",
            )

        @dg.asset_check(asset=book, partitions_def=partitions_def, name="local_after_exchange_timestamp")
        def local_after_exchange_timestamp(
            context: dg.AssetCheckExecutionContext, lake: LakeResource
        ) -> dg.AssetCheckResult:
            """local_timestamp >= timestamp (received after sent); a warning above 1% (exchange clock skew)."""
            keyed = per_day(context, lake, quality.book_figures)
            keyed = [
                (k, {n: f[n] for n in ("snapshots", "local_before_exchange", "max_exchange_ahead_ms")})
                for k, f in keyed
            ]
            return _verdict(
                context,
                keyed,
                lambda f: (
                    f["local_before_exchange"] <= MAX_LOCAL_BEFORE_EXCHANGE_SHARE * max(1, f["snapshots"])
                ),
                dg.AssetCheckSeverity.WARN,
                "snapshots received before the exchange stamped them point at clock skew",
            )

        @dg.asset_check(asset=book, partitions_def=partitions_def, name="longest_silence")
        def longest_silence(
            context: dg.AssetCheckExecutionContext, lake: LakeResource
        ) -> dg.AssetCheckResult:
            """The longest gap without a book snapshot in the UTC day (edges included); a warning above 60 s."""
            keyed = per_day(context, lake, quality.book_figures)
            keyed = [
                (k, {n: f[n] for n in ("snapshots", "longest_silence_seconds", "longest_silence_since_us")})
                for k, f in keyed
            ]
            return _verdict(
                context,
                keyed,
                lambda f: (f["longest_silence_seconds"] or 0) <= MAX_SILENCE_SECONDS,
                dg.AssetCheckSeverity.WARN,
                "long silences mean a feed outage: stale grid rows",
            )

        checks += [
            book_not_crossed,
            local_timestamp_in_order,
            local_after_exchange_timestamp,
            longest_silence,
        ]

    if trades is not None:

        @dg.asset_check(asset=trades, partitions_def=partitions_def, blocking=True, name="trade_values_valid")
        def trade_values_valid(
            context: dg.AssetCheckExecutionContext, lake: LakeResource
        ) -> dg.AssetCheckResult:
            """Price and amount positive, side one of buy/sell/unknown (blocking: bars would be wrong)."""
            keyed = per_day(context, lake, quality.trade_figures)
            keyed = [
                (k, {n: f[n] for n in ("trades", "non_positive_price", "non_positive_amount", "bad_side")})
                for k, f in keyed
            ]
            return _verdict(
                context,
                keyed,
                lambda f: f["non_positive_price"] == f["non_positive_amount"] == f["bad_side"] == 0,
                dg.AssetCheckSeverity.ERROR,
                "every trade needs a positive price and amount and a known side",
            )

        @dg.asset_check(asset=trades, partitions_def=partitions_def, name="no_duplicate_trade_ids")
        def no_duplicate_trade_ids(
            context: dg.AssetCheckExecutionContext, lake: LakeResource
        ) -> dg.AssetCheckResult:
            """Trade ids are unique within the day (a warning: some venues reuse ids, volume may be double counted)."""
            keyed = per_day(context, lake, quality.trade_figures)
            keyed = [(k, {n: f[n] for n in ("trades", "duplicate_ids")}) for k, f in keyed]
            return _verdict(
                context,
                keyed,
                lambda f: f["duplicate_ids"] == 0,
                dg.AssetCheckSeverity.WARN,
                "duplicated trade ids",
            )

        checks += [trade_values_valid, no_duplicate_trade_ids]
    return checks


def build_feature_checks(
    depth: dg.AssetsDefinition, trade_bars: dg.AssetsDefinition, partitions_def: dg.MultiPartitionsDefinition
) -> list[dg.AssetChecksDefinition]:
    """Grid coverage of both feature tables, and no missing mid after the day's first snapshot."""

    def build(asset: dg.AssetsDefinition, value_column: str | None) -> dg.AssetChecksDefinition:
        table = ".".join(asset.key.path)

        @dg.asset_check(
            asset=asset, partitions_def=partitions_def, blocking=True, pool=DUCKDB_POOL, name="grid_complete"
        )
        def grid_complete(
            context: dg.AssetCheckExecutionContext, duckdb: DuckDBResource, features: FeatureSettings
        ) -> dg.AssetCheckResult:
            """Every grid point of the day is there once and, after the first book, none lacks a value."""
            with duckdb.get_connection() as con:
                keyed = [
                    (key, quality.grid_figures(con, table, day, value_column))
                    for key, day in day_slices(partitions_def, context.partition_keys, features.grid_step_ms)
                ]
            return _verdict(
                context,
                keyed,
                lambda f: (
                    f["rows"] == f["distinct_ts"] == f["expected_rows"] and f["missing_after_first"] == 0
                ),
                dg.AssetCheckSeverity.ERROR,
                f"{table}: a full grid, no gaps after the first value",
            )

        return grid_complete

    return [build(depth, "mid"), build(trade_bars, None)]
