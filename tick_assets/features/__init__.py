"""Features from the lake: depth on a fixed UTC grid and trade bars on the same grid. No Dagster imports."""
