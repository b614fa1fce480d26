"""Materialize partitioned assets for a date range from the shell: ranged runs per instrument, in process.

`dagster asset materialize --partition-range` only accepts single-run backfill policies; this splits the range
per instrument into runs of at most TICK_ASSETS_BACKFILL_DAYS_PER_RUN days (as a daemon backfill of one
instrument would), runs them one after the other without the daemon, and records them in the instance.
"""

from __future__ import annotations

import datetime as dt
import os
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg

from tick_assets.assets.partitions import RANGE_END, RANGE_START, partition_key
from tick_assets.stack.progress import Progress, StatusLine, logs_around, ticking

#: The job name `dg.materialize` runs under (the UI shows such runs as ad hoc materializations).
EPHEMERAL_JOB_NAME = "__ephemeral_asset_job__"


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


@dataclass
class RangeProgress:
    """What the ranged runs have done so far, updated from their events as they happen (thread-safe)."""

    runs_total: int
    partitions_total: int
    asset_keys: frozenset[dg.AssetKey]
    started: float = field(default_factory=time.monotonic)
    runs_done: int = 0
    runs_failed: int = 0
    running: bool = False
    partitions_done: int = 0
    partitions_failed: int = 0
    steps: dict[str, None] = field(default_factory=dict)  # in progress, in start order
    _run_partitions: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def run_started(self) -> None:
        """A ranged run is about to start."""
        with self._lock:
            self.running, self._run_partitions = True, 0

    def run_finished(self, success: bool, partitions: int) -> None:
        """A ranged run ended; the partitions of it that did not land count as failed."""
        with self._lock:
            self.running = False
            self.runs_done += 1
            self.runs_failed += not success
            self.partitions_failed += max(partitions - self._run_partitions, 0)
            self.steps.clear()

    def on_event(self, entry: Any) -> None:
        """Dagster event listener (an EventLogEntry of the running run); never raises."""
        try:
            event = entry.dagster_event
            if event is None:
                return
            kind = event.event_type_value
            with self._lock:
                if kind == "STEP_START" and event.step_key:
                    self.steps[event.step_key] = None
                elif kind in {"STEP_SUCCESS", "STEP_FAILURE", "STEP_SKIPPED"}:
                    self.steps.pop(event.step_key or "", None)
                elif kind == "ASSET_MATERIALIZATION" and event.asset_key in self.asset_keys:
                    self.partitions_done += 1
                    self._run_partitions += 1
        except Exception:  # a progress display must not break the run
            return

    def progress(self) -> Progress:
        """The current state as a `Progress`."""
        with self._lock:
            return Progress(
                label="materialize",
                runs_total=self.runs_total,
                runs_running=int(self.running),
                runs_done=self.runs_done,
                runs_failed=self.runs_failed,
                partitions_total=self.partitions_total,
                partitions_done=self.partitions_done,
                partitions_failed=self.partitions_failed,
                steps=tuple(self.steps),
                elapsed=time.monotonic() - self.started,
            )


def _materialize(
    assets: Sequence[Any],
    asset_keys: list[dg.AssetKey],
    instance: dg.DagsterInstance,
    resources: Mapping[str, Any] | None,
    tags: dict[str, str],
    listener: Any = None,
) -> dg.ExecuteInProcessResult:
    """`dg.materialize(..., raise_on_error=False)` with a run id picked here, so `listener` (if any) gets the
    run's events as they are stored."""
    job = dg.Definitions(
        jobs=[dg.define_asset_job(EPHEMERAL_JOB_NAME, selection=asset_keys)],
        assets=assets,
        resources=resources,
    ).resolve_job_def(EPHEMERAL_JOB_NAME)
    run_id = str(uuid.uuid4())
    if listener is not None:
        instance.add_event_listener(run_id, listener)
    return job.execute_in_process(instance=instance, run_id=run_id, tags=tags, raise_on_error=False)


def materialize_range(
    defs: dg.Definitions,
    asset_keys: list[dg.AssetKey],
    instruments: list[str],
    first_day: dt.date,
    last_day: dt.date,
    instance: dg.DagsterInstance,
    days_per_run: int = 0,
    progress: StatusLine | None = None,
) -> list[RangeRun]:
    """Materialize `asset_keys` (with their checks) for [first_day, last_day] x each instrument, in ranged runs
    of at most `days_per_run` days (0: the whole range of an instrument in one run), showing the progress
    on `progress` if given."""
    assets = [*(defs.assets or []), *(defs.asset_checks or [])]  # the selected assets' checks run too
    total = (last_day - first_day).days + 1
    step = days_per_run or total
    chunks = [
        (first_day + dt.timedelta(days=i), first_day + dt.timedelta(days=min(i + step, total) - 1))
        for i in range(0, total, step)
    ]
    work = [(inst, chunk) for inst in instruments for chunk in chunks]
    tracker = RangeProgress(len(work), len(asset_keys) * total * len(instruments), frozenset(asset_keys))
    if progress is None:
        return [_range_run(defs, assets, asset_keys, instance, inst, *chunk) for inst, chunk in work]
    runs = []
    try:
        # The ticker thread stops before the line is closed, so it cannot redraw a closed line.
        with logs_around(progress), ticking(progress, tracker.progress):
            progress.show(tracker.progress())
            for instrument, (start, end) in work:
                tracker.run_started()
                progress.show(tracker.progress())
                run = _range_run(defs, assets, asset_keys, instance, instrument, start, end, tracker.on_event)
                tracker.run_finished(run.success, len(asset_keys) * ((end - start).days + 1))
                progress.show(tracker.progress())
                runs.append(run)
    finally:
        progress.close()
    return runs


def _range_run(
    defs: dg.Definitions,
    assets: Sequence[Any],
    asset_keys: list[dg.AssetKey],
    instance: dg.DagsterInstance,
    instrument: str,
    start: dt.date,
    end: dt.date,
    listener: Any = None,
) -> RangeRun:
    """One ranged run of `asset_keys` for [start, end] x `instrument`, and what it recorded."""
    result = _materialize(
        assets,
        asset_keys,
        instance,
        defs.resources,
        {RANGE_START: partition_key(start, instrument), RANGE_END: partition_key(end, instrument)},
        listener,
    )
    rows: dict[str, int] = {}
    partitions: dict[str, int] = {}
    for key in asset_keys:
        records = instance.fetch_materializations(dg.AssetRecordsFilter(asset_key=key), limit=10_000).records
        mine = [r for r in records if r.run_id == result.run_id]
        partitions[key.to_user_string()] = len(mine)
        rows[key.to_user_string()] = sum(
            int(r.asset_materialization.metadata["dagster/row_count"].value)
            for r in mine
            if "dagster/row_count" in r.asset_materialization.metadata
        )
    return RangeRun(instrument, start, end, result.success, rows, partitions)


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
