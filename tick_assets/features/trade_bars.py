"""features/trade_bars: trades aggregated on the grid. Bar t holds the trades received in [t, t + step).

Every trade of the day falls in exactly one bar, so the bars' volume adds up to the day's. Empty bars are
kept (count 0, volume 0, OHLC and VWAP NULL) so the grid lines up with features/depth.
"""

from __future__ import annotations

from pathlib import Path

from tick_assets.features.grid import MICROS_PER_DAY, DaySlice
from tick_assets.lake.schema import sql_string
from tick_assets.lake.store import Lake


def trade_bars_sql(lake: Lake | Path, day: DaySlice) -> str:
    """The query giving one day's trade bars: one row per grid point of the day."""
    return f"""
WITH trades AS (
    SELECT {day.start_us} + ((local_timestamp - {day.start_us}) // {day.step_us}) * {day.step_us} AS t,
           local_timestamp, file_row_number AS n, price, amount, side
    FROM read_parquet({day.lake_file_sql(lake, "raw/trades")}, file_row_number = true)
    WHERE local_timestamp >= {day.start_us} AND local_timestamp < {day.start_us + MICROS_PER_DAY}
      AND {day.rows_sql}
),
bars AS (
    SELECT t,
           arg_min(price, (local_timestamp, n)) AS open,
           max(price) AS high,
           min(price) AS low,
           arg_max(price, (local_timestamp, n)) AS close,
           sum(amount) AS volume,
           sum(price * amount) AS notional,
           count(*) AS trades,
           sum(CASE WHEN side = 'buy' THEN amount ELSE 0 END) AS buy_volume,
           sum(CASE WHEN side = 'sell' THEN amount ELSE 0 END) AS sell_volume
    FROM trades GROUP BY t
),
grid AS ({day.grid_sql()})
SELECT
    {sql_string(day.instrument)} AS instrument,
    make_timestamp(grid.t)::TIMESTAMPTZ AS ts,
    open, high, low, close,
    coalesce(volume, 0) AS volume,
    coalesce(notional, 0) AS notional,
    notional / nullif(volume, 0) AS vwap,
    coalesce(trades, 0) AS trades,
    coalesce(buy_volume, 0) AS buy_volume,
    coalesce(sell_volume, 0) AS sell_volume,
    coalesce(buy_volume, 0) - coalesce(sell_volume, 0) AS signed_volume
FROM grid LEFT JOIN bars USING (t)
ORDER BY grid.t
"""
