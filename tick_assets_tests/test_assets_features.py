"""Raw -> features -> analytics with checks, in one ranged run against the emulator; checks fail on bad data."""

from __future__ import annotations

import datetime as dt

import dagster as dg
import duckdb

from tick_assets.assets.analytics import build_analytics_assets
from tick_assets.assets.checks import build_feature_checks, build_raw_checks
from tick_assets.assets.features import build_feature_assets
from tick_assets.assets.partitions import RANGE_END, RANGE_START, build_partitions
from tick_assets.assets.raw import build_raw_asset
from tick_assets.assets.resources import FeatureSettings
from tick_assets_tests.helpers.runs import resources

BTC = "binance-futures:BTCUSDT"
PARTITIONS = build_partitions("2024-01-01", [BTC, "deribit:BTC-PERPETUAL"])
POLICY = dg.BackfillPolicy.multi_run(31)


def _lake(data_dir, dataset: str) -> str:
    """read_parquet over every partition file of a lake dataset (hive keys as columns)."""
    return f"read_parquet('{data_dir}/lake/{dataset}/*/*/*/*.parquet', hive_partitioning = true)"


def _platform(server, data_dir, grid_ms: int = 1000):
    book, trades = (
        build_raw_asset("book_snapshot_25", partitions_def=PARTITIONS),
        build_raw_asset("trades", partitions_def=PARTITIONS),
    )
    depth, bars = build_feature_assets(book, trades, partitions_def=PARTITIONS, backfill_policy=POLICY)
    analytics = build_analytics_assets(depth, bars, partitions_def=PARTITIONS, backfill_policy=POLICY)
    checks = build_raw_checks(book, trades, partitions_def=PARTITIONS) + build_feature_checks(
        depth, bars, partitions_def=PARTITIONS
    )
    res = {**resources(server, data_dir), "features": FeatureSettings(grid_step_ms=grid_ms)}
    return [book, trades, depth, bars, *analytics, *checks], res


