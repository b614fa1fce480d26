"""The S3 lake against a server that answers 5xx or stalls during writes (issue 16 point 4a).

A fault-injecting proxy on 127.0.0.1 (helpers/s3faults.py) sits in front of a real SeaweedFS and the lake is
pointed at it through AWS_ENDPOINT_URL, as a deployment points it at its S3. Every test stores a partition, then
stores a new version of it through faults, and checks what the server holds afterwards (listed on the server
itself, not through the proxy): the new version whole, or the old one untouched, and never a partial object, a
stray object or an incomplete multipart upload. Figures (retries, time to land, time to fail) are printed; see
docs/RELIABILITY.md.

The lake's boto3 client retries in botocore's "standard" mode with `max_attempts=5`: 5 retries, 6 attempts per
request; throttling errors (503 SlowDown) back off rand(0, 1) * 2^i s, other 5xx and timeouts rand(0, 1) *
0.05 * 2^i s; the read timeout is botocore's default, 60 s.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import boto3
import duckdb
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from botocore.config import Config

from tick_assets.emulator.synth import write_dataset
from tick_assets.lake import (
    LakeWriteError,
    LocalLake,
    Partition,
    connect,
    open_lake,
    read_partitions,
    store_partition,
    store_query,
)
from tick_assets.lake.s3 import S3Lake
from tick_assets.stack.s3server import S3Server
from tick_assets_tests.helpers.s3faults import Fault, S3FaultProxy

DAY = dt.date(2024, 1, 2)
TRADES = Partition("raw/trades", "deribit", "BTC-PERPETUAL", DAY)
BLOB = Partition("features/blob", "deribit", "BTC-PERPETUAL", DAY)
#: botocore: max_attempts=5 in the lake's Config is 5 retries, so 6 attempts of each request.
ATTEMPTS = 6
#: Rows of the multipart partition: ~18 MB of Parquet, 4 parts of 5 MiB (the smallest part S3 allows).
BLOB_ROWS = 2_000_000
PART_BYTES = 5 * 1024 * 1024


def blob_query(version: int) -> str:
    """A partition of incompressible values; each version has other values."""
    return f"SELECT i, hash(i + {version}) AS h FROM range({BLOB_ROWS}) t(i)"


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Server]:
    """One real S3 server for the module, on 127.0.0.1."""
    with S3Server(bucket="fault-bucket") as server:
        yield server


@pytest.fixture
def proxy(s3: S3Server, monkeypatch: pytest.MonkeyPatch) -> Iterator[S3FaultProxy]:
    """The fault proxy in front of the server, and the environment pointing the lake at the proxy."""
    with S3FaultProxy(s3.endpoint) as faults:
        for name, value in s3.env().items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv("AWS_ENDPOINT_URL", faults.endpoint)
        yield faults


@pytest.fixture
def lake(proxy: S3FaultProxy, s3: S3Server, tmp_path: Path) -> S3Lake:
    """A lake of the test's own under the bucket, reached through the proxy."""
    opened = open_lake(f"s3://{s3.bucket}/faults-{uuid.uuid4().hex[:8]}", scratch=tmp_path / "scratch")
    assert isinstance(opened, S3Lake) and opened.endpoint == proxy.endpoint
    return opened


@pytest.fixture
def multipart(monkeypatch: pytest.MonkeyPatch) -> None:
    """Files above 5 MiB go up as multipart uploads of 5 MiB parts (production: 64 MiB)."""
    monkeypatch.setattr("tick_assets.lake.s3.MULTIPART_BYTES", PART_BYTES)


def direct_client(s3: S3Server):
    """A client of the real server, not through the proxy: what the server really holds."""
    return boto3.session.Session().client(
        "s3",
        endpoint_url=s3.endpoint,
        aws_access_key_id=s3.access_key,
        aws_secret_access_key=s3.secret_key,
        region_name=s3.region,
        config=Config(s3={"addressing_style": "path"}),
    )


def leftovers(s3: S3Server, lake: S3Lake) -> tuple[list[str], list[str]]:
    """(every object key, every incomplete multipart upload's key) under the lake's prefix, on the server."""
    client, prefix = direct_client(s3), f"{lake.prefix}/"
    objects = client.list_objects_v2(Bucket=s3.bucket, Prefix=prefix).get("Contents", [])
    uploads = client.list_multipart_uploads(Bucket=s3.bucket, Prefix=prefix).get("Uploads", [])
    return sorted(o["Key"] for o in objects), sorted(u["Key"] for u in uploads)


