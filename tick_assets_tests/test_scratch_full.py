"""A worker's scratch disk full (issue 16 point 4b): the write fails with an error that names the full folder and
says what to do, the stored partition is untouched, and no temp file is left on either disk.

The full disk is a real file system of its own: an 8 MB ext4 image on a loop device (as a worker's disk: every
file and folder takes blocks), or a tmpfs where loop devices are not available; filled to the last block with a
filler file. Mounting needs root: skipped otherwise.

Where a step writes: an S3 lake stages each partition in `<scratch>/s3-uploads` and uploads it; a local lake
writes a temp beside the partition file and renames it; every conversion makes a DuckDB spill folder of its own
under `<scratch>/duckdb` (LakeResource: scratch = DATA_DIR/scratch).
"""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pyarrow.parquet as pq
import pytest

from tick_assets.assets.io_manager import LakeIOManager
from tick_assets.assets.partitions import build_partitions
from tick_assets.assets.raw import build_raw_asset
from tick_assets.assets.resources import LakeResource, TardisResource
from tick_assets.emulator.synth import write_dataset
from tick_assets.lake import LakeWriteError, LocalLake, Partition, open_lake, read_partitions, store_partition
from tick_assets.lake.parquet import ConversionOptions
from tick_assets.lake.s3 import S3Lake
from tick_assets.stack.s3server import S3Server
from tick_assets.stack.soak import fingerprint_file

DAY = dt.date(2024, 1, 2)
TRADES = Partition("raw/trades", "deribit", "BTC-PERPETUAL", DAY)
FILLER = "filler"


@dataclass
class SmallDisk:
    """A mounted small file system."""

    path: Path
    kind: str  # "ext4" or "tmpfs"

    def fill(self) -> None:
        """Write a filler file until the device refuses one more byte."""
        fd = os.open(self.path / FILLER, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        try:
            for size in (1 << 20, 1 << 16, 1 << 12, 1 << 9, 1):
                try:
                    while True:
                        os.write(fd, b"\0" * size)
                except OSError as exc:
                    assert exc.errno == 28, exc  # ENOSPC
            os.fsync(fd)
        finally:
            os.close(fd)
        assert os.statvfs(self.path).f_bavail == 0

    def free(self) -> None:
        (self.path / FILLER).unlink()

    def files(self) -> list[str]:
        """Every file on the disk but the filler (folders are not listed)."""
        return sorted(
            str(p.relative_to(self.path))
            for p in self.path.rglob("*")
            if not p.is_dir() and p.name != FILLER and "lost+found" not in p.parts
        )


def _mount(args: list[str]) -> str:
    done = subprocess.run(args, capture_output=True, text=True)
    return "" if done.returncode == 0 else (done.stderr.strip() or f"exit {done.returncode}")


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[SmallDisk]:
    """An 8 MB ext4 on a loop device, else a tmpfs of 8 MB; unmounted at the end."""
    mount = tmp_path / f"disk-{uuid.uuid4().hex[:6]}"
    mount.mkdir()
    image = tmp_path / "disk.ext4"
    errors = []
    kind = ""
    if shutil.which("mkfs.ext4"):
        with open(image, "wb") as f:
            f.truncate(8 * 1024 * 1024)
        made = _mount(["mkfs.ext4", "-q", "-F", "-m", "0", str(image)])
        error = made or _mount(["mount", "-o", "loop", str(image), str(mount)])
        kind = "" if error else "ext4"
        errors.append(f"ext4 on a loop device: {error}")
    if not kind:
        error = _mount(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mount)])
        kind = "" if error else "tmpfs"
        errors.append(f"tmpfs: {error}")
    if not kind:
        pytest.skip(f"cannot mount a small disk here ({'; '.join(errors)})")
    try:
        yield SmallDisk(mount, kind)
    finally:
        if subprocess.run(["umount", str(mount)], capture_output=True).returncode:
            subprocess.run(["umount", "-l", str(mount)], check=False)
        image.unlink(missing_ok=True)


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Server]:
    """One real S3 server for the module, on 127.0.0.1."""
    with S3Server(bucket="scratch-bucket") as server:
        yield server


@pytest.fixture
def s3_env(s3: S3Server, monkeypatch: pytest.MonkeyPatch) -> S3Server:
    for name, value in s3.env().items():
        monkeypatch.setenv(name, value)
    return s3


