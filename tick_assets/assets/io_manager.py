"""`lake_io`: any partitioned asset's partitions as Parquet files in the lake, loaded as pandas DataFrames.

An input is the upstream asset's partitions of the run (one, or a ranged run's many) as one DataFrame, with
only the columns asked for (`AssetIn(metadata={"columns": [...]})`) plus `instrument` and `date`. An output
DataFrame becomes one file per partition: a frame of one partition goes there whole; a ranged run's frame is
split by its `instrument` and `date` columns (or, without `date`, the UTC day of its first timestamp column).
"""

from __future__ import annotations

import dagster as dg
import pandas as pd

from tick_assets.assets.metadata import figures
from tick_assets.assets.partitions import parse_partition_key, split_instrument
from tick_assets.assets.resources import LakeResource
from tick_assets.lake.datasets import DATE_COLUMN, INSTRUMENT_COLUMN, Partition, read_partitions, store_frame

#: Where an asset whose key has one segment (`my_signal`) lives: `assets/my_signal`, view `assets.my_signal`.
DEFAULT_PREFIX = "assets"


def dataset_of(asset_key: dg.AssetKey) -> str:
    """The lake dataset of an asset: its key path (`features/depth`; a one-segment key under `assets/`)."""
    path = asset_key.path if len(asset_key.path) > 1 else [DEFAULT_PREFIX, *asset_key.path]
    return "/".join(path)


def _partitions(asset_key: dg.AssetKey, keys: list[str]) -> list[Partition]:
    parts = []
    for key in keys:
        day, instrument = parse_partition_key(key)
        exchange, symbol = split_instrument(instrument)
        parts.append(Partition(dataset_of(asset_key), exchange, symbol, day))
    return parts


def _day_column(frame: pd.DataFrame) -> pd.Series:
    """The UTC day of each row (midnight, tz-naive): the `date` column, or else the first timestamp column's."""
    named = [c for c in (DATE_COLUMN, "ts", "minute") if c in frame.columns]
    others = [c for c in frame.columns if pd.api.types.is_datetime64_any_dtype(frame[c]) and c not in named]
    for name in named + others[:1]:
        stamps = pd.to_datetime(frame[name], utc=True)
        if stamps.isna().any():
            raise ValueError(
                f"column `{name}` has missing values: lake_io cannot tell which day those rows belong to"
            )
        return stamps.dt.tz_convert(None).dt.floor("D")
    raise ValueError(
        "a DataFrame that spans several partitions needs a `date` column (every frame lake_io loads has one) "
        "or a timestamp column (`ts`, `minute`, or any datetime column), so lake_io can split it into days"
    )


def split_by_partition(frame: pd.DataFrame, partitions: list[Partition]) -> dict[Partition, pd.DataFrame]:
    """The rows of `frame` for each partition (an empty frame where a partition has none)."""
    if len(partitions) == 1:
        return {partitions[0]: frame}
    if INSTRUMENT_COLUMN in frame.columns:
        instruments = frame[INSTRUMENT_COLUMN]
    elif len({p.instrument for p in partitions}) == 1:
        instruments = pd.Series(partitions[0].instrument, index=frame.index)
    else:
        raise ValueError("a DataFrame that spans several instruments needs its `instrument` column")
    wanted = {(pd.Timestamp(p.day), p.instrument): p for p in partitions}
    if instruments.isna().any():
        raise ValueError("the `instrument` column has missing values: lake_io cannot file those rows")
    days = _day_column(frame)
    groups = dict(list(frame.groupby([days, instruments], sort=False, dropna=False))) if len(frame) else {}
    stray = set(groups) - set(wanted)
    if stray:
        shown = sorted(f"{day:%Y-%m-%d}|{instrument}" for day, instrument in stray)[:5]
        raise ValueError(f"the DataFrame has rows of partitions this run does not materialize: {shown}")
    return {p: groups.get((pd.Timestamp(p.day), p.instrument), frame.iloc[0:0]) for p in partitions}


def _is_polars(kind: object) -> bool:
    """True for polars' DataFrame type (checked by module, so polars stays optional)."""
    return isinstance(kind, type) and kind.__module__.startswith("polars") and kind.__name__ == "DataFrame"


class LakeIOManager(dg.ConfigurableIOManager):
    """Partitions as Parquet in the lake (local or S3), inputs as pandas DataFrames with column selection."""

    lake: LakeResource

    def handle_output(self, context: dg.OutputContext, obj: object) -> None:
        """Store a DataFrame as one file per partition of the run, each replaced whole."""
        if obj is None:
            return
        if _is_polars(type(obj)):
            obj = obj.to_pandas()  # type: ignore[attr-defined]
        if not isinstance(obj, pd.DataFrame):
            raise TypeError(
                f"{context.asset_key.to_user_string()} returned {type(obj).__name__}: lake_io stores pandas "
                "or polars DataFrames (return one, or return None / a MaterializeResult if the asset writes its own "
                "data)"
            )
        if not context.has_asset_partitions:
            raise ValueError(
                f"{context.asset_key.to_user_string()} is not partitioned: lake_io stores one file per "
                "(day, instrument) partition; give the asset partitions_def=tick_assets.definitions.partitions"
            )
        partitions = _partitions(context.asset_key, list(context.asset_partition_keys))
        stored = {
            p: store_frame(self.lake.lake, p, part, self.lake.conversion_options())
            for p, part in split_by_partition(obj, partitions).items()
        }
        rows = sum(s.rows for s in stored.values())
        # Output metadata lands on every partition of the run, so these say "of the run" (per-partition figures
        # come from the asset's own context.add_asset_metadata(partition_key=...)).
        metadata: dict[str, object] = {"lake_files_of_run": len(stored), "rows_stored_by_run": rows}
        if len(stored) == 1:
            (only,) = stored.values()
            metadata.update(
                {
                    "dagster/row_count": only.rows,
                    "parquet_bytes": only.bytes,
                    "path": dg.MetadataValue.path(only.path),
                }
            )
        context.add_output_metadata(figures(metadata))

    def load_input(self, context: dg.InputContext) -> pd.DataFrame:
        """The upstream partitions of this run as one DataFrame (`columns` from the input's metadata): pandas, or
        polars when the input is annotated `polars.DataFrame`."""
        if context.upstream_output is None or not context.has_asset_key:
            raise ValueError("lake_io loads asset inputs only")
        if not context.has_asset_partitions:
            raise ValueError(
                f"{context.asset_key.to_user_string()} is not partitioned: lake_io loads (day, instrument) partitions"
            )
        columns = (context.definition_metadata or {}).get("columns")
        partitions = _partitions(context.asset_key, list(context.asset_partition_keys))
        wants_polars = _is_polars(getattr(context.dagster_type, "typing_type", None))
        with self.lake.connect() as con:
            return read_partitions(self.lake.lake, partitions, columns, con, polars=wants_polars)
