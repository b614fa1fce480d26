"""The fixed UTC time grid shared by depth features and trade bars."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from tick_assets.lake.datasets import Partition
from tick_assets.lake.schema import sql_string
from tick_assets.lake.store import Lake, as_lake
from tick_assets.tardis.exchanges import is_grouped

MICROS_PER_DAY = 86_400_000_000


@dataclass(frozen=True)
class DaySlice:
    """One (exchange, symbol, UTC day) partition and its grid step."""

    exchange: str
    symbol: str
    day: dt.date
    step_ms: int = 1000

    def __post_init__(self) -> None:
        if self.step_ms <= 0 or 86_400_000 % self.step_ms:
            raise ValueError(
                f"grid step {self.step_ms} ms must be positive and divide a day (e.g. 100, 1000, 60000)"
            )

    @property
    def instrument(self) -> str:
        """The instrument partition key, `exchange:SYMBOL`."""
        return f"{self.exchange}:{self.symbol}"

    @property
    def grouped(self) -> bool:
        """A grouped dataset (e.g. `binance:SPOT`): its rows belong to many instruments, so no grid of one."""
        return is_grouped(self.symbol)

    @property
    def rows_sql(self) -> str:
        """The condition a raw row must meet to count: every row of an instrument, none of a group (an empty
        grid, rather than bars or books that mix instruments)."""
        return "false" if self.grouped else "true"

    @property
    def start_us(self) -> int:
        """00:00 UTC of the day in epoch microseconds."""
        return (
            int(dt.datetime(self.day.year, self.day.month, self.day.day, tzinfo=dt.timezone.utc).timestamp())
            * 1_000_000
        )

    @property
    def step_us(self) -> int:
        """The grid step in microseconds."""
        return self.step_ms * 1000

    def grid_sql(self) -> str:
        """SELECT of the grid times t (epoch us) of the day: 00:00, 00:00+step, ..., the last point before 24:00."""
        return (
            f"SELECT range AS t FROM range({self.start_us}, {self.start_us + MICROS_PER_DAY}, {self.step_us})"
        )

    def partition(self, dataset: str) -> Partition:
        """This slice's partition of a lake dataset (`raw/trades`, `features/depth`, ...)."""
        return Partition(dataset, self.exchange, self.symbol, self.day)

    def lake_file_sql(self, lake: Lake | Path, dataset: str) -> str:
        """The quoted path of this slice's partition of a lake dataset; PartitionMissingError if it is not there."""
        return sql_string(
            as_lake(lake).require(
                self.partition(dataset).relpath,
                f"materialize {dataset} for {self.day} {self.instrument} first",
            )
        )