def trades_sources(folder: Path) -> tuple[Path, Path]:
    """Two versions of one trades day: 333 rows, then 10,000 (about 250 KB of Parquet)."""
    old, new = folder / "old.csv.gz", folder / "new.csv.gz"
    write_dataset("deribit", "BTC-PERPETUAL", "trades", DAY, 1000, old)
    write_dataset("deribit", "BTC-PERPETUAL", "trades", DAY, 30_000, new)
    return old, new


def stored_table(s3: S3Server, lake: S3Lake, partition: Partition):
    """The partition's object as the server holds it."""
    return pq.read_table(f"{s3.bucket}/{lake._key(partition.relpath)}", filesystem=s3.pyarrow_fs())


def object_version(lake: S3Lake, partition: Partition) -> tuple[str, object]:
    """(ETag, LastModified) of the partition's object: a new upload changes both."""
    head = lake.client.head_object(Bucket=lake.bucket, Key=lake._key(partition.relpath))
    return head["ETag"], head["LastModified"]


def server_objects(lake: S3Lake) -> tuple[list[str], list[str]]:
    """(object keys, incomplete multipart uploads) under the lake's prefix."""
    client, prefix = lake.client, f"{lake.prefix}/"
    objects = client.list_objects_v2(Bucket=lake.bucket, Prefix=prefix).get("Contents", [])
    uploads = client.list_multipart_uploads(Bucket=lake.bucket, Prefix=prefix).get("Uploads", [])
    return sorted(o["Key"] for o in objects), sorted(u["Key"] for u in uploads)


def full_folder(message: str) -> Path:
    """The folder a disk-full LakeWriteError names as the one whose device is full."""
    found = re.search(r"no space left on the device of (/\S+?)\. ", message)
    assert found, message
    return Path(found.group(1))


def temps(folder: Path) -> list[Path]:
    """Temp files and spill folders under `folder` (hidden `.*.tmp`, `.*.spill`, `.*.unconfirmed`)."""
    return sorted(p for p in folder.rglob(".*") if p.name.endswith((".tmp", ".spill", ".unconfirmed")))


@pytest.mark.parametrize("fresh_worker", [False, True], ids=["scratch-exists", "fresh-worker"])
def test_a_full_scratch_disk_fails_an_s3_write_naming_the_folder_and_keeps_the_stored_partition(
    s3_env, small_disk, tmp_path, fresh_worker
) -> None:
    old, new = trades_sources(tmp_path)
    url = f"s3://{s3_env.bucket}/scratch-{uuid.uuid4().hex[:8]}"
    scratch = small_disk.path / "scratch"
    options = ConversionOptions(temp_directory=scratch / "duckdb")  # as LakeResource.conversion_options
    # the partition stored earlier (a fresh worker: by another machine; its scratch folder does not exist yet)
    earlier = tmp_path / "other-worker" if fresh_worker else scratch
    first = open_lake(url, scratch=earlier)
    store_partition(
        old, first, TRADES.relpath, "trades", ConversionOptions(temp_directory=earlier / "duckdb")
    )
    lake = open_lake(url, scratch=scratch)
    assert isinstance(lake, S3Lake) and scratch.exists() is not fresh_worker
    before, objects = stored_table(s3_env, lake, TRADES), server_objects(lake)
    version = object_version(lake, TRADES)
    small_disk.fill()
    with pytest.raises(LakeWriteError) as failed:
        store_partition(new, lake, TRADES.relpath, "trades", options)
    message = str(failed.value)
    assert lake.uri(TRADES.relpath) in message and "no space left on the device" in message
    # the folder whose disk is full (not only the partition's URI): the scratch, or where it was to be made
    assert full_folder(message).is_relative_to(scratch if scratch.exists() else small_disk.path)
    assert "unchanged" in message and "free space" in message
    assert object_version(lake, TRADES) == version  # nothing was uploaded over it
    assert stored_table(s3_env, lake, TRADES).equals(before) and before.num_rows == 333
    assert server_objects(lake) == objects == ([lake._key(TRADES.relpath)], [])
    assert small_disk.files() == [] and temps(tmp_path) == []  # nothing left on the full disk or elsewhere
    # what the message says to do: free space, re-run
    small_disk.free()
    assert store_partition(new, lake, TRADES.relpath, "trades", options).rows == 10_000
    assert len(read_partitions(lake, [TRADES])) == 10_000 and small_disk.files() == []


