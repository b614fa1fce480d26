"""A lake on S3-compatible object storage: `s3://bucket/prefix`, endpoint and credentials from the environment.

Writes: the finished file is uploaded with boto3's `upload_file` (one PUT, or a multipart upload for large files
that is completed only once every part is in and aborted on failure), so a reader sees the old object or the new
one, never half. Nothing is written to the bucket before the file is complete; a writer killed mid-upload leaves
at most an incomplete multipart upload, which no reader sees and which `abort_stale_uploads` removes.
Reads: DuckDB reads `s3://` through an fsspec filesystem over pyarrow's S3 client registered on the connection,
so no DuckDB extension is downloaded at run time. Credentials come from the standard AWS environment variables
(or any other source of boto3's and pyarrow's default chains); they are never logged or stored.
"""

from __future__ import annotations

import datetime as dt
import os
import threading
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tick_assets.durable import owned_temp, remove_abandoned_temps
from tick_assets.lake.errors import LakeError
from tick_assets.lake.layout import EXCHANGE_KEY, PARTITION_FILE_NAME, TEMP_SUFFIX, validate_dataset
from tick_assets.lake.store import Lake, LakeWriteError, write_error, write_errors

#: Files above this go up as a multipart upload (parts of this size); below it, one PutObject.
MULTIPART_BYTES = 64 * 1024 * 1024
#: An incomplete multipart upload older than this belongs to a dead writer (a live one finishes within minutes).
STALE_UPLOAD_SECONDS = 24 * 3600


def _endpoint() -> str | None:
    return os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or None


def _region() -> str:
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"


class S3Lake(Lake):
    """A lake under `s3://bucket/prefix`; uploads are staged in a local scratch folder."""

    def __init__(self, url: str, scratch: Path, endpoint: str | None = None) -> None:
        parsed = urllib.parse.urlparse(url)
        if parsed.scheme != "s3" or not parsed.netloc:
            raise LakeError(f"Invalid lake URL {url!r}: use s3://bucket/prefix")
        self.bucket, self.prefix = parsed.netloc, parsed.path.strip("/")
        self.endpoint = endpoint or _endpoint()
        self.scratch = Path(scratch) / "s3-uploads"
        self._boto: Any = None
        self._arrow: Any = None

    def __repr__(self) -> str:  # never the credentials
        return f"S3Lake({self.url!r}, endpoint={self.endpoint!r})"

    @property
    def url(self) -> str:
        """`s3://bucket/prefix`."""
        return f"s3://{self.bucket}/{self.prefix}".rstrip("/")

    def _key(self, relpath: str) -> str:
        return f"{self.prefix}/{relpath}" if self.prefix else relpath

    def uri(self, relpath: str) -> str:
        """`s3://bucket/prefix/relpath`."""
        return f"s3://{self.bucket}/{self._key(relpath)}"

    @property
    def client(self) -> Any:
        """The boto3 S3 client (created on first use)."""
        if self._boto is None:
            try:
                import boto3
                from botocore.config import Config
            except ImportError as exc:
                raise LakeError("An s3:// lake needs boto3: pip install 'tick-assets[s3]'") from exc
            # A session of its own: boto3's default session caches the credentials it first found.
            self._boto = boto3.session.Session().client(
                "s3",
                endpoint_url=self.endpoint,
                region_name=_region(),
                config=Config(
                    retries={"max_attempts": 5, "mode": "standard"}, s3={"addressing_style": "path"}
                ),
            )
        return self._boto

    def arrow_filesystem(self) -> Any:
        """pyarrow's S3 filesystem on the same endpoint (what DuckDB reads through)."""
        if self._arrow is None:
            from pyarrow import fs

            options: dict[str, Any] = {"region": _region()}
            if self.endpoint:
                parsed = urllib.parse.urlparse(self.endpoint)
                options.update(
                    endpoint_override=parsed.netloc or parsed.path, scheme=parsed.scheme or "https"
                )
            self._arrow = fs.S3FileSystem(**options)
        return self._arrow

    def exists(self, relpath: str) -> bool:
        """True if the object exists (one HEAD)."""
        from botocore.exceptions import ClientError

        try:
            self.client.head_object(Bucket=self.bucket, Key=self._key(relpath))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise
        return True

    def _keys(self, under: str) -> Iterator[str]:
        # Under the bucket root (no prefix, nothing under it) the listing prefix is empty, not "/".
        prefix = self._key(under).rstrip("/") + "/" if (under or self.prefix) else ""
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                yield item["Key"]

    def _relative(self, key: str) -> str:
        return key[len(self.prefix) + 1 :] if self.prefix else key

    def files(self, dataset: str) -> list[str]:
        """Partition files of a dataset (one listing of its prefix)."""
        depth = validate_dataset(dataset).count("/") + 5  # dataset/exchange_id=/symbol_id=/date=/data.parquet
        found = (self._relative(k) for k in self._keys(dataset))
        return sorted(r for r in found if r.endswith(f"/{PARTITION_FILE_NAME}") and r.count("/") + 1 == depth)

    def datasets(self) -> list[str]:
        """Datasets with at least one partition (one listing of the whole prefix)."""
        found = set()
        for key in self._keys(""):
            rel = self._relative(key)
            if rel.endswith(f"/{PARTITION_FILE_NAME}") and f"/{EXCHANGE_KEY}=" in rel:
                found.add(rel.split(f"/{EXCHANGE_KEY}=", 1)[0])
        return sorted(found)

    @contextmanager
    def writing(self, relpath: str) -> Iterator[Path]:
        """A local temp file in scratch; once written, uploaded whole to its key (never a partial object)."""
        from boto3.s3.transfer import TransferConfig

        try:  # a full scratch disk can refuse the folder itself (a fresh worker): the same LakeWriteError
            self.scratch.mkdir(parents=True, exist_ok=True)
            remove_abandoned_temps(self.scratch, TEMP_SUFFIX)
        except OSError as exc:
            raise write_error(self.uri(relpath), exc) from exc
        tmp = owned_temp(self.scratch / PARTITION_FILE_NAME, TEMP_SUFFIX)
        try:
            with write_errors(self.uri(relpath)):  # the scratch disk (full, gone): nothing was uploaded
                yield tmp
            config = TransferConfig(multipart_threshold=MULTIPART_BYTES, multipart_chunksize=MULTIPART_BYTES)
            try:
                self.client.upload_file(str(tmp), self.bucket, self._key(relpath), Config=config)
            except Exception as exc:
                # A request the server carried out but whose answer was lost (a stall, a 5xx on the way back)
                # fails here too: then the key already holds the new file, whole.
                raise LakeWriteError(
                    f"Could not store {self.uri(relpath)}: the upload failed ({type(exc).__name__}: "
                    f"{str(exc).splitlines()[0] if str(exc) else ''}). The stored partition (if any) is unchanged, "
                    "or replaced whole by the new file if the server stored it but its answer was lost; never a "
                    "partial object. Check the endpoint, the bucket and its permissions, then re-run."
                ) from exc
        finally:
            tmp.unlink(missing_ok=True)

    def abort_stale_uploads(self, older_than_seconds: float = STALE_UPLOAD_SECONDS) -> int:
        """Abort incomplete multipart uploads under the prefix started more than `older_than_seconds` ago (their
        writers died); returns how many. Readers never see them; this frees their storage."""
        cutoff = dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=older_than_seconds)
        aborted = 0
        prefix = f"{self.prefix}/" if self.prefix else ""
        for page in self.client.get_paginator("list_multipart_uploads").paginate(
            Bucket=self.bucket, Prefix=prefix
        ):
            for upload in page.get("Uploads", []):
                if upload["Initiated"] < cutoff:
                    self.client.abort_multipart_upload(
                        Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"]
                    )
                    aborted += 1
        return aborted

    def prepare(self, con) -> None:
        """Register the lake's filesystem on the connection, and never let DuckDB download httpfs."""
        con.execute("SET autoinstall_known_extensions = false")
        con.execute("SET autoload_known_extensions = false")
        con.register_filesystem(_lake_filesystem(self.arrow_filesystem()))


