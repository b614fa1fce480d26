"""The progress line: its rendering, terminal vs plain output, the only-on-change rule, and backfill states."""

from __future__ import annotations

import io
import logging
import sys

from tick_assets.stack.localstack import backfill_progress
from tick_assets.stack.progress import CLEAR_LINE, Progress, StatusLine, logs_around, render

RUNNING = Progress(
    label="backfill",
    runs_queued=1,
    runs_running=2,
    runs_done=3,
    runs_failed=1,
    partitions_total=66,
    partitions_done=24,
    partitions_in_progress=12,
    partitions_failed=2,
    steps=("features__depth", "raw__trades"),
    elapsed=125.4,
)


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_render_shows_runs_partitions_step_and_elapsed() -> None:
    assert render(RUNNING) == (
        "backfill: runs 3 done (1 failed), 2 running, 1 queued | partitions 24/66, 12 in progress, 2 failed"
        " | step features__depth (+1 more) | 2:05"
    )
    assert render(Progress(runs_total=4, runs_done=1, runs_running=1, partitions_total=40, elapsed=3)) == (
        "runs 1/4 done, 1 running | partitions 0/40 | 0:03"
    )
    assert render(Progress(step_known=False, elapsed=3723)).endswith("| step n/a | 1:02:03")
    # A backfill the daemon has not picked up yet (its tick comes every ~30 s) says so.
    assert render(Progress(partitions_total=8)).startswith("waiting for the daemon to launch runs | ")


def test_plain_output_prints_a_line_per_change_only() -> None:
    out = io.StringIO()
    line = StatusLine(out)  # a StringIO is no terminal
    assert not line.tty
    first = Progress(partitions_total=4, elapsed=1.0)
    line.show(first)
    line.show(Progress(partitions_total=4, elapsed=2.5))  # only the time moved: nothing printed
    line.show(Progress(partitions_total=4, partitions_done=1, elapsed=4.0))
    line.show(Progress(partitions_total=4, partitions_done=1, elapsed=9.0))
    line.close()
    waiting = "waiting for the daemon to launch runs"
    assert out.getvalue() == f"{waiting} | partitions 0/4 | 0:01\n{waiting} | partitions 1/4 | 0:04\n"


def test_terminal_output_redraws_one_line_in_place_and_ends_it() -> None:
    out = _Tty()
    line = StatusLine(out, width=200)
    assert line.tty
    line.show(Progress(runs_total=2, partitions_total=4, elapsed=1.0))
    line.show(Progress(runs_total=2, partitions_total=4, elapsed=1.2))  # the same text: not redrawn
    line.show(Progress(runs_total=2, partitions_total=4, elapsed=2.0))  # the clock moved: redrawn
    line.close()
    assert out.getvalue() == (
        f"{CLEAR_LINE}runs 0/2 done | partitions 0/4 | 0:01{CLEAR_LINE}runs 0/2 done | partitions 0/4 | 0:02\n"
    )
    assert "\n" not in out.getvalue()[:-1]


def test_terminal_line_is_cut_to_the_width_so_it_never_wraps() -> None:
    out = _Tty()
    line = StatusLine(out, width=30)
    line.show(RUNNING)
    assert out.getvalue() == CLEAR_LINE + render(RUNNING)[:29]


def test_close_without_anything_drawn_writes_nothing() -> None:
    out = _Tty()
    StatusLine(out).close()
    assert out.getvalue() == ""


def test_a_broken_stream_never_raises(caplog) -> None:
    class Broken(io.StringIO):
        def write(self, _: str) -> int:
            raise OSError("closed pipe")

    line = StatusLine(Broken(), tty=False)
    with caplog.at_level(logging.WARNING):
        line.show(RUNNING)
        line.show(Progress())
    assert sum("progress display failed" in r.message for r in caplog.records) == 1


def test_logs_around_keep_the_status_line_last(monkeypatch) -> None:
    screen = _Tty()
    monkeypatch.setattr(sys, "stderr", screen)
    line = StatusLine(screen, width=200)
    with logs_around(line):
        line.show(Progress(elapsed=1))
        print("a log line", file=sys.stderr)
    line.close()
    status = "waiting for the daemon to launch runs | partitions 0/0 | 0:01"
    assert screen.getvalue() == f"{CLEAR_LINE}{status}{CLEAR_LINE}a log line\n{CLEAR_LINE}{status}\n"
    assert sys.stderr is screen


def test_backfill_progress_from_a_polled_state() -> None:
    state = {
        "status": "REQUESTED",
        "runs": [
            {"id": "a", "status": "SUCCESS", "stats": {"materializations": 20}},
            {"id": "b", "status": "FAILURE", "stats": {"materializations": 2}},
            {"id": "c", "status": "STARTED", "stats": {"materializations": 5}},
            {"id": "d", "status": "QUEUED", "stats": {}},
        ],
        "unfinishedRuns": [
            {"id": "c", "stepStats": [{"stepKey": "raw__trades", "status": "IN_PROGRESS"}]},
            {"id": "d", "stepStats": []},
        ],
        "assetBackfillData": {
            "assetBackfillStatuses": [
                {
                    "__typename": "AssetPartitionsStatusCounts",
                    "numPartitionsTargeted": 30,
                    "numPartitionsInProgress": 8,
                    "numPartitionsMaterialized": 20,
                    "numPartitionsFailed": 2,
                },
                {
                    "__typename": "AssetPartitionsStatusCounts",
                    "numPartitionsTargeted": 10,
                    "numPartitionsInProgress": 10,
                    "numPartitionsMaterialized": 0,
                    "numPartitionsFailed": 0,
                },
                {"__typename": "UnpartitionedAssetStatus", "inProgress": True},
            ]
        },
    }
    p = backfill_progress(state, elapsed=42)
    # The daemon has seen 20 partitions; the runs' own counts are live (27), so 27 are done.
    assert (p.partitions_done, p.partitions_total, p.partitions_in_progress, p.partitions_failed) == (
        27,
        40,
        11,
        2,
    )
    assert (p.runs_done, p.runs_failed, p.runs_running, p.runs_queued) == (2, 1, 1, 1)
    assert p.steps == ("raw__trades",)
    assert backfill_progress({"status": "REQUESTED"}, 0) == Progress(label="backfill")
