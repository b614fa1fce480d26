"""raw/<data_type>: one daily-partitioned asset per Tardis data type, downloaded and stored as Parquet."""

from collections.abc import Sequence

import dagster as dg

from tick_assets import settings
from tick_assets.assets.metadata import column_schema, describe_result, partition_metadata
from tick_assets.assets.partitions import day_requests
from tick_assets.assets.reporting import PartitionOutcome, report
from tick_assets.assets.resources import TARDIS_POOL, LakeResource, TardisResource
from tick_assets.lake import ingest_days

#: Bump when the Parquet layout or typing changes, so Dagster flags stored partitions as outdated.
RAW_CODE_VERSION = "lake-v1"


def configured_backfill_policy() -> dg.BackfillPolicy:
    """Ranged backfill runs of at most TICK_ASSETS_BACKFILL_DAYS_PER_RUN partitions (0: one run per range)."""
    days_per_run = settings.backfill_days_per_run()
    return dg.BackfillPolicy.multi_run(days_per_run) if days_per_run else dg.BackfillPolicy.single_run()


def build_raw_asset(
    data_type: str,
    partitions_def: dg.MultiPartitionsDefinition,
    backfill_policy: dg.BackfillPolicy | None = None,
) -> dg.AssetsDefinition:
    """Build raw/<data_type>: Tardis csv.gz -> typed zstd Parquet at lake/<data_type>/exchange_id=/symbol_id=/date=/."""
    policy = backfill_policy or configured_backfill_policy()

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
        requests = day_requests(context.partition_keys, data_type)
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
        outcomes = [
            PartitionOutcome(r.request.key, partition_metadata(r) if r.ok else {}, r.error) for r in results
        ]
        return report(context, partitions_def, RAW_CODE_VERSION, outcomes)

    return raw_asset


def build_raw_assets(
    data_types: Sequence[str], partitions_def: dg.MultiPartitionsDefinition
) -> list[dg.AssetsDefinition]:
    """One raw asset per enabled data type (TICK_ASSETS_DATA_TYPES)."""
    return [build_raw_asset(t, partitions_def) for t in data_types]
