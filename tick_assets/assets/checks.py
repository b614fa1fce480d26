"""Data-quality asset checks on raw books, raw trades and the feature grids (figures reported as metadata)."""

import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import dagster as dg
import duckdb

# Not re-exported by dagster 1.13 (pinned); the type of AssetCheckEvaluation.target_materialization_data.
from dagster._core.definitions.asset_checks.asset_check_evaluation import (
    AssetCheckEvaluationTargetMaterializationData as TargetMaterialization,
)

from tick_assets.assets.io_manager import dataset_of
from tick_assets.assets.metadata import figures as rounded_figures
from tick_assets.assets.offered import NOT_OFFERED, latest_materialization, not_offered_reason
from tick_assets.assets.partitions import day_slices
from tick_assets.assets.resources import FeatureSettings, LakeResource
from tick_assets.features import book_proof, quality
from tick_assets.features.grid import DaySlice

# A partitions_def on an asset check is preview in Dagster 1.13 and is what gives each partition its own verdict:
# used knowingly, not a warning.
warnings.filterwarnings(
    "ignore", r"Specifying a partitions_def on an AssetCheckSpec is currently in preview", dg.PreviewWarning
)

Figures = dict[str, Any]
#: Share of crossed snapshots tolerated before the book check fails (exchanges do publish a few).
MAX_CROSSED_SHARE = 0.001
#: Share of snapshots whose local_timestamp precedes the exchange's tolerated (clock skew) before a warning.
MAX_LOCAL_BEFORE_EXCHANGE_SHARE = 0.01
#: A longer gap between book snapshots is reported as a warning.
MAX_SILENCE_SECONDS = 60.0
#: Share of book_snapshot_25 rows the rebuilt top 25 may miss before a warning (exact on emulator days).
MAX_SNAPSHOT_MISMATCH_SHARE = 0.001
#: The day's last book against the next day's opening snapshot: least share of common top-25 price levels,
#: and the largest mid move across midnight, before a warning.
MIN_TOP25_OVERLAP = 0.5
MAX_MIDNIGHT_MID_MOVE_BPS = 50.0
#: Share of the day the rebuilt book may spend crossed or locked before a warning.
MAX_CROSSED_OR_LOCKED_SHARE = 0.001


@dataclass(frozen=True)
class _Checked:
    """The materialization a check of one partition verifies, and whether Tardis offers its data at all."""

    target: TargetMaterialization | None
    not_offered: str | None = None


def _latest(context: dg.AssetCheckExecutionContext, asset_key: dg.AssetKey, partition: str) -> _Checked:
    """The latest materialization of `partition`: the one a check of it verifies."""
    record = latest_materialization(context.instance, asset_key, partition)
    if record is None:
        return _Checked(None)
    target = TargetMaterialization(
        run_id=record.run_id, storage_id=record.storage_id, timestamp=record.timestamp
    )
    return _Checked(target, not_offered_reason(record))


def _target(
    context: dg.AssetCheckExecutionContext, asset_key: dg.AssetKey, partition: str
) -> TargetMaterialization | None:
    """The latest materialization of `partition`."""
    return _latest(context, asset_key, partition).target


def _evaluation(
    check_key: dg.AssetCheckKey,
    partition: str,
    target: TargetMaterialization | None,
    passed: bool,
    severity: dg.AssetCheckSeverity,
    blocking: bool,
    figures: Figures,
    description: str,
) -> dg.AssetCheckEvaluation:
    """The verdict of one check on one partition, tied to that partition's latest materialization.

    Dagster attributes an AssetCheckResult to a partition only in single-partition runs; a ranged run (a
    backfill with a multi-run policy) would record one unpartitioned result, so the UI's per-partition check
    status and the automation gate `all_deps_blocking_checks_passed` would never see it. Emitting one
    evaluation per partition, targeting the materialization it checked, keeps both right in ranged runs.
    """
    return dg.AssetCheckEvaluation(
        asset_key=check_key.asset_key,
        check_name=check_key.name,
        passed=passed,
        metadata=rounded_figures({k: v for k, v in figures.items() if v is not None}),
        target_materialization_data=target,
        severity=severity,
        description=description,
        blocking=blocking,
        partition=partition,
    )


def _check_outputs(context: dg.AssetCheckExecutionContext) -> Iterator[dg.Output]:
    """The (empty) outputs of the step's checks: their verdicts were emitted as evaluations per partition."""
    for name in sorted(context.op_execution_context.selected_output_names):
        yield dg.Output(None, output_name=name)


@dataclass(frozen=True)
class Rule:
    """One check over a partition's figures: which figures it shows, when it passes, how bad a failure is."""

    name: str
    doc: str
    shown: tuple[str, ...]
    passes: Callable[[Figures], bool]
    severity: dg.AssetCheckSeverity
    blocking: bool = False


