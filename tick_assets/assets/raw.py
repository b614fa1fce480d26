"""raw/<data_type>: one daily-partitioned asset per Tardis data type, downloaded and stored as Parquet."""

import warnings
from collections.abc import Sequence

import dagster as dg

from tick_assets.assets.metadata import column_schema, describe_result, partition_metadata
from tick_assets.assets.partitions import DEFAULT_BACKFILL_POLICY, day_requests
from tick_assets.assets.reporting import PartitionOutcome, report
from tick_assets.assets.resources import LAKE_IO, TARDIS_POOL, LakeResource, TardisResource
from tick_assets.lake import ingest_days

# `backfill_policy` is beta in Dagster 1.13 and is what makes backfills ranged runs: used knowingly, not a warning.
warnings.filterwarnings(
    "ignore", r"Parameter `backfill_policy` of function `asset` is currently in beta", dg.BetaWarning
)

#: Bump when the Parquet layout or typing changes, so Dagster flags stored partitions as outdated.
#: v2: files under lake/raw/<data_type>/ (v1: lake/<data_type>/), Parquet encodings that keep them below gzip size.
#: v3: book levels as lists, no stored `*_utc` columns (lake/schema.py; readers derive them).
RAW_CODE_VERSION = "lake-v3"


def build_raw_asset(
    data_type: str,
    *,
    partitions_def: dg.MultiPartitionsDefinition,
    backfill_policy: dg.BackfillPolicy = DEFAULT_BACKFILL_POLICY,
) -> dg.AssetsDefinition:
    """Build raw/<data_type>: Tardis csv.gz -> typed zstd Parquet at lake/raw/<data_type>/exchange_id=/symbol_id=/date=/."""

    @dg.asset(
        name=data_type,
        key_prefix="raw",
        description=f"Tardis `{data_type}` for one UTC day and instrument, typed zstd Parquet in the lake "
        f"(`lake/raw/{data_type}/exchange_id=/symbol_id=/date=/data.parquet`); query it as `raw.{data_type}` in the "
        "warehouse, or take it as a DataFrame through `lake_io`.",
        partitions_def=partitions_def,
        backfill_policy=backfill_policy,
        io_manager_key=LAKE_IO,
        pool=TARDIS_POOL,
        group_name="raw",
        kinds={"tardis", "parquet"},
        code_version=RAW_CODE_VERSION,
        metadata={
            "dagster/column_schema": column_schema(data_type),
            "dagster/table_name": f"raw.{data_type}",
        },
    )
    def raw_asset(
        context: dg.AssetExecutionContext, tardis: TardisResource, lake: LakeResource
    ) -> dg.MaterializeResult:
        requests = day_requests(context.partition_keys, data_type)
        context.log.info(
            f"{len(requests)} partition(s) of {data_type}: {requests[0].key} .. {requests[-1].key}"
        )
        results = ingest_days(
            tardis.client,
            lake.lake,
            requests,
            lake.conversion_options(),
            max_workers=tardis.max_in_flight,
            max_conversions=lake.max_parallel_conversions,
            cache_retention=lake.cache_retention,
            on_result=lambda r: (context.log.error if r.error else context.log.info)(describe_result(r)),
        )
        outcomes = [
            PartitionOutcome(r.request.key, partition_metadata(r) if r.ok else {}, r.error) for r in results
        ]
        return report(context, partitions_def, RAW_CODE_VERSION, outcomes)

    return raw_asset


def build_raw_assets(
    data_types: Sequence[str],
    *,
    partitions_def: dg.MultiPartitionsDefinition,
    backfill_policy: dg.BackfillPolicy = DEFAULT_BACKFILL_POLICY,
) -> list[dg.AssetsDefinition]:
    """One raw asset per enabled data type (TICK_ASSETS_DATA_TYPES)."""
    return [
        build_raw_asset(t, partitions_def=partitions_def, backfill_policy=backfill_policy) for t in data_types
    ]
