"""Run a local Dagster webserver + daemon on the code location (for the demo, end-to-end tests and benchmarks).

Talks to Dagster only through its command line and GraphQL API, like a user's browser or script would. Needs
no checkout: the instance settings are package data (`dagster.yaml` beside this module, the same settings as
the repository root's) and the workspace is written into the instance folder, so an installed wheel runs it
from any folder.
"""

from __future__ import annotations

import contextlib
import importlib.resources
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
import yaml

from tick_assets.assets.partitions import DATE, INSTRUMENT, parse_partition_key
from tick_assets.stack.progress import Progress

log = logging.getLogger(__name__)
#: The code location every stack serves (the repository root's workspace.yaml loads the same).
CODE_LOCATION = {"module_name": "tick_assets.definitions", "location_name": "tick_assets"}
TERMINAL_BACKFILL_STATUSES = {"COMPLETED", "COMPLETED_SUCCESS", "COMPLETED_FAILED", "FAILED", "CANCELED"}

_LAUNCH_BACKFILL = """
mutation($p: LaunchBackfillParams!) { launchPartitionBackfill(backfillParams: $p) {
  __typename ... on LaunchBackfillSuccess { backfillId } ... on PythonError { message }
  ... on InvalidSubsetError { message } ... on UnauthorizedError { message } } }
"""
_BACKFILL_STATUS = """
query($id: String!) { partitionBackfillOrError(backfillId: $id) {
  __typename ... on PartitionBackfill { status numPartitions
    runs(limit: 1000) { id status startTime endTime tags { key value } } }
  ... on PythonError { message } } }
"""
# The same plus what a progress line shows: asset partitions per status (as of the daemon's last backfill
# iteration), materializations per run (live) and the steps in progress of unfinished runs.
_BACKFILL_PROGRESS = """
query($id: String!) { partitionBackfillOrError(backfillId: $id) {
  __typename ... on PartitionBackfill { status numPartitions
    runs(limit: 1000) { id status startTime endTime tags { key value }
      stats { __typename ... on RunStatsSnapshot { materializations } } }
    unfinishedRuns(limit: 50) { id stepStats { stepKey status } }
    assetBackfillData { assetBackfillStatuses { __typename
      ... on AssetPartitionsStatusCounts { assetKey { path } numPartitionsTargeted numPartitionsInProgress
        numPartitionsMaterialized numPartitionsFailed }
      ... on UnpartitionedAssetStatus { assetKey { path } inProgress materialized failed } } } }
  ... on PythonError { message } } }
"""
#: Tries of a GraphQL read against a webserver answering 5xx or not at all (1 + 2 + 3 + 4 s between them).
READ_ATTEMPTS = 5
_LAUNCH_RUN = """
mutation($p: ExecutionParams!) { launchRun(executionParams: $p) { __typename
  ... on LaunchRunSuccess { run { runId } } ... on PythonError { message } ... on InvalidSubsetError { message }
  ... on RunConfigValidationInvalid { errors { message } } ... on UnauthorizedError { message } } }
"""
_RUN_STATUS = """
query($id: ID!) { runOrError(runId: $id) { __typename ... on Run { runId status } ... on PythonError { message } } }
"""
TERMINAL_RUN_STATUSES = {"SUCCESS", "FAILURE", "CANCELED"}
_QUEUED_RUN_STATUSES = {"QUEUED", "NOT_STARTED", "MANAGED"}
_RUNNING_RUN_STATUSES = {"STARTING", "STARTED", "CANCELING"}
_FAILED_RUN_STATUSES = {"FAILURE", "CANCELED"}
_CANCEL_BACKFILL = """
mutation($id: String!) { cancelPartitionBackfill(backfillId: $id) {
  __typename ... on CancelBackfillSuccess { backfillId } ... on PythonError { message }
  ... on UnauthorizedError { message } } }
"""
_MATERIALIZATIONS = """
query($key: AssetKeyInput!) { assetOrError(assetKey: $key) { __typename
  ... on Asset { assetMaterializations(limit: 10000) { partition runId } } } }
"""
_RUNS = """
{ runsOrError(limit: 1000) { __typename ... on Runs { results { runId status tags { key value } } }
  ... on PythonError { message } } }
"""
_STEP_STATS = """
query($ids: [String!]) { runsOrError(filter: {runIds: $ids}) { __typename
  ... on Runs { results { runId stepStats { stepKey status startTime endTime } } }
  ... on PythonError { message } } }
"""
_LOCATIONS = """
{ workspaceOrError { __typename ... on Workspace { locationEntries { name loadStatus
  locationOrLoadError { __typename ... on PythonError { message } } } } } }
"""