def test_ranged_run_flows_from_raw_to_analytics_with_passing_checks(start_emulator, tmp_path) -> None:
    # A realistic book rate (20k snapshots a day) so no minute-long silences trip the warning check.
    assets, res = _platform(start_emulator(scale=20_000), tmp_path)
    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize(
        assets,
        resources=res,
        instance=instance,
        tags={RANGE_START: f"2024-01-02|{BTC}", RANGE_END: f"2024-01-03|{BTC}"},
    )
    assert result.success
    # One verdict per check and partition even in a ranged run, each tied to the materialization it checked.
    keys = [f"2024-01-02|{BTC}", f"2024-01-03|{BTC}"]
    evaluations = result.get_asset_check_evaluations()
    verdicts = sorted(
        (e.asset_key.to_user_string(), e.check_name, e.partition, e.passed) for e in evaluations
    )
    checks = [
        ("features/depth", "grid_complete"),
        ("features/trade_bars", "grid_complete"),
        ("raw/book_snapshot_25", "book_not_crossed"),
        ("raw/book_snapshot_25", "local_after_exchange_timestamp"),
        ("raw/book_snapshot_25", "local_timestamp_in_order"),
        ("raw/book_snapshot_25", "longest_silence"),
        ("raw/trades", "no_duplicate_trade_ids"),
        ("raw/trades", "trade_values_valid"),
    ]
    assert verdicts == [(a, c, k, True) for a, c in checks for k in keys]
    for e in evaluations:
        latest = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=e.asset_key, asset_partitions=[e.partition]), limit=1
        ).records[0]
        assert e.target_materialization_data.storage_id == latest.storage_id
    depth_check = next(e for e in evaluations if e.check_name == "grid_complete" and e.partition == keys[0])
    assert depth_check.metadata["rows"].value == depth_check.metadata["expected_rows"].value == 86_400
    with duckdb.connect() as con:
        con.execute("SET TimeZone = 'UTC'")
        # One file per partition in the lake, each holding exactly its own day and instrument.
        per_day = con.sql(
            f"SELECT date, symbol_id, ts::DATE, count(*), count(mid) FROM {_lake(tmp_path, 'features/depth')} "
            "GROUP BY ALL ORDER BY ALL"
        ).fetchall()
        assert [(str(d), s, str(t), n) for d, s, t, n, _ in per_day] == [
            ("2024-01-02", "BTCUSDT", "2024-01-02", 86400),
            ("2024-01-03", "BTCUSDT", "2024-01-03", 86400),
        ]
        minutes = con.sql(
            f"SELECT count(*), count(DISTINCT instrument) FROM {_lake(tmp_path, 'analytics/microstructure_1m')}"
        ).fetchall()[0]
        assert minutes == (2 * 1440, 1)
        summary = con.sql(
            f"SELECT instrument, date, trades FROM {_lake(tmp_path, 'analytics/daily_summary')} ORDER BY 2"
        ).fetchall()
    assert [(i, str(d)) for i, d, _ in summary] == [(BTC, "2024-01-02"), (BTC, "2024-01-03")]
    assert len(list((tmp_path / "lake" / "features" / "depth").rglob("*.parquet"))) == 2
    chart = tmp_path / "reports" / "daily_summary" / "binance-futures-BTCUSDT" / "2024-01-02.png"
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _fixtures(folder, day: str, spoil: bool = True) -> None:
    """A synthetic book and trades day for the emulator to serve; spoiled: crossed books and a backwards receive
    time in the book, invalid values and a duplicate id in the trades."""
    import gzip as gz

    from tick_assets.emulator.synth import generate_table

    folder.mkdir(exist_ok=True)
    when = dt.date.fromisoformat(day)
    book = generate_table("binance-futures", "BTCUSDT", "book_snapshot_25", when, 20_000).to_pandas()
    trades = generate_table("binance-futures", "BTCUSDT", "trades", when, 20_000).to_pandas()
    if spoil:
        crossed = book.index[100:200]  # 100 of ~20k snapshots: 0.5%, above the 0.1% tolerance
        book.loc[crossed, "bids[0].price"] = book.loc[crossed, "asks[0].price"] + 1
        book.loc[5000, "local_timestamp"] = book.loc[4000, "local_timestamp"]
        trades.loc[10, "price"] = -1.0
        trades.loc[11, "side"] = "sideways"
        trades.loc[12, "id"] = trades.loc[13, "id"]
    for data_type, frame in (("book_snapshot_25", book), ("trades", trades)):
        with gz.open(folder / f"binance-futures_{data_type}_{day}_BTCUSDT.csv.gz", "wt", newline="") as f:
            frame.to_csv(f, index=False)


def test_checks_fail_on_bad_data_and_blocking_ones_stop_the_features(start_emulator, tmp_path) -> None:
    _fixtures(tmp_path / "fixtures", "2024-01-02")
    server = start_emulator(fixtures=tmp_path / "fixtures")
    assets, res = _platform(server, tmp_path / "data")
    result = dg.materialize(
        assets,
        resources=res,
        instance=dg.DagsterInstance.ephemeral(),
        partition_key=f"2024-01-02|{BTC}",
        raise_on_error=False,
    )
    evaluations = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert not evaluations["book_not_crossed"].passed
    assert evaluations["book_not_crossed"].severity == dg.AssetCheckSeverity.ERROR
    assert evaluations["book_not_crossed"].metadata["crossed"].value == 100
    assert not evaluations["local_timestamp_in_order"].passed
    assert evaluations["local_timestamp_in_order"].metadata["local_timestamp_decreases"].value == 1
    trade_check = evaluations["trade_values_valid"]
    assert not trade_check.passed
    assert {k: trade_check.metadata[k].value for k in ("non_positive_price", "bad_side")} == {
        "non_positive_price": 1,
        "bad_side": 1,
    }
    duplicates = evaluations["no_duplicate_trade_ids"]
    assert not duplicates.passed and duplicates.severity == dg.AssetCheckSeverity.WARN
    assert duplicates.metadata["duplicate_ids"].value == 1
    # Blocking ERROR checks failed upstream: no feature or analytics step ran in this run.
    materialized = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert materialized == {"raw/book_snapshot_25", "raw/trades"}
    assert "grid_complete" not in evaluations