BOOK_RULES = (
    Rule(
        "book_not_crossed",
        "crossed books (bid > ask) must stay rare: fails above 0.1% of snapshots; locked books are counted",
        ("snapshots", "crossed", "locked"),
        lambda f: f["crossed"] <= MAX_CROSSED_SHARE * max(1, f["snapshots"]),
        dg.AssetCheckSeverity.ERROR,
        blocking=True,
    ),
    Rule(
        "local_timestamp_in_order",
        "receive times must not go backwards in file order (the grid sampling relies on it)",
        ("snapshots", "local_timestamp_decreases"),
        lambda f: f["local_timestamp_decreases"] == 0,
        dg.AssetCheckSeverity.ERROR,
        blocking=True,
    ),
    Rule(
        "local_after_exchange_timestamp",
        "local_timestamp >= timestamp; above 1% of snapshots received before the exchange stamped them: clock skew",
        ("snapshots", "local_before_exchange", "max_exchange_ahead_ms"),
        lambda f: f["local_before_exchange"] <= MAX_LOCAL_BEFORE_EXCHANGE_SHARE * max(1, f["snapshots"]),
        dg.AssetCheckSeverity.WARN,
    ),
    Rule(
        "longest_silence",
        "the longest gap without a snapshot in the UTC day (edges included); above 60 s the grid goes stale",
        ("snapshots", "longest_silence_seconds", "longest_silence_since_us"),
        lambda f: (f["longest_silence_seconds"] or 0) <= MAX_SILENCE_SECONDS,
        dg.AssetCheckSeverity.WARN,
    ),
)

TRADE_RULES = (
    Rule(
        "trade_values_valid",
        "every trade needs a positive price and amount and a side of buy/sell/unknown (bars would be wrong)",
        ("trades", "non_positive_price", "non_positive_amount", "bad_side"),
        lambda f: f["non_positive_price"] == f["non_positive_amount"] == f["bad_side"] == 0,
        dg.AssetCheckSeverity.ERROR,
        blocking=True,
    ),
    Rule(
        "no_duplicate_trade_ids",
        "trade ids are unique within the day (some venues reuse ids; volume may be double counted)",
        ("trades", "duplicate_ids"),
        lambda f: f["duplicate_ids"] == 0,
        dg.AssetCheckSeverity.WARN,
    ),
)


BOOK_PROOF_RULES = (
    Rule(
        "book_matches_snapshot_25",
        "the rebuilt top 25 equals raw/book_snapshot_25 at each snapshot's receive time (a warning above 0.1% "
        "mismatched; not compared without that partition)",
        (
            "snapshots_compared",
            "snapshots_matched",
            "match_rate",
            "first_mismatch_local_timestamp",
            "first_mismatch_row",
        ),
        lambda f: not f["snapshots_compared"] or f["match_rate"] >= 1 - MAX_SNAPSHOT_MISMATCH_SHARE,
        dg.AssetCheckSeverity.WARN,
    ),
    Rule(
        "book_reconciles_with_next_day",
        "the day's last book against the next day's opening snapshot: at least half of the top-25 price levels in "
        "common per side and a mid move under 50 bps (not compared until the next day is in the lake)",
        (
            "next_day",
            "bid_top25_overlap",
            "ask_top25_overlap",
            "bid_same_size_share",
            "ask_same_size_share",
            "bid_mean_abs_size_diff",
            "ask_mean_abs_size_diff",
            "mid_change_bps",
        ),
        lambda f: (
            f["next_day"] is None
            or (
                min(f["bid_top25_overlap"], f["ask_top25_overlap"]) >= MIN_TOP25_OVERLAP
                and abs(f.get("mid_change_bps") or 0.0) <= MAX_MIDNIGHT_MID_MOVE_BPS
            )
        ),
        dg.AssetCheckSeverity.WARN,
    ),
    Rule(
        "book_replay_sane",
        "time the rebuilt book spent crossed or locked (a warning above 0.1% of the day), rows with a missing "
        "price or amount (a warning), and what the replay met: updates before the first snapshot, re-snapshots, "
        "deletes of absent levels",
        (
            "l2_rows",
            "messages",
            "crossed_seconds",
            "locked_seconds",
            "crossed_or_locked_share",
            "invalid_rows",
            "pre_snapshot_rows",
            "resnapshots",
            "absent_deletes",
        ),
        lambda f: (
            f["l2_rows"] is None
            or (f["crossed_or_locked_share"] <= MAX_CROSSED_OR_LOCKED_SHARE and f["invalid_rows"] == 0)
        ),
        dg.AssetCheckSeverity.WARN,
    ),
)


def _book_proof_figures(con: duckdb.DuckDBPyConnection, lake: Any, day: DaySlice) -> Figures:
    """proof_figures (None for a figure that does not apply, e.g. no mismatch, no next day), or none at all for
    a grouped dataset (no book is rebuilt for it)."""
    shown = dict.fromkeys(n for rule in BOOK_PROOF_RULES for n in rule.shown)
    return shown if day.grouped else shown | book_proof.proof_figures(con, lake, day)


