"""lake_io: a downstream asset takes feature partitions as a DataFrame (columns selected, ranged runs included)
and its frame lands in the lake, a file per partition; the README's own example is run as written."""

from __future__ import annotations

import datetime as dt
import importlib
import re
import runpy
from pathlib import Path

import dagster as dg
import duckdb
import pandas as pd
import polars as pl
import pytest

import tick_assets.definitions
from tick_assets.assets.features import build_feature_assets
from tick_assets.assets.io_manager import split_by_partition
from tick_assets.assets.partitions import RANGE_END, RANGE_START, build_partitions
from tick_assets.assets.raw import build_raw_asset
from tick_assets.assets.resources import FeatureSettings
from tick_assets.assets.warehouse import VIEWS_KEY, build_views_asset
from tick_assets.lake import LocalLake, Partition, open_catalog, read_partitions
from tick_assets_tests.helpers.runs import resources

REPO = Path(__file__).resolve().parents[1]
BTC = "binance-futures:BTCUSDT"
PARTITIONS = build_partitions("2024-01-01", [BTC, "deribit:BTC-PERPETUAL"])
POLICY = dg.BackfillPolicy.multi_run(31)
DAYS = ("2024-01-02", "2024-01-03")


def _lake_rows(data_dir: Path, dataset: str) -> list[tuple]:
    with duckdb.connect() as con:
        return con.execute(
            f"SELECT date::VARCHAR, symbol_id, count(*) FROM read_parquet('{data_dir}/lake/{dataset}/*/*/*/*.parquet', "
            "hive_partitioning = true) GROUP BY ALL ORDER BY ALL"
        ).fetchall()


def test_a_ranged_run_loads_selected_columns_and_stores_a_file_per_partition(
    start_emulator, tmp_path
) -> None:
    book, trades = (build_raw_asset(t, partitions_def=PARTITIONS) for t in ("book_snapshot_25", "trades"))
    depth, _ = build_feature_assets(book, trades, partitions_def=PARTITIONS, backfill_policy=POLICY)
    seen: list[pd.DataFrame] = []

    @dg.asset(
        key_prefix="signals",
        partitions_def=PARTITIONS,
        backfill_policy=POLICY,
        io_manager_key="lake_io",
        ins={"depth": dg.AssetIn(depth.key, metadata={"columns": ["ts", "mid"]})},
    )
    def spread_signal(depth: pd.DataFrame) -> pd.DataFrame:
        seen.append(depth)
        return depth.assign(up=depth["mid"].diff() > 0)

    res = {
        **resources(start_emulator(scale=3000), tmp_path),
        "features": FeatureSettings(grid_step_ms=60_000),
    }
    instance = dg.DagsterInstance.ephemeral()
    tags = {RANGE_START: f"{DAYS[0]}|{BTC}", RANGE_END: f"{DAYS[1]}|{BTC}"}
    for _ in range(2):  # the second run replaces every file: no duplicates
        assert dg.materialize(
            [book, depth, spread_signal], resources=res, instance=instance, tags=tags
        ).success
    (frame, again) = seen
    # Both partitions of the range in one frame, only the asked columns (plus the partition's instrument and day).
    assert list(frame.columns) == ["instrument", "date", "ts", "mid"]
    assert frame.groupby("date").size().to_dict() == {pd.Timestamp(d): 1440 for d in DAYS}
    assert (frame["instrument"] == BTC).all() and str(frame["ts"].dt.tz) == "UTC"
    pd.testing.assert_frame_equal(frame, again)
    assert _lake_rows(tmp_path, "signals/spread_signal") == [(d, "BTCUSDT", 1440) for d in DAYS]
    stored = pd.read_parquet(
        LocalLake(tmp_path / "lake").uri(
            Partition("signals/spread_signal", "binance-futures", "BTCUSDT", dt.date(2024, 1, 3)).relpath
        )
    )
    assert list(stored.columns) == ["instrument", "ts", "mid", "up"]  # `date` is the directory key
    assert stored["ts"].min() == pd.Timestamp("2024-01-03", tz="UTC")
    # The catalog shows the researcher's dataset as a view too, with the day from the directory names.
    dg.materialize([build_views_asset([book, depth, spread_signal])], resources=res, instance=instance)
    with open_catalog(tmp_path / "warehouse.duckdb", tmp_path / "lake") as con:
        got = con.execute(
            "SELECT date::VARCHAR, count(*), count(up) FROM signals.spread_signal GROUP BY 1 ORDER BY 1"
        ).fetchall()
        views = {
            r[0]
            for r in con.execute(
                "SELECT schema_name || '.' || view_name FROM duckdb_views() WHERE NOT internal"
            ).fetchall()
        }
    assert got == [(d, 1440, 1440) for d in DAYS]
    assert {"raw.book_snapshot_25", "features.depth", "signals.spread_signal"} <= views