def test_downstream_assets_receive_only_their_partition(start_emulator, tmp_path) -> None:
    assets, res = _platform(start_emulator(scale=20_000), tmp_path)
    instance = dg.DagsterInstance.ephemeral()
    eth = "deribit:BTC-PERPETUAL"
    plain = [a for a in assets if not isinstance(a, dg.AssetChecksDefinition)]
    upstream = [a for a in plain if a.key.path[0] in ("raw", "features")]
    for instrument in (BTC, eth):
        tags = {RANGE_START: f"2024-01-02|{instrument}", RANGE_END: f"2024-01-03|{instrument}"}
        assert dg.materialize(upstream, resources=res, instance=instance, tags=tags).success
    analytics = plain
    result = dg.materialize(
        analytics,
        selection=[dg.AssetKey(["analytics", "microstructure_1m"])],
        resources=res,
        instance=instance,
        partition_key=f"2024-01-03|{eth}",
    )
    assert result.success
    (output,) = [e for e in result.get_asset_materialization_events()]
    assert output.materialization.partition == f"2024-01-03|{eth}"
    with duckdb.connect() as con:
        con.execute("SET TimeZone = 'UTC'")
        got = con.sql(
            f"SELECT instrument, minute::DATE, count(*) FROM {_lake(tmp_path, 'analytics/microstructure_1m')} "
            "GROUP BY ALL"
        ).fetchall()
    assert [(i, str(d), n) for i, d, n in got] == [(eth, "2024-01-03", 1440)]


def _automation_requests(assets, res, instance, cursor=None):
    """One tick of the automation conditions: the partitions they would request per asset, and the cursor."""
    defs = dg.Definitions(
        assets=[a for a in assets if not isinstance(a, dg.AssetChecksDefinition)],
        asset_checks=[a for a in assets if isinstance(a, dg.AssetChecksDefinition)],
        resources=res,
    )
    result = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=cursor)
    requested = {
        r.key.to_user_string(): set(r.true_subset.expensively_compute_partition_keys())
        for r in result.results
        if r.true_subset.size
    }
    return requested, result.cursor


def test_automation_requests_features_only_after_raw_partitions_pass_their_blocking_checks(
    start_emulator, tmp_path
) -> None:
    good_day, bad_day = "2024-01-03", "2024-01-02"
    _fixtures(tmp_path / "fixtures", bad_day)
    _fixtures(tmp_path / "fixtures", good_day, spoil=False)
    assets, res = _platform(start_emulator(scale=20_000, fixtures=tmp_path / "fixtures"), tmp_path / "data")
    raw_and_checks = [a for a in assets if isinstance(a, dg.AssetChecksDefinition) or a.key.path[0] == "raw"]
    instance = dg.DagsterInstance.ephemeral()
    requested, cursor = _automation_requests(assets, res, instance)
    assert requested == {}  # nothing has landed yet
    for day in (good_day, bad_day):
        dg.materialize(
            raw_and_checks,
            selection=dg.AssetSelection.groups("raw"),
            resources=res,
            instance=instance,
            partition_key=f"{day}|{BTC}",
            raise_on_error=False,
        )
    requested, cursor = _automation_requests(assets, res, instance, cursor)
    # Both raw days landed, only the good one passed its blocking checks: the features follow it alone.
    good = f"{good_day}|{BTC}"
    assert requested == {"features/depth": {good}, "features/trade_bars": {good}}
    features_and_checks = [
        a for a in assets if isinstance(a, dg.AssetChecksDefinition) or a.key.path[0] != "analytics"
    ]
    assert dg.materialize(
        features_and_checks,
        selection=dg.AssetSelection.groups("features"),
        resources=res,
        instance=instance,
        partition_key=good,
    ).success
    requested, _ = _automation_requests(assets, res, instance, cursor)
    # The features passed grid_complete (blocking): the analytics follow on the next tick.
    assert requested == {"analytics/microstructure_1m": {good}, "analytics/daily_summary": {good}}
