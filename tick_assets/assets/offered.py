"""Partitions of a data type Tardis does not offer for their instrument: how they are marked and found."""

from __future__ import annotations

from collections.abc import Sequence

import dagster as dg

#: Metadata key of a raw partition whose data type Tardis does not offer (its value says why).
NOT_OFFERED = "not_offered_by_tardis"


def latest_materialization(
    instance: dg.DagsterInstance, asset_key: dg.AssetKey, partition: str
) -> dg.EventLogRecord | None:
    """The newest materialization record of one partition, or None."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=asset_key, asset_partitions=[partition]), limit=1
    ).records
    return records[0] if records else None


def not_offered_reason(record: dg.EventLogRecord | None) -> str | None:
    """Why a materialized partition has no Tardis data by design, or None for an ordinary one."""
    mat = record.asset_materialization if record is not None else None
    value = mat.metadata.get(NOT_OFFERED) if mat is not None else None
    return None if value is None else str(value.value)


def not_offered_upstream(
    instance: dg.DagsterInstance, upstream: Sequence[dg.AssetKey], partitions: Sequence[str]
) -> dict[str, str]:
    """partition -> why, for each partition of which some upstream raw asset is not offered by Tardis."""
    found: dict[str, str] = {}
    for key in upstream:
        for partition in partitions:
            reason = not_offered_reason(latest_materialization(instance, key, partition))
            if reason is not None and partition not in found:
                found[partition] = f"{key.to_user_string()}: {reason}"
    return found
