"""The one Definitions object of the code location (tick_assets.definitions:defs)."""

from __future__ import annotations

import multiprocessing
import os
from pathlib import Path

import dagster as dg
from dagster_duckdb import DuckDBResource
from dagster_duckdb_pandas import DuckDBPandasIOManager

from tick_assets import settings
from tick_assets.assets.analytics import build_analytics_assets
from tick_assets.assets.checks import build_feature_checks, build_raw_checks
from tick_assets.assets.daily import build_daily_sensor
from tick_assets.assets.features import build_feature_assets
from tick_assets.assets.partitions import configured_partitions
from tick_assets.assets.raw import build_raw_assets, configured_backfill_policy
from tick_assets.assets.resources import FeatureSettings, LakeResource, TardisResource
from tick_assets.assets.run_health import dead_run_workers
from tick_assets.assets.warehouse import build_raw_views_asset

WAREHOUSE_FILE = "warehouse.duckdb"
#: Steps start as forks of a server that has already imported Dagster, DuckDB, pandas and this package, instead
#: of fresh interpreters that import them again (about 3 s per step on 2 cores).
#: (Windows has no forkserver: steps are spawned there, as by default.)
STEP_EXECUTOR = (
    dg.multiprocess_executor.configured(
        {"start_method": {"forkserver": {"preload_modules": ["tick_assets.definitions"]}}}
    )
    if "forkserver" in multiprocessing.get_all_start_methods()
    else dg.multiprocess_executor
)


def build_definitions(
    partitions: dg.MultiPartitionsDefinition,
    policy: dg.BackfillPolicy,
    data_types: list[str],
    data_dir: Path,
    tardis: TardisResource,
    daily_sensor: dg.DefaultSensorStatus = dg.DefaultSensorStatus.STOPPED,
) -> dg.Definitions:
    """The whole asset graph (raw, views, features, analytics, checks, sensors) over `data_dir`."""
    raw_assets = build_raw_assets(data_types, partitions)
    raw_by_type = {a.key.path[-1]: a for a in raw_assets}
    book, trades = raw_by_type.get("book_snapshot_25"), raw_by_type.get("trades")
    assets: list[dg.AssetsDefinition] = [*raw_assets, build_raw_views_asset(raw_assets)]
    checks = build_raw_checks(book, trades, partitions)
    if book is not None and trades is not None:  # the features need both raw data types
        depth, trade_bars = build_feature_assets(book, trades, partitions, policy)
        assets += [depth, trade_bars, *build_analytics_assets(depth, trade_bars, partitions, policy)]
        checks += build_feature_checks(depth, trade_bars, partitions)
    warehouse = str(data_dir / WAREHOUSE_FILE)
    return dg.Definitions(
        executor=STEP_EXECUTOR,
        assets=assets,
        asset_checks=checks,
        resources={
            "tardis": tardis,
            "lake": LakeResource(data_dir=str(data_dir)),
            "features": FeatureSettings(),
            "duckdb": DuckDBResource(database=warehouse),
            "warehouse_io": DuckDBPandasIOManager(database=warehouse),
        },
        sensors=[
            build_daily_sensor(raw_assets, partitions, daily_sensor),
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
    partitions,
    configured_backfill_policy(),
    settings.raw_data_types(),
    settings.data_dir(),
    TardisResource(
        # The key itself is resolved by Dagster at run time and never appears in config shown in the UI;
        # without TARDIS_API_KEY only the first day of each month can be downloaded.
        api_key=dg.EnvVar("TARDIS_API_KEY") if os.environ.get("TARDIS_API_KEY") else None,
        datasets_url=settings.datasets_url(),
        api_url=settings.api_url(),
        data_dir=str(settings.data_dir()),
    ),
    dg.DefaultSensorStatus.RUNNING if settings.daily_sensor_on() else dg.DefaultSensorStatus.STOPPED,
)
