"""The code location loads, and TardisResource works inside a Dagster run without leaking the key."""

from __future__ import annotations

import importlib

import dagster as dg

import tick_assets.definitions
from tick_assets.assets.resources import TardisResource


def test_definitions_load() -> None:
    dg.Definitions.validate_loadable(tick_assets.definitions.defs)
    assert isinstance(tick_assets.definitions.defs.resources["tardis"], TardisResource)


def test_api_key_is_wired_through_env_var(monkeypatch) -> None:
    monkeypatch.setenv("TARDIS_API_KEY", "tk-from-env")
    try:
        module = importlib.reload(tick_assets.definitions)
        key = module.defs.resources["tardis"].api_key
        assert isinstance(key, dg.EnvVar) and key.env_var_name == "TARDIS_API_KEY"
    finally:
        monkeypatch.delenv("TARDIS_API_KEY")
        importlib.reload(tick_assets.definitions)


def test_resource_downloads_in_a_run_and_keeps_the_key_out_of_events(emulator, tmp_path, monkeypatch) -> None:
    secret = "tk-SECRET-in-run-7c1d"
    monkeypatch.setenv("TARDIS_API_KEY", secret)

    @dg.asset
    def probe(tardis: TardisResource) -> dg.MaterializeResult:
        result = tardis.client.download("deribit", "trades", "BTC-PERPETUAL", "2024-01-02")
        return dg.MaterializeResult(metadata={"bytes": result.compressed_bytes, "url": result.url})

    resource = TardisResource(
        api_key=dg.EnvVar("TARDIS_API_KEY"),
        datasets_url=emulator.datasets_url,
        api_url=emulator.api_url,
        data_dir=str(tmp_path),
    )
    run = dg.materialize([probe], resources={"tardis": resource})
    assert run.success
    assert (tmp_path / "tardis" / "deribit_trades_2024-01-02_BTC-PERPETUAL.csv.gz").exists()
    assert (tmp_path / "ratelimit.sqlite").exists()
    assert emulator.stats["counts"]["with_authorization"] == 1
    events = [str(e) for e in run.all_events]
    assert events and all(secret not in e for e in events)
    for path in tmp_path.rglob("*"):
        assert not path.is_file() or secret.encode() not in path.read_bytes()


def _reloaded(monkeypatch, **env: str):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return importlib.reload(tick_assets.definitions)


def test_assets_pools_partitions_and_backfill_policy(monkeypatch) -> None:
    try:
        module = _reloaded(
            monkeypatch,
            TICK_ASSETS_DATA_TYPES="trades,book_snapshot_25",
            TICK_ASSETS_INSTRUMENTS="binance-futures:BTCUSDT,deribit:ETH-PERPETUAL",
            TICK_ASSETS_START_DATE="2023-06-01",
            TICK_ASSETS_BACKFILL_DAYS_PER_RUN="10",
        )
        graph = module.defs.resolve_asset_graph()
        keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
        assert keys == {
            "raw/trades",
            "raw/book_snapshot_25",
            "warehouse/views",
            "features/depth",
            "features/trade_bars",
            "analytics/microstructure_1m",
            "analytics/daily_summary",
        }
        trades = module.defs.resolve_assets_def(dg.AssetKey(["raw", "trades"]))
        assert trades.op.pool == "tardis"
        assert trades.backfill_policy == dg.BackfillPolicy.multi_run(10)
        pdef = trades.partitions_def
        assert pdef.get_partition_key_from_str("2023-06-01|deribit:ETH-PERPETUAL").keys_by_dimension == {
            "date": "2023-06-01",
            "instrument": "deribit:ETH-PERPETUAL",
        }
        assert pdef.get_first_partition_key() == "2023-06-01|binance-futures:BTCUSDT"
        # No step but the downloads has a pool: every step writes its own partition files.
        pooled = {a.key.to_user_string(): a.op.pool for a in module.defs.assets if a.op.pool}
        assert set(pooled) == {"raw/trades", "raw/book_snapshot_25"} and set(pooled.values()) == {"tardis"}
        views = module.defs.resolve_assets_def(dg.AssetKey(["warehouse", "views"]))
        assert views.op.pool is None
        assert {k.to_user_string() for k in graph.get(views.key).parent_entity_keys} == keys - {
            "warehouse/views"
        }
    finally:
        for name in (
            "TICK_ASSETS_DATA_TYPES",
            "TICK_ASSETS_INSTRUMENTS",
            "TICK_ASSETS_START_DATE",
            "TICK_ASSETS_BACKFILL_DAYS_PER_RUN",
        ):
            monkeypatch.delenv(name)
        importlib.reload(tick_assets.definitions)


def test_raw_views_refresh_after_new_raw_partitions() -> None:
    defs = tick_assets.definitions.defs
    instance = dg.DagsterInstance.ephemeral()
    views = dg.AssetSelection.assets(["warehouse", "views"])
    # Never built: requested once within the first two ticks (the first tick only initialises `since`).
    tick1 = dg.evaluate_automation_conditions(defs, instance, asset_selection=views)
    first = dg.evaluate_automation_conditions(defs, instance, asset_selection=views, cursor=tick1.cursor)
    assert tick1.total_requested + first.total_requested == 1
    instance.report_runless_asset_event(dg.AssetMaterialization(["warehouse", "views"]))
    quiet = dg.evaluate_automation_conditions(defs, instance, asset_selection=views, cursor=first.cursor)
    assert quiet.total_requested == 0
    instance.report_runless_asset_event(
        dg.AssetMaterialization(["raw", "trades"], partition="2024-01-02|binance-futures:BTCUSDT")
    )
    after = dg.evaluate_automation_conditions(defs, instance, asset_selection=views, cursor=quiet.cursor)
    assert after.total_requested == 1


def test_instance_yaml_sets_pools_and_frees_slots_of_dead_runs(tmp_path) -> None:
    from tick_assets.stack.localstack import write_instance_yaml

    write_instance_yaml(tmp_path)
    instance = dg.DagsterInstance.from_config(str(tmp_path))
    try:
        config = instance.get_concurrency_config()
        assert config.pool_config.default_pool_limit == 1  # pool duckdb: one writer unless raised
        assert config.pool_config.pool_granularity.value == "op"
        assert instance.run_monitoring_settings["free_slots_after_run_end_seconds"] == 60
    finally:
        instance.dispose()


def test_zero_days_per_run_means_one_run_per_range(monkeypatch) -> None:
    from tick_assets.assets.partitions import build_partitions, configured_backfill_policy
    from tick_assets.assets.raw import build_raw_asset

    monkeypatch.setenv("TICK_ASSETS_BACKFILL_DAYS_PER_RUN", "0")
    policy = configured_backfill_policy()
    assert policy == dg.BackfillPolicy.single_run()
    asset = build_raw_asset(
        "trades",
        partitions_def=build_partitions("2024-01-01", ["deribit:BTC-PERPETUAL"]),
        backfill_policy=policy,
    )
    assert asset.backfill_policy == dg.BackfillPolicy.single_run()
