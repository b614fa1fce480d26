"""Per-partition outcomes of a (possibly ranged) step, reported to Dagster the same way by every asset."""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import dagster as dg

from tick_assets.tardis.errors import RetriesExhaustedError, TardisError, TransientError


@dataclass(frozen=True)
class PartitionOutcome:
    """One partition of the step: its metadata when it landed, or the error that stopped it."""

    key: str
    metadata: Mapping[str, Any] = field(default_factory=dict)
    error: BaseException | None = None


def is_transient(error: BaseException | None) -> bool:
    """Whether a later retry of the same partition may succeed (network trouble, server errors)."""
    return isinstance(error, (TransientError, RetriesExhaustedError)) or (
        error is not None and not isinstance(error, (TardisError, FileNotFoundError))
    )


def failure_description(failed: Sequence[PartitionOutcome], total: int) -> str:
    """The step failure text: which partitions failed and why (each error already says what to do)."""
    if total == 1:
        return f"{failed[0].key}: {type(failed[0].error).__name__}: {failed[0].error}"
    lines = [f"{len(failed)} of {total} partitions failed (the others were written and recorded):"]
    lines += [f"- {o.key}: {type(o.error).__name__}: {o.error}" for o in failed[:20]]
    if len(failed) > 20:
        lines.append(f"- ... and {len(failed) - 20} more")
    return "\n".join(lines)


def _materialization_tags(
    partitions_def: dg.PartitionsDefinition, key: str, code_version: str
) -> dict[str, str]:
    """The tags Dagster itself puts on a materialization: code version and one tag per partition dimension."""
    dims = {
        k: v
        for k, v in partitions_def.get_tags_for_partition_key(key).items()
        if k.startswith("dagster/partition/")
    }
    return {"dagster/code_version": code_version, **dims}


def report(
    context: dg.AssetExecutionContext,
    partitions_def: dg.PartitionsDefinition,
    code_version: str,
    outcomes: Sequence[PartitionOutcome],
    value: Any = None,
) -> dg.MaterializeResult:
    """Attach each partition's metadata; if any failed, record the ones that landed and fail the step.

    Recording the good partitions of a failed ranged run lets a backfill retry only the failed ones.
    """
    failed = [o for o in outcomes if o.error is not None]
    if failed:
        for o in outcomes:
            if o.error is None:
                context.log_event(
                    dg.AssetMaterialization(
                        context.asset_key,
                        partition=o.key,
                        metadata=dict(o.metadata),
                        tags=_materialization_tags(partitions_def, o.key, code_version),
                    )
                )
        raise dg.Failure(
            description=failure_description(failed, len(outcomes)),
            metadata={"failed_partitions": [o.key for o in failed]},
            # A Dagster retry policy may retry network trouble, never a 4xx, a missing day or bad data.
            allow_retries=any(is_transient(o.error) for o in failed),
        )
    for o in outcomes:
        context.add_asset_metadata(dict(o.metadata), partition_key=o.key)
    return dg.MaterializeResult() if value is None else dg.MaterializeResult(value=value)
