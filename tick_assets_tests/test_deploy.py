"""Deployment profiles: the distributed instance (deploy/distributed/dagster.yaml) on a real Postgres."""

from __future__ import annotations

import shutil

import dagster as dg
import psycopg2
import pytest

from tick_assets.stack.postgres import USER, PostgresServer
from tick_assets_tests.helpers.paths import REPO_ROOT

DISTRIBUTED = REPO_ROOT / "deploy" / "distributed" / "dagster.yaml"


@pytest.fixture(scope="module")
def pg():
    """One Postgres for the module."""
    with PostgresServer() as server:
        yield server


def test_the_distributed_instance_keeps_runs_events_and_pools_on_postgres(pg, tmp_path, monkeypatch) -> None:
    """A run on the distributed profile's instance: its run, its events and the pool's limit are rows in
    Postgres, read back by a second instance (another machine's view); the profile holds no credential."""
    text = DISTRIBUTED.read_text()
    assert "password:\n        env: DAGSTER_PG_PASSWORD" in text and pg.password not in text
    for name, value in {
        "DAGSTER_PG_HOST": "127.0.0.1",
        "DAGSTER_PG_PORT": str(pg.port),
        "DAGSTER_PG_USERNAME": USER,
        "DAGSTER_PG_PASSWORD": pg.password,
        "DAGSTER_PG_DB": "postgres",
        "TICK_ASSETS_DAGSTER_LOCAL_DIR": str(tmp_path / "local"),  # this machine's own folder
    }.items():
        monkeypatch.setenv(name, value)
    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(DISTRIBUTED, home / "dagster.yaml")

    @dg.asset(pool="tardis")
    def probe() -> int:
        """A step in the download pool."""
        return 1

    with dg.DagsterInstance.from_config(str(home)) as instance:
        instance.event_log_storage.set_concurrency_slots("tardis", 3)  # what `concurrency set` does at deploy
        assert dg.materialize([probe], instance=instance).success
    with dg.DagsterInstance.from_config(str(home)) as other:
        runs = other.get_runs()
        assert len(runs) == 1 and runs[0].status == dg.DagsterRunStatus.SUCCESS
        assert other.get_latest_materialization_event(dg.AssetKey("probe")) is not None
        assert other.event_log_storage.get_concurrency_info("tardis").slot_count == 3
    with psycopg2.connect(pg.url) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM runs")
        assert cur.fetchone()[0] == 1
        cur.execute("SELECT count(*) FROM event_logs WHERE dagster_event_type = 'ASSET_MATERIALIZATION'")
        assert cur.fetchone()[0] == 1
    assert not list(home.rglob("*.db"))  # nothing on this machine's disk: no SQLite storage was made
    # the run's compute logs went to this machine's folder named by the environment, not under DAGSTER_HOME
    assert list((tmp_path / "local").rglob("*.complete")) or list((tmp_path / "local").rglob("*.out"))
    assert not (home / "storage").exists()