def stored_table(s3: S3Server, lake: S3Lake, partition: Partition):
    """The partition's object as the server holds it (read directly, whole)."""
    return pq.read_table(f"{s3.bucket}/{lake._key(partition.relpath)}", filesystem=s3.pyarrow_fs())


def no_scratch_temps(tmp_path: Path) -> bool:
    return not [p for p in (tmp_path / "scratch").rglob("*") if p.is_file()]


def with_read_timeout(lake: S3Lake, seconds: float) -> None:
    """Give the lake its own boto3 client again, every setting kept (retries, addressing) but the read timeout,
    so that a stall past every attempt fails in seconds instead of 6 x 60 s."""
    config = lake.client.meta.config.merge(Config(read_timeout=seconds))
    assert config.retries == {"mode": "standard", "total_max_attempts": ATTEMPTS}
    lake._boto = boto3.session.Session().client(
        "s3", endpoint_url=lake.endpoint, region_name=lake.client.meta.region_name, config=config
    )


def trades_sources(tmp_path: Path) -> tuple[Path, Path]:
    """Two versions of one trades day: 333 rows, then 10,000."""
    old, new = tmp_path / "old.csv.gz", tmp_path / "new.csv.gz"
    write_dataset("deribit", "BTC-PERPETUAL", "trades", DAY, 1000, old)
    write_dataset("deribit", "BTC-PERPETUAL", "trades", DAY, 30_000, new)
    return old, new


def local_rows(src: Path, tmp_path: Path) -> pd.DataFrame:
    """The rows the same file gives in a local lake: what the S3 partition must read back as."""
    local = LocalLake(tmp_path / f"local-{uuid.uuid4().hex[:6]}")
    store_partition(src, local, TRADES.relpath, "trades")
    return read_partitions(local, [TRADES])


def figure(text: str) -> None:
    print(f"FIGURE {text}")


# --- single PUT (every partition below 64 MiB) -------------------------------------------------------------


@pytest.mark.parametrize(
    ("action", "burst"), [pytest.param("503", 3, marks=pytest.mark.slow), ("500", ATTEMPTS - 1)]
)
def test_a_5xx_burst_on_put_is_retried_and_the_partition_lands_whole(
    s3, proxy, lake, tmp_path, action, burst
) -> None:
    old, new = trades_sources(tmp_path)
    store_partition(old, lake, TRADES.relpath, "trades")
    proxy.clear()
    proxy.add(Fault("PutObject", action, count=burst))
    started = time.monotonic()
    stored = store_partition(new, lake, TRADES.relpath, "trades")
    landed = time.monotonic() - started
    # every attempt reached the proxy; the faults were answered there, only the last one reached the server,
    # which accepted its signature (Host passed on unchanged): a broken one would be "forwarded 403"
    assert proxy.seen["PutObject"] == burst + 1 and proxy.injected[("PutObject", action)] == burst
    assert [s.outcome for s in proxy.log if s.outcome.startswith("forwarded")] == ["forwarded 200"]
    assert stored.rows == 10_000
    assert read_partitions(lake, [TRADES]).equals(local_rows(new, tmp_path))  # the new version, whole
    assert leftovers(s3, lake) == ([lake._key(TRADES.relpath)], [])
    assert no_scratch_temps(tmp_path)
    figure(f"PutObject {burst} x {action}: {burst} retries, landed in {landed:.2f} s")


@pytest.mark.parametrize("action", ["500", pytest.param("503", marks=pytest.mark.slow)])
def test_a_5xx_burst_past_the_retry_budget_fails_naming_the_partition_and_keeps_the_stored_one(
    s3, proxy, lake, tmp_path, action
) -> None:
    old, new = trades_sources(tmp_path)
    store_partition(old, lake, TRADES.relpath, "trades")
    before = stored_table(s3, lake, TRADES)
    proxy.clear()
    proxy.add(Fault("PutObject", action, count=1000))
    started = time.monotonic()
    with pytest.raises(LakeWriteError) as failed:
        store_partition(new, lake, TRADES.relpath, "trades")
    took = time.monotonic() - started
    message = str(failed.value)
    code = "SlowDown" if action == "503" else "InternalError"
    assert (
        lake.uri(TRADES.relpath) in message and code in message and f"max retries: {ATTEMPTS - 1}" in message
    )
    assert "unchanged" in message and "re-run" in message
    assert proxy.seen["PutObject"] == ATTEMPTS and proxy.forwarded["PutObject"] == 0
    assert stored_table(s3, lake, TRADES).equals(before) and before.num_rows == 333
    assert leftovers(s3, lake) == ([lake._key(TRADES.relpath)], [])
    assert no_scratch_temps(tmp_path)
    # backoff: 5 retries of at most 0.05 * 2^i s (other 5xx) or 1 * 2^i s (throttling), i = 0..4
    assert took < (31 if action == "503" else 1.55) + 5
    figure(f"PutObject {action} on every attempt: {ATTEMPTS} attempts, failed after {took:.2f} s")


