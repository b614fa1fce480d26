"""Waits on futures that still let Ctrl-C or a run termination raise in the main thread.

The kernel may hand a process-wide SIGINT/SIGTERM to any thread of the process; Python runs the handler in the
main thread only when it next executes bytecode, and a wait with no timeout (`as_completed`, `Future.result()`,
`Executor.map`) never gets there: the process would hang on stalled downloads. These waits wake every
WAKE_SECONDS, so a signal taken by any thread raises in the caller within that time.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, wait
from typing import TypeVar

T = TypeVar("T")

#: How often a waiting caller wakes: the longest a signal taken by another thread waits for its handler.
WAKE_SECONDS = 0.5


def as_completed_waking(futures: Iterable[Future]) -> Iterator[Future]:
    """The futures as they finish (like `as_completed`), waking every WAKE_SECONDS."""
    pending = set(futures)
    while pending:
        done, pending = wait(pending, timeout=WAKE_SECONDS, return_when=FIRST_COMPLETED)
        yield from done


def result_waking(future: Future[T]) -> T:
    """The future's result (like `future.result()`), waking every WAKE_SECONDS."""
    while True:
        try:
            return future.result(timeout=WAKE_SECONDS)
        except TimeoutError:
            continue
