"""The one Definitions object of the code location (tick_assets.definitions:defs)."""

from __future__ import annotations

import os

import dagster as dg
from dagster_duckdb import DuckDBResource

from tick_assets import settings
from tick_assets.assets.partitions import configured_partitions
from tick_assets.assets.raw import build_raw_assets
from tick_assets.assets.resources import LakeResource, TardisResource
from tick_assets.assets.warehouse import build_raw_views_asset

# The key itself is resolved by Dagster at run time and never appears in config shown in the UI; without
# TARDIS_API_KEY only the first day of each month can be downloaded.
_api_key = dg.EnvVar("TARDIS_API_KEY") if os.environ.get("TARDIS_API_KEY") else None

partitions = configured_partitions()
raw_assets = build_raw_assets(settings.raw_data_types(), partitions)
raw_views = build_raw_views_asset(raw_assets)

defs = dg.Definitions(
    assets=[*raw_assets, raw_views],
    resources={
        "tardis": TardisResource(
            api_key=_api_key,
            datasets_url=settings.datasets_url(),
            api_url=settings.api_url(),
            data_dir=str(settings.data_dir()),
        ),
        "lake": LakeResource(data_dir=str(settings.data_dir())),
        "duckdb": DuckDBResource(database=str(settings.warehouse_path())),
    },
    sensors=[
        dg.AutomationConditionSensorDefinition(
            "tick_assets_automation",
            target=dg.AssetSelection.all(),
            default_status=dg.DefaultSensorStatus.RUNNING,
            minimum_interval_seconds=30,
        )
    ],
)
