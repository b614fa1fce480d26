"""tick-assets: Tardis.dev historical market data as daily-partitioned Dagster assets."""

__version__ = "0.1.0"