def test_a_lost_answer_to_a_put_is_retried_and_the_partition_lands_once(s3, proxy, lake, tmp_path) -> None:
    """The server stored the object but its answer was lost (5xx on the way back): the retry stores it again,
    whole; nothing half, nothing twice."""
    old, new = trades_sources(tmp_path)
    store_partition(old, lake, TRADES.relpath, "trades")
    proxy.clear()
    proxy.add(Fault("PutObject", "500", count=2, after_forward=True))
    store_partition(new, lake, TRADES.relpath, "trades")
    assert proxy.forwarded["PutObject"] == 3 and proxy.injected[("PutObject", "500")] == 2
    assert read_partitions(lake, [TRADES]).equals(local_rows(new, tmp_path))
    assert leftovers(s3, lake) == ([lake._key(TRADES.relpath)], [])


# --- multipart uploads (partitions above 64 MiB; here above 5 MiB) ----------------------------------------


def store_blob(lake: S3Lake, version: int):
    with connect(lake) as con:
        return store_query(con, lake, BLOB, blob_query(version))


def same_blob(frame: pd.DataFrame, version: int) -> bool:
    """True if `frame` holds exactly the rows of that version, in order."""
    with duckdb.connect() as con:
        expected = con.execute(blob_query(version)).df()
    return len(frame) == BLOB_ROWS and all(np.array_equal(frame[c], expected[c]) for c in ("i", "h"))