def _lake_checks(
    asset: dg.AssetsDefinition,
    rules: tuple[Rule, ...],
    figures: Callable[[duckdb.DuckDBPyConnection, Any, DaySlice], Figures],
    partitions_def: dg.MultiPartitionsDefinition,
) -> dg.AssetChecksDefinition:
    """All `rules` of one raw asset in one step: each partition's lake file is scanned once for all of them."""
    specs = [
        dg.AssetCheckSpec(
            r.name, asset=asset.key, description=r.doc, blocking=r.blocking, partitions_def=partitions_def
        )
        for r in rules
    ]

    @dg.multi_asset_check(specs=specs, name=f"{asset.key.path[-1]}_quality")
    def lake_checks(context: dg.AssetCheckExecutionContext, lake: LakeResource):
        with lake.connect() as con:
            keyed = [(key, figures(con, lake.lake, day)) for key, day in day_slices(context.partition_keys)]
        checked = {key: _latest(context, asset.key, key) for key, _ in keyed}  # once per partition
        for rule in rules:
            check_key = dg.AssetCheckKey(asset.key, rule.name)
            for key, f in keyed:
                c = checked[key]
                if c.not_offered is not None:  # an empty partition by design: nothing to hold against it
                    yield _evaluation(
                        check_key,
                        key,
                        c.target,
                        True,
                        rule.severity,
                        rule.blocking,
                        {NOT_OFFERED: True},
                        f"not offered by Tardis, nothing to check: {c.not_offered}",
                    )
                    continue
                shown = {n: f[n] for n in rule.shown}
                yield _evaluation(
                    check_key,
                    key,
                    c.target,
                    rule.passes(f),
                    rule.severity,
                    rule.blocking,
                    shown,
                    rule.doc,
                )
        yield from _check_outputs(context)

    return lake_checks


def build_raw_checks(
    book: dg.AssetsDefinition | None,
    trades: dg.AssetsDefinition | None,
    *,
    partitions_def: dg.MultiPartitionsDefinition,
) -> list[dg.AssetChecksDefinition]:
    """Checks of raw/book_snapshot_25 and raw/trades (run on the lake files, no warehouse)."""
    checks = []
    if book is not None:
        checks.append(_lake_checks(book, BOOK_RULES, quality.book_figures, partitions_def))
    if trades is not None:
        checks.append(_lake_checks(trades, TRADE_RULES, quality.trade_figures, partitions_def))
    return checks


def _grid_check(
    asset: dg.AssetsDefinition, value_column: str | None, partitions_def: dg.MultiPartitionsDefinition
) -> dg.AssetChecksDefinition:
    """grid_complete of one feature asset: a full grid of its day, no missing `value_column` after the first."""
    dataset = dataset_of(asset.key)

    @dg.asset_check(asset=asset, partitions_def=partitions_def, blocking=True, name="grid_complete")
    def grid_complete(
        context: dg.AssetCheckExecutionContext, lake: LakeResource, features: FeatureSettings
    ) -> Iterator[dg.AssetCheckEvaluation]:
        """Every grid point of the day is there once and, after the first book, none lacks a value."""
        with lake.connect() as con:
            keyed = [
                (key, quality.grid_figures(con, lake.lake, dataset, day, value_column))
                for key, day in day_slices(context.partition_keys, features.grid_step_ms)
            ]
        check_key = dg.AssetCheckKey(asset.key, "grid_complete")
        for key, f in keyed:
            passed = (
                f["rows"] == f["rows_in_day"] == f["distinct_ts"] == f["expected_rows"]
                and f["missing_after_first"] == 0
            )
            yield _evaluation(
                check_key,
                key,
                _target(context, asset.key, key),
                passed,
                dg.AssetCheckSeverity.ERROR,
                True,
                f,
                f"{dataset}: a full grid of its day and instrument, no gaps after the first value",
            )
        yield from _check_outputs(context)

    return grid_complete


def build_feature_checks(
    depth: dg.AssetsDefinition,
    trade_bars: dg.AssetsDefinition,
    *,
    partitions_def: dg.MultiPartitionsDefinition,
) -> list[dg.AssetChecksDefinition]:
    """Grid coverage of both feature tables, and no missing mid after the day's first snapshot."""
    return [_grid_check(depth, "mid", partitions_def), _grid_check(trade_bars, None, partitions_def)]


def build_book_checks(
    book: dg.AssetsDefinition, *, partitions_def: dg.MultiPartitionsDefinition
) -> list[dg.AssetChecksDefinition]:
    """features/book: its grid, and the proof of the rebuilt book (book_proof: against book_snapshot_25, against
    the next day's opening snapshot, and the replay's own figures)."""
    return [
        _grid_check(book, "mid", partitions_def),
        _lake_checks(book, BOOK_PROOF_RULES, _book_proof_figures, partitions_def),
    ]
