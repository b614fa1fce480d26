"""Sensors: new Tardis days (`tardis_daily_exports`) and runs whose worker died (`dead_run_workers`)."""
