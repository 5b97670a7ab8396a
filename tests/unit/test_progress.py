"""Progress of a long command: the bar and its status text, redrawn in place on a terminal at
most every tenth of a second, and a plain line per tenth of the way elsewhere."""

from __future__ import annotations

import io

from metacrm.plugins.progress import LogLines, TerminalBar, bar, progress_for, status


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_bar_fills_with_the_work_done() -> None:
    assert bar(0, 200, width=10) == "[----------]"
    assert bar(100, 200, width=10) == "[#####-----]"
    assert bar(250, 200, width=10) == "[##########]"
    assert bar(0, 0, width=4) == "[####]"


def test_the_status_says_how_far_how_fast_and_how_long_is_left() -> None:
    assert status(0, 20_000, 0.0) == "  0% 0/20,000"
    assert status(10_400, 20_000, 26.0) == " 52% 10,400/20,000, 400/s, 24 s left"
    assert status(2_000, 20_000, 10.0) == " 10% 2,000/20,000, 200/s, 1 min 30 s left"
    assert status(20_000, 20_000, 50.0) == "100% 20,000/20,000, 400/s"


def test_a_terminal_bar_is_redrawn_in_place_at_most_ten_times_a_second() -> None:
    out, clock = io.StringIO(), Clock()
    progress = TerminalBar(out, clock)
    progress.start(1000)
    for _ in range(500):
        progress.advance()  # no time passes: no redraw
    clock.now += 0.5
    progress.advance()
    progress.finish()
    frames = out.getvalue().split("\r")[1:]
    assert len(frames) == 3
    assert frames[0].startswith("[------------------------------]   0% 0/1,000")
    assert frames[1].startswith("[###############---------------]  50% 501/1,000, 1,002/s")
    assert frames[-1].rstrip(" \n").endswith("50% 501/1,000, 1,002/s, 0 s left")
    assert out.getvalue().endswith("\n") and out.getvalue().count("\n") == 1


def test_a_log_gets_a_line_per_tenth_of_the_way() -> None:
    out, clock = io.StringIO(), Clock()
    progress = LogLines(out, clock)
    progress.start(200)
    for _ in range(200):
        clock.now += 0.01
        progress.advance()
    progress.finish()
    lines = out.getvalue().splitlines()
    assert len(lines) == 10
    assert lines[0] == "progress:  10% 20/200, 100/s, 2 s left"
    assert lines[-1] == "progress: 100% 200/200, 100/s"


def test_a_terminal_gets_the_bar_and_anything_else_the_lines() -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    assert isinstance(progress_for(Terminal()), TerminalBar)
    assert isinstance(progress_for(io.StringIO()), LogLines)
