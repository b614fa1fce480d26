"""The lake on a real S3-compatible server (SeaweedFS `weed mini` on 127.0.0.1): publishing is whole or nothing,
dead writers' uploads are cleaned, DuckDB reads it without downloading an extension, and the whole graph, the
IO manager and the warehouse views work over it with the same rows as on a local disk."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from tick_assets.assets.partitions import RANGE_END, RANGE_START, build_partitions
from tick_assets.assets.resources import LakeResource, TardisResource
from tick_assets.assets.warehouse import VIEWS_KEY
from tick_assets.definitions import build_definitions
from tick_assets.emulator.synth import write_dataset
from tick_assets.lake import LakeWriteError, Partition, connect, open_lake, read_partitions, store_partition
from tick_assets.lake.s3 import S3Lake
from tick_assets.lake.warehouse import open_catalog
from tick_assets.stack.s3server import S3Server
from tick_assets_tests.helpers.exposure import files_holding

DAY = dt.date(2024, 1, 2)
TRADES = Partition("raw/trades", "deribit", "BTC-PERPETUAL", DAY)
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Server]:
    """One S3 server for the module, bound to 127.0.0.1, stopped at the end."""
    with S3Server(bucket="lake-bucket") as server:
        yield server


@pytest.fixture
def s3_env(s3: S3Server, monkeypatch: pytest.MonkeyPatch) -> S3Server:
    """The endpoint and credentials in the environment, as a deployment gives them."""
    for name, value in s3.env().items():
        monkeypatch.setenv(name, value)
    return s3


def _lake(s3: S3Server, tmp_path: Path, prefix: str) -> S3Lake:
    lake = open_lake(f"s3://{s3.bucket}/{prefix}", scratch=tmp_path / "scratch")
    assert isinstance(lake, S3Lake)
    return lake


def test_a_partition_is_published_whole_and_read_without_extensions(s3_env, tmp_path) -> None:
    src = tmp_path / "day.csv.gz"
    write_dataset("deribit", "BTC-PERPETUAL", "trades", DAY, 3000, src)
    lake = _lake(s3_env, tmp_path, f"basic-{os.getpid()}")
    before = s3_env.stats()
    stored = store_partition(src, lake, TRADES.relpath, "trades")
    sent = s3_env.stats() - before
    assert stored.path == f"{lake.url}/{TRADES.relpath}" and lake.exists(TRADES.relpath)
    assert sent.requests.get("PUT", 0) >= 1 and sent.bytes_received >= stored.parquet_bytes
    assert lake.files("raw/trades") == [TRADES.relpath] and lake.datasets() == ["raw/trades"]
    assert list((tmp_path / "scratch").rglob("*.tmp")) == []  # the staged file is gone
    # DuckDB reads the object through the registered filesystem; it must not try to download httpfs.
    with connect(lake) as con:
        frame = read_partitions(lake, [TRADES], ["price", "amount"], con)
        assert con.execute(
            "SELECT count(*) FROM duckdb_extensions() WHERE loaded AND extension_name = 'httpfs'"
        ).fetchall() == [(0,)]
    assert len(frame) == stored.rows and list(frame.columns) == ["instrument", "date", "price", "amount"]
    bare = duckdb.connect()
    bare.execute("SET autoinstall_known_extensions = false")
    with pytest.raises(duckdb.Error):  # without the lake's filesystem DuckDB cannot read s3:// here
        bare.execute(f"SELECT count(*) FROM read_parquet('{stored.path}')").fetchall()
    assert s3_env.secret_key not in repr(lake) and s3_env.access_key not in repr(lake)
    # A lake at the root of a bucket (no prefix) lists its datasets too.
    s3_env.create_bucket("root-lake")
    root = open_lake("s3://root-lake", scratch=tmp_path / "scratch")
    store_partition(src, root, TRADES.relpath, "trades")
    assert root.datasets() == ["raw/trades"] and root.files("raw/trades") == [TRADES.relpath]


def test_a_failed_upload_keeps_the_stored_partition_and_leaves_no_object(
    s3_env, tmp_path, monkeypatch
) -> None:
    src = tmp_path / "day.csv.gz"
    write_dataset("deribit", "BTC-PERPETUAL", "trades", DAY, 3000, src)
    lake = _lake(s3_env, tmp_path, f"fail-{os.getpid()}")
    first = store_partition(src, lake, TRADES.relpath, "trades")
    with connect(lake) as con:
        old = con.execute(f"SELECT count(*), sum(price) FROM read_parquet('{first.path}')").fetchall()
    # The server refuses the PUT (wrong secret): a failed upload, as a network or permission fault gives.
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
    broken = _lake(s3_env, tmp_path, lake.prefix)
    with pytest.raises(LakeWriteError, match="upload failed.*unchanged"):
        store_partition(src, broken, TRADES.relpath, "trades")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3_env.secret_key)
    with connect(lake) as con:
        assert con.execute(f"SELECT count(*), sum(price) FROM read_parquet('{first.path}')").fetchall() == old
    assert lake.files("raw/trades") == [TRADES.relpath]
    assert list((tmp_path / "scratch").rglob("*.tmp")) == []


def test_a_writer_killed_mid_upload_leaves_no_object_and_its_upload_is_cleaned(s3_env, tmp_path) -> None:
    lake = _lake(s3_env, tmp_path, f"kill-{os.getpid()}")
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(200 * 1024 * 1024))  # several multipart parts
    script = (
        "import sys; from pathlib import Path; from tick_assets.lake import open_lake\n"
        "lake = open_lake(sys.argv[1], scratch=Path(sys.argv[3]))\n"
        "with lake.writing('raw/trades/exchange_id=deribit/symbol_id=X/date=2024-01-02/data.parquet') as tmp:\n"
        "    tmp.write_bytes(Path(sys.argv[2]).read_bytes())\n"
        "    print('uploading', flush=True)\n"
    )
    worker = subprocess.Popen(
        [sys.executable, "-c", script, lake.url, str(big), str(tmp_path / "scratch")],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    assert worker.stdout.readline().strip() == "uploading"
    time.sleep(0.5)  # into the multipart upload
    os.killpg(worker.pid, signal.SIGKILL)
    worker.wait(30)
    assert lake.files("raw/trades") == []  # no reader ever sees a partial object
    pending = lake.client.list_multipart_uploads(Bucket=lake.bucket, Prefix=lake.prefix).get("Uploads", [])
    assert lake.abort_stale_uploads(older_than_seconds=0) == len(pending)
    assert lake.client.list_multipart_uploads(Bucket=lake.bucket, Prefix=lake.prefix).get("Uploads", []) == []


def _graph(server, data_dir: Path, lake_url: str | None) -> dg.Definitions:
    instruments = ["binance-futures:BTCUSDT", "deribit:BTC-PERPETUAL"]
    tardis = TardisResource(
        api_key="test-key",
        datasets_url=server.datasets_url,
        api_url=server.api_url,
        data_dir=str(data_dir),
        requests_per_second=1000,
        burst=100,
    )
    return build_definitions(
        partitions=build_partitions("2024-01-01", instruments),
        backfill_policy=dg.BackfillPolicy.multi_run(31),
        data_types=["trades", "book_snapshot_25"],
        data_dir=data_dir,
        tardis=tardis,
        lake=LakeResource(data_dir=str(data_dir), lake_url=lake_url or ""),
    )


def _materialize_all(defs: dg.Definitions) -> dict[str, int]:
    """Every asset for 2 days x 2 instruments (ranged runs), then the catalog; rows recorded per asset."""
    instance = dg.DagsterInstance.ephemeral()
    job = defs.resolve_implicit_global_asset_job_def()
    for instrument in ("binance-futures:BTCUSDT", "deribit:BTC-PERPETUAL"):
        tags = {RANGE_START: f"2024-01-02|{instrument}", RANGE_END: f"2024-01-03|{instrument}"}
        partitioned = [k for k in defs.resolve_all_asset_keys() if k != VIEWS_KEY]
        assert job.execute_in_process(instance=instance, tags=tags, asset_selection=partitioned).success
    assert job.execute_in_process(instance=instance, asset_selection=[VIEWS_KEY]).success
    rows = {}
    for key in defs.resolve_all_asset_keys():
        records = instance.fetch_materializations(key, limit=100).records
        rows[key.to_user_string()] = sum(
            int(r.asset_materialization.metadata["dagster/row_count"].value)
            for r in records
            if "dagster/row_count" in r.asset_materialization.metadata
        )
    return rows


@pytest.mark.slow
def test_the_whole_graph_runs_on_s3_with_the_rows_of_a_local_run(s3_env, start_emulator, tmp_path) -> None:
    server = start_emulator(scale=3000)
    local = _materialize_all(_graph(server, tmp_path / "local", None))
    before = s3_env.stats()
    lake_url = f"s3://{s3_env.bucket}/graph-{os.getpid()}"
    remote = _materialize_all(_graph(server, tmp_path / "remote", lake_url))
    seen = s3_env.stats() - before
    assert remote == local and local["features/depth"] == 4 * 86_400 and local["raw/trades"] > 0
    lake = open_lake(lake_url, scratch=tmp_path / "scratch")
    assert lake.datasets() == [
        "analytics/daily_summary",
        "analytics/microstructure_1m",
        "features/depth",
        "features/trade_bars",
        "raw/book_snapshot_25",
        "raw/trades",
    ]
    assert all(len(lake.files(d)) == 4 for d in lake.datasets())
    assert not (tmp_path / "remote" / "lake").exists()  # nothing of the lake on the worker's disk
    # The warehouse catalog on this machine has views over the bucket; a notebook reads them the same way.
    with open_catalog(tmp_path / "remote" / "warehouse.duckdb", lake) as con:
        views = con.execute(
            "SELECT (SELECT count(*) FROM features.depth), (SELECT count(*) FROM analytics.microstructure_1m), "
            "(SELECT count(*) FROM raw.trades)"
        ).fetchall()[0]
    assert views == (local["features/depth"], local["analytics/microstructure_1m"], local["raw/trades"])
    # The credentials are nowhere on disk: not in the data dir, not in the catalog, not in any metadata.
    assert files_holding(s3_env.secret_key, tmp_path) == []
    print(
        f"S3 server saw {dict(seen.requests)} requests, {seen.bytes_received:,} bytes in, {seen.bytes_sent:,} out"
    )
    print(f"rows per asset (local == S3): {local}")
