"""Sensor dead_run_workers: a STARTED run whose local run worker died is marked failed; live ones are not."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import dagster as dg
from dagster._core.events import EngineEventData
from dagster._core.test_utils import create_run_for_test

from tick_assets.assets.sensors.dead_run_workers import (
    SENSOR_NAME,
    dead_run_workers,
    fail_runs_with_dead_workers,
)
from tick_assets.definitions import defs
from tick_assets.processes import same_process_running


def _started_run(instance: dg.DagsterInstance, pid: int) -> str:
    run = create_run_for_test(instance, job_name="raw_job", status=dg.DagsterRunStatus.STARTED)
    instance.report_engine_event(
        f"Started process for run (pid: {pid}).", run, EngineEventData.in_process(pid)
    )
    return run.run_id


def test_runs_whose_worker_died_are_failed_and_live_ones_left_alone() -> None:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    with dg.instance_for_test() as instance:
        dead_run = _started_run(instance, gone.pid)
        live_run = _started_run(instance, os.getpid())
        no_worker_yet = create_run_for_test(instance, job_name="j", status=dg.DagsterRunStatus.STARTED).run_id

        marked = fail_runs_with_dead_workers(instance)

        assert marked == [f"{dead_run}: run worker pid {gone.pid} gone, marked failed"]
        assert instance.get_run_by_id(dead_run).status == dg.DagsterRunStatus.FAILURE
        assert instance.get_run_by_id(live_run).status == dg.DagsterRunStatus.STARTED
        assert instance.get_run_by_id(no_worker_yet).status == dg.DagsterRunStatus.STARTED
        failure = instance.get_records_for_run(dead_run, of_type=dg.DagsterEventType.RUN_FAILURE).records
        assert "dead_run_workers" in failure[0].event_log_entry.dagster_event.message
        # A second pass finds nothing more to do.
        assert fail_runs_with_dead_workers(instance) == []
        result = dead_run_workers(dg.build_sensor_context(instance=instance))
        assert "every started run has a live run worker" in result.skip_message


def test_a_reused_pid_does_not_count_as_the_run_worker() -> None:
    # Our own process started before now, so it "is" a worker seen now, but not one seen an hour ago.
    assert same_process_running(os.getpid(), time.time())
    assert not same_process_running(os.getpid(), time.time() - 3600)


def test_the_sensor_is_part_of_the_code_location_and_on_by_default() -> None:
    sensor = defs.resolve_sensor_def(SENSOR_NAME)
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
