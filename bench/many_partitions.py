"""Many partitions: 200 instruments from 2023-01-01 (~140k partitions per asset) with 20,000 already materialized.

Measures, against a webserver + daemon on a SQLite instance built here:
  (a) the automation sensor's tick time (AutomationConditionSensor over every asset) against its interval, and
      our own sensors' evaluation time (tardis_daily_exports against an emulator, dead_run_workers);
  (b) the GraphQL queries the UI's asset page of a partitioned asset asks (definition, partition health, health
      counts, latest materialization, the partition list, event history), each timed over HTTP;
  (c) the time from launching a backfill of one year x every instrument (one raw asset, and the whole graph)
      to its first run; the backfill is cancelled after.

The materializations are written straight into the event log storage, one transaction per batch (a
`report_runless_asset_event` costs ~40 ms each on SQLite: 20,000 of them would take a quarter of an hour).

Run: .venv/bin/python bench/many_partitions.py [--quick]   (quick: 20 instruments, 2,000 materialized)
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from run import Section, Target

START = dt.date(2023, 1, 1)
AUTOMATION_SENSOR = "tick_assets_automation"
#: The assets given materializations: two raw data types and the features built on them.
MATERIALIZED = (
    ("raw", "trades"),
    ("raw", "book_snapshot_25"),
    ("features", "depth"),
    ("features", "trade_bars"),
)
#: The blocking checks of those raw assets (the features' automation waits for them).
BLOCKING_CHECKS = {
    ("raw", "trades"): ("trade_values_valid",),
    ("raw", "book_snapshot_25"): ("book_not_crossed", "local_timestamp_in_order"),
}
#: The asset whose page is queried and the one-asset backfill's target.
PAGE_ASSET = ["raw", "trades"]


@dataclass(frozen=True)
class Scale:
    """How big a run of the benchmark is."""

    instruments: int
    materialized_instruments: int
    materialized_days: int
    automation_ticks: int
    whole_graph_backfill: bool

    @property
    def materialized(self) -> int:
        """Materialized partitions per materialized asset."""
        return self.materialized_instruments * self.materialized_days


FULL = Scale(200, 100, 200, automation_ticks=4, whole_graph_backfill=True)
QUICK = Scale(20, 20, 100, automation_ticks=2, whole_graph_backfill=False)


def instrument_keys(count: int) -> list[str]:
    """`count` distinct instrument keys on one exchange."""
    return [f"binance-futures:S{i:03d}USDT" for i in range(count)]


def partition_keys(days: int, instruments: list[str], start: dt.date = START) -> list[str]:
    """Every `date|instrument` key of `days` days from `start`."""
    return [f"{start + dt.timedelta(days=d):%Y-%m-%d}|{i}" for i in instruments for d in range(days)]


def _chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def populate(home: Path, keys: list[str], assets: tuple[tuple[str, ...], ...] = MATERIALIZED) -> float:
    """Record a materialization of every key of every asset in the SQLite instance at `home`; return seconds.

    Does what SqliteEventLogStorage.store_event does for an asset event (index shard row, asset event tags,
    asset key row), with one transaction per 1,000 events instead of two per event, and the asset key row (its latest
    materialization) updated once per batch.
    """
    import dagster as dg
    from dagster._core.events import DagsterEvent, DagsterEventType, StepMaterializationData
    from dagster._core.events.log import EventLogEntry

    started = time.perf_counter()
    instance = dg.DagsterInstance.from_config(str(home))
    storage = instance.event_log_storage
    for path in assets:
        for chunk in _chunks(keys, 1000):
            entries = [
                EventLogEntry(
                    user_message="",
                    level=20,
                    job_name="__RUNLESS__",
                    run_id="",
                    error_info=None,
                    timestamp=time.time(),
                    step_key=None,
                    dagster_event=DagsterEvent(
                        event_type_value=DagsterEventType.ASSET_MATERIALIZATION.value,
                        event_specific_data=StepMaterializationData(
                            dg.AssetMaterialization(list(path), partition=key)
                        ),
                        job_name="__RUNLESS__",
                    ),
                )
                for key in chunk
            ]
            with storage.index_transaction() as conn:
                for entry in entries:
                    event_id = conn.execute(storage.prepare_insert_event(entry)).inserted_primary_key[0]
                    storage._store_asset_event_tags(conn, [entry], [event_id])
                # the asset key row holds only the latest materialization: one update per batch
                storage._store_asset_event(conn, entries[-1], event_id)
    instance.dispose()
    return time.perf_counter() - started


def pass_blocking_checks(home: Path, keys: list[str]) -> None:
    """Record a passed evaluation of every blocking raw check on every key, targeting the key's latest
    materialization (what a raw run's checks emit; `all_deps_blocking_checks_passed` needs the target)."""
    import dagster as dg
    from dagster._core.definitions.asset_checks.asset_check_evaluation import (
        AssetCheckEvaluationTargetMaterializationData as Target_,
    )

    instance = dg.DagsterInstance.from_config(str(home))
    for path, names in BLOCKING_CHECKS.items():
        asset_key = dg.AssetKey(list(path))
        found = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=asset_key, asset_partitions=keys), limit=len(keys)
        ).records
        latest = {r.partition_key: r for r in reversed(found)}  # newest first: the last write wins
        for name in names:
            for key, record in latest.items():
                target = Target_(
                    storage_id=record.storage_id, run_id=record.run_id, timestamp=record.timestamp
                )
                instance.report_runless_asset_event(
                    dg.AssetCheckEvaluation(
                        asset_key=asset_key,
                        check_name=name,
                        passed=True,
                        blocking=True,
                        partition=key,
                        target_materialization_data=target,
                    )
                )
    instance.dispose()


