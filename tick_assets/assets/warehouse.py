"""warehouse/raw_views: the `raw` schema of data/warehouse.duckdb, one view per data type over the lake."""

from collections.abc import Sequence
from pathlib import Path

import dagster as dg
from dagster_duckdb import DuckDBResource

from tick_assets.assets.resources import DUCKDB_POOL, LakeResource
from tick_assets.lake import describe_raw_views, ensure_raw_views

#: Refresh after new raw partitions land (once any backfill has finished), and build the views the first time.
REFRESH_VIEWS = (
    (dg.AutomationCondition.missing() | dg.AutomationCondition.any_deps_updated()).since_last_handled()
    & ~dg.AutomationCondition.any_deps_in_progress()
    & ~dg.AutomationCondition.in_progress()
).with_label("refresh after new raw partitions")


def build_raw_views_asset(raw_assets: Sequence[dg.AssetsDefinition]) -> dg.AssetsDefinition:
    """Build the asset that (re)creates `raw.<data_type>` views for every raw asset."""
    data_types = [a.key.path[-1] for a in raw_assets]

    @dg.asset(
        key=["warehouse", "raw_views"],
        deps=list(raw_assets),
        pool=DUCKDB_POOL,
        group_name="warehouse",
        kinds={"duckdb"},
        code_version="views-v1",
        automation_condition=REFRESH_VIEWS,
    )
    def raw_views(
        context: dg.AssetExecutionContext, duckdb: DuckDBResource, lake: LakeResource
    ) -> dg.MaterializeResult:
        """Views `raw.<data_type>` over every lake partition, so `WHERE date BETWEEN ...` spans days."""
        Path(duckdb.database).parent.mkdir(
            parents=True, exist_ok=True
        )  # DuckDB creates the file, not its folder
        with duckdb.get_connection() as con:
            ensure_raw_views(con, lake.root, data_types)
            infos = describe_raw_views(con, lake.root, data_types)
        table = ["| view | partitions | rows | first date | last date |", "|---|---|---|---|---|"]
        table += [
            f"| `{i.name}` | {i.files} | {i.rows:,} | {i.first_date or ''} | {i.last_date or ''} |"
            for i in infos
        ]
        return dg.MaterializeResult(
            metadata={
                "views": dg.MetadataValue.md("\n".join(table)),
                "total_rows": sum(i.rows for i in infos),
                "total_partitions": sum(i.files for i in infos),
                "database": dg.MetadataValue.path(duckdb.database),
            }
        )

    return raw_views
