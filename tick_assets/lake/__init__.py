"""The Parquet lake (every partition of every asset) and the DuckDB catalog of views over it. No Dagster imports."""

from tick_assets.lake.convert import PartitionWrite, store_partition, write_partition
from tick_assets.lake.datasets import Partition, connect, read_partitions, store_frame, store_query
from tick_assets.lake.errors import CsvParseError, LakeError, SchemaMismatchError
from tick_assets.lake.ingest import DayRequest, DayResult, ingest_day, ingest_days
from tick_assets.lake.layout import partition_dir, partition_file, raw_dataset
from tick_assets.lake.parquet import ConversionOptions
from tick_assets.lake.store import Lake, LakeWriteError, LocalLake, PartitionMissingError, open_lake
from tick_assets.lake.warehouse import (
    build_catalog,
    describe_raw_views,
    describe_views,
    ensure_raw_views,
    open_catalog,
    publish_catalog,
)

__all__ = [
    "ConversionOptions",
    "CsvParseError",
    "DayRequest",
    "DayResult",
    "Lake",
    "LakeError",
    "LakeWriteError",
    "LocalLake",
    "Partition",
    "PartitionMissingError",
    "PartitionWrite",
    "SchemaMismatchError",
    "build_catalog",
    "connect",
    "describe_raw_views",
    "describe_views",
    "ensure_raw_views",
    "ingest_day",
    "ingest_days",
    "open_catalog",
    "open_lake",
    "partition_dir",
    "partition_file",
    "publish_catalog",
    "raw_dataset",
    "read_partitions",
    "store_frame",
    "store_partition",
    "store_query",
    "write_partition",
]
