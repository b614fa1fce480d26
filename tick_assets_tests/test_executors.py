"""Where steps run (TICK_ASSETS_EXECUTOR): the executor each name gives, the Celery settings the runs and the
workers share, and the worker app refusing to start without its broker."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tick_assets import settings
from tick_assets.assets.executors import celery_settings, step_executor


def test_the_default_executor_runs_steps_as_local_processes(monkeypatch) -> None:
    monkeypatch.delenv(settings.EXECUTOR_VAR, raising=False)
    assert step_executor().name == "multiprocess"


def test_the_celery_executor_takes_its_broker_from_the_environment_when_a_run_starts(monkeypatch) -> None:
    """The configured executor names the variables, never their values: a run resolves them, or fails naming
    the one that is missing."""
    executor = step_executor("celery")
    assert executor.name == "celery"
    monkeypatch.delenv(settings.CELERY_BROKER_VAR, raising=False)
    missing = executor.apply_config_mapping({})
    assert not missing.success and settings.CELERY_BROKER_VAR in missing.errors[0].message
    monkeypatch.setenv(settings.CELERY_BROKER_VAR, "redis://:secret@broker:6379/0")
    monkeypatch.setenv(settings.CELERY_BACKEND_VAR, "redis://:secret@broker:6379/1")
    config = executor.apply_config_mapping({}).value["config"]
    assert (config["broker"], config["backend"]) == (
        "redis://:secret@broker:6379/0",
        "redis://:secret@broker:6379/1",
    )
    assert config["config_source"]["task_acks_late"] is True


def test_the_celery_settings_hand_a_vanished_workers_step_on_within_the_visibility_timeout(
    monkeypatch,
) -> None:
    monkeypatch.setenv("TICK_ASSETS_CELERY_VISIBILITY_TIMEOUT", "120")
    options = celery_settings()["broker_transport_options"]
    assert options["visibility_timeout"] == 120.0
    # kombu scans for unacknowledged steps every interval x throttle seconds: 10 s, not its default 100 s
    assert options["unacked_restore_interval"] * options["unacked_restore_throttle"] == 10
    assert celery_settings()["worker_prefetch_multiplier"] == 1


def test_the_k8s_executor_is_dagster_k8s_job_executor() -> None:
    from dagster_k8s import k8s_job_executor

    assert step_executor("k8s") is k8s_job_executor


def test_an_unknown_executor_is_refused_naming_the_variable() -> None:
    with pytest.raises(ValueError, match="TICK_ASSETS_EXECUTOR='spark'"):
        step_executor("spark")


def test_the_environment_chooses_the_executor(monkeypatch) -> None:
    monkeypatch.setenv(settings.EXECUTOR_VAR, "celery")
    assert step_executor().name == "celery"


def test_a_worker_without_its_broker_refuses_to_start_naming_the_variables() -> None:
    env = {"PATH": "/usr/bin:/bin", "HOME": "/tmp"}
    done = subprocess.run(
        [sys.executable, "-c", "import tick_assets.assets.celery_app"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode != 0
    assert f"{settings.CELERY_BROKER_VAR} is not set" in done.stderr
    assert settings.CELERY_BACKEND_VAR in done.stderr


def _job_with(executor):
    import dagster as dg

    @dg.asset
    def one() -> int:
        return 1

    return dg.Definitions(assets=[one], executor=executor).resolve_implicit_global_asset_job_def()


def test_a_run_may_set_how_many_steps_run_at_once_and_nothing_else(monkeypatch) -> None:
    import dagster as dg

    monkeypatch.delenv(settings.EXECUTOR_VAR, raising=False)
    job = _job_with(step_executor())
    dg.validate_run_config(job, {"execution": {"config": {"max_concurrent": 1}}})
    dg.validate_run_config(job, {})
    with pytest.raises(dg.DagsterInvalidConfigError, match="start_method"):
        dg.validate_run_config(job, {"execution": {"config": {"start_method": {"spawn": {}}}}})


def test_every_module_the_step_forkserver_preloads_exists() -> None:
    # The forkserver skips a module it cannot import, so a name that a Dagster upgrade renamed would silently
    # bring back the per-step import cost: check them here.
    import importlib.util

    from tick_assets.assets.executors import STEP_PRELOAD_MODULES

    assert STEP_PRELOAD_MODULES[0] == "tick_assets.definitions"
    assert [m for m in STEP_PRELOAD_MODULES if importlib.util.find_spec(m) is None] == []
