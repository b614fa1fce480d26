"""raw/<data_type> assets materialized in process against the emulator: lake files, rows, metadata, failures."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from tick_assets.assets.partitions import RANGE_END, RANGE_START, build_partitions
from tick_assets.assets.raw import build_raw_asset
from tick_assets.lake import partition_file
from tick_assets.lake.schema import lake_select, stored_columns
from tick_assets_tests.helpers.runs import BTC, materialize, resources


def served_rows(data_dir: Path, exchange: str, data_type: str, day: str, symbol: str) -> int:
    """Data rows of the file the emulator served (from the download cache), counted independently."""
    path = data_dir / "tardis" / f"{exchange}_{data_type}_{day}_{symbol}.csv.gz"
    with gzip.open(path, "rt") as f:
        return max(0, sum(1 for _ in f) - 1)


def lake_rows(path: Path) -> int:
    return duckdb.sql(f"SELECT count(*) FROM read_parquet('{path}')").fetchall()[0][0]


def materializations(result: dg.ExecuteInProcessResult, data_type: str = "trades") -> dict[str, dict]:
    """partition key -> metadata values of the materializations this run recorded in its instance
    (including those logged by a step that then failed)."""
    records = result.test_instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(["raw", data_type])), limit=1000
    ).records
    out = {}
    for record in records:
        if record.run_id == result.run_id:
            mat = record.asset_materialization
            out[mat.partition] = {k: v.value for k, v in mat.metadata.items()}
    return out


@pytest.fixture
def instance() -> dg.DagsterInstance:
    return dg.DagsterInstance.ephemeral()


PARTITIONS = build_partitions("2024-01-01", [BTC, "deribit:BTC-PERPETUAL"])


@pytest.fixture
def trades():
    return build_raw_asset("trades", partitions_def=PARTITIONS)


def test_single_partition_writes_typed_parquet_with_metadata(instance, emulator, tmp_path, trades) -> None:
    key = f"2024-01-02|{BTC}"
    result = materialize(instance, [trades], partition_key=key, resources=resources(emulator, tmp_path))
    assert result.success
    path = partition_file(tmp_path / "lake", "raw/trades", "binance-futures", "BTCUSDT", "2024-01-02")
    assert (
        path
        == tmp_path
        / "lake/raw/trades/exchange_id=binance-futures/symbol_id=BTCUSDT/date=2024-01-02/data.parquet"
    )
    assert sorted(p.name for p in path.parent.iterdir()) == ["data.parquet"]
    rows = served_rows(tmp_path, "binance-futures", "trades", "2024-01-02", "BTCUSDT")
    assert rows > 0 and lake_rows(path) == rows

    read = f"(SELECT {lake_select('trades')} FROM read_parquet('{path}'))"  # what the views and lake_io read
    with duckdb.connect() as con:
        types = {r[0]: r[1] for r in con.sql(f"DESCRIBE SELECT * FROM {read}").fetchall()}
        first = con.sql(
            f"SELECT min(timestamp), epoch_us(min(timestamp_utc)), (min(timestamp_utc) AT TIME ZONE 'UTC')::DATE FROM {read}"
        ).fetchall()[0]
    assert types["timestamp"] == "BIGINT" and types["local_timestamp"] == "BIGINT"
    assert types["price"] == "DOUBLE" and types["amount"] == "DOUBLE" and types["id"] == "VARCHAR"
    assert types["timestamp_utc"] == "TIMESTAMP WITH TIME ZONE"
    assert first[0] == first[1] and str(first[2]) == "2024-01-02"

    meta = materializations(result)[key]
    assert meta["dagster/row_count"] == rows and meta["no_data"] is False
    assert meta["parquet_bytes"] == path.stat().st_size
    assert meta["gzip_bytes"] > 0 and meta["csv_bytes"] > meta["gzip_bytes"]
    assert meta["source_url"] == f"{emulator.datasets_url}/binance-futures/trades/2024/01/02/BTCUSDT.csv.gz"
    assert meta["retries"] == 0 and meta["from_cache"] is False
    for field in ("download_seconds", "download_mb_per_second", "limiter_wait_seconds", "conversion_seconds"):
        assert meta[field] >= 0
    assert meta["first_timestamp"] == first[0] / 1e6
    assert meta["last_timestamp"] >= meta["first_timestamp"]
    assert "| timestamp_utc | id | side | price | amount |" in meta["preview"]


def test_ranged_run_writes_every_day_concurrently_with_per_partition_metadata(
    instance, emulator, tmp_path
) -> None:
    asset = build_raw_asset("book_snapshot_25", partitions_def=PARTITIONS)
    result = materialize(
        instance,
        [asset],
        resources=resources(emulator, tmp_path),
        tags={RANGE_START: f"2024-01-02|{BTC}", RANGE_END: f"2024-01-07|{BTC}"},
    )
    assert result.success
    metas = materializations(result, "book_snapshot_25")
    days = [f"2024-01-0{d}" for d in range(2, 8)]
    assert sorted(metas) == [f"{d}|{BTC}" for d in days]
    for day in days:
        rows = served_rows(tmp_path, "binance-futures", "book_snapshot_25", day, "BTCUSDT")
        assert metas[f"{day}|{BTC}"]["dagster/row_count"] == rows > 0
        assert metas[f"{day}|{BTC}"]["source_url"].endswith(f"/{day.replace('-', '/')}/BTCUSDT.csv.gz")
        assert metas[f"{day}|{BTC}"]["x_md5_matches"] is True and len(metas[f"{day}|{BTC}"]["x_md5"]) == 32
    # Six days, one run, downloads overlapping (the emulator saw more than one request at a time).
    assert emulator.stats["counts"]["dataset_requests"] == 6
    assert emulator.stats["max_concurrent_dataset_requests"] > 1


def test_rematerializing_replaces_the_partition_without_duplicates(
    instance, emulator, tmp_path, trades
) -> None:
    key = f"2024-01-03|{BTC}"
    res = resources(emulator, tmp_path)
    assert materialize(instance, [trades], partition_key=key, resources=res).success
    path = partition_file(tmp_path / "lake", "raw/trades", "binance-futures", "BTCUSDT", "2024-01-03")
    before = duckdb.sql(f"SELECT * FROM read_parquet('{path}') ORDER BY ALL").fetchall()
    first_inode = path.stat().st_ino
    again = materialize(instance, [trades], partition_key=key, resources=res)
    assert again.success
    assert materializations(again)[key]["from_cache"] is True
    # A new file was renamed over the old one (not appended to, not skipped), and no temp file is left.
    assert path.stat().st_ino != first_inode
    assert sorted(p.name for p in path.parent.iterdir()) == ["data.parquet"]
    assert duckdb.sql(f"SELECT * FROM read_parquet('{path}') ORDER BY ALL").fetchall() == before


def test_empty_day_materializes_an_empty_partition(instance, start_emulator, tmp_path, trades) -> None:
    import datetime as dt

    server = start_emulator(empty_days=(dt.date(2024, 1, 4),))
    key = f"2024-01-04|{BTC}"
    result = materialize(instance, [trades], partition_key=key, resources=resources(server, tmp_path))
    assert result.success
    meta = materializations(result)[key]
    assert meta["no_data"] is True and meta["dagster/row_count"] == 0
    assert "first_timestamp" not in meta and "preview" not in meta
    path = partition_file(tmp_path / "lake", "raw/trades", "binance-futures", "BTCUSDT", "2024-01-04")
    assert lake_rows(path) == 0
    with duckdb.connect() as con:
        stored = [
            c
            for c, *_ in con.sql(
                f"DESCRIBE SELECT * FROM read_parquet('{path}', hive_partitioning = false)"
            ).fetchall()
        ]
    assert stored == [c for c, _ in stored_columns("trades")]  # the full schema, though empty


def test_day_after_exported_until_fails_at_once_without_downloading(
    instance, emulator, tmp_path, trades
) -> None:
    key = f"2024-02-05|{BTC}"
    result = materialize(
        instance, [trades], partition_key=key, resources=resources(emulator, tmp_path), raise_on_error=False
    )
    assert not result.success
    failure = result.failure_data_for_node("raw__trades").error
    assert "not exported yet" in failure.message and "2024-02-05" in failure.message
    assert emulator.stats["counts"].get("dataset_requests", 0) == 0
    assert not (tmp_path / "lake" / "raw" / "trades").exists()


def test_day_before_available_since_fails_at_once(instance, emulator, tmp_path) -> None:
    early = build_raw_asset("trades", partitions_def=build_partitions("2019-11-01", [BTC]))
    result = materialize(
        instance,
        [early],
        partition_key=f"2019-11-10|{BTC}",
        resources=resources(emulator, tmp_path),
        raise_on_error=False,
    )
    assert not result.success
    message = result.failure_data_for_node("raw__trades").error.message
    assert "availableSince 2019-11-17" in message
    assert emulator.stats["counts"].get("dataset_requests", 0) == 0


def _fixture_folder(real_fixtures_dir: Path, target: Path, days: list[str]) -> Path:
    """A tardis-dev style folder holding the real binance-futures trades sample under several days."""
    (sample,) = real_fixtures_dir.glob("binance-futures_trades_*_BTCUSDT.csv.gz")
    target.mkdir()
    for day in days:
        shutil.copy(sample, target / f"binance-futures_trades_{day}_BTCUSDT.csv.gz")
    return target


def test_404_fails_only_its_day_and_leaves_stored_partitions_untouched(
    instance, start_emulator, real_fixtures_dir, tmp_path
) -> None:
    asset = build_raw_asset("trades", partitions_def=build_partitions("2020-02-20", [BTC]))
    data = tmp_path / "data"
    # The folder has 02-21 and 02-23: the metadata says 02-21..02-23 exist, so 02-22 is a 404 from the server.
    folder = _fixture_folder(
        real_fixtures_dir, tmp_path / "fixtures", ["2020-02-21", "2020-02-22", "2020-02-23"]
    )
    server = start_emulator(fixtures=folder)
    assert materialize(
        instance, [asset], partition_key=f"2020-02-22|{BTC}", resources=resources(server, data)
    ).success
    stored = partition_file(data / "lake", "raw/trades", "binance-futures", "BTCUSDT", "2020-02-22")
    stored_bytes, stored_mtime = stored.read_bytes(), stored.stat().st_mtime_ns

    (folder / "binance-futures_trades_2020-02-22_BTCUSDT.csv.gz").unlink()
    (data / "tardis" / "binance-futures_trades_2020-02-22_BTCUSDT.csv.gz").unlink()
    server = start_emulator(fixtures=folder)
    result = materialize(
        instance,
        [asset],
        resources=resources(server, data),
        tags={RANGE_START: f"2020-02-21|{BTC}", RANGE_END: f"2020-02-23|{BTC}"},
        raise_on_error=False,
    )
    assert not result.success
    message = result.failure_data_for_node("raw__trades").error.message
    assert "1 of 3 partitions failed" in message and f"2020-02-22|{BTC}: NotFoundError" in message
    assert server.stats["counts"]["status_404"] == 1  # not retried
    # The other two days landed and are recorded; the stored day is byte-for-byte what it was.
    recorded = materializations(result)
    assert sorted(recorded) == [f"2020-02-21|{BTC}", f"2020-02-23|{BTC}"]
    assert recorded[f"2020-02-21|{BTC}"]["dagster/row_count"] > 0
    records = instance.fetch_materializations(dg.AssetKey(["raw", "trades"]), limit=10).records
    tags = next(r.asset_materialization.tags for r in records if r.run_id == result.run_id)
    assert tags["dagster/code_version"] == "lake-v3" and tags["dagster/partition/instrument"] == BTC
    assert result.failure_data_for_node("raw__trades").error.cls_name == "Failure"
    assert stored.read_bytes() == stored_bytes and stored.stat().st_mtime_ns == stored_mtime
    assert sorted(p.name for p in stored.parent.iterdir()) == ["data.parquet"]


def test_missing_api_key_fails_with_what_to_do(instance, emulator, tmp_path, trades) -> None:
    result = materialize(
        instance,
        [trades],
        partition_key=f"2024-01-02|{BTC}",
        resources=resources(emulator, tmp_path, api_key=None),
        raise_on_error=False,
    )
    assert not result.success
    assert "TARDIS_API_KEY" in result.failure_data_for_node("raw__trades").error.message


def test_an_x_md5_mismatch_is_said_in_the_metadata_not_failed(
    instance, start_emulator, tmp_path, trades
) -> None:
    server = start_emulator(md5_mode="chunked", header_style="content-encoding")
    key = f"2024-01-03|{BTC}"
    result = materialize(instance, [trades], partition_key=key, resources=resources(server, tmp_path))
    assert result.success
    meta = materializations(result)[key]
    assert meta["x_md5_matches"] is False and "may not match files uploaded in chunks" in meta["x_md5_note"]
    assert meta["dagster/row_count"] == served_rows(
        tmp_path, "binance-futures", "trades", "2024-01-03", "BTCUSDT"
    )
