"""Rebuild the book of an incremental_book_L2 stream and sample it: the driver of the compiled kernel.

`BookReplay` holds one book; `feed` it chunks of rows in file order, then `finish`. `replay_lake_file` streams a
lake partition through it in record batches, so memory is bounded by the book and the samples, not the day.
No Dagster imports: a notebook can call these directly.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from tick_assets.book import kernel
from tick_assets.lake.schema import sql_string

#: Bands around the mid (bps) whose depth is summed over the whole book.
DEFAULT_BANDS_BPS: tuple[int, ...] = (5, 10, 25, 50, 100)
DEFAULT_DEPTH = 50
#: Rows per record batch read from the lake: ~40 MB of columns, however large the day.
BATCH_ROWS = 1_000_000


class BookReplayError(ValueError):
    """The rows cannot be replayed into a book (out of order, or no snapshot at all)."""


@dataclass
class BookStats:
    """What a replay saw, for checks and metadata."""

    rows: int
    messages: int
    pre_snapshot_rows: int
    snapshots: int
    absent_deletes: int
    invalid_rows: int
    crossed_us: int
    locked_us: int

    @property
    def resnapshots(self) -> int:
        """Snapshots after the first one (reconnects)."""
        return max(0, self.snapshots - 1)


@dataclass
class BookSamples:
    """The book at each sample time: arrays indexed by sample (side 0 = bids, 1 = asks, level 0 = best)."""

    sample_ts: np.ndarray  # (S,) int64 epoch microseconds
    top_price: np.ndarray  # (S, 2, depth) float64, NaN past the book's levels
    top_size: np.ndarray  # (S, 2, depth)
    band_depth: np.ndarray  # (S, 2, len(bands_bps)) size within each band of the mid, whole book
    levels: np.ndarray  # (S, 2) int64 levels per side, -1 before the first snapshot
    last_ts: (
        np.ndarray
    )  # (S,) int64 local_timestamp of the last message applied, -1 before the first snapshot
    messages: np.ndarray  # (S,) int64 messages applied up to the sample
    bands_bps: tuple[int, ...]
    stats: BookStats = field(repr=False, default=None)  # type: ignore[assignment]

    @property
    def has_book(self) -> np.ndarray:
        """Per sample: was there a book (a snapshot applied at or before the sample time)."""
        return self.levels[:, 0] >= 0


class BookReplay:
    """One order book rebuilt from incremental_book_L2 rows fed in file order, sampled at `sample_ts`."""

    def __init__(
        self,
        sample_ts: Sequence[int] | np.ndarray,
        depth: int = DEFAULT_DEPTH,
        bands_bps: Sequence[int] = DEFAULT_BANDS_BPS,
        capacity: int = 4096,
    ) -> None:
        if depth < 1:
            raise ValueError(f"depth must be at least 1 level, got {depth}")
        samples = np.ascontiguousarray(sample_ts, dtype=np.int64)
        if samples.size and np.any(np.diff(samples) < 0):
            raise ValueError("sample times must be in ascending order")
        self.bands_bps = tuple(sorted(int(b) for b in bands_bps))
        self._bands = np.array([b / 1e4 for b in self.bands_bps], dtype=np.float64)
        s = samples.size
        self.sample_ts = samples
        self.top_price = np.full((s, 2, depth), np.nan)
        self.top_size = np.full((s, 2, depth), np.nan)
        self.band_depth = np.full((s, 2, len(self.bands_bps)), np.nan)
        self.levels = np.full((s, 2), -1, dtype=np.int64)
        self.last_ts = np.full(s, -1, dtype=np.int64)
        self.messages = np.zeros(s, dtype=np.int64)
        self.keys = np.zeros((2, capacity))
        self.sizes = np.zeros((2, capacity))
        self.counts = np.zeros(2, dtype=np.int64)
        self.state = kernel.new_state()
        self._rows_seen = 0
        self._finished = False

    def account_until(self, end_ts: int) -> None:
        """Count crossed/locked time only up to `end_ts` (the end of the day), also for rows received after it."""
        self.state[kernel.ACCOUNT_END] = int(end_ts)

    def _outputs(self) -> tuple:
        return (self.top_price, self.top_size, self.band_depth, self.levels, self.last_ts, self.messages)

    def feed(
        self,
        local_ts: np.ndarray,
        is_snapshot: np.ndarray,
        is_ask: np.ndarray,
        price: np.ndarray,
        amount: np.ndarray,
    ) -> None:
        """Apply one chunk of rows (the next rows of the file, in order)."""
        if self._finished:
            raise RuntimeError("this replay is finished")
        arrays = [
            np.ascontiguousarray(local_ts, dtype=np.int64),
            np.ascontiguousarray(is_snapshot, dtype=np.bool_),
            np.ascontiguousarray(is_ask, dtype=np.bool_),
            np.ascontiguousarray(price, dtype=np.float64),
            np.ascontiguousarray(amount, dtype=np.float64),
        ]
        start = 0
        while True:
            book = (self.keys, self.sizes, self.counts)
            code, row = kernel.run(
                *arrays, start, book, self.state, self.sample_ts, self._bands, self._outputs()
            )
            if code == kernel.DONE:
                break
            if code == kernel.BACKWARDS:
                at = self._rows_seen + row
                raise BookReplayError(
                    f"local_timestamp goes backwards at row {at:,} ({arrays[0][row]} after "
                    f"{self.state[kernel.CURRENT_TS]}): incremental_book_L2 rows must be in file order "
                    "(Tardis sorts them by local_timestamp); re-download the day or report it to Tardis"
                )
            self._grow()
            start = row
        self._rows_seen += arrays[0].shape[0]

    def _grow(self) -> None:
        capacity = self.keys.shape[1] * 2
        keys, sizes = np.zeros((2, capacity)), np.zeros((2, capacity))
        keys[:, : self.keys.shape[1]] = self.keys
        sizes[:, : self.sizes.shape[1]] = self.sizes
        self.keys, self.sizes = keys, sizes

    def stats(self) -> BookStats:
        """What the replay saw so far."""
        s = self.state
        return BookStats(
            rows=int(s[kernel.ROWS]),
            messages=int(s[kernel.MESSAGES]),
            pre_snapshot_rows=int(s[kernel.PRE_SNAPSHOT_ROWS]),
            snapshots=int(s[kernel.SNAPSHOTS]),
            absent_deletes=int(s[kernel.ABSENT_DELETES]),
            invalid_rows=int(s[kernel.INVALID_ROWS]),
            crossed_us=int(s[kernel.CROSSED_US]),
            locked_us=int(s[kernel.LOCKED_US]),
        )

    def finish(self, end_ts: int | None = None, require_snapshot: bool = True) -> BookSamples:
        """Take the remaining samples (the final book) and return them; crossed/locked time runs to `end_ts`.

        A stream with rows but no snapshot cannot give a book: BookReplayError unless `require_snapshot` is off."""
        if not self._finished:
            if end_ts is not None:
                self.account_until(min(int(end_ts), int(self.state[kernel.ACCOUNT_END])))
            end = int(end_ts) if end_ts is not None else int(self.state[kernel.CURRENT_TS])
            book = (self.keys, self.sizes, self.counts)
            kernel.finish(book, self.state, self.sample_ts, self._bands, self._outputs(), end)
            self._finished = True
        stats = self.stats()
        if require_snapshot and self._rows_seen and stats.snapshots == 0:
            raise BookReplayError(
                f"no snapshot in {self._rows_seen:,} incremental_book_L2 rows: the book cannot be rebuilt without "
                "one (Tardis starts each day with a snapshot; this file may be cut or not a full day). "
                "Re-download the day, or check that the exchange publishes snapshots for it."
            )
        return BookSamples(
            self.sample_ts,
            self.top_price,
            self.top_size,
            self.band_depth,
            self.levels,
            self.last_ts,
            self.messages,
            self.bands_bps,
            stats,
        )

    def book(self) -> tuple[np.ndarray, np.ndarray]:
        """The whole current book: (bids, asks), each an (n, 2) array of price and size, best level first."""
        nb, na = int(self.counts[kernel.BID]), int(self.counts[kernel.ASK])
        bids = np.column_stack([self.keys[0, :nb][::-1], self.sizes[0, :nb][::-1]])
        asks = np.column_stack([-self.keys[1, :na][::-1], self.sizes[1, :na][::-1]])
        return bids, asks


#: The columns the kernel reads, as DuckDB gives them from a lake incremental_book_L2 file (a side that is neither
#: 'bid' nor 'ask' reads as NULL).
L2_COLUMNS_SQL = "local_timestamp, is_snapshot, CASE side WHEN 'ask' THEN true WHEN 'bid' THEN false END AS is_ask, price, amount"


def _continue_previous(values: np.ndarray, missing: np.ndarray, before: bool) -> np.ndarray:
    """`values` with each missing entry taken from the entry before it (`before` ahead of the first)."""
    index = np.where(missing, -1, np.arange(values.size))
    np.maximum.accumulate(index, out=index)
    return np.where(index < 0, before, values[np.maximum(index, 0)])


def feed_batches(replay: BookReplay, batches: Iterable[pa.RecordBatch]) -> None:
    """Feed record batches of L2_COLUMNS_SQL to a replay. A row without a side or is_snapshot is invalid (counted
    and skipped, like a missing price, and neither starting nor ending a snapshot); one without a local_timestamp
    cannot be placed: BookReplayError."""
    for batch in batches:
        if batch.num_rows == 0:
            continue
        local_ts, is_snapshot, is_ask, price, amount = (batch.column(i) for i in range(5))
        if local_ts.null_count:
            row = replay._rows_seen + int(np.flatnonzero(np.asarray(local_ts.is_null()))[0])
            raise BookReplayError(
                f"incremental_book_L2 row {row:,} has no local_timestamp: the row cannot be placed in the stream; "
                "re-download the day (the file may be damaged) or report it to Tardis"
            )
        snapshot = is_snapshot.to_numpy(zero_copy_only=False)
        if is_snapshot.null_count or is_ask.null_count or price.null_count or amount.null_count:
            unusable = pc.or_(pc.is_null(is_snapshot), pc.is_null(is_ask))
            price = pc.if_else(unusable, pa.scalar(None, price.type), price).fill_null(np.nan)
            amount, is_ask = amount.fill_null(np.nan), is_ask.fill_null(False)
            # an unknown is_snapshot continues the previous row's run, so it cannot split or start a snapshot
            missing = np.asarray(is_snapshot.is_null())
            before = bool(replay.state[kernel.PREV_SNAPSHOT])
            snapshot = _continue_previous(np.asarray(is_snapshot.fill_null(False)), missing, before)
        replay.feed(
            local_ts.to_numpy(zero_copy_only=False),
            snapshot,
            *(c.to_numpy(zero_copy_only=False) for c in (is_ask, price, amount)),
        )


def replay_lake_file(
    con: duckdb.DuckDBPyConnection,
    uri: str,
    replay: BookReplay,
    end_ts: int | None = None,
    require_snapshot: bool = True,
) -> BookSamples:
    """Stream one lake incremental_book_L2 file (local or remote, `con` prepared for it) through `replay`."""
    if end_ts is not None:
        replay.account_until(end_ts)
    query = f"SELECT {L2_COLUMNS_SQL} FROM read_parquet({sql_string(uri)})"
    reader = con.sql(query).to_arrow_reader(BATCH_ROWS)
    feed_batches(replay, reader)
    return replay.finish(end_ts, require_snapshot)
