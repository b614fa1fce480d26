"""Progress of a backfill or of a series of ranged runs: a small state, its one-line rendering, and a status line.

`Progress` and `render` are pure (no Dagster, no I/O). `StatusLine` shows successive states on a stream: on a
terminal it redraws one line in place (carriage return + ANSI clear line, a final newline on `close`); anywhere
else it prints a plain line per change, ignoring the elapsed time, so logs stay short.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import shutil
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TextIO

log = logging.getLogger(__name__)

#: ANSI: back to column 0 and clear the line.
CLEAR_LINE = "\r\x1b[2K"


@dataclass(frozen=True)
class Progress:
    """What a backfill (or a series of in-process ranged runs) has done so far."""

    label: str = ""
    runs_total: int | None = None  # known for `tick-assets materialize`; a backfill launches runs as it goes
    runs_queued: int = 0
    runs_running: int = 0
    runs_done: int = 0
    runs_failed: int = 0  # of runs_done
    partitions_total: int = 0  # asset partitions of the requested set
    partitions_done: int = 0
    partitions_in_progress: int = 0
    partitions_failed: int = 0
    steps: tuple[str, ...] = ()  # steps in progress
    elapsed: float = 0.0
    step_known: bool = True  # False where the step in progress cannot be had

    def changed_from(self, other: Progress | None) -> bool:
        """Whether anything but the elapsed time differs from `other`."""
        return other is None or dataclasses.replace(self, elapsed=other.elapsed) != other


def _elapsed(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes // 60}:{minutes % 60:02d}:{secs:02d}" if minutes >= 60 else f"{minutes}:{secs:02d}"


def render(p: Progress) -> str:
    """One line: runs, partitions done of the total, the step in progress, elapsed time."""
    runs = (
        f"runs {p.runs_done}/{p.runs_total} done" if p.runs_total is not None else f"runs {p.runs_done} done"
    )
    if p.runs_total is None and not (p.runs_done or p.runs_running or p.runs_queued):
        runs = "waiting for the daemon to launch runs"  # its backfill tick comes every ~30 s
    if p.runs_failed:
        runs += f" ({p.runs_failed} failed)"
    if p.runs_running:
        runs += f", {p.runs_running} running"
    if p.runs_queued:
        runs += f", {p.runs_queued} queued"
    parts = f"partitions {p.partitions_done}/{p.partitions_total}"
    if p.partitions_in_progress:
        parts += f", {p.partitions_in_progress} in progress"
    if p.partitions_failed:
        parts += f", {p.partitions_failed} failed"
    fields = [runs, parts]
    if p.steps:
        more = f" (+{len(p.steps) - 1} more)" if len(p.steps) > 1 else ""
        fields.append(f"step {p.steps[0]}{more}")
    elif not p.step_known:
        fields.append("step n/a")
    fields.append(_elapsed(p.elapsed))
    line = " | ".join(fields)
    return f"{p.label}: {line}" if p.label else line


class StatusLine:
    """Shows successive `Progress` states: redrawn in place on a terminal, one plain line per change otherwise."""

    def __init__(
        self, stream: TextIO | None = None, tty: bool | None = None, width: int | None = None
    ) -> None:
        self.stream = stream if stream is not None else sys.stdout
        if tty is None:
            isatty = getattr(self.stream, "isatty", None)
            tty = bool(isatty and isatty())
        self.tty = tty
        self.width = width
        self._last: Progress | None = None
        self._drawn = ""  # the text on the terminal's current line (tty only)
        self._lock = threading.RLock()
        self._failed = False

    def _columns(self) -> int:
        return self.width or shutil.get_terminal_size(fallback=(120, 24)).columns

    def show(self, progress: Progress) -> None:
        """Draw `progress`; never raises (a broken progress display must not break the run)."""
        try:
            with self._lock:
                if self.tty:
                    # Longer than the terminal, the line would wrap and `\r` could not redraw it.
                    text = render(progress)[: max(self._columns() - 1, 10)]
                    if text != self._drawn:
                        self.stream.write(CLEAR_LINE + text)
                        self.stream.flush()
                        self._drawn = text
                elif progress.changed_from(self._last):
                    self.stream.write(render(progress) + "\n")
                    self.stream.flush()
                self._last = progress
        except Exception:
            if not self._failed:  # log once, then stay quiet
                self._failed = True
                log.warning("progress display failed; the run goes on", exc_info=True)

    def clear(self) -> None:
        """Wipe the drawn line (tty) so other output can take its place; `redraw` puts it back."""
        with self._lock:
            if self.tty and self._drawn:
                self.stream.write(CLEAR_LINE)
                self.stream.flush()
                self._drawn = ""

    def redraw(self) -> None:
        """Draw the last state again (after `clear`)."""
        with self._lock:
            if self.tty and self._last is not None:
                self.show(self._last)

    def close(self) -> None:
        """End the status line: on a terminal, keep the last state and move to the next line."""
        with self._lock:
            if self.tty and self._drawn:
                with contextlib.suppress(Exception):
                    self.stream.write("\n")
                    self.stream.flush()
            self._drawn = ""

    def __enter__(self) -> StatusLine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _AroundStatusLine:
    """A text stream that clears the status line before each write and redraws it after a full line."""

    def __init__(self, target: TextIO, line: StatusLine) -> None:
        self._target = target
        self._line = line

    def write(self, text: str) -> int:
        """Write `text` below or instead of the status line, then draw the line again."""
        with self._line._lock:
            self._line.clear()
            n = self._target.write(text)
            self._target.flush()
            if text.endswith("\n"):
                self._line.redraw()
        return n

    def __getattr__(self, name: str) -> object:
        return getattr(self._target, name)


@contextlib.contextmanager
def logs_around(line: StatusLine) -> Iterator[None]:
    """While inside, stderr writes (Dagster's console log, `logging` to stderr) keep the tty status line last."""
    if not line.tty:
        yield
        return
    original = sys.stderr
    proxy = _AroundStatusLine(original, line)
    handlers = [
        h
        for h in logging.getLogger().handlers
        if isinstance(h, logging.StreamHandler) and getattr(h, "stream", None) is original
    ]
    sys.stderr = proxy  # type: ignore[assignment]
    for h in handlers:
        h.setStream(proxy)  # type: ignore[arg-type]
    try:
        yield
    finally:
        for h in handlers:
            h.setStream(original)
        sys.stderr = original


@contextlib.contextmanager
def ticking(line: StatusLine, current: Callable[[], Progress], interval: float = 1.0) -> Iterator[None]:
    """While inside, show `current()` every `interval` seconds (the elapsed time moves between events)."""
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(interval):
            try:
                line.show(current())
            except Exception:
                log.warning("progress: could not read the current state", exc_info=True)

    thread = threading.Thread(target=loop, name="progress", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