# --- (a) our own sensors, evaluated in process on the populated instance ------------------------------------


class _StubClient:
    """Answers exchange_details like Tardis would for the benchmark's instruments (no HTTP: the sensor's cost at
    many partitions is its instance reads, not one metadata request per exchange)."""

    def __init__(self, symbols: list[str], exported_until: dt.datetime) -> None:
        from tick_assets.tardis.exchanges import DatasetSymbol, ExchangeDetails

        since = dt.datetime(2019, 1, 1, tzinfo=dt.UTC)
        self.details = ExchangeDetails(
            id="binance-futures",
            name="Binance USDT Futures",
            available_since=since,
            available_to=None,
            exported_from=since,
            exported_until=exported_until,
            symbols={s: DatasetSymbol(s, "perpetual", since, exported_until, ("trades",)) for s in symbols},
        )

    def __enter__(self) -> _StubClient:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def exchange_details(self, exchange: str, refresh: bool = False) -> Any:
        """The stub exchange's details."""
        return self.details


def daily_sensor_ticks(home: Path, instruments: list[str], exported_through: dt.date) -> dict[str, float]:
    """Seconds of tardis_daily_exports' first tick (no cursor: reads the materialized partitions) and second tick
    (cursor), and of the read it does once per tick (the old code did it once per instrument)."""
    import dagster as dg

    from tick_assets.assets.partitions import build_partitions
    from tick_assets.assets.raw import build_raw_asset
    from tick_assets.assets.resources import TardisResource
    from tick_assets.assets.sensors.daily_exports import build_daily_sensor

    until = dt.datetime.combine(exported_through + dt.timedelta(days=1), dt.time(), dt.UTC)
    client = _StubClient([i.partition(":")[2] for i in instruments], until)

    class StubTardis(TardisResource):
        def build_client(self) -> Any:  # type: ignore[override]
            return client

    partitions = build_partitions(START.isoformat(), instruments)
    sensor = build_daily_sensor(
        [build_raw_asset("trades", partitions_def=partitions)], partitions_def=partitions
    )
    instance = dg.DagsterInstance.from_config(str(home))
    tardis = StubTardis(data_dir=str(home / "tardis"))
    out: dict[str, float] = {}
    cursor = None
    for name in ("first tick", "second tick"):
        with dg.build_sensor_context(
            instance=instance, cursor=cursor, resources={"tardis": tardis}
        ) as context:
            started = time.perf_counter()
            result = sensor(context)
            out[name] = time.perf_counter() - started
        cursor = getattr(result, "cursor", cursor)
        out[f"{name} run requests"] = len(getattr(result, "run_requests", None) or [])
    started = time.perf_counter()
    instance.get_materialized_partitions(dg.AssetKey(PAGE_ASSET))
    out["one read of the materialized partitions"] = time.perf_counter() - started
    instance.dispose()
    return out


