"""The Kubernetes profile (deploy/kubernetes): what Dagster's Helm chart makes of values.yaml, checked against Dagster's
own config schemas, without a cluster or a Helm binary.

The chart is not installed here (no network, no `helm`), so the few templates this profile goes through are
modelled below from the chart's source (helm/dagster in dagster-io/dagster): `templates/configmap-instance.yaml`
and `templates/helpers/instance/_postgresql.tpl`, `_run-launcher.tpl` (K8sRunLauncher), `_run-coordinator.tpl`,
`_concurrency.tpl`, and the user-deployments subchart's `k8sContainerContext` helper. What they render is then
handed to Dagster itself: `dagster_instance_config` (the instance schema and its cross-checks), every configured
class's own `config_type()`, dagster-k8s's container-context and Job builders, the k8s_job_executor's config
schema, and the code location's jobs.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import dagster as dg
import pytest
import yaml
from dagster._cli.instance import set_concurrency
from dagster._config import process_config, resolve_to_config_type
from dagster._core.errors import DagsterInvalidConfigError
from dagster._core.instance.config import ConcurrencyConfig, dagster_instance_config
from dagster._core.instance.ref import InstanceRef
from dagster._core.run_coordinator import QueuedRunCoordinator
from dagster._serdes.config_class import ConfigurableClassData, class_from_code_pointer
from dagster_k8s import k8s_job_executor
from dagster_k8s.container_context import K8sContainerContext
from dagster_k8s.job import construct_dagster_k8s_job
from dagster_postgres.utils import pg_url_from_config

from tick_assets import settings
from tick_assets.assets.executors import step_executor
from tick_assets.assets.resources import TARDIS_POOL
from tick_assets_tests.helpers.paths import REPO_ROOT

PROFILE = REPO_ROOT / "deploy" / "kubernetes"
VALUES_FILE = PROFILE / "values.yaml"
RUN_CONFIG_FILE = PROFILE / "run_config.yaml"
DOCKERFILE = PROFILE / "Dockerfile"
#: The install command in values.yaml: `helm upgrade --install dagster dagster/dagster ... -n tick-assets`.
RELEASE, NAMESPACE, CHART = "dagster", "tick-assets", "dagster"
#: What a pod must never get as an inline value: each comes from a Secret.
SECRET_ENV = frozenset(
    {
        "TARDIS_API_KEY",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        settings.LIMITER_URL_VAR,
        settings.CELERY_BROKER_VAR,
        settings.CELERY_BACKEND_VAR,
        "DAGSTER_PG_PASSWORD",
    }
)
#: Keys whose values are the names of Secrets (or flags about them), never their contents.
_SECRET_NAME_KEYS = frozenset(
    {
        "postgresqlSecretName",
        "envSecrets",
        "secretKeyRef",
        "imagePullSecrets",
        "generatePostgresqlPasswordSecret",
    }
)
_SECRETISH_KEY = re.compile(r"password|secret|token|api_?key|access_?key|credential", re.IGNORECASE)
_CREDENTIAL_URL = re.compile(r"://[^/\s:@]+:[^/\s@]+@")


class ChartRenderError(Exception):
    """What `helm template` stops with (a `fail` in the chart's templates)."""


def load_values() -> dict[str, Any]:
    return yaml.safe_load(VALUES_FILE.read_text())


@pytest.fixture
def values() -> dict[str, Any]:
    return load_values()


# -- the chart's templates, modelled --------------------------------------------------------------------------


def chart_fullname(values: dict[str, Any]) -> str:
    """`dagster.fullname`: fullnameOverride, else the release name when it contains the chart's name."""
    return values.get("fullnameOverride") or (RELEASE if CHART in RELEASE else f"{RELEASE}-{CHART}")


def render_postgres(values: dict[str, Any]) -> dict[str, Any]:
    """helpers/instance/_postgresql.tpl: the config of the run, event-log and schedule storages."""
    pg, glob = values["postgresql"], values.get("global", {})
    username: Any = (
        {"env": "DAGSTER_PG_USERNAME"}
        if glob.get("postgresqlSecretUsernameKey")
        else pg["postgresqlUsername"]
    )
    db = {
        "username": username,
        "password": {"env": "DAGSTER_PG_PASSWORD"},
        # `dagster.postgresql.host`: the subchart's service when enabled, else postgresqlHost
        "hostname": f"{chart_fullname(values)}-postgresql" if pg["enabled"] else str(pg["postgresqlHost"]),
        "db_name": pg["postgresqlDatabase"],
        "port": pg["service"]["port"],
        "params": pg.get("postgresqlParams") or {},
    }
    if pg.get("postgresqlScheme"):
        db["scheme"] = pg["postgresqlScheme"]
    return {"postgres_db": db}


def postgres_secret_name(values: dict[str, Any]) -> str:
    """`dagster.postgresql.secretName`."""
    return (
        values.get("global", {}).get("postgresqlSecretName") or f"{chart_fullname(values)}-postgresql-secret"
    )


def service_account_name(values: dict[str, Any]) -> str:
    """`dagster.serviceAccountName`."""
    glob, account = values.get("global", {}), values.get("serviceAccount", {})
    return glob.get("serviceAccountName") or account.get("name") or chart_fullname(values)


def render_run_launcher(values: dict[str, Any]) -> dict[str, Any]:
    """helpers/instance/_run-launcher.tpl, `dagsterYaml.runLauncher.k8s`."""
    launcher = values["runLauncher"]
    if launcher["type"] != "K8sRunLauncher":
        raise ChartRenderError(f"this model renders the K8sRunLauncher, not {launcher['type']}")
    k8s = launcher["config"]["k8sRunLauncher"]
    config: dict[str, Any] = {"load_incluster_config": k8s["loadInclusterConfig"]}
    if k8s.get("kubeconfigFile"):
        config["kubeconfig_file"] = k8s["kubeconfigFile"]
    config["job_namespace"] = k8s.get("jobNamespace") or NAMESPACE
    config["image_pull_policy"] = k8s["imagePullPolicy"]
    if values.get("imagePullSecrets"):
        config["image_pull_secrets"] = values["imagePullSecrets"]
    config["service_account_name"] = service_account_name(values)
    if "image" in k8s:
        image = k8s["image"]
        config["job_image"] = f"{image['repository']}:{image['tag']}"
    config["dagster_home"] = values["global"]["dagsterHome"]
    config["instance_config_map"] = f"{chart_fullname(values)}-instance"
    config["postgres_password_secret"] = postgres_secret_name(values)
    names = {
        "env_config_maps": [m["name"] for m in k8s.get("envConfigMaps") or [] if "name" in m],
        "env_secrets": [s["name"] for s in k8s.get("envSecrets") or [] if "name" in s],
    }
    config.update({key: found for key, found in names.items() if found})
    for key, field in [
        ("env_vars", "envVars"),
        ("volume_mounts", "volumeMounts"),
        ("volumes", "volumes"),
        ("labels", "labels"),
        ("resources", "resources"),
        ("security_context", "securityContext"),
    ]:
        if k8s.get(field):
            config[key] = k8s[field]
    if k8s.get("failPodOnRunFailure"):
        config["fail_pod_on_run_failure"] = True
    if k8s.get("schedulerName"):
        config["scheduler_name"] = k8s["schedulerName"]
    run_k8s = k8s.get("runK8sConfig") or {}
    if run_k8s:
        fields = {
            "container_config": "containerConfig",
            "pod_spec_config": "podSpecConfig",
            "pod_template_spec_metadata": "podTemplateSpecMetadata",
            "job_spec_config": "jobSpecConfig",
            "job_metadata": "jobMetadata",
        }
        config["run_k8s_config"] = {
            key: run_k8s[field] for key, field in fields.items() if run_k8s.get(field)
        }
    return {"module": "dagster_k8s", "class": "K8sRunLauncher", "config": config}


def render_concurrency(values: dict[str, Any]) -> dict[str, Any]:
    """helpers/instance/_concurrency.tpl, with its checks against the run coordinator (helm `fail`s)."""
    concurrency = values.get("concurrency", {})
    pools, runs = concurrency.get("pools") or {}, concurrency.get("runs") or {}
    coordinator = values["dagsterDaemon"]["runCoordinator"]
    if coordinator.get("enabled") and coordinator.get("type") == "QueuedRunCoordinator":
        queued = (coordinator.get("config") or {}).get("queuedRunCoordinator") or {}
        if runs.get("maxConcurrentRuns") is not None and queued.get("maxConcurrentRuns") is not None:
            raise ChartRenderError(
                "Cannot set both concurrency.runs.maxConcurrentRuns and ...maxConcurrentRuns"
            )
        if runs.get("tagConcurrencyLimits") and queued.get("tagConcurrencyLimits"):
            raise ChartRenderError("Cannot set both tagConcurrencyLimits")
        block = queued.get("blockOpConcurrencyLimitedRuns") or {}
        if (
            pools.get("opGranularityRunBuffer") is not None
            and block.get("opConcurrencySlotBuffer") is not None
        ):
            raise ChartRenderError("Cannot set both opGranularityRunBuffer and opConcurrencySlotBuffer")
    rendered: dict[str, Any] = {}
    pool_fields = {"default_limit": "defaultLimit", "granularity": "granularity"}
    pool_fields["op_granularity_run_buffer"] = "opGranularityRunBuffer"
    rendered_pools = {key: pools[field] for key, field in pool_fields.items() if pools.get(field) is not None}
    if rendered_pools:
        rendered["pools"] = rendered_pools
    rendered_runs: dict[str, Any] = {}
    if runs.get("maxConcurrentRuns") is not None:
        rendered_runs["max_concurrent_runs"] = runs["maxConcurrentRuns"]
    if runs.get("tagConcurrencyLimits"):
        rendered_runs["tag_concurrency_limits"] = runs["tagConcurrencyLimits"]
    if rendered_runs:
        rendered["runs"] = rendered_runs
    return rendered


def render_run_coordinator(values: dict[str, Any]) -> dict[str, Any]:
    """helpers/instance/_run-coordinator.tpl, `dagsterYaml.runCoordinator.queued` (the chart still writes the
    public-era module name `dagster.core...`; Dagster maps it to `dagster._core...` when it loads the class)."""
    queued = values["dagsterDaemon"]["runCoordinator"]["config"].get("queuedRunCoordinator") or {}
    concurrency_on = bool(values.get("concurrency", {}).get("enabled"))
    rendered: dict[str, Any] = {"module": "dagster.core.run_coordinator", "class": "QueuedRunCoordinator"}
    if not any(v not in (None, "", [], {}, False) for v in queued.values()):
        return rendered
    config: dict[str, Any] = {}
    if not concurrency_on or queued.get("maxConcurrentRuns") is not None:
        max_runs = queued.get("maxConcurrentRuns")
        config["max_concurrent_runs"] = -1 if max_runs is None else max_runs
    if queued.get("tagConcurrencyLimits"):
        config["tag_concurrency_limits"] = queued["tagConcurrencyLimits"]
    for key, field in [
        ("dequeue_interval_seconds", "dequeueIntervalSeconds"),
        ("dequeue_use_threads", "dequeueUseThreads"),
        ("dequeue_num_workers", "dequeueNumWorkers"),
    ]:
        if queued.get(field):
            config[key] = queued[field]
    block = queued.get("blockOpConcurrencyLimitedRuns")
    if block:
        config["block_op_concurrency_limited_runs"] = {
            "enabled": block["enabled"],
            "op_concurrency_slot_buffer": block["opConcurrencySlotBuffer"],
        }
    rendered["config"] = config
    return rendered


def render_instance(values: dict[str, Any]) -> dict[str, Any]:
    """templates/configmap-instance.yaml: the dagster.yaml every Dagster pod mounts (the parts this profile sets)."""
    storage = render_postgres(values)
    daemon = values["dagsterDaemon"]
    instance: dict[str, Any] = {
        "scheduler": {"module": "dagster._core.scheduler", "class": "DagsterDaemonScheduler"},
        "schedule_storage": {
            "module": "dagster_postgres.schedule_storage",
            "class": "PostgresScheduleStorage",
            "config": copy.deepcopy(storage),
        },
        "run_launcher": render_run_launcher(values),
        "run_storage": {
            "module": "dagster_postgres.run_storage",
            "class": "PostgresRunStorage",
            "config": copy.deepcopy(storage),
        },
        "event_log_storage": {
            "module": "dagster_postgres.event_log",
            "class": "PostgresEventLogStorage",
            "config": copy.deepcopy(storage),
        },
    }
    if daemon.get("enabled", True) and daemon["runCoordinator"].get("enabled"):
        instance["run_coordinator"] = render_run_coordinator(values)
    if values["computeLogManager"]["type"] != "NoOpComputeLogManager":
        raise ChartRenderError("this model renders the NoOpComputeLogManager only")
    instance["compute_logs"] = {
        "module": "dagster.core.storage.noop_compute_log_manager",
        "class": "NoOpComputeLogManager",
    }
    monitoring = daemon.get("runMonitoring") or {}
    if daemon.get("enabled", True) and monitoring.get("enabled"):
        instance["run_monitoring"] = {
            "enabled": True,
            "start_timeout_seconds": monitoring["startTimeoutSeconds"],
            "poll_interval_seconds": monitoring["pollIntervalSeconds"],
            "free_slots_after_run_end_seconds": monitoring["freeSlotsAfterRunEndSeconds"],
        }
    instance["telemetry"] = {"enabled": values["telemetry"]["enabled"]}
    if values.get("concurrency", {}).get("enabled"):
        instance["concurrency"] = render_concurrency(values)
    return instance


def render_code_location_context(values: dict[str, Any]) -> dict[str, Any]:
    """The user-deployments subchart's `dagsterUserDeployments.k8sContainerContext` (DAGSTER_CLI_API_GRPC_CONTAINER_
    CONTEXT of the code server): what the code location adds to each of its run and step pods."""
    (deployment,) = values["dagster-user-deployments"]["deployments"]
    sub_fullname = f"{RELEASE}-dagster-user-deployments"
    k8s: dict[str, Any] = {
        "image_pull_policy": deployment["image"]["pullPolicy"],
        "env_config_maps": [
            f"{sub_fullname}-{deployment['name']}-user-env",
            *(m["name"] for m in deployment.get("envConfigMaps") or [] if "name" in m),
        ],
    }
    if deployment.get("envSecrets"):
        k8s["env_secrets"] = [s["name"] for s in deployment["envSecrets"] if "name" in s]
    for key, field in [("volume_mounts", "volumeMounts"), ("volumes", "volumes"), ("resources", "resources")]:
        if deployment.get(field):
            k8s[key] = deployment[field]
    k8s["namespace"] = NAMESPACE
    k8s["service_account_name"] = f"{sub_fullname}-user-deployments"
    if isinstance(deployment.get("env"), list):
        k8s["env"] = deployment["env"]
    k8s["run_k8s_config"] = {"pod_spec_config": {"automount_service_account_token": True}}
    return {"k8s": k8s}


# -- helpers ----------------------------------------------------------------------------------------------------


def inline_secrets(node: Any, path: str = "") -> list[str]:
    """Where `node` holds a credential itself rather than the name of a Secret."""
    found = []
    if isinstance(node, dict):
        if node.get("name") in SECRET_ENV and "value" in node:
            found.append(f"{path}: {node['name']} has an inline value")
        for key, value in node.items():
            here = f"{path}.{key}" if path else str(key)
            if isinstance(key, str) and _SECRETISH_KEY.search(key) and key not in _SECRET_NAME_KEYS and value:
                found.append(f"{here}: a credential-like key with a value")
            if key not in _SECRET_NAME_KEYS or isinstance(value, dict | list):
                found += inline_secrets(value, here)
    elif isinstance(node, list):
        for i, item in enumerate(node):
            found += inline_secrets(item, f"{path}[{i}]")
    elif isinstance(node, str):
        if node.partition("=")[0] in SECRET_ENV and "=" in node:
            found.append(f"{path}: {node.partition('=')[0]}=... inline")
        if _CREDENTIAL_URL.search(node):
            found.append(f"{path}: a URL with a password in it")
    return found


def validate_class(section: dict[str, Any]) -> Any:
    """Import a configurable class the way Dagster does (ConfigurableClassData, which also maps `dagster.core` to
    `dagster._core`) and process its config with the class's own schema."""
    data = ConfigurableClassData(
        section["module"], section["class"], yaml.safe_dump(section.get("config") or {})
    )
    cls = class_from_code_pointer(data.module_name, data.class_name)
    result = process_config(resolve_to_config_type(cls.config_type()), section.get("config") or {})
    if not result.success:
        raise DagsterInvalidConfigError(f"{section['class']} config", result.errors, section.get("config"))
    return result.value


def validated_instance(values: dict[str, Any], home: Path) -> dict[str, Any]:
    """Write the rendered dagster.yaml into `home`, validate it as Dagster loads an instance, and every class in it
    with its own schema; return Dagster's processed instance settings."""
    home.mkdir(parents=True, exist_ok=True)
    instance = render_instance(values)
    (home / "dagster.yaml").write_text(yaml.safe_dump(instance, sort_keys=False))
    settings_, _ = dagster_instance_config(str(home))
    classes = ("scheduler", "run_coordinator", "run_launcher", "compute_logs")
    for key in (*classes, "run_storage", "event_log_storage", "schedule_storage"):
        validate_class(instance[key])
    return settings_


def section_of(data: Any) -> dict[str, Any]:
    """A ConfigurableClassData of an InstanceRef as the dagster.yaml section it came from."""
    return {
        "module": data.module_name,
        "class": data.class_name,
        "config": yaml.safe_load(data.config_yaml) or {},
    }


def env_of(deployment: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: str(e["value"]) for e in deployment["env"]}


def pool_limits(values: dict[str, Any]) -> dict[str, int]:
    """Pool limits the daemon's init containers set: `dagster instance concurrency set <pool> <limit>`."""
    limits = {}
    for container in values["dagsterDaemon"].get("extraPrependedInitContainers") or []:
        command = list(container.get("command") or []) + list(container.get("args") or [])
        if command[:4] == ["dagster", "instance", "concurrency", "set"]:
            # parsed by Dagster's own CLI command: a wrong argument count or a non-integer limit fails here
            context = set_concurrency.make_context("set", command[4:])
            limits[context.params["key"]] = context.params["limit"]
    return limits


def missing_pool_limits(pools: set[str], limits: dict[str, int]) -> set[str]:
    return {p for p in pools if p not in limits or limits[p] < 1}


def asset_pools() -> set[str]:
    """Every pool the code location's assets and checks use, from the definitions and from the source."""
    import tick_assets.definitions

    defs = tick_assets.definitions.defs
    nodes = [a.node_def for a in defs.assets or [] if isinstance(a, dg.AssetsDefinition)]
    nodes += [c.node_def for c in defs.asset_checks or [] if hasattr(c, "node_def")]
    pools = {pool for node in nodes for pool in (getattr(node, "pools", None) or set())}
    for path in (REPO_ROOT / "tick_assets" / "assets").rglob("*.py"):
        pools |= set(re.findall(r"\bpool\s*=\s*[\"']([^\"']+)[\"']", path.read_text()))
    return pools


@pytest.fixture
def pg_password(monkeypatch) -> str:
    """What the chart gives every pod from the Secret; only a stand-in here (processing resolves `env:` fields)."""
    monkeypatch.setenv("DAGSTER_PG_PASSWORD", "stand-in-not-a-secret")
    return "stand-in-not-a-secret"


# -- the tests --------------------------------------------------------------------------------------------------


def test_values_name_secrets_and_hold_none(values) -> None:
    """Only names of Secrets in values.yaml; the chart makes no password Secret of its own; every Secret the pods
    draw from is one the file's header says how to create, with the keys the code reads."""
    assert inline_secrets(values) == []
    assert values["generatePostgresqlPasswordSecret"] is False and values["postgresql"]["enabled"] is False
    assert values["postgresql"]["postgresqlPassword"] == ""
    (deployment,) = values["dagster-user-deployments"]["deployments"]
    launcher = values["runLauncher"]["config"]["k8sRunLauncher"]
    secret_names = [s["name"] for s in launcher["envSecrets"]]
    assert secret_names == [s["name"] for s in deployment["envSecrets"]]
    header = VALUES_FILE.read_text()
    created = dict(re.findall(r"create secret generic (\S+)((?:[^\n]|\n#\s+--)*)", header))
    assert set(created) == {*secret_names, values["global"]["postgresqlSecretName"]}
    keys = {k for flags in created.values() for k in re.findall(r"--from-literal=([A-Za-z_-]+)=", flags)}
    assert keys == {"postgresql-password", "TARDIS_API_KEY", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} | {
        settings.LIMITER_URL_VAR
    }
    # the checker finds what it is for
    broken = copy.deepcopy(values)
    broken["postgresql"]["postgresqlPassword"] = "hunter2"
    broken["runLauncher"]["config"]["k8sRunLauncher"]["envVars"].append("TARDIS_API_KEY=tk-123")
    broken["dagster-user-deployments"]["deployments"][0]["env"].append(
        {"name": "TICK_ASSETS_LIMITER_URL", "value": "postgresql://tick:pw@db:5432/tick"}
    )
    assert len(inline_secrets(broken)) == 4  # the password, the key, the URL entry and the URL's password


def test_the_instance_the_chart_renders_is_valid_dagster_config(values, tmp_path, pg_password) -> None:
    """The dagster.yaml of the chart's instance ConfigMap loads as a Dagster 1.13 instance: its schema and the
    concurrency cross-checks, every class importable and its config valid for the class's own schema, Postgres
    through psycopg2, and the limits that apply being the profile's."""
    settings_ = validated_instance(values, tmp_path / "home")
    assert settings_["telemetry"] == {"enabled": False}
    for key in ("run_storage", "event_log_storage", "schedule_storage"):
        db = settings_[key]["config"]["postgres_db"]
        assert db["password"] == {"env": "DAGSTER_PG_PASSWORD"}
        processed = validate_class(settings_[key])
        url = pg_url_from_config(processed)
        assert (
            url.startswith("postgresql+psycopg2://") and pg_password in url
        )  # the SQLAlchemy 2.1 trap avoided

    ref = InstanceRef.from_dir(str(tmp_path / "home"))
    coordinator = ref.run_coordinator_data.rehydrate(QueuedRunCoordinator)
    concurrency = ConcurrencyConfig.from_concurrency_settings(
        ref.settings["concurrency"], coordinator.get_run_queue_config()
    )
    assert (
        concurrency.run_queue_config.max_concurrent_runs == values["concurrency"]["runs"]["maxConcurrentRuns"]
    )
    assert concurrency.pool_config.default_pool_limit == 1
    assert (coordinator.dequeue_interval_seconds, coordinator.dequeue_use_threads) == (
        1,
        True,
    )  # as dagster.yaml
    assert concurrency.pool_config.pool_granularity.value == "op"
    assert ref.settings["run_monitoring"]["free_slots_after_run_end_seconds"] == 60

    launcher = validate_class(section_of(ref.run_launcher_data))
    assert launcher["postgres_password_secret"] == values["global"]["postgresqlSecretName"]
    assert launcher["dagster_home"] == values["global"]["dagsterHome"]
    assert launcher["job_namespace"] == NAMESPACE and launcher["load_incluster_config"] is True
    assert set(launcher["env_secrets"]) == {"tick-assets-tardis", "tick-assets-s3", "tick-assets-limiter"}
    env = dict(v.split("=", 1) for v in launcher["env_vars"])
    assert env[settings.EXECUTOR_VAR] == "k8s" and env["TICK_ASSETS_LAKE"].startswith("s3://")
    assert settings.LIMITER_URL_VAR not in env  # from the Secret, never a value here


QUEUED = ("dagsterDaemon", "runCoordinator", "config", "queuedRunCoordinator")
LAUNCHER = ("runLauncher", "config", "k8sRunLauncher")
#: Breaks a deploy could make, what must reject each, and the words it must say (so an unrelated error fails).
BROKEN = {
    # the chart renders this one (there is no opGranularityRunBuffer for it to clash with); Dagster refuses to start
    "op-slot-buffer-beside-pools": (
        QUEUED,
        {"blockOpConcurrencyLimitedRuns": {"enabled": True, "opConcurrencySlotBuffer": 1}},
        DagsterInvalidConfigError,
        "op_concurrency_slot_buffer.*incompatible with the `concurrency",
    ),
    "run-limit-twice": (QUEUED, {"maxConcurrentRuns": 10}, ChartRenderError, "maxConcurrentRuns"),
    "negative-pool-limit": (
        ("concurrency", "pools"),
        {"defaultLimit": -1},
        DagsterInvalidConfigError,
        "default_limit",
    ),
    "port-not-a-number": (
        ("postgresql", "service"),
        {"port": "five-four-three-two"},
        DagsterInvalidConfigError,
        "PostgresRunStorage",
    ),
    "resources-not-a-map": (
        LAUNCHER,
        {"resources": {"requests": "lots"}},
        DagsterInvalidConfigError,
        "K8sRunLauncher",
    ),
    "env-vars-not-a-list": (
        LAUNCHER,
        {"envVars": "TICK_ASSETS_EXECUTOR=k8s"},
        DagsterInvalidConfigError,
        "K8sRunLauncher",
    ),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_broken_values_are_rejected(values, tmp_path, pg_password, case) -> None:
    """Each break is one a deploy could make; the checks above must not let it through."""
    path, change, rejected_by, says = BROKEN[case]
    node = values
    for key in path:
        node = node[key]
    node.update(change)
    with pytest.raises(rejected_by, match=says):
        validated_instance(values, tmp_path / "home")


def test_run_and_step_pods_get_the_profile_env_secrets_and_scratch(values, pg_password) -> None:
    """The Job dagster-k8s builds for a step (run launcher's settings, then the code location's container context,
    then the executor's run config): the profile's variables, the three Secrets as envFrom, DAGSTER_PG_PASSWORD
    from the Postgres Secret, the scratch emptyDir at TICK_ASSETS_DATA_DIR and the run launcher's resources."""
    (deployment,) = values["dagster-user-deployments"]["deployments"]
    launcher = validate_class(render_run_launcher(values))
    code_env = env_of(deployment)
    assert dict(v.split("=", 1) for v in launcher["env_vars"]) == code_env  # code server and pods agree
    assert not set(code_env) & SECRET_ENV

    executor_config = yaml.safe_load(RUN_CONFIG_FILE.read_text())["execution"]["config"]
    executor = K8sContainerContext(
        env_secrets=executor_config.get("env_secrets"),
        env_vars=executor_config.get("env_vars"),
        resources=executor_config.get("resources"),
    )
    context = (
        K8sContainerContext(
            image_pull_policy=launcher.get("image_pull_policy"),
            service_account_name=launcher.get("service_account_name"),
            env_secrets=launcher.get("env_secrets"),
            env_vars=launcher.get("env_vars"),
            volume_mounts=launcher.get("volume_mounts"),
            volumes=launcher.get("volumes"),
            namespace=launcher.get("job_namespace"),
            resources=launcher.get("resources"),
        )
        .merge(K8sContainerContext.create_from_config(render_code_location_context(values)))
        .merge(executor)
    )
    image = f"{deployment['image']['repository']}:{deployment['image']['tag']}"
    job_config = context.get_k8s_job_config(image, SimpleNamespace(**launcher, job_image=None))
    job = construct_dagster_k8s_job(
        job_config,
        ["dagster", "api", "execute_step"],
        "dagster-step-probe",
        user_defined_k8s_config=context.run_k8s_config,
        component="step_worker",
    )
    pod = job.spec.template.spec
    (container,) = pod.containers
    env = {e.name: e for e in container.env}
    assert {name: env[name].value for name in code_env} == code_env
    assert env["DAGSTER_PG_PASSWORD"].value is None
    assert (
        env["DAGSTER_PG_PASSWORD"].value_from.secret_key_ref.name == values["global"]["postgresqlSecretName"]
    )
    assert env["DAGSTER_PG_PASSWORD"].value_from.secret_key_ref.key == "postgresql-password"
    secrets = {f.secret_ref.name for f in container.env_from if f.secret_ref}
    assert secrets == {"tick-assets-tardis", "tick-assets-s3", "tick-assets-limiter"}
    assert container.image == image and "<your-org>" in image
    (mount,) = [m for m in container.volume_mounts if m.mount_path == code_env["TICK_ASSETS_DATA_DIR"]]
    (scratch,) = [v for v in pod.volumes if v.name == mount.name]
    assert scratch.empty_dir is not None and scratch.empty_dir.size_limit
    assert container.resources.requests["memory"] == "3Gi" and container.resources.limits["memory"] == "6Gi"
    assert pod.service_account_name == f"{RELEASE}-dagster-user-deployments-user-deployments"


def test_every_pool_of_the_assets_has_a_limit_set_before_the_daemon_starts(values) -> None:
    """Every pool the assets use gets its limit from the daemon's init container (Dagster's own `concurrency set`
    command), run against the chart's instance with the chart's Postgres Secret, in the chart's Dagster version."""
    pools = asset_pools()
    assert TARDIS_POOL in pools
    limits = pool_limits(values)
    assert missing_pool_limits(pools, limits) == set()
    assert limits[TARDIS_POOL] == 4
    assert missing_pool_limits({*pools, "duckdb"}, limits) == {
        "duckdb"
    }  # a new pool without a limit is caught

    home = values["global"]["dagsterHome"]
    for container in values["dagsterDaemon"]["extraPrependedInitContainers"]:
        repository, tag = container["image"].rsplit(":", 1)
        assert repository == "docker.io/dagster/dagster-celery-k8s" and tag == dg.__version__
        env = {e["name"]: e for e in container["env"]}
        assert env["DAGSTER_HOME"]["value"] == home
        ref = env["DAGSTER_PG_PASSWORD"]["valueFrom"]["secretKeyRef"]
        assert ref == {"name": values["global"]["postgresqlSecretName"], "key": "postgresql-password"}
        (mount,) = container["volumeMounts"]
        assert mount == {
            "name": "dagster-instance",
            "mountPath": f"{home}/dagster.yaml",
            "subPath": "dagster.yaml",
        }
    assert f"--version {dg.__version__}" in VALUES_FILE.read_text()  # the chart matches the pinned Dagster


def test_the_k8s_executor_takes_the_profile_run_config(values, monkeypatch, tmp_path) -> None:
    """Under the code server's environment (TICK_ASSETS_EXECUTOR=k8s, the lake on S3, stand-ins for the Secrets)
    the code location loads with dagster-k8s's k8s_job_executor, whose schema accepts run_config.yaml, and so does
    the asset job's; the key and the limiter URL are wired through dg.EnvVar."""
    (deployment,) = values["dagster-user-deployments"]["deployments"]
    for name, value in env_of(deployment).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("TICK_ASSETS_DATA_DIR", str(tmp_path))  # /var/lib/tick-assets is the pods' scratch
    for name in ("TARDIS_API_KEY", settings.LIMITER_URL_VAR, "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "stand-in")
    run_config = yaml.safe_load(RUN_CONFIG_FILE.read_text())

    executor = step_executor()
    assert executor is k8s_job_executor
    result = process_config(executor.config_schema.config_type, run_config["execution"]["config"])
    assert result.success, result.errors
    broken = process_config(executor.config_schema.config_type, {"max_concurrent": "eight"})
    assert not broken.success

    from tick_assets.assets.partitions import configured_backfill_policy, configured_partitions
    from tick_assets.assets.resources import TardisResource
    from tick_assets.definitions import build_definitions

    defs = build_definitions(
        partitions=configured_partitions(),
        backfill_policy=configured_backfill_policy(),
        data_types=settings.raw_data_types(),
        data_dir=tmp_path,
        tardis=TardisResource(
            api_key=dg.EnvVar("TARDIS_API_KEY"),
            data_dir=str(tmp_path),
            limiter_url=dg.EnvVar(settings.LIMITER_URL_VAR),
        ),
    )
    dg.Definitions.validate_loadable(defs)
    job = defs.resolve_implicit_global_asset_job_def()
    assert job.executor_def is k8s_job_executor
    assert dg.validate_run_config(job, run_config)["execution"]["k8s"]["max_concurrent"] == 8
    with pytest.raises(DagsterInvalidConfigError):
        dg.validate_run_config(job, {"execution": {"config": {"max_concurent": 8}}})

    import importlib

    import tick_assets.definitions

    try:  # the module the code server loads, under the same environment
        module = importlib.reload(tick_assets.definitions)
        tardis = module.defs.resources["tardis"]
        assert isinstance(tardis.api_key, dg.EnvVar) and tardis.api_key.env_var_name == "TARDIS_API_KEY"
        assert isinstance(tardis.limiter_url, dg.EnvVar)
        assert module.defs.resolve_implicit_global_asset_job_def().executor_def is k8s_job_executor
    finally:
        monkeypatch.undo()
        importlib.reload(tick_assets.definitions)


def test_the_dockerfile_builds_the_image_the_values_expect(values) -> None:
    """The image holds the package with the extras the profile needs, on a Python the package supports, runs as
    a non-root user, and puts TICK_ASSETS_DATA_DIR and DAGSTER_HOME where values.yaml mounts and points them."""
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    text = DOCKERFILE.read_text()
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    (install,) = re.findall(r'pip install "/tmp/tick-assets\[([a-z0-9,]+)\]"', text)
    extras = install.split(",")
    assert sorted(extras) == ["kubernetes", "s3"]
    needed = " ".join(dep for extra in extras for dep in project["optional-dependencies"][extra])
    assert "dagster-k8s==" in needed and "dagster-postgres==" in needed and "boto3" in needed
    for source in re.findall(r"^COPY (.+) /tmp/tick-assets/", text, re.MULTILINE):
        assert all((REPO_ROOT / part).exists() for part in source.split())
    (minor,) = re.findall(r"^FROM python:3\.(\d+)-slim$", text, re.MULTILINE)
    low, high = re.findall(r">=3\.(\d+),<3\.(\d+)", project["requires-python"])[0]
    assert int(low) <= int(minor) < int(high)
    assert re.search(r"^USER 10001$", text, re.MULTILINE)
    data_dir = re.search(r"TICK_ASSETS_DATA_DIR=(\S+)", text).group(1)
    (deployment,) = values["dagster-user-deployments"]["deployments"]
    assert env_of(deployment)["TICK_ASSETS_DATA_DIR"] == data_dir
    mounts = values["runLauncher"]["config"]["k8sRunLauncher"]["volumeMounts"]
    assert [m["mountPath"] for m in mounts] == [data_dir]
    assert re.search(r"DAGSTER_HOME=(\S+)", text).group(1) == values["global"]["dagsterHome"]
    assert f"-t {deployment['image']['repository']}:{deployment['image']['tag']} ." in text
    assert deployment["dagsterApiGrpcArgs"] == ["-m", "tick_assets.definitions"]
