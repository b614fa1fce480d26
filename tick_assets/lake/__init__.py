"""The Parquet lake and the DuckDB warehouse views over it: csv.gz -> typed Parquet. No Dagster imports."""

from tick_assets.lake.convert import ConversionOptions, PartitionWrite, write_partition
from tick_assets.lake.errors import CsvParseError, LakeError, SchemaMismatchError
from tick_assets.lake.ingest import DayRequest, DayResult, ingest_day, ingest_days
from tick_assets.lake.layout import partition_dir, partition_file
from tick_assets.lake.warehouse import describe_raw_views, ensure_raw_views

__all__ = [
    "ConversionOptions",
    "CsvParseError",
    "DayRequest",
    "DayResult",
    "LakeError",
    "PartitionWrite",
    "SchemaMismatchError",
    "describe_raw_views",
    "ensure_raw_views",
    "ingest_day",
    "ingest_days",
    "partition_dir",
    "partition_file",
    "write_partition",
]