# --- the stack: sensor ticks, asset page queries, backfills --------------------------------------------------

_SENSOR_TICKS = """
query($s: SensorSelector!) { sensorOrError(sensorSelector: $s) { __typename
  ... on Sensor { minIntervalSeconds sensorState { status ticks(limit: 200) { id status timestamp endTimestamp
    requestedAssetMaterializationCount error { message } } } } ... on PythonError { message } } }
"""
_ASSET_NODES = "{ assetNodes { assetKey { path } isPartitioned } }"

#: What the UI's asset page asks for a partitioned asset (from dagster-webserver 1.13.27's bundle, reduced to
#: the fields that cost: the same resolvers, without the display-only leaves).
PAGE_QUERIES: dict[str, str] = {
    "definition + latest materialization (AssetViewDefinitionQuery)": """
query($assetKey: AssetKeyInput!) { assetOrError(assetKey: $assetKey) { ... on Asset { id hasDefinitionOrRecord
  assetMaterializations(limit: 1) { timestamp runId }
  definition { id opVersion groupName isExecutable automationCondition { label expandedLabel }
    partitionDefinition { description dimensionTypes { type } } partitionKeysByDimension { name } } } } }""",
    "partition health bar + partitions tab (PartitionHealthQuery)": """
query($assetKey: AssetKeyInput!) { assetNodeOrError(assetKey: $assetKey) { ... on AssetNode { id
  partitionKeysByDimension { name type partitionKeys }
  assetPartitionStatuses {
    ... on TimePartitionStatuses { ranges { status startTime endTime startKey endKey } }
    ... on DefaultPartitionStatuses { materializedPartitions materializingPartitions failedPartitions }
    ... on MultiPartitionStatuses { primaryDimensionName ranges { primaryDimStartKey primaryDimEndKey
      primaryDimStartTime primaryDimEndTime secondaryDim {
        ... on TimePartitionStatuses { ranges { status startTime endTime startKey endKey } }
        ... on DefaultPartitionStatuses { materializedPartitions materializingPartitions failedPartitions } } } } }
} } }""",
    "partition counts (AssetNodeLiveFragment partitionStats)": """
query($assetKey: AssetKeyInput!) { assetNodeOrError(assetKey: $assetKey) { ... on AssetNode { id
  partitionStats { numMaterialized numMaterializing numPartitions numFailed } } } }""",
    "health status + counts (AssetHealthQuery)": """
query($assetKeys: [AssetKeyInput!]!) { assetsOrError(assetKeys: $assetKeys) { ... on AssetConnection { nodes {
  id latestMaterializationTimestamp latestFailedToMaterializeTimestamp
  assetHealth { assetHealth materializationStatus materializationStatusMetadata {
    ... on AssetHealthMaterializationDegradedPartitionedMeta { numMissingPartitions numFailedPartitions
      totalNumPartitions }
    ... on AssetHealthMaterializationHealthyPartitionedMeta { numMissingPartitions totalNumPartitions } } } } } } }""",
    "latest materialization + metadata (AssetOverviewMetadataEventsQuery)": """
query($assetKey: AssetKeyInput!) { assetOrError(assetKey: $assetKey) { ... on Asset { id
  assetMaterializations(limit: 1) { timestamp runId partition metadataEntries { label } }
  assetObservations(limit: 1) { timestamp runId partition } } } }""",
    "newest partitions list (LatestAssetPartitionsQuery, 100)": """
query($assetKey: AssetKeyInput!) { assetNodeOrError(assetKey: $assetKey) { ... on AssetNode { id
  partitionKeyConnection(limit: 100, ascending: false) { results } } } }""",
    "event history (RecentAssetEventsQuery, 100)": """
query($assetKey: AssetKeyInput!) { assetOrError(assetKey: $assetKey) { ... on Asset { id
  assetEventHistory(limit: 100, eventTypeSelectors: [MATERIALIZATION, OBSERVATION, FAILED_TO_MATERIALIZE]) {
    results { ... on MaterializationEvent { timestamp runId partition } } cursor } } } }""",
}