def test_a_full_disk_under_a_local_lake_and_its_spill_folder_keeps_the_stored_partition(
    small_disk, tmp_path
) -> None:
    """The lake and the scratch on one full disk (a single machine's data dir): the conversion fails, the stored
    file keeps its rows and values, and neither its temp nor its spill folder stays."""
    old, new = trades_sources(tmp_path)
    lake = LocalLake(small_disk.path / "lake")
    options = ConversionOptions(temp_directory=small_disk.path / "scratch" / "duckdb")
    stored = store_partition(old, lake, TRADES.relpath, "trades", options)
    before = fingerprint_file(Path(stored.path))
    small_disk.fill()
    with pytest.raises(LakeWriteError) as failed:
        store_partition(new, lake, TRADES.relpath, "trades", options)
    message = str(failed.value)
    assert TRADES.relpath in message and full_folder(message).is_relative_to(small_disk.path)
    assert "unchanged" in message and "free space" in message
    assert fingerprint_file(Path(stored.path)) == before and before[0] == 333
    assert small_disk.files() == [f"lake/{TRADES.relpath}"] and temps(tmp_path) == []


def test_a_full_scratch_disk_under_a_local_lake_on_another_disk(small_disk, tmp_path) -> None:
    """Only the scratch (DuckDB spill folders) on the full disk. On ext4 the conversion's own spill folder takes
    a block and cannot be made: the write fails naming the scratch folder, not the lake (which has room). On a
    tmpfs a folder costs no space, and a conversion, which streams and does not spill, lands."""
    old, new = trades_sources(tmp_path)
    lake = LocalLake(tmp_path / "lake")
    spill = small_disk.path / "scratch" / "duckdb"
    options = ConversionOptions(temp_directory=spill)
    stored = store_partition(old, lake, TRADES.relpath, "trades", options)
    before = fingerprint_file(Path(stored.path))
    small_disk.fill()
    if small_disk.kind == "ext4":
        with pytest.raises(LakeWriteError) as failed:
            store_partition(new, lake, TRADES.relpath, "trades", options)
        assert full_folder(str(failed.value)).is_relative_to(spill)  # not the lake, which has room
        assert fingerprint_file(Path(stored.path)) == before
    else:
        assert store_partition(new, lake, TRADES.relpath, "trades", options).rows == 10_000
    assert small_disk.files() == [] and temps(tmp_path) == []


def test_a_raw_asset_step_on_a_worker_whose_scratch_disk_is_full_fails_and_the_partition_survives(
    s3_env, small_disk, start_emulator, tmp_path
) -> None:
    """dg.materialize of raw/trades on a worker whose data dir (scratch) is the full disk, the lake on S3 and the
    download cache on another disk: the step fails with the error, the stored partition is the one before."""
    server = start_emulator()
    asset = build_raw_asset(
        "trades", partitions_def=build_partitions("2024-01-01", ["deribit:BTC-PERPETUAL"])
    )
    url = f"s3://{s3_env.bucket}/worker-{uuid.uuid4().hex[:8]}"
    resources = {
        "tardis": TardisResource(
            api_key="test-key",
            datasets_url=server.datasets_url,
            api_url=server.api_url,
            data_dir=str(tmp_path / "cache-disk"),
            requests_per_second=1000,
            burst=100,
            max_attempts=3,
        ),
        "lake": (lake_resource := LakeResource(data_dir=str(small_disk.path), lake_url=url)),
        "lake_io": LakeIOManager(lake=lake_resource),
    }
    key = "2024-01-02|deribit:BTC-PERPETUAL"
    instance = dg.DagsterInstance.ephemeral()
    assert dg.materialize([asset], instance=instance, partition_key=key, resources=resources).success
    lake = open_lake(url, scratch=tmp_path / "reader")
    assert isinstance(lake, S3Lake)
    before, objects = stored_table(s3_env, lake, TRADES), server_objects(lake)
    version = object_version(lake, TRADES)
    small_disk.fill()
    run = dg.materialize(
        [asset], instance=instance, partition_key=key, resources=resources, raise_on_error=False
    )
    assert not run.success
    [failure] = run.get_step_failure_events()
    message = failure.step_failure_data.error.message
    assert key in message and "LakeWriteError" in message
    assert full_folder(message).is_relative_to(small_disk.path / "scratch")
    assert stored_table(s3_env, lake, TRADES).equals(before) and before.num_rows > 0
    assert server_objects(lake) == objects and object_version(lake, TRADES) == version
    assert small_disk.files() == [] and temps(tmp_path) == []
    records = instance.fetch_materializations(dg.AssetKey(["raw", "trades"]), limit=10).records
    assert len(records) == 1  # the failed run recorded nothing