@pytest.mark.slow
def test_5xx_on_every_step_of_a_multipart_upload_is_retried_and_the_object_lands_whole(
    s3, proxy, lake, tmp_path, multipart
) -> None:
    store_blob(lake, 1)
    proxy.clear()
    proxy.add(Fault("CreateMultipartUpload", "500", count=2))
    proxy.add(Fault("UploadPart", "503", count=3))
    proxy.add(Fault("CompleteMultipartUpload", "500", count=2))
    proxy.add(Fault("CompleteMultipartUpload", "503", count=1, after_forward=True))  # done, the answer lost
    started = time.monotonic()
    stored = store_blob(lake, 2)
    landed = time.monotonic() - started
    parts = -(-stored.bytes // PART_BYTES)
    assert parts >= 3
    assert dict(proxy.seen) == {
        "CreateMultipartUpload": 3,
        "UploadPart": parts + 3,
        "CompleteMultipartUpload": 4,
    }
    assert dict(proxy.forwarded) == {
        "CreateMultipartUpload": 1,
        "UploadPart": parts,
        "CompleteMultipartUpload": 2,
    }
    assert same_blob(read_partitions(lake, [BLOB], ["i", "h"]), 2)
    assert leftovers(s3, lake) == ([lake._key(BLOB.relpath)], [])
    assert no_scratch_temps(tmp_path)
    figure(
        f"multipart ({parts} parts of 5 MiB, {stored.bytes:,} bytes): 7 faults (create 2 x 500, part 3 x 503, "
        f"complete 2 x 500 + 1 lost answer) retried, landed in {landed:.2f} s"
    )


@pytest.mark.parametrize("operation", ["UploadPart", "CompleteMultipartUpload"])
def test_a_multipart_upload_failing_past_the_retry_budget_is_aborted_and_the_stored_object_kept(
    s3, proxy, lake, tmp_path, multipart, operation
) -> None:
    store_blob(lake, 1)
    before = stored_table(s3, lake, BLOB)
    proxy.clear()
    proxy.add(Fault(operation, "500", count=1000))
    started = time.monotonic()
    with pytest.raises(LakeWriteError, match="InternalError.*unchanged") as failed:
        store_blob(lake, 2)
    took = time.monotonic() - started
    assert lake.uri(BLOB.relpath) in str(failed.value)
    assert proxy.seen[operation] >= ATTEMPTS and proxy.seen["AbortMultipartUpload"] == 1
    assert proxy.forwarded["AbortMultipartUpload"] == 1  # the upload was aborted, on the server
    assert stored_table(s3, lake, BLOB).equals(before)
    assert leftovers(s3, lake) == ([lake._key(BLOB.relpath)], [])  # no incomplete upload, no other object
    assert no_scratch_temps(tmp_path)
    figure(
        f"multipart, {operation} 500 on every attempt: {proxy.seen[operation]} attempts, aborted, "
        f"failed after {took:.2f} s"
    )


@pytest.mark.slow
def test_a_partition_of_many_row_groups_reads_back_whole_every_time(s3, proxy, lake, multipart) -> None:
    """DuckDB reads one file handle from several threads; every read of the partition gives its rows."""
    store_blob(lake, 3)
    with connect(lake) as con:  # the step's engine: 2 threads
        for _ in range(10):
            assert same_blob(read_partitions(lake, [BLOB], ["i", "h"], con), 3)


# --- stalls: the server holds the connection without answering ---------------------------------------------


@pytest.mark.slow
def test_a_stalled_put_is_retried_after_the_read_timeout_and_lands(s3, proxy, lake, tmp_path) -> None:
    """Read timeout 3 s instead of botocore's 60 s (everything else the lake's own), so CI waits 3 s, not 60."""
    with_read_timeout(lake, 3.0)
    old, new = trades_sources(tmp_path)
    store_partition(old, lake, TRADES.relpath, "trades")
    proxy.clear()
    proxy.add(Fault("PutObject", "stall", count=1, stall_seconds=90))
    started = time.monotonic()
    store_partition(new, lake, TRADES.relpath, "trades")
    landed = time.monotonic() - started
    assert proxy.seen["PutObject"] == 2 and proxy.forwarded["PutObject"] == 1
    assert 3 <= landed < 15
    assert read_partitions(lake, [TRADES]).equals(local_rows(new, tmp_path))
    assert leftovers(s3, lake) == ([lake._key(TRADES.relpath)], [])
    figure(f"PutObject stalled once (read timeout 3 s): retried, landed in {landed:.2f} s")


@pytest.mark.slow
@pytest.mark.parametrize("operation", ["PutObject", "UploadPart"])
def test_stalls_past_the_retry_budget_fail_within_a_bounded_time_and_keep_the_stored_one(
    s3, proxy, lake, tmp_path, multipart, operation
) -> None:
    """Read timeout 2 s instead of 60 s (everything else the lake's own): fails after 6 timed-out attempts."""
    with_read_timeout(lake, 2.0)
    if operation == "PutObject":
        old, new = trades_sources(tmp_path)
        store_partition(old, lake, TRADES.relpath, "trades")
        partition, write = TRADES, lambda: store_partition(new, lake, TRADES.relpath, "trades")
    else:
        store_blob(lake, 1)
        partition, write = BLOB, lambda: store_blob(lake, 2)
    before = stored_table(s3, lake, partition)
    proxy.clear()
    proxy.add(Fault(operation, "stall", count=1000, stall_seconds=30))
    started = time.monotonic()
    with pytest.raises(LakeWriteError, match="ReadTimeoutError.*unchanged") as failed:
        write()
    took = time.monotonic() - started
    assert lake.uri(partition.relpath) in str(failed.value)
    assert proxy.seen[operation] >= ATTEMPTS and proxy.forwarded[operation] == 0
    assert ATTEMPTS * 2.0 <= took < ATTEMPTS * 2.0 + 1.55 + 5  # 6 timeouts + at most 1.55 s of backoff
    assert stored_table(s3, lake, partition).equals(before)
    assert leftovers(s3, lake) == ([lake._key(partition.relpath)], [])
    assert no_scratch_temps(tmp_path)
    figure(
        f"{operation} stalled on every attempt (read timeout 2 s): {proxy.seen[operation]} attempts, "
        f"failed after {took:.2f} s"
    )


@pytest.mark.slow
def test_answers_lost_past_the_retry_budget_fail_without_claiming_the_old_partition_is_kept(
    s3, proxy, lake, tmp_path
) -> None:
    """The server stores every attempt but no answer comes back: the step fails, the partition is the new version
    whole (never half), and the error says the partition may already be the new one."""
    with_read_timeout(lake, 2.0)
    old, new = trades_sources(tmp_path)
    store_partition(old, lake, TRADES.relpath, "trades")
    proxy.clear()
    proxy.add(Fault("PutObject", "stall", count=1000, stall_seconds=30, after_forward=True))
    with pytest.raises(LakeWriteError) as failed:
        store_partition(new, lake, TRADES.relpath, "trades")
    assert proxy.forwarded["PutObject"] == ATTEMPTS
    assert read_partitions(lake, [TRADES]).equals(local_rows(new, tmp_path))  # replaced, whole
    assert leftovers(s3, lake) == ([lake._key(TRADES.relpath)], [])
    message = str(failed.value)
    assert "replaced whole" in message and "never a partial object" in message, message