# dagster-daemon's entry point after setting the interval the backfill loop reads when it starts
# (dagster/_daemon/backfill.py: execute_backfill_iteration_loop imports DEFAULT_DAEMON_INTERVAL_SECONDS).
_DAEMON_WITH_INTERVAL = """
import sys
import dagster._daemon.controller as controller
controller.DEFAULT_DAEMON_INTERVAL_SECONDS = float(sys.argv.pop(1))
from dagster._daemon.cli import main
sys.exit(main())
"""


def _signal_group(proc: subprocess.Popen, sig: signal.Signals) -> None:
    """Signal the process group of `proc` (it was started in its own session), if it still exists."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)


def _client_error(exc: requests.RequestException) -> bool:
    """An HTTP 4xx: our request is wrong, asking again will not help."""
    status = getattr(exc.response, "status_code", None)
    return status is not None and status < 500


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


#: The packaged instance settings of each profile: one machine (equal to the repository root's dagster.yaml) and
#: several machines (equal to deploy/distributed/dagster.yaml).
SINGLE_MACHINE = "dagster.yaml"
DISTRIBUTED = "distributed.yaml"


def instance_template(name: str = SINGLE_MACHINE) -> dict[str, Any]:
    """The packaged instance settings `name` (`tick_assets/stack/dagster.yaml` or `distributed.yaml`)."""
    text = importlib.resources.files(__package__).joinpath(name).read_text()
    return yaml.safe_load(text)


def write_instance_yaml(
    home: Path,
    template: Path | None = None,
    overrides: dict[str, dict[str, Any]] | None = None,
    profile: str = SINGLE_MACHINE,
) -> Path:
    """Write `home/dagster.yaml` from `template` (default: the packaged settings of `profile`), with SQLite
    storage moved under `home/storage` and each top-level section of `overrides` merged over the template's."""
    config = yaml.safe_load(template.read_text()) if template else instance_template(profile)
    if "sqlite" in config.get("storage", {}):
        config["storage"] = {"sqlite": {"base_dir": str(home / "storage")}}
    for section, values in (overrides or {}).items():
        config[section] = {**config.get(section, {}), **values}
    home.mkdir(parents=True, exist_ok=True)
    path = home / "dagster.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def write_workspace_yaml(home: Path, grpc_port: int | None = None) -> Path:
    """Write `home/workspace.yaml`, loading the code location from the installed package (or, with `grpc_port`,
    from the code server on that port of 127.0.0.1)."""
    home.mkdir(parents=True, exist_ok=True)
    path = home / "workspace.yaml"
    entry = (
        {
            "grpc_server": {
                "host": "127.0.0.1",
                "port": grpc_port,
                "location_name": CODE_LOCATION["location_name"],
            }
        }
        if grpc_port
        else {"python_module": dict(CODE_LOCATION)}
    )
    path.write_text(yaml.safe_dump({"load_from": [entry]}, sort_keys=False))
    return path


