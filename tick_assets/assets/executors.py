"""The step executor of the code location, chosen by TICK_ASSETS_EXECUTOR: multiprocess, celery or k8s.

The run's own process (started by the run launcher) orchestrates; the executor decides where each step runs:
- `multiprocess`: forks of a server process on the run's machine (the single-machine profile);
- `celery`: dagster-celery's `celery_executor`, steps queued on a broker and run by Celery workers on any machine
  (`celery -A tick_assets.assets.celery_app worker -Q dagster`), which share no disk with the run: every step
  reads and writes the lake (S3) and draws from the limiter's server;
- `k8s`: dagster-k8s's `k8s_job_executor`, a Kubernetes Job per step (its settings come from the run launcher's).
"""

from __future__ import annotations

import multiprocessing
from typing import Any

import dagster as dg

from tick_assets import settings

#: The Celery queue the steps go to and the workers consume (dagster-celery's own default).
CELERY_QUEUE = "dagster"

#: What the forkserver imports once per run, so that each step forked from it starts with it imported: the code
#: location, and what a step imports to open the instance (SQLAlchemy, Alembic and Dagster's storage: about 500
#: modules and 1 s per step on an idle core, 3-5 s on a busy machine). A module that is not installed
#: (dagster_postgres without the `distributed` extra) or renamed in a later Dagster is skipped by the forkserver.
STEP_PRELOAD_MODULES = [
    "tick_assets.definitions",
    "dagster._core.instance.factory",
    "dagster._core.storage.sqlite_storage",
    "dagster._core.storage.local_compute_log_manager",
    "dagster._core.storage.root",
    "dagster._core.storage.migration.utils",
    "dagster._core.run_coordinator.queued_run_coordinator",
    "dagster._core.launcher.default_run_launcher",
    "dagster._core.secrets.env_file",
    "dagster_postgres",
]


def multiprocess_executor() -> dg.ExecutorDefinition:
    """Steps as forks of a server that has already imported Dagster, its storage, DuckDB, pandas and this package,
    instead of fresh interpreters that import them again (about 3 s per step on 2 cores). Spawned where there is no
    forkserver (Windows)."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return dg.multiprocess_executor

    def with_forkserver(config: dict[str, Any]) -> dict[str, Any]:
        return {**config, "start_method": {"forkserver": {"preload_modules": STEP_PRELOAD_MODULES}}}

    # A run may still set how many steps run at once (run config `execution: config: max_concurrent: N`, also in a
    # backfill's run config); everything else is fixed here.
    return dg.multiprocess_executor.configured(
        with_forkserver,
        config_schema={
            "max_concurrent": dg.Field(
                dg.Noneable(int),
                default_value=None,
                is_required=False,
                description="Step processes of a run at once (default: the machine's cores).",
            )
        },
    )


def celery_settings() -> dict[str, Any]:
    """The Celery settings the run's executor and every worker share (they must agree)."""
    return {
        # One step reserved per worker process: the rest stay on the broker for whichever worker frees first.
        "worker_prefetch_multiplier": 1,
        # A step is acknowledged when it ends, not when it is taken: if its whole worker vanishes (kill -9, a lost
        # host) the broker hands it to another worker after the visibility timeout instead of losing it, which
        # would leave the run waiting for good. A step process killed under a live worker (out of memory) fails
        # with WorkerLostError instead of being redelivered for ever: dagster-celery then fails the run (no op
        # retry policy applies); re-run it, or set run retries.
        "task_acks_late": True,
        "task_reject_on_worker_lost": False,
        "broker_transport_options": {
            "visibility_timeout": settings.celery_visibility_timeout(),
            # Redis: look for such steps every 10 s. kombu's default scans only every 10th look (about 100 s),
            # which made the hand-over take anywhere from the timeout to the timeout + 100 s.
            "unacked_restore_interval": 10,
            "unacked_restore_throttle": 1,
            # dagster-celery's defaults: a broker that does not answer fails the submission fast
            "max_retries": 3,
            "interval_start": 0,
            "interval_step": 0.2,
            "interval_max": 0.5,
        },
        "broker_connection_retry_on_startup": True,
        "task_default_queue": CELERY_QUEUE,
        "task_default_priority": 5,
        "worker_hijack_root_logger": False,
        "worker_redirect_stdouts_level": "INFO",  # a step's Dagster log lines are not warnings
    }


def check_broker_url(var: str) -> None:
    """Refuse a broker or backend URL in `var` that kombu cannot parse, naming the variable, never its value
    (kombu's own error would quote part of the password into the run's events)."""
    import os

    from kombu.utils.url import url_to_parts

    value = os.environ.get(var)
    if not value:
        return
    try:
        url_to_parts(value)
    except ValueError:
        raise ValueError(
            f"{var} is not a URL Celery can read: write it as redis://:PASSWORD@host:6379/0 and percent-encode "
            "any / # ? @ : % in the password."
        ) from None


def celery_executor() -> dg.ExecutorDefinition:
    """dagster-celery's executor on the broker and result backend named by the environment (resolved when a
    run starts, so a password in the URL appears in no config, event or file)."""
    from dagster_celery import celery_executor as dagster_celery_executor

    for var in (settings.CELERY_BROKER_VAR, settings.CELERY_BACKEND_VAR):
        check_broker_url(var)
    return dagster_celery_executor.configured(
        {
            "broker": {"env": settings.CELERY_BROKER_VAR},
            "backend": {"env": settings.CELERY_BACKEND_VAR},
            "config_source": celery_settings(),
        },
        name="celery",
    )


def k8s_executor() -> dg.ExecutorDefinition:
    """dagster-k8s's `k8s_job_executor`: a Kubernetes Job per step, configured like the K8sRunLauncher."""
    from dagster_k8s import k8s_job_executor

    return k8s_job_executor


def step_executor(name: str | None = None) -> dg.ExecutorDefinition:
    """The executor called `name` (default: TICK_ASSETS_EXECUTOR); its package must be installed (the
    `distributed` extra for celery, `kubernetes` for k8s)."""
    name = name or settings.executor_name()
    builders = {"multiprocess": multiprocess_executor, "celery": celery_executor, "k8s": k8s_executor}
    if name not in builders:
        raise ValueError(f"{settings.EXECUTOR_VAR}={name!r}: use one of {', '.join(builders)}.")
    try:
        return builders[name]()
    except ImportError as exc:
        extra = "distributed" if name == "celery" else "kubernetes"
        raise ImportError(
            f"{settings.EXECUTOR_VAR}={name} needs {exc.name}: pip install 'tick-assets[{extra}]'."
        ) from exc