def sensor_ticks(stack: Any, name: str) -> tuple[float, list[dict[str, Any]]]:
    """(interval s, finished ticks oldest first) of a sensor of the code location."""
    selector = {
        "repositoryName": "__repository__",
        "repositoryLocationName": "tick_assets",
        "sensorName": name,
    }
    found = stack.graphql(_SENSOR_TICKS, {"s": selector})["sensorOrError"]
    if found["__typename"] != "Sensor":
        raise RuntimeError(f"sensor {name}: {found}")
    ticks = [t for t in found["sensorState"]["ticks"] if t["endTimestamp"] and t["status"] != "STARTED"]
    return float(found["minIntervalSeconds"]), sorted(ticks, key=lambda t: t["timestamp"])


def wait_for_ticks(stack: Any, name: str, count: int, timeout: float) -> list[dict[str, Any]]:
    """Poll until `name` has `count` finished ticks (or `timeout` passes); return them."""
    deadline = time.monotonic() + timeout
    ticks: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        ticks = sensor_ticks(stack, name)[1]
        if len(ticks) >= count:
            break
        time.sleep(2)
    return ticks


def wait_for_ticks_after(stack: Any, name: str, since: float, timeout: float) -> list[dict[str, Any]]:
    """Poll until `name` has a finished tick that started after `since` (epoch s); return those ticks."""
    deadline = time.monotonic() + timeout
    ticks: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        ticks = [t for t in sensor_ticks(stack, name)[1] if t["timestamp"] > since]
        if ticks:
            break
        time.sleep(2)
    return ticks


def time_query(
    stack: Any, query: str, variables: dict[str, Any], repeats: int = 3
) -> tuple[float, float, int]:
    """(first s, median of the rest s, response bytes) of a GraphQL query over HTTP."""
    import json

    import requests

    times, size = [], 0
    for _ in range(repeats):
        started = time.perf_counter()
        resp = requests.post(
            f"{stack.url}/graphql", json={"query": query, "variables": variables}, timeout=600
        )
        times.append(time.perf_counter() - started)
        resp.raise_for_status()
        body = resp.json()
        if body.get("errors"):
            raise RuntimeError(f"GraphQL error: {body['errors']}")
        size = len(json.dumps(body))
    return times[0], statistics.median(times[1:] or times), size


def first_run_of_backfill(
    stack: Any, assets: list[list[str]], keys: list[str], timeout: float
) -> dict[str, Any]:
    """Launch a backfill, time the launch call and the wait until its first run exists, then cancel it."""
    started = time.perf_counter()
    backfill_id = stack.launch_backfill(assets, keys, "many partitions bench")
    launched = time.perf_counter() - started
    first = None
    state: dict[str, Any] = {}
    while time.perf_counter() - started < timeout:
        state = stack.backfill(backfill_id)
        if state["runs"]:
            first = time.perf_counter() - started
            break
        time.sleep(0.5)
    stack.cancel_backfill(backfill_id)
    # The daemon stops submitting at the end of its current iteration: wait for that before the next launch.
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and stack.backfill(backfill_id)["status"] not in ("CANCELED", "FAILED"):
        time.sleep(2)
    return {
        "launch": launched,
        "first_run": first,
        "partitions": state.get("numPartitions"),
        "assets": len(assets),
    }


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _tick_line(label: str, ticks: list[dict[str, Any]], interval: float) -> tuple[str, float]:
    seconds = [t["endTimestamp"] - t["timestamp"] for t in ticks]
    if not seconds:
        return f"| {label} | 0 | - | - | - | {interval:.0f} | - | - |", float("nan")
    worst = max(seconds)
    return (
        f"| {label} | {len(seconds)} | {seconds[0]:.1f} | {statistics.median(seconds):.1f} | {worst:.1f} | "
        f"{interval:.0f} | {worst / interval:.2f} | "
        f"{sum(t.get('requestedAssetMaterializationCount') or 0 for t in ticks)} |",
        worst / interval,
    )


