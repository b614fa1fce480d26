"""In-process runs of the assets against an emulator: the resources of such a run and `dg.materialize` on an
instance the test keeps (shared by the asset tests)."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from tick_assets.assets.io_manager import LakeIOManager
from tick_assets.assets.resources import LakeResource, TardisResource
from tick_assets.emulator.server import EmulatorServer

BTC = "binance-futures:BTCUSDT"


def resources(server: EmulatorServer, data_dir: Path, api_key: str | None = "test-key") -> dict:
    """The resources of a run against `server`, everything under `data_dir`."""
    return {
        "tardis": TardisResource(
            api_key=api_key,
            datasets_url=server.datasets_url,
            api_url=server.api_url,
            data_dir=str(data_dir),
            requests_per_second=1000,
            burst=100,
            max_attempts=3,
        ),
        "lake": (lake := LakeResource(data_dir=str(data_dir))),
        "lake_io": LakeIOManager(lake=lake),
    }


def materialize(instance: dg.DagsterInstance, assets: list, **kwargs) -> dg.ExecuteInProcessResult:
    """dg.materialize against `instance`, which keeps the result reachable for `materializations`."""
    result = dg.materialize(assets, instance=instance, **kwargs)
    result.test_instance = instance  # type: ignore[attr-defined]
    return result
