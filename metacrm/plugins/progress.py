"""Progress of a long command (`metacrm demo`): a bar redrawn in place, with the rate and the
time left, on a terminal; a plain line every tenth of the way in a log or a pipe, where a
redrawn bar would be noise."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TextIO

from metacrm.plugins.model import Progress

WIDTH = 30
# A terminal bar is redrawn at most this often (seconds); drawing costs more than a step.
REDRAW = 0.1
LINES = 10


def bar(done: int, total: int, width: int = WIDTH) -> str:
    filled = width if total <= 0 else min(width, done * width // total)
    return "[" + "#" * filled + "-" * (width - filled) + "]"


def status(done: int, total: int, elapsed: float) -> str:
    """`52% 10,400/20,000, 412/s, 23 s left` (the rate and time left once known)."""
    percent = 100 if total <= 0 else min(100, done * 100 // total)
    text = f"{percent:3d}% {done:,}/{total:,}"
    if elapsed > 0 and done > 0:
        rate = done / elapsed
        text += f", {rate:,.0f}/s"
        if done < total:
            text += f", {_duration((total - done) / rate)} left"
    return text


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    return f"{seconds // 60} min {seconds % 60:02d} s" if seconds >= 60 else f"{seconds} s"


class _Counting:
    def __init__(self, stream: TextIO, clock: Callable[[], float]) -> None:
        self.stream, self.clock = stream, clock
        self.total = self.done = 0
        self.began = 0.0

    def start(self, total: int) -> None:
        self.total, self.done, self.began = total, 0, self.clock()

    @property
    def elapsed(self) -> float:
        return self.clock() - self.began


class TerminalBar(_Counting):
    def __init__(self, stream: TextIO, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(stream, clock)
        self.drawn = float("-inf")

    def start(self, total: int) -> None:
        super().start(total)
        self._draw()

    def advance(self, steps: int = 1) -> None:
        self.done += steps
        if self.clock() - self.drawn >= REDRAW:
            self._draw()

    def finish(self) -> None:
        self._draw()
        self.stream.write("\n")
        self.stream.flush()

    def _draw(self) -> None:
        self.drawn = self.clock()
        line = f"{bar(self.done, self.total)} {status(self.done, self.total, self.elapsed)}"
        # Padded so a shorter line wipes the end of the longer one before it.
        self.stream.write(f"\r{line:<78}")
        self.stream.flush()


class LogLines(_Counting):
    def __init__(self, stream: TextIO, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(stream, clock)
        self.reported = 0

    def start(self, total: int) -> None:
        super().start(total)
        self.reported = 0

    def advance(self, steps: int = 1) -> None:
        self.done += steps
        tenth = LINES if self.total <= 0 else self.done * LINES // self.total
        if tenth > self.reported and self.done < self.total:
            self.reported = tenth
            self._line()

    def finish(self) -> None:
        self._line()

    def _line(self) -> None:
        self.stream.write(f"progress: {status(self.done, self.total, self.elapsed)}\n")
        self.stream.flush()


def progress_for(stream: TextIO) -> Progress:
    return TerminalBar(stream) if stream.isatty() else LogLines(stream)
