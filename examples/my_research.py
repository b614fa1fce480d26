"""A researcher's own code location: every tick_assets asset plus one of yours (run: dagster dev -f this file)."""

import dagster as dg
import pandas as pd

import tick_assets.definitions as tick


@dg.asset(
    key_prefix="signals",
    partitions_def=tick.partitions,  # UTC day x instrument, as configured
    io_manager_key="lake_io",  # inputs come from the lake, the returned frame lands there, a file per partition
    ins={"depth": dg.AssetIn(["features", "depth"], metadata={"columns": ["ts", "mid", "imbalance_5"]})},
)
def imbalance_signal(depth: pd.DataFrame) -> pd.DataFrame:
    """Level-5 book imbalance against the mid's move over the next 10 grid points, in bps."""
    later = depth.groupby(["instrument", "date"])["mid"].shift(-10)
    return depth.assign(move_bps=(later / depth["mid"] - 1) * 1e4)


defs = dg.Definitions.merge(tick.defs, dg.Definitions(assets=[imbalance_signal]))
