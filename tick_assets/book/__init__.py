"""The order book rebuilt from incremental_book_L2: a compiled kernel, its driver and a plain-Python oracle.
No Dagster imports."""

from tick_assets.book.replay import BookReplay, BookReplayError, BookSamples, BookStats, replay_lake_file

__all__ = ["BookReplay", "BookReplayError", "BookSamples", "BookStats", "replay_lake_file"]
