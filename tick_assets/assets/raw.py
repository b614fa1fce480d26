"""raw/<data_type>: one daily-partitioned asset per Tardis data type, downloaded and stored as Parquet."""

from collections.abc import Sequence

import dagster as dg

from tick_assets import settings
from tick_assets.assets.metadata import (
    column_schema,
    describe_result,
    failure_description,
    partition_metadata,
)
from tick_assets.assets.partitions import day_requests
from tick_assets.assets.resources import LakeResource, TardisResource
from tick_assets.lake import ingest_days
from tick_assets.tardis.errors import RetriesExhaustedError, TardisError, TransientError

#: Bump when the Parquet layout or typing changes, so Dagster flags stored partitions as outdated.
RAW_CODE_VERSION = "lake-v1"
TARDIS_POOL = "tardis"


def build_raw_asset(
    data_type: str,
    partitions_def: dg.MultiPartitionsDefinition,
    backfill_policy: dg.BackfillPolicy | None = None,
) -> dg.AssetsDefinition:
    """Build raw/<data_type>: Tardis csv.gz -> typed zstd Parquet at lake/<data_type>/exchange_id=/symbol_id=/date=/."""
    days_per_run = settings.backfill_days_per_run()
    policy = backfill_policy or (
        dg.BackfillPolicy.multi_run(days_per_run) if days_per_run else dg.BackfillPolicy.single_run()
    )

    @dg.asset(
        name=data_type,
        key_prefix="raw",
        description=f"Tardis `{data_type}` for one UTC day and instrument, typed zstd Parquet in the lake "
        f"(`lake/{data_type}/exchange_id=/symbol_id=/date=/data.parquet`); query it as `raw.{data_type}` in the warehouse.",
        partitions_def=partitions_def,
        backfill_policy=policy,
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
        requests = day_requests(partitions_def, context.partition_keys, data_type)
        context.log.info(
            f"{len(requests)} partition(s) of {data_type}: {requests[0].key} .. {requests[-1].key}"
        )
        results = ingest_days(
            tardis.client,
            lake.root,
            requests,
            lake.conversion_options(),
            max_workers=tardis.max_in_flight,
            max_conversions=lake.max_parallel_conversions,
            on_result=lambda r: (context.log.error if r.error else context.log.info)(describe_result(r)),
        )
        failed = [r for r in results if not r.ok]
        if failed:
            # Record what did land so the backfill (and the UI) only treat the failed days as missing.
            for r in results:
                if r.ok:
                    context.log_event(
                        dg.AssetMaterialization(
                            context.asset_key,
                            partition=r.request.key,
                            metadata=partition_metadata(r),
                            tags=_materialization_tags(partitions_def, r.request.key),
                        )
                    )
            raise dg.Failure(
                description=failure_description(failed, len(results)),
                metadata={"failed_partitions": [r.request.key for r in failed]},
                # A Dagster retry policy may retry network trouble, never a 4xx, a missing day or bad data.
                allow_retries=any(is_transient(r.error) for r in failed),
            )
        for r in results:
            context.add_asset_metadata(partition_metadata(r), partition_key=r.request.key)
        return dg.MaterializeResult()

    return raw_asset


def _materialization_tags(partitions_def: dg.MultiPartitionsDefinition, key: str) -> dict[str, str]:
    """The tags Dagster itself puts on a materialization: code version and one tag per partition dimension."""
    dims = {
        k: v
        for k, v in partitions_def.get_tags_for_partition_key(key).items()
        if k.startswith("dagster/partition/")
    }
    return {"dagster/code_version": RAW_CODE_VERSION, **dims}


def is_transient(error: BaseException | None) -> bool:
    """Whether a later retry of the same day may succeed (network trouble, server errors)."""
    return isinstance(error, (TransientError, RetriesExhaustedError)) or (
        error is not None and not isinstance(error, TardisError)
    )


def build_raw_assets(
    data_types: Sequence[str], partitions_def: dg.MultiPartitionsDefinition
) -> list[dg.AssetsDefinition]:
    """One raw asset per enabled data type (TICK_ASSETS_DATA_TYPES)."""
    return [build_raw_asset(t, partitions_def) for t in data_types]