def test_a_frame_is_split_by_instrument_and_day_and_stray_rows_are_refused() -> None:
    parts = [Partition("x/y", "deribit", "BTC-PERPETUAL", dt.date(2024, 1, d)) for d in (2, 3)]
    ts = pd.to_datetime(["2024-01-02 23:59", "2024-01-03 00:00", "2024-01-03 12:00"], utc=True)
    frame = pd.DataFrame({"instrument": "deribit:BTC-PERPETUAL", "minute": ts, "v": [1, 2, 3]})
    split = split_by_partition(frame, parts)
    assert [split[p]["v"].tolist() for p in parts] == [[1], [2, 3]]
    # Without rows for a partition it still gets its (empty) file; a row of another day is an error.
    assert split_by_partition(frame.iloc[:1], parts)[parts[1]].empty
    with pytest.raises(ValueError, match="2024-01-04"):
        split_by_partition(frame.assign(minute=ts + pd.Timedelta(days=1)), parts)
    with pytest.raises(ValueError, match="`date` column"):
        split_by_partition(frame[["instrument", "v"]], parts)


def test_the_readme_research_example_runs_as_written(start_emulator, tmp_path, monkeypatch) -> None:
    example = (REPO / "examples" / "my_research.py").read_text()
    readme_blocks = re.findall(r"```python\n(.*?)```", (REPO / "README.md").read_text(), flags=re.S)
    assert example in readme_blocks  # the README shows exactly this file
    server = start_emulator(scale=3000)
    data_dir = tmp_path / "data"
    for name, value in {
        "TICK_ASSETS_DATA_DIR": str(data_dir),
        "TARDIS_DATASETS_URL": server.datasets_url,
        "TARDIS_API_URL": server.api_url,
        "TARDIS_API_KEY": "test-key",
        "TICK_ASSETS_INSTRUMENTS": BTC,
        "TICK_ASSETS_DATA_TYPES": "trades,book_snapshot_25",
    }.items():
        monkeypatch.setenv(name, value)
    try:
        importlib.reload(tick_assets.definitions)
        defs = runpy.run_path(str(REPO / "examples" / "my_research.py"))["defs"]
        job = defs.resolve_implicit_global_asset_job_def()
        selection = [dg.AssetKey(["raw", "book_snapshot_25"]), dg.AssetKey(["features", "depth"])]
        signal = dg.AssetKey(["signals", "imbalance_signal"])
        instance = dg.DagsterInstance.ephemeral()
        result = job.execute_in_process(
            instance=instance,
            partition_key=f"{DAYS[0]}|{BTC}",
            asset_selection=[*selection, signal, VIEWS_KEY],
        )
        assert result.success
    finally:
        monkeypatch.undo()
        importlib.reload(tick_assets.definitions)
    assert _lake_rows(data_dir, "signals/imbalance_signal") == [(DAYS[0], "BTCUSDT", 86_400)]
    with open_catalog(data_dir / "warehouse.duckdb", data_dir / "lake") as con:
        moves = con.execute(
            "SELECT count(move_bps), corr(imbalance_5, move_bps) FROM signals.imbalance_signal"
        ).fetchall()[0]
    assert moves[0] > 80_000 and -1 <= moves[1] <= 1


def test_store_frame_keeps_a_meaningful_index_and_refuses_what_it_cannot_store(tmp_path) -> None:
    from tick_assets.lake import LakeError, store_frame

    lake = LocalLake(tmp_path / "lake")
    day = Partition("signals/x", "deribit", "BTC-PERPETUAL", dt.date(2024, 1, 2))
    ts = pd.date_range("2024-01-02", periods=3, freq="h", tz="UTC", name="ts")
    store_frame(lake, day, pd.DataFrame({"v": [1.0, 2.0, 3.0]}, index=ts))
    back = read_partitions(lake, [day])
    assert list(back.columns) == ["instrument", "date", "ts", "v"] and back["ts"].tolist() == list(ts)
    with pytest.raises(LakeError, match="no columns"):
        store_frame(lake, day, pd.DataFrame())
    with pytest.raises(LakeError, match="`date` column holds other days"):
        store_frame(lake, day, pd.DataFrame({"date": [dt.date(1999, 1, 1)], "v": [1]}))
    parts = [day, Partition("signals/x", "deribit", "BTC-PERPETUAL", dt.date(2024, 1, 3))]
    with pytest.raises(ValueError, match="missing values"):
        split_by_partition(pd.DataFrame({"ts": [ts[0], pd.NaT], "v": [1, 2]}), parts)


def test_polars_frames_in_and_out(start_emulator, tmp_path) -> None:
    book, trades = (build_raw_asset(t, partitions_def=PARTITIONS) for t in ("book_snapshot_25", "trades"))
    depth, _ = build_feature_assets(book, trades, partitions_def=PARTITIONS, backfill_policy=POLICY)

    @dg.asset(
        key_prefix="signals",
        partitions_def=PARTITIONS,
        io_manager_key="lake_io",
        ins={"depth": dg.AssetIn(depth.key, metadata={"columns": ["ts", "mid"]})},
    )
    def mid_change(depth: pl.DataFrame) -> pl.DataFrame:
        assert isinstance(depth, pl.DataFrame) and depth.columns == ["instrument", "date", "ts", "mid"]
        return depth.with_columns(pl.col("mid").diff().alias("change"))

    res = {
        **resources(start_emulator(scale=3000), tmp_path),
        "features": FeatureSettings(grid_step_ms=60_000),
    }
    key = f"{DAYS[0]}|{BTC}"
    assert dg.materialize([book, depth, mid_change], resources=res, partition_key=key).success
    assert _lake_rows(tmp_path, "signals/mid_change") == [(DAYS[0], "BTCUSDT", 1440)]
