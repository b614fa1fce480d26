"""Sensor `dead_run_workers`: fail runs whose local run worker process is gone, so their pool slots come back.

Dagster's run monitoring cannot check the health of run workers started by the DefaultRunLauncher (the local
launcher of `dagster dev` and of this project's instance). A run worker killed hard (kill -9, the OOM killer, a
reboot) leaves its run STARTED forever, and the pool slots its steps held stay claimed: with pool `duckdb` at
limit 1 every later feature run waits for good. This sensor marks such runs failed; run monitoring then frees
their slots after `free_slots_after_run_end_seconds` (dagster.yaml).
"""

from __future__ import annotations

import dagster as dg

from tick_assets.processes import same_process_running

SENSOR_NAME = "dead_run_workers"
_STARTED_MESSAGE = "Started process for run"


def run_worker(instance: dg.DagsterInstance, run_id: str) -> tuple[int, float] | None:
    """(pid, epoch time) of the latest `Started process for run (pid: N)` event of a run, if any."""
    records = instance.get_records_for_run(
        run_id, of_type=dg.DagsterEventType.ENGINE_EVENT, limit=100
    ).records
    found = None
    for record in records:
        entry, event = record.event_log_entry, record.event_log_entry.dagster_event
        if event is None:
            continue
        metadata = getattr(event.event_specific_data, "metadata", None) or {}
        if (event.message or "").startswith(_STARTED_MESSAGE) and "pid" in metadata:
            found = (int(metadata["pid"].value), entry.timestamp)
    return found


def fail_runs_with_dead_workers(instance: dg.DagsterInstance) -> list[str]:
    """Mark STARTED runs whose local run worker no longer runs as failed; return a line per run marked."""
    if not isinstance(instance.run_launcher, dg.DefaultRunLauncher):
        return []  # other launchers run workers elsewhere; Dagster's own monitoring covers the ones it can
    marked = []
    for record in instance.get_run_records(dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED])):
        run = record.dagster_run
        worker = run_worker(instance, run.run_id)
        if worker is None or same_process_running(*worker):
            continue
        # Re-read: the run may have finished between the listing and the process check.
        current = instance.get_run_by_id(run.run_id)
        if current is None or current.status != dg.DagsterRunStatus.STARTED:
            continue
        message = (
            f"Run worker (pid {worker[0]}) is gone: killed, out of memory or the machine restarted. Marked "
            "failed by sensor dead_run_workers so the pool slots it held are freed; re-execute it (from "
            "failure) or re-launch the backfill's failed partitions."
        )
        instance.report_run_failed(current, message)
        marked.append(f"{run.run_id}: run worker pid {worker[0]} gone, marked failed")
    return marked


@dg.sensor(
    name=SENSOR_NAME,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Marks runs failed whose local run worker process died without a word (kill -9, OOM, "
    "reboot), so their pool slots are freed instead of blocking every later run.",
)
def dead_run_workers(context: dg.SensorEvaluationContext) -> dg.SkipReason:
    """Fail STARTED runs whose run worker process is gone."""
    marked = fail_runs_with_dead_workers(context.instance)
    return dg.SkipReason("; ".join(marked) if marked else "every started run has a live run worker")
