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