def _lake_filesystem(arrow_fs: Any) -> Any:
    """An fsspec `s3` filesystem over pyarrow whose `find` is one recursive listing (a glob over a dataset would
    otherwise list folder by folder: hundreds of requests)."""
    from fsspec.implementations.arrow import ArrowFile, ArrowFSWrapper, wrap_exceptions
    from pyarrow import fs

    class PositionalFile(ArrowFile):
        """DuckDB reads one handle from several threads, each read a seek then a read: two calls, so another
        thread's seek can come in between and the read returns bytes of another offset (seen as "ZSTD
        Decompression failure" or thrift errors on files of several row groups). The position is kept per thread
        and every read is positional (pyarrow's read_at is thread-safe)."""

        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            self._position = threading.local()

        def tell(self) -> int:
            return getattr(self._position, "at", 0)

        def seek(self, offset: int, whence: int = 0) -> int:
            base = {0: 0, 1: self.tell(), 2: self.stream.size()}[whence]
            self._position.at = base + offset
            return self._position.at

        def read(self, size: int = -1) -> bytes:
            at = self.tell()
            if size is None or size < 0:
                size = max(0, self.stream.size() - at)
            data = self.stream.read_at(size, at)
            self._position.at = at + len(data)
            return data

        def readinto(self, buffer) -> int:
            view = memoryview(buffer).cast("B")
            data = self.read(len(view))
            view[: len(data)] = data
            return len(data)

    class LakeS3FileSystem(ArrowFSWrapper):
        protocol = "s3"

        @wrap_exceptions  # a missing object is a FileNotFoundError, as ArrowFSWrapper._open gives it
        def _open(self, path, mode="rb", block_size=None, seekable=True, **kwargs):
            if mode == "rb" and seekable:
                stream = self.fs.open_input_file(path)
                return PositionalFile(self, stream, path, mode, block_size, **kwargs)
            return super()._open(path, mode, block_size, seekable, **kwargs)

        def find(self, path, maxdepth=None, withdirs=False, detail=False, **kwargs):
            path = self._strip_protocol(path).rstrip("/")
            base = path.count("/")
            out = {}
            for info in self.fs.get_file_info(fs.FileSelector(path, recursive=True, allow_not_found=True)):
                if maxdepth is not None and info.path.count("/") - base > maxdepth:
                    continue
                if info.type == fs.FileType.Directory and not withdirs:
                    continue
                out[info.path] = self._make_entry(info)
            if not out and not withdirs:
                try:
                    entry = self.info(path)
                except FileNotFoundError:
                    entry = None
                if entry and entry["type"] == "file":
                    out[path] = entry
            return out if detail else sorted(out)

    return LakeS3FileSystem(arrow_fs)
