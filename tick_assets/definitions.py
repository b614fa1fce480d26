"""The one Definitions object of the code location (tick_assets.definitions:defs)."""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg

from tick_assets import settings
from tick_assets.assets.analytics import build_analytics_assets
from tick_assets.assets.checks import build_book_checks, build_feature_checks, build_raw_checks
from tick_assets.assets.executors import step_executor
from tick_assets.assets.features import build_book_asset, build_feature_assets
from tick_assets.assets.io_manager import LakeIOManager
from tick_assets.assets.partitions import configured_backfill_policy, configured_partitions
from tick_assets.assets.raw import build_raw_assets
from tick_assets.assets.resources import LAKE_IO, FeatureSettings, LakeResource, TardisResource
from tick_assets.assets.sensors.daily_exports import build_daily_sensor
from tick_assets.assets.sensors.dead_run_workers import dead_run_workers
from tick_assets.assets.warehouse import build_views_asset


def build_definitions(
    *,
    partitions: dg.MultiPartitionsDefinition,
    backfill_policy: dg.BackfillPolicy,
    data_types: list[str],
    data_dir: Path,
    tardis: TardisResource,
    lake: LakeResource | None = None,
    daily_sensor: dg.DefaultSensorStatus = dg.DefaultSensorStatus.STOPPED,
    executor: dg.ExecutorDefinition | None = None,
) -> dg.Definitions:
    """The whole asset graph (raw, features, analytics, checks, the warehouse catalog, sensors) over `data_dir`
    (the lake at `lake`, by default DATA_DIR/lake or TICK_ASSETS_LAKE): the one way to wire it."""
    raw_assets = build_raw_assets(data_types, partitions_def=partitions, backfill_policy=backfill_policy)
    raw_by_type = {a.key.path[-1]: a for a in raw_assets}
    book, trades = raw_by_type.get("book_snapshot_25"), raw_by_type.get("trades")
    assets: list[dg.AssetsDefinition] = list(raw_assets)
    checks = build_raw_checks(book, trades, partitions_def=partitions)
    l2 = raw_by_type.get("incremental_book_L2")
    book_features = None
    if l2 is not None:  # the whole book, rebuilt from the L2 updates
        book_features = build_book_asset(l2, partitions_def=partitions, backfill_policy=backfill_policy)
        assets.append(book_features)
        checks += build_book_checks(book_features, partitions_def=partitions)
    if book is not None and trades is not None:  # the features need both raw data types
        depth, trade_bars = build_feature_assets(
            book, trades, partitions_def=partitions, backfill_policy=backfill_policy
        )
        assets += [
            depth,
            trade_bars,
            *build_analytics_assets(
                depth, trade_bars, book_features, partitions_def=partitions, backfill_policy=backfill_policy
            ),
        ]
        checks += build_feature_checks(depth, trade_bars, partitions_def=partitions)
    lake = lake or LakeResource(data_dir=str(data_dir))
    return dg.Definitions(
        executor=executor or step_executor(),
        assets=[*assets, build_views_asset(assets)],
        asset_checks=checks,
        resources={
            "tardis": tardis,
            "lake": lake,
            LAKE_IO: LakeIOManager(lake=lake),
            "features": FeatureSettings(),
        },
        sensors=[
            build_daily_sensor(raw_assets, partitions_def=partitions, default_status=daily_sensor),
            dead_run_workers,
            dg.AutomationConditionSensorDefinition(
                "tick_assets_automation",
                target=dg.AssetSelection.all(),
                default_status=dg.DefaultSensorStatus.RUNNING,
                minimum_interval_seconds=30,
            ),
        ],
    )


partitions = configured_partitions()
defs = build_definitions(
    partitions=partitions,
    backfill_policy=configured_backfill_policy(),
    data_types=settings.raw_data_types(),
    data_dir=settings.data_dir(),
    tardis=TardisResource(
        # The key itself is resolved by Dagster at run time and never appears in config shown in the UI;
        # without TARDIS_API_KEY only the first day of each month can be downloaded.
        api_key=dg.EnvVar("TARDIS_API_KEY") if os.environ.get("TARDIS_API_KEY") else None,
        datasets_url=settings.datasets_url(),
        api_url=settings.api_url(),
        data_dir=str(settings.data_dir()),
        # the limiter's server URL may hold a password: resolved at run time, like the key
        limiter_url=dg.EnvVar(settings.LIMITER_URL_VAR) if os.environ.get(settings.LIMITER_URL_VAR) else None,
    ),
    daily_sensor=dg.DefaultSensorStatus.RUNNING
    if settings.daily_sensor_on()
    else dg.DefaultSensorStatus.STOPPED,
)
