"""Dagster resources: the rate-limited Tardis client and the Parquet lake settings."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import duckdb
from pydantic import Field, PrivateAttr, field_validator

from tick_assets import settings
from tick_assets.features.microstructure import BOOK_OFI_LEVELS
from tick_assets.lake import ConversionOptions
from tick_assets.lake.datasets import connect
from tick_assets.lake.migrate import check_layout
from tick_assets.lake.store import Lake, open_lake
from tick_assets.tardis import LimiterConfig, RetryPolicy, TardisClient
from tick_assets.tardis.shared import shared_client

#: Pool of download steps; raise it with `dagster instance concurrency set`. Nothing else needs a pool: every
#: step writes its own partition files and reads the lake, so steps of different partitions never wait.
TARDIS_POOL = "tardis"
#: Resource key of the IO manager that stores and loads asset partitions in the lake.
LAKE_IO = "lake_io"


class TardisResource(dg.ConfigurableResource):
    """Tardis Datasets access shared by all steps: one machine-wide rate limiter, retries, integrity, cache."""

    api_key: str | None = Field(
        default=None, repr=False
    )  # a secret: resolved from TARDIS_API_KEY, never shown
    datasets_url: str = settings.datasets_url()
    api_url: str = settings.api_url()
    data_dir: str = str(settings.data_dir())
    requests_per_second: float = Field(default_factory=settings.requests_per_second)
    burst: int = Field(default_factory=settings.request_burst)
    max_in_flight: int = 8
    #: Retry budget of the official clients: 30 attempts, backoff min(2^n, 120) s + jitter, doubled after a
    #: 500, 60 s more after a 429 without Retry-After; at most about 48 min of waits per file (README).
    max_attempts: int = 30
    retry_base_delay_seconds: float = 1.0
    retry_max_delay_seconds: float = 120.0
    throttle_delay_seconds: float = 60.0
    connect_timeout_seconds: float = 10.0
    read_timeout_seconds: float = 60.0
    metadata_ttl_seconds: float = 3600.0
    #: The limiter's server when several machines download (postgresql://user:password@host/db, from
    #: TICK_ASSETS_LIMITER_URL through dg.EnvVar so the password is never shown); unset: DATA_DIR/ratelimit.sqlite.
    limiter_url: str | None = Field(default=None, repr=False)
    #: How soon the in-flight slots of a killed process or a lost machine come back (renewed every third of it).
    limiter_lease_ttl_seconds: float = Field(default_factory=settings.limiter_lease_ttl)

    _client: TardisClient | None = PrivateAttr(default=None)

    def build_client(self) -> TardisClient:
        """Create a client whose limiter state lives in DATA_DIR/ratelimit.sqlite (shared machine-wide), or on the
        limiter server of `limiter_url` (shared by every machine)."""
        return shared_client(
            Path(self.data_dir),
            api_key=self.api_key,
            datasets_url=self.datasets_url,
            api_url=self.api_url,
            limiter=LimiterConfig(
                rate=self.requests_per_second,
                burst=self.burst,
                max_in_flight=self.max_in_flight,
                lease_ttl=self.limiter_lease_ttl_seconds,
            ),
            retry=RetryPolicy(
                max_attempts=self.max_attempts,
                base_delay=self.retry_base_delay_seconds,
                max_delay=self.retry_max_delay_seconds,
                throttle_delay=self.throttle_delay_seconds,
            ),
            connect_timeout=self.connect_timeout_seconds,
            read_timeout=self.read_timeout_seconds,
            metadata_ttl_seconds=self.metadata_ttl_seconds,
            # read in the run's own process: a worker with TICK_ASSETS_LIMITER_URL set never limits on its own
            limiter_url=self.limiter_url or settings.limiter_url(),
        )

    @property
    def client(self) -> TardisClient:
        """The client of this step (created on first use)."""
        if self._client is None:
            self._client = self.build_client()
        return self._client

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        """Close pooled connections."""
        if self._client is not None:
            self._client.close()
            self._client = None


_DEFAULT_LAYOUT = ConversionOptions()


class LakeResource(dg.ConfigurableResource):
    """The lake (every partition of every asset, as Parquet), the warehouse catalog over it, and how csv.gz files
    are converted into it."""

    data_dir: str = str(settings.data_dir())
    #: A folder or `s3://bucket/prefix` (TICK_ASSETS_LAKE); empty: DATA_DIR/lake.
    lake_url: str = ""
    #: `keep` the downloaded csv.gz files (a cache for re-runs), or `delete` each once its partition is stored.
    cache_retention: str = settings.cache_retention()
    max_parallel_conversions: int = 2
    duckdb_threads_per_conversion: int = _DEFAULT_LAYOUT.threads
    duckdb_memory_limit: str = _DEFAULT_LAYOUT.memory_limit
    #: The Parquet layout (lake/parquet.py, measured in docs/STORAGE.md).
    row_group_size: int = _DEFAULT_LAYOUT.row_group_size
    zstd_level: int = _DEFAULT_LAYOUT.zstd_level

    _lake: Lake | None = PrivateAttr(default=None)

    @property
    def lake(self) -> Lake:
        """The lake of this step (opened on first use)."""
        if self._lake is None:
            lake = open_lake(self.lake_url or settings.lake_url(self.data_dir), scratch=self.scratch)
            check_layout(lake)
            self._lake = lake
        return self._lake

    @property
    def scratch(self) -> Path:
        """This machine's scratch folder (DuckDB spill files, downloads of remote partitions)."""
        return Path(self.data_dir) / "scratch"

    @property
    def warehouse(self) -> Path:
        """The catalog of views: DATA_DIR/warehouse.duckdb."""
        return settings.warehouse_path(self.data_dir)

    def conversion_options(self) -> ConversionOptions:
        """DuckDB settings of one conversion (spill files go under the scratch folder)."""
        return ConversionOptions(
            threads=self.duckdb_threads_per_conversion,
            memory_limit=self.duckdb_memory_limit,
            row_group_size=self.row_group_size,
            zstd_level=self.zstd_level,
            temp_directory=self.scratch / "duckdb",
        )

    def connect(self) -> duckdb.DuckDBPyConnection:
        """An in-memory DuckDB connection of this step that reads the lake."""
        return connect(self.lake, self.duckdb_threads_per_conversion, self.duckdb_memory_limit)


#: features/book lists at least these levels: the deepest order-flow imbalance the analytics read.
MIN_BOOK_DEPTH = max(BOOK_OFI_LEVELS)


class FeatureSettings(dg.ConfigurableResource):
    """Settings of the feature assets (resource `features`)."""

    #: Grid step of features/depth and features/trade_bars; changing it needs a re-materialization of every
    #: partition (one table holds one grid).
    grid_step_ms: int = 1000
    #: Levels per side of features/book's top-of-book lists and its deepest depth column (depth at N levels).
    book_depth: int = 50

    @field_validator("book_depth")
    @classmethod
    def _book_depth_covers_the_analytics(cls, value: int) -> int:
        if value < MIN_BOOK_DEPTH:
            raise ValueError(
                f"features.book_depth={value}: it must be at least {MIN_BOOK_DEPTH}, the levels whose order-flow "
                f"imbalance analytics/book_1m reads (ofi_{MIN_BOOK_DEPTH}); the whole book is rebuilt whatever "
                "the setting, which only sets how many levels are listed"
            )
        return value
