"""Materialize partitioned assets for a date range from the shell: ranged runs per instrument, in process.

`dagster asset materialize --partition-range` only accepts single-run backfill policies; this splits the range
per instrument into runs of at most TICK_ASSETS_BACKFILL_DAYS_PER_RUN days (as a daemon backfill of one
instrument would), runs them one after the other without the daemon, and records them in the instance.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path

import dagster as dg

RANGE_START = "dagster/asset_partition_range_start"
RANGE_END = "dagster/asset_partition_range_end"


@dataclass(frozen=True)
class RangeRun:
    """One ranged run: which instrument, whether it succeeded and the rows it recorded per asset."""

    instrument: str
    first_day: dt.date
    last_day: dt.date
    success: bool
    rows: dict[str, int]
    partitions: dict[str, int]


def instance_for_shell() -> dg.DagsterInstance:
    """The instance of $DAGSTER_HOME, else the repository's dagster.yaml when run from its root, else ephemeral."""
    if os.environ.get("DAGSTER_HOME"):
        return dg.DagsterInstance.get()
    if Path("dagster.yaml").is_file() and Path("workspace.yaml").is_file():
        return dg.DagsterInstance.from_config(str(Path.cwd()))
    return dg.DagsterInstance.ephemeral()


def materialize_range(
    defs: dg.Definitions,
    asset_keys: list[dg.AssetKey],
    instruments: list[str],
    first_day: dt.date,
    last_day: dt.date,
    instance: dg.DagsterInstance,
    days_per_run: int = 0,
) -> list[RangeRun]:
    """Materialize `asset_keys` (with their checks) for [first_day, last_day] x each instrument, in ranged runs
    of at most `days_per_run` days (0: the whole range of an instrument in one run)."""
    assets = [*(defs.assets or []), *(defs.asset_checks or [])]  # the selected assets' checks run too
    total = (last_day - first_day).days + 1
    step = days_per_run or total
    chunks = [
        (first_day + dt.timedelta(days=i), first_day + dt.timedelta(days=min(i + step, total) - 1))
        for i in range(0, total, step)
    ]
    runs = []
    for instrument, (start, end) in ((inst, chunk) for inst in instruments for chunk in chunks):
        result = dg.materialize(
            assets,
            selection=asset_keys,
            instance=instance,
            resources=defs.resources,
            tags={RANGE_START: f"{start:%Y-%m-%d}|{instrument}", RANGE_END: f"{end:%Y-%m-%d}|{instrument}"},
            raise_on_error=False,
        )
        rows: dict[str, int] = {}
        partitions: dict[str, int] = {}
        for key in asset_keys:
            records = instance.fetch_materializations(
                dg.AssetRecordsFilter(asset_key=key), limit=10_000
            ).records
            mine = [r for r in records if r.run_id == result.run_id]
            partitions[key.to_user_string()] = len(mine)
            rows[key.to_user_string()] = sum(
                int(r.asset_materialization.metadata["dagster/row_count"].value)
                for r in mine
                if "dagster/row_count" in r.asset_materialization.metadata
            )
        runs.append(RangeRun(instrument, start, end, result.success, rows, partitions))
    return runs


def materialize_unpartitioned(defs: dg.Definitions, key: dg.AssetKey, instance: dg.DagsterInstance) -> bool:
    """Materialize one unpartitioned asset (e.g. the warehouse views) in process."""
    assets = list(defs.assets or [])
    return dg.materialize(assets, selection=[key], instance=instance, resources=defs.resources).success


def partitioned_asset_keys(defs: dg.Definitions) -> list[dg.AssetKey]:
    """Every partitioned asset of the definitions (raw, features, analytics), in definition order."""
    return [
        key
        for a in defs.assets or []
        if isinstance(a, dg.AssetsDefinition) and a.partitions_def is not None
        for key in a.keys
    ]
