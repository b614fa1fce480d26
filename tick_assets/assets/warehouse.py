"""warehouse/views: data/warehouse.duckdb, a catalog of views over every lake dataset (raw, features, analytics)."""

from collections.abc import Sequence

import dagster as dg

from tick_assets.assets.io_manager import dataset_of
from tick_assets.assets.resources import LakeResource
from tick_assets.lake.warehouse import catalog_datasets, describe_views, open_catalog, publish_catalog

VIEWS_KEY = dg.AssetKey(["warehouse", "views"])

#: Refresh after new partitions land (once any backfill has finished), and build the catalog the first time.
REFRESH_VIEWS = (
    (dg.AutomationCondition.missing() | dg.AutomationCondition.any_deps_updated()).since_last_handled()
    & ~dg.AutomationCondition.any_deps_in_progress()
    & ~dg.AutomationCondition.in_progress()
).with_label("refresh after new partitions")


def build_views_asset(partitioned: Sequence[dg.AssetsDefinition]) -> dg.AssetsDefinition:
    """Build the asset that republishes the catalog: one view per lake dataset, in schemas raw/features/analytics."""
    datasets = [dataset_of(key) for a in partitioned for key in a.keys]

    @dg.asset(
        key=VIEWS_KEY,
        deps=list(partitioned),
        group_name="warehouse",
        kinds={"duckdb"},
        code_version="views-v2",
        automation_condition=REFRESH_VIEWS,
    )
    def views(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
        """Views `raw.<data_type>`, `features.<name>`, `analytics.<name>` (and any other lake dataset) over every
        partition file, swapped in as a new file: readers holding the old one are never blocked."""
        aborted = getattr(lake.lake, "abort_stale_uploads", lambda: 0)()  # S3: dead writers' uploads
        if aborted:
            context.log.info(f"aborted {aborted} incomplete uploads of writers that died over a day ago")
        every = catalog_datasets(lake.lake, datasets=datasets)
        publish_catalog(lake.warehouse, lake.lake, every)
        with open_catalog(lake.warehouse, lake.lake) as con:
            infos = describe_views(con, lake.lake, every)
        table = ["| view | partitions | rows | first date | last date |", "|---|---|---|---|---|"]
        table += [
            f"| `{i.name}` | {i.files} | {i.rows:,} | {i.first_date or ''} | {i.last_date or ''} |"
            for i in infos
        ]
        context.log.info(f"{len(infos)} views over {lake.lake.url}")
        return dg.MaterializeResult(
            metadata={
                "views": dg.MetadataValue.md("\n".join(table)),
                "total_rows": sum(i.rows for i in infos),
                "total_partitions": sum(i.files for i in infos),
                "database": dg.MetadataValue.path(str(lake.warehouse)),
                "lake": lake.lake.url,
            }
        )

    return views