def section(work: Path, quick: bool) -> Section:
    """Build the instance, start webserver + daemon on it, and measure sensors, the asset page and backfills."""
    from tick_assets.stack.localstack import DagsterStack, write_instance_yaml

    scale = QUICK if quick else FULL
    home = work / "many-partitions-home"
    instruments = instrument_keys(scale.instruments)
    yesterday = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)
    partitions_per_asset = ((yesterday - START).days + 1) * len(instruments)
    write_instance_yaml(home)
    keys = partition_keys(scale.materialized_days, instruments[: scale.materialized_instruments])
    populate_s = populate(home, keys)
    daily = daily_sensor_ticks(home, instruments, START + dt.timedelta(days=scale.materialized_days + 2))

    env = {
        "TICK_ASSETS_INSTRUMENTS": ",".join(instruments),
        "TICK_ASSETS_START_DATE": START.isoformat(),
        "TICK_ASSETS_DATA_DIR": str(work / "many-partitions-data"),
        # no run executes (max_concurrent_runs 0) and none could reach a server: nothing competes for the CPU
        "TARDIS_DATASETS_URL": "http://127.0.0.1:9/v1",
        "TARDIS_API_URL": "http://127.0.0.1:9/v1",
    }
    overrides = {"concurrency": {"runs": {"max_concurrent_runs": 0}}}
    section = Section("many partitions")
    with DagsterStack(home, env, instance_overrides=overrides) as stack:
        stack_started = time.time()
        idle = wait_for_ticks(stack, AUTOMATION_SENSOR, scale.automation_ticks, timeout=900)
        interval = sensor_ticks(stack, AUTOMATION_SENSOR)[0]
        queries = {
            name: time_query(
                stack,
                q,
                {"assetKeys": [{"path": PAGE_ASSET}]}
                if "$assetKeys" in q
                else {"assetKey": {"path": PAGE_ASSET}},
            )
            for name, q in PAGE_QUERIES.items()
        }
        # A new day lands on the raw assets of every materialized instrument: the features follow.
        landed_at = time.time()
        new_day = START + dt.timedelta(days=scale.materialized_days)
        landed = partition_keys(1, instruments[: scale.materialized_instruments], start=new_day)
        populate(home, landed, MATERIALIZED[:2])
        pass_blocking_checks(home, landed)
        wait_for_ticks_after(stack, AUTOMATION_SENSOR, time.time(), timeout=600)
        follow = [t for t in sensor_ticks(stack, AUTOMATION_SENSOR)[1] if t["timestamp"] > landed_at]
        year = partition_keys(365, instruments)
        backfills = [("one raw asset", first_run_of_backfill(stack, [PAGE_ASSET], year, timeout=600))]
        if scale.whole_graph_backfill:
            nodes = stack.graphql(_ASSET_NODES)["assetNodes"]
            every = [n["assetKey"]["path"] for n in nodes if n["isPartitioned"]]
            backfills.append(("whole graph", first_run_of_backfill(stack, every, year, timeout=600)))
        busy_since = max((t["endTimestamp"] for t in follow), default=stack_started)
        busy = [t for t in sensor_ticks(stack, AUTOMATION_SENSOR)[1] if t["timestamp"] > busy_since]
        dead_interval, dead = sensor_ticks(stack, "dead_run_workers")
        errors = [t["error"]["message"][:200] for t in idle + follow + busy if t.get("error")]

    section.details = [
        f"{len(instruments)} instruments from {START} = {partitions_per_asset:,} partitions per asset; "
        f"{len(keys):,} materialized on each of {', '.join('/'.join(p) for p in MATERIALIZED)} "
        f"(written in {populate_s:.0f} s).",
        "",
        "| sensor | ticks | first s | median s | worst s | interval s | worst / interval | asset partitions requested |",
        "|---|---|---|---|---|---|---|---|",
    ]
    idle_line, idle_ratio = _tick_line(f"{AUTOMATION_SENSOR} (idle)", idle, interval)
    follow_line, follow_ratio = _tick_line(
        f"{AUTOMATION_SENSOR} (a new day of {len(landed)} raw partitions x 2 assets lands)", follow, interval
    )
    busy_line, busy_ratio = _tick_line(f"{AUTOMATION_SENSOR} (backfills launched)", busy, interval)
    dead_line, _ = _tick_line("dead_run_workers", dead, dead_interval)
    section.details += [idle_line, follow_line, busy_line, dead_line]
    section.details += [
        "",
        "| tardis_daily_exports (in process) | s |",
        "|---|---|",
        *(f"| {k} | {v:.3f} |" if isinstance(v, float) else f"| {k} | {v} |" for k, v in daily.items()),
        "",
        "| asset page query (raw/trades) | first s | then s | response KB |",
        "|---|---|---|---|",
        *(f"| {n} | {a:.2f} | {b:.2f} | {s / 1024:,.0f} |" for n, (a, b, s) in queries.items()),
        "",
        "| backfill of 365 days x every instrument | assets | partitions | launch call s | launch to first run s |",
        "|---|---|---|---|---|",
        *(
            f"| {label} | {b['assets']} | {b['partitions'] or '-'} | {b['launch']:.1f} | "
            f"{_seconds(b['first_run'])} |"
            for label, b in backfills
        ),
    ]
    if errors:
        section.details += ["", "Automation tick errors: " + "; ".join(errors)]
    page_worst = max(a for a, _, _ in queries.values())
    section.targets += [
        Target(
            f"many partitions: automation tick ({partitions_per_asset:,} partitions/asset), worst / interval",
            f"worst {idle_ratio * interval:.1f} s idle, {follow_ratio * interval:.1f} s as a day lands, "
            f"{busy_ratio * interval:.1f} s with backfills",
            f"interval {interval:.0f} s",
            max(idle_ratio, follow_ratio, busy_ratio),
            "<= 0.5x (well inside)",
            max(idle_ratio, follow_ratio, busy_ratio) <= 0.5,
        ),
        Target(
            "many partitions: slowest asset page query (first ask)",
            f"{page_worst:.2f} s",
            "-",
            None,
            "(report)",
            None,
        ),
    ]
    read = daily["one read of the materialized partitions"]
    old = read * len(instruments)
    section.targets.append(
        Target(
            "many partitions: tardis_daily_exports tick without a cursor (one read per tick)",
            f"{daily['first tick']:.2f} s",
            f"old: one read per instrument, {len(instruments)} x {read:.3f} s = {old:.1f} s",
            old / daily["first tick"],
            "(report)",
            None,
        )
    )
    for label, b in backfills:
        section.targets.append(
            Target(
                f"many partitions: backfill 365 days x {len(instruments)} ({label}), launch to first run",
                _seconds(b["first_run"]) + " s",
                f"launch call {b['launch']:.1f} s",
                None,
                "(report)",
                None,
            )
        )
    return section


def main() -> None:
    """Run the section and print its report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20 instruments, 2,000 materialized")
    parser.add_argument("--workdir", type=Path, help="where the instance is built (default: a temp folder)")
    args = parser.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="tick-bench-many-"))
    work.mkdir(parents=True, exist_ok=True)
    result = section(work, args.quick)
    print("| benchmark | ours | baseline | ratio | target | met |\n|---|---|---|---|---|---|")
    print("\n".join(t.line() for t in result.targets))
    print()
    print("\n".join(result.details))


if __name__ == "__main__":
    os.environ.setdefault("DAGSTER_DISABLE_TELEMETRY", "1")
    main()
