"""The Celery app of a step worker: `celery -A tick_assets.assets.celery_app worker -Q dagster`.

dagster-celery's own `dagster-celery worker start -y config.yaml` writes the broker URL, password included, into
a Python file under DAGSTER_HOME; this app reads it from the environment (TICK_ASSETS_CELERY_BROKER and
TICK_ASSETS_CELERY_BACKEND) and never writes it down. The tasks are dagster-celery's: each loads the run's
instance from the reference the run sent (its storage settings name environment variables, resolved here) and
the code from this package.
"""

from __future__ import annotations

import os

from dagster_celery.make_app import make_app
from dagster_celery.tasks import create_execute_job_task, create_resume_job_task, create_task

import tick_assets.definitions  # noqa: F401 - loaded once in the worker, so its step processes fork with it
from tick_assets import settings
from tick_assets.assets.executors import celery_settings, check_broker_url


def _required(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise RuntimeError(
            f"{name} is not set: a Celery step worker needs the broker and result backend URLs the runs use "
            f"(e.g. redis://:PASSWORD@host:6379/0), in {settings.CELERY_BROKER_VAR} and {settings.CELERY_BACKEND_VAR}."
        )
    check_broker_url(name)
    return value


app = make_app(
    {
        "broker": _required(settings.CELERY_BROKER_VAR),
        "backend": _required(settings.CELERY_BACKEND_VAR),
        "config_source": celery_settings(),
    }
)
execute_plan = create_task(app)
execute_job = create_execute_job_task(app)
resume_job = create_resume_job_task(app)
