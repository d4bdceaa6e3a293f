"""Progress of long stages (listing, hashing, scanning, writing, verifying, unpacking...):
a counter per stage, with a count, a rate and an ETA. The core only counts; a display the
CLI installs (`set_display`; repro.report.terminal draws a rich bar on a terminal, a plain
line on stderr every few seconds otherwise) shows it. Without one (the library, --json)
nothing is drawn and `advance` does nothing.

    with progress.meter("hashing", total=len(paths), unit="files") as m:
        for path in paths:
            ...
            m.advance()

`advance` only adds to a counter (cheap enough per file, from any thread); the display
reads it from its own thread.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager

Display = Callable[["Meter"], AbstractContextManager[None]]
"""Draws a meter while its stage runs (entered at the start, left at the end)."""

_display: Display | None = None


def set_display(display: Display | None) -> None:
    """Show every stage's meter with `display` from now on (None: show nothing)."""
    global _display
    _display = display


def _eta(seconds: float) -> str:
    seconds = max(0, int(seconds))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


class Meter:
    """One stage's counter; drawn by `meter`'s thread while the stage runs."""

    def __init__(self, label: str, total: int | None, unit: str) -> None:
        self.label = label
        self.total = total
        self.unit = unit
        self.done = 0
        self.started = time.monotonic()

    def advance(self, n: int = 1) -> None:
        self.done += n

    def line(self) -> str:
        """`hashing: 12,000/100,000 files, 2,400 files/s, ETA 0:00:32`."""
        elapsed = max(time.monotonic() - self.started, 1e-9)
        rate = self.done / elapsed
        count = f"{self.done:,}" + (f"/{self.total:,}" if self.total is not None else "")
        text = f"{self.label}: {count} {self.unit}, {rate:,.0f} {self.unit}/s"
        if self.total is not None and rate > 0:
            text += f", ETA {_eta((self.total - self.done) / rate)}"
        return text


class _Silent(Meter):
    def advance(self, n: int = 1) -> None:
        pass


@contextmanager
def meter(label: str, total: int | None = None, unit: str = "files") -> Iterator[Meter]:
    """A Meter for the stage in the `with` block (a silent one with no display)."""
    display = _display
    if display is None:
        yield _Silent(label, total, unit)
        return
    m = Meter(label, total, unit)
    with display(m):
        yield m