@dataclass
class DagsterStack:
    """`dagster-webserver` and `dagster-daemon` sharing one DAGSTER_HOME, bound to 127.0.0.1."""

    home: Path
    env: dict[str, str] = field(default_factory=dict, repr=False)  # may hold TARDIS_API_KEY
    port: int = 0
    #: Working directory of the Dagster processes (a relative TICK_ASSETS_DATA_DIR resolves against it).
    cwd: Path = field(default_factory=Path.cwd)
    #: Sections merged over the packaged dagster.yaml (e.g. shorter run-monitoring intervals in tests).
    instance_overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: The packaged instance settings to start from (SINGLE_MACHINE or DISTRIBUTED).
    profile: str = SINGLE_MACHINE
    #: Serve the code from a `dagster code-server` of its own that the webserver and the daemon connect to (as
    #: in a deployment), instead of a code server each of them starts.
    code_server: bool = False
    code_server_port: int = 0
    #: Start from this process's environment (False: `env` is the whole environment, as on another machine).
    inherit_env: bool = True
    #: Seconds between the backfill daemon's iterations (None: Dagster's 30 s). Dagster has no setting for it, so
    #: this patches a private constant of Dagster 1.13 in the daemon process: for tests and benchmarks, which wait
    #: up to one interval for a backfill's first runs and another for it to be marked done.
    backfill_interval: float | None = None
    _procs: list[subprocess.Popen] = field(default_factory=list)

    @property
    def url(self) -> str:
        """Base URL of the webserver."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def workspace(self) -> Path:
        """The workspace file of this stack (for `dagster ... -w`), written by `start`."""
        return self.home / "workspace.yaml"

    def _env(self) -> dict[str, str]:
        return {**(os.environ if self.inherit_env else {}), **self.env, "DAGSTER_HOME": str(self.home)}

    def _spawn(self, name: str, args: list[str]) -> None:
        log = open(self.home / f"{name}.log", "ab")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen(
            args,
            cwd=self.cwd,
            env=self._env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        self._procs.append(proc)

    def start(self, timeout: float = 180.0) -> DagsterStack:
        """Start both processes and wait until the code location has loaded."""
        write_instance_yaml(self.home, overrides=self.instance_overrides, profile=self.profile)
        bin_dir = Path(sys.executable).parent
        if self.code_server:
            self.code_server_port = self.code_server_port or free_port()
            workspace = str(write_workspace_yaml(self.home, grpc_port=self.code_server_port))
        else:
            workspace = str(write_workspace_yaml(self.home))
        # Create the instance's tables first: the webserver and the daemon racing to create them on a fresh
        # SQLite instance can fail one of them ("table ... already exists").
        self.cli("instance", "migrate")
        self.port = self.port or free_port()
        try:  # whatever was started is stopped if any part fails to come up
            if self.code_server:
                self._spawn(
                    "code-server",
                    [
                        str(bin_dir / "dagster"),
                        "code-server",
                        "start",
                        "-h",
                        "127.0.0.1",
                        "-p",
                        str(self.code_server_port),
                        "-m",
                        CODE_LOCATION["module_name"],
                        "--location-name",
                        CODE_LOCATION["location_name"],
                    ],
                )
                self._wait_code_server(timeout)
            self._spawn(
                "webserver",
                [
                    str(bin_dir / "dagster-webserver"),
                    "-h",
                    "127.0.0.1",
                    "-p",
                    str(self.port),
                    "-w",
                    workspace,
                ],
            )
            self._spawn("daemon", [*self._daemon_command(), "run", "-w", workspace])
            self._wait_loaded(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _daemon_command(self) -> list[str]:
        """`dagster-daemon`, or the same entry point with the backfill daemon's interval set first."""
        if self.backfill_interval is None:
            return [str(Path(sys.executable).parent / "dagster-daemon")]
        return [sys.executable, "-c", _DAEMON_WITH_INTERVAL, str(float(self.backfill_interval))]

    def _wait_code_server(self, timeout: float) -> None:
        """Wait until the code server answers its gRPC health check."""
        deadline = time.monotonic() + timeout
        bin_dir = Path(sys.executable).parent
        while time.monotonic() < deadline:
            if self._procs[-1].poll() is not None:
                raise RuntimeError(f"the code server exited early; see {self.home}/code-server.log")
            check = subprocess.run(
                [
                    str(bin_dir / "dagster"),
                    "api",
                    "grpc-health-check",
                    "-h",
                    "127.0.0.1",
                    "-p",
                    str(self.code_server_port),
                ],
                env=self._env(),
                capture_output=True,
                timeout=60,
            )
            if check.returncode == 0:
                return
            time.sleep(0.5)
        raise TimeoutError(
            f"the code server did not come up in {timeout:.0f} s; see {self.home}/code-server.log"
        )

    def _wait_loaded(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last = "webserver not answering"
        while time.monotonic() < deadline:
            for proc in self._procs:
                if proc.poll() is not None:
                    raise RuntimeError(
                        f"a Dagster process exited early (code {proc.returncode}); see {self.home}/*.log"
                    )
            try:
                entries = self.graphql(_LOCATIONS, attempts=1)["workspaceOrError"]["locationEntries"]
            except (requests.RequestException, KeyError, RuntimeError) as exc:
                last = str(exc)
            else:
                errors = [e for e in entries if e["locationOrLoadError"]["__typename"] == "PythonError"]
                if errors:
                    raise RuntimeError(
                        f"code location failed to load: {errors[0]['locationOrLoadError']['message']}"
                    )
                if entries and all(e["loadStatus"] == "LOADED" for e in entries):
                    return
                last = "code location loading"
            time.sleep(0.5)
        raise TimeoutError(f"Dagster did not come up in {timeout:.0f} s ({last}); see {self.home}/*.log")

    def stop(self) -> None:
        """Stop both processes (and their children: code servers, run workers); a second Ctrl-C meanwhile
        does not cut the cleanup short."""
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            for proc in self._procs:
                _signal_group(proc, signal.SIGTERM)
            for proc in self._procs:
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    _signal_group(proc, signal.SIGKILL)
                    proc.wait()
            self._procs.clear()
        finally:
            signal.signal(signal.SIGINT, previous)

    def __enter__(self) -> DagsterStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def cli(self, *args: str) -> str:
        """Run `dagster <args>` against this instance and return its output."""
        bin_dir = Path(sys.executable).parent
        done = subprocess.run(
            [str(bin_dir / "dagster"), *args],
            cwd=self.cwd,
            env=self._env(),
            capture_output=True,
            text=True,
            check=True,
        )
        return done.stdout

    def set_pool_limit(self, pool: str, limit: int) -> None:
        """`dagster instance concurrency set <pool> <limit>`."""
        self.cli("instance", "concurrency", "set", pool, str(limit))

    def pool_slots(self, pool: str) -> tuple[int, int]:
        """(occupied, limit) of a concurrency pool, from `dagster instance concurrency get`."""
        out = self.cli("instance", "concurrency", "get", pool).replace('"', "")
        found = re.search(rf"{re.escape(pool)}: (\d+) / (\d+) slots occupied", out)
        if not found:
            raise RuntimeError(f"pool {pool}: unexpected output {out!r}")
        return int(found.group(1)), int(found.group(2))

    def graphql(
        self, query: str, variables: dict[str, Any] | None = None, attempts: int | None = None
    ) -> dict[str, Any]:
        """POST a GraphQL query; raise on transport or GraphQL errors. A read is asked again up to
        `attempts` (default READ_ATTEMPTS) times over a few seconds when the webserver answers 5xx or not at
        all: after its database restarts, Dagster's webserver fails one request on each pooled connection it held
        (no pre-ping). A mutation is never repeated."""
        if attempts is None:
            attempts = 1 if query.lstrip().startswith("mutation") else READ_ATTEMPTS
        for attempt in range(1, attempts + 1):
            try:
                resp = requests.post(
                    f"{self.url}/graphql", json={"query": query, "variables": variables or {}}, timeout=60
                )
                resp.raise_for_status()
                break
            except (requests.ConnectionError, requests.HTTPError) as exc:
                status = getattr(exc.response, "status_code", None)
                if attempt == attempts or (status is not None and status < 500):
                    raise
                log.warning("GraphQL read failed (%s); asking again", exc)
                time.sleep(attempt)
        body = resp.json()
        if body.get("errors"):
            raise RuntimeError(f"GraphQL error: {body['errors']}")
        return body["data"]

    def launch_backfill(
        self,
        asset_paths: list[list[str]],
        partition_names: list[str],
        title: str = "",
        run_config: dict[str, Any] | None = None,
        tags: dict[str, str] | None = None,
    ) -> str:
        """Launch a daemon-managed asset backfill (what the UI's Materialize button does), its runs with
        `run_config` and `tags`; return its id."""
        params: dict[str, Any] = {
            "assetSelection": [{"path": p} for p in asset_paths],
            "partitionNames": partition_names,
            "title": title or None,
        }
        if run_config:
            params["runConfigData"] = run_config
        if tags:
            params["tags"] = [{"key": k, "value": v} for k, v in tags.items()]
        result = self.graphql(_LAUNCH_BACKFILL, {"p": params})["launchPartitionBackfill"]
        if result["__typename"] != "LaunchBackfillSuccess":
            raise RuntimeError(f"backfill was not launched: {result}")
        return result["backfillId"]

    def launch_run(self, asset_paths: list[list[str]], partition_key: str, title: str = "") -> str:
        """Launch one run of the assets for one partition (the UI's Materialize of a partition, queued like any
        run, without the backfill daemon's 30 s iterations); return its id."""
        day, instrument = parse_partition_key(partition_key)
        tags = {"dagster/partition": partition_key, f"dagster/partition/{DATE}": f"{day:%Y-%m-%d}"}
        tags[f"dagster/partition/{INSTRUMENT}"] = instrument
        if title:
            tags["tick_assets/title"] = title
        params = {
            "selector": {
                "repositoryLocationName": CODE_LOCATION["location_name"],
                "repositoryName": "__repository__",
                "jobName": "__ASSET_JOB",
                "assetSelection": [{"path": p} for p in asset_paths],
            },
            "runConfigData": {},
            "executionMetadata": {"tags": [{"key": k, "value": v} for k, v in tags.items()]},
        }
        result = self.graphql(_LAUNCH_RUN, {"p": params})["launchRun"]
        if result["__typename"] != "LaunchRunSuccess":
            raise RuntimeError(f"run was not launched: {result}")
        return result["run"]["runId"]

    def run_status(self, run_id: str) -> str:
        """A run's status (QUEUED, STARTED, SUCCESS, FAILURE, ...)."""
        found = self.graphql(_RUN_STATUS, {"id": run_id})["runOrError"]
        if found["__typename"] != "Run":
            raise RuntimeError(f"run {run_id}: {found}")
        return found["status"]

    def wait_for_run(self, run_id: str, timeout: float = 900.0, poll: float = 1.0) -> str:
        """Poll until the run ends; return its final status."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                status = self.run_status(run_id)
            except requests.RequestException as exc:  # the webserver or its database restarting: ask again
                if _client_error(exc):
                    raise
                log.warning("run %s: polling failed (%s); retrying", run_id, exc)
            else:
                if status in TERMINAL_RUN_STATUSES:
                    return status
            time.sleep(poll)
        raise TimeoutError(f"run {run_id} not finished after {timeout:.0f} s")

    def cancel_backfill(self, backfill_id: str) -> None:
        """Cancel a backfill (the UI's Cancel button): no new runs, and its runs in progress are terminated."""
        result = self.graphql(_CANCEL_BACKFILL, {"id": backfill_id})["cancelPartitionBackfill"]
        if result["__typename"] != "CancelBackfillSuccess":
            raise RuntimeError(f"backfill {backfill_id} was not cancelled: {result}")

    def backfill(self, backfill_id: str) -> dict[str, Any]:
        """Status, partition count and runs of a backfill."""
        found = self.graphql(_BACKFILL_STATUS, {"id": backfill_id})["partitionBackfillOrError"]
        if found["__typename"] != "PartitionBackfill":
            raise RuntimeError(f"backfill {backfill_id}: {found}")
        return found

    def _poll_backfill(
        self, backfill_id: str, progress: Callable[[dict[str, Any]], None] | None
    ) -> dict[str, Any]:
        """The backfill's state, with the progress fields (one query) when `progress` wants them."""
        if progress is None:
            return self.backfill(backfill_id)
        try:
            found = self.graphql(_BACKFILL_PROGRESS, {"id": backfill_id})["partitionBackfillOrError"]
        except RuntimeError:  # a GraphQL error in a progress field: the plain query still tells the status
            log.warning("backfill progress query failed; polling without progress", exc_info=True)
            return self.backfill(backfill_id)
        if found["__typename"] != "PartitionBackfill":
            raise RuntimeError(f"backfill {backfill_id}: {found}")
        try:
            progress(found)
        except Exception:
            log.warning("backfill progress display failed; the backfill goes on", exc_info=True)
        return found

    def wait_for_backfill(
        self,
        backfill_id: str,
        timeout: float = 1800.0,
        poll: float = 2.0,
        progress: Callable[[dict[str, Any]], None] | None = None,
    ) -> dict[str, Any]:
        """Poll until the backfill reaches a terminal status; return its final state. `progress`, if given,
        receives every polled state (see `backfill_progress`)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                state = self._poll_backfill(backfill_id, progress)
            except requests.RequestException as exc:  # the webserver restarting, or its database: ask again
                if _client_error(exc):
                    raise
                log.warning("backfill %s: polling failed (%s); retrying", backfill_id, exc)
                time.sleep(poll)
                continue
            if state["status"] in TERMINAL_BACKFILL_STATUSES and not any(
                r["status"] in {"QUEUED", "NOT_STARTED", "STARTING", "STARTED"} for r in state["runs"]
            ):
                return state
            time.sleep(poll)
        raise TimeoutError(f"backfill {backfill_id} not finished after {timeout:.0f} s")

    def materialized_partitions(self, asset_path: list[str]) -> dict[str, str]:
        """Partition key -> id of the run that last materialized it, for one asset."""
        found = self.graphql(_MATERIALIZATIONS, {"key": {"path": asset_path}})["assetOrError"]
        if found["__typename"] != "Asset":
            return {}
        latest: dict[str, str] = {}
        for event in reversed(found["assetMaterializations"]):  # newest first from the API
            latest[event["partition"]] = event["runId"]
        return latest

    def step_stats(self, run_ids: list[str]) -> list[dict[str, Any]]:
        """Every step of the given runs: key, status, start and end (epoch seconds)."""
        found = self.graphql(_STEP_STATS, {"ids": run_ids})["runsOrError"]
        if found["__typename"] != "Runs":
            raise RuntimeError(f"step stats: {found}")
        return [{**step, "runId": run["runId"]} for run in found["results"] for step in run["stepStats"]]

    def runs(self) -> list[dict[str, Any]]:
        """Every run of the instance with its status and tags (newest first)."""
        found = self.graphql(_RUNS)["runsOrError"]
        if found["__typename"] != "Runs":
            raise RuntimeError(f"runs: {found}")
        return [{**r, "tags": {t["key"]: t["value"] for t in r["tags"]}} for r in found["results"]]


def backfill_progress(state: dict[str, Any], elapsed: float, label: str = "backfill") -> Progress:
    """A `Progress` from a polled backfill state (the `_BACKFILL_PROGRESS` fields; missing ones count 0).

    The daemon updates the per-asset counts once per backfill iteration; the runs' own materialization counts
    are live, so partitions done is the larger of the two (capped at the total).
    """
    runs = state.get("runs") or []
    statuses = [r["status"] for r in runs]
    counts = [
        c
        for c in ((state.get("assetBackfillData") or {}).get("assetBackfillStatuses") or [])
        if c.get("__typename") == "AssetPartitionsStatusCounts"
    ]
    total = sum(c["numPartitionsTargeted"] for c in counts)
    recorded = sum(c["numPartitionsMaterialized"] for c in counts)
    live = sum((r.get("stats") or {}).get("materializations") or 0 for r in runs)
    done = min(max(recorded, live), total)
    steps = {
        step["stepKey"]
        for run in state.get("unfinishedRuns") or []
        for step in run.get("stepStats") or []
        if step.get("status") == "IN_PROGRESS"
    }
    return Progress(
        label=label,
        runs_queued=sum(s in _QUEUED_RUN_STATUSES for s in statuses),
        runs_running=sum(s in _RUNNING_RUN_STATUSES for s in statuses),
        runs_done=sum(s in {"SUCCESS", *_FAILED_RUN_STATUSES} for s in statuses),
        runs_failed=sum(s in _FAILED_RUN_STATUSES for s in statuses),
        partitions_total=total,
        partitions_done=done,
        partitions_in_progress=max(sum(c["numPartitionsInProgress"] for c in counts) - (done - recorded), 0),
        partitions_failed=sum(c["numPartitionsFailed"] for c in counts),
        steps=tuple(sorted(steps)),
        elapsed=elapsed,
    )
