"""A realistic instrument list (spot, perpetuals, a grouped options chain) backfills every asset green: a data
type Tardis does not offer for an instrument is an empty partition that says so, never a red one (slow)."""

from __future__ import annotations

import datetime as dt

import dagster as dg
import duckdb
import pytest

from tick_assets import settings
from tick_assets.assets.partitions import build_partitions
from tick_assets.assets.resources import TardisResource
from tick_assets.definitions import build_definitions
from tick_assets.emulator.server import EmulatorConfig, EmulatorServer
from tick_assets.lake import partition_file
from tick_assets.stack.materialize import materialize_range, partitioned_asset_keys

pytestmark = pytest.mark.slow
INSTRUMENTS = [
    "binance:BTCUSDT",
    "binance-futures:BTCUSDT",
    "deribit:BTC-PERPETUAL",
    "deribit:OPTIONS",
    "binance:SPOT",
]
GROUPED = {"deribit:OPTIONS", "binance:SPOT"}
DAY = dt.date(2024, 1, 2)
#: What the emulator (like Tardis) offers per instrument, of the default data types.
NOT_OFFERED = {
    "binance:BTCUSDT": {"derivative_ticker", "liquidations", "options_chain"},
    "binance-futures:BTCUSDT": {"options_chain"},
    "deribit:BTC-PERPETUAL": {"book_ticker", "options_chain"},
    "deribit:OPTIONS": {
        "book_snapshot_25",
        "book_snapshot_5",
        "book_ticker",
        "derivative_ticker",
        "liquidations",
        "incremental_book_L2",
    },
    "binance:SPOT": {
        "book_snapshot_25",
        "book_snapshot_5",
        "quotes",
        "book_ticker",
        "derivative_ticker",
        "liquidations",
        "incremental_book_L2",
        "options_chain",
    },
}


@pytest.mark.timeout(600)
def test_a_mixed_list_backfills_every_asset_green(synth_cache, tmp_path) -> None:
    data_dir = tmp_path / "data"
    types = settings.raw_data_types()
    assert {"book_ticker", "options_chain"} <= set(types)  # both exist as raw assets by default
    with EmulatorServer(EmulatorConfig(cache_dir=synth_cache, scale=2000)) as server:
        tardis = TardisResource(
            api_key="k", datasets_url=server.datasets_url, api_url=server.api_url, data_dir=str(data_dir)
        )
        defs = build_definitions(
            partitions=build_partitions("2024-01-01", INSTRUMENTS),
            backfill_policy=dg.BackfillPolicy.multi_run(31),
            data_types=types,
            data_dir=data_dir,
            tardis=tardis,
        )
        keys = partitioned_asset_keys(defs)
        with dg.instance_for_test() as instance:
            runs = materialize_range(defs, keys, INSTRUMENTS, DAY, DAY, instance)
            assert [r.success for r in runs] == [True] * len(INSTRUMENTS), runs
            table = []
            for key in keys:
                assert len(instance.get_materialized_partitions(key)) == len(INSTRUMENTS), key
                for instrument in INSTRUMENTS:
                    partition = f"{DAY}|{instrument}"
                    record = instance.fetch_materializations(
                        dg.AssetRecordsFilter(asset_key=key, asset_partitions=[partition]), limit=1
                    ).records[0]
                    meta = record.asset_materialization.metadata
                    reason = meta.get("not_offered_by_tardis")
                    table.append((key.to_user_string(), instrument, meta["dagster/row_count"].value, reason))
                    if key.path[0] == "features":  # a group's grid exists, empty, and says why
                        note = reason or meta.get("grouped_dataset")
                        assert (note is not None) == (instrument in GROUPED), (key, instrument)
                        if instrument == "binance:SPOT" and key.path[1] == "trade_bars":
                            # its trades exist (BTCUSDT and ETHUSDT in one file): bars would mix them
                            assert reason is None and meta["trades"].value == 0
                    if key.path[0] != "raw":
                        continue
                    data_type = key.path[1]
                    offered = data_type not in NOT_OFFERED[instrument]
                    assert (reason is None) == offered, (key, instrument, reason)
                    exchange, symbol = instrument.split(":")
                    lake = partition_file(data_dir / "lake", f"raw/{data_type}", exchange, symbol, DAY)
                    rows = duckdb.sql(f"SELECT count(*) FROM read_parquet('{lake}')").fetchall()[0][0]
                    assert rows == meta["dagster/row_count"].value
                    assert (rows > 0) == offered, (data_type, instrument, rows)
                    if not offered:
                        assert "does not offer" in reason.value and data_type in reason.value
            # Not offered is nothing to hold against a partition: every check of those passed; on the others the
            # blocking (ERROR) checks passed and only data-quality warnings may remain.
            for check in defs.asset_checks or []:
                for check_key in check.check_keys:
                    records = instance.event_log_storage.get_asset_check_execution_history(
                        check_key, limit=100
                    )
                    assert {r.partition for r in records} == {f"{DAY}|{i}" for i in INSTRUMENTS}, check_key
                    for r in records:
                        instrument = r.partition.split("|")[1]
                        if r.status.value != "SUCCEEDED":
                            evaluation = r.event.dagster_event.event_specific_data
                            assert evaluation.severity == dg.AssetCheckSeverity.WARN, (check_key, r.partition)
                            assert check_key.asset_key.path[-1] not in NOT_OFFERED.get(instrument, ()), r
            grouped = partition_file(data_dir / "lake", "raw/options_chain", "deribit", "OPTIONS", DAY)
            query = f"SELECT count(DISTINCT symbol) FROM read_parquet('{grouped}')"
            symbols = duckdb.sql(query).fetchall()[0][0]
            assert symbols > 20  # one grouped file, many option instruments
    print("\nasset | instrument | rows | not offered")
    for row in table:
        print(" | ".join("" if v is None else str(getattr(v, "value", v))[:90] for v in row))
    # Not offered costs no dataset request: only offered days were downloaded.
    offered_days = sum(len(types) - len(NOT_OFFERED[i]) for i in INSTRUMENTS)
    assert server.stats["counts"]["dataset_requests"] == offered_days
