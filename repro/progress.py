"""Progress of long stages (listing, hashing, scanning, writing, verifying, unpacking...),
with a count, a rate and an ETA, on stderr: a rich bar on a terminal, a plain line every few
seconds otherwise. Off unless a command turns it on (`enable`), so the library and --json
stay silent; nothing ever goes to stdout.

    with progress.meter("hashing", total=len(paths), unit="files") as m:
        for path in paths:
            ...
            m.advance()

`advance` only adds to a counter (cheap enough per file, from any thread); a background
thread draws. A stage shorter than `DELAY_S` draws nothing.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Any

DELAY_S = 1.0
"""Nothing is shown for a stage that ends sooner."""
PLAIN_INTERVAL_S = 10.0
"""Seconds between two plain lines (off a terminal); REPRO_PROGRESS_INTERVAL overrides."""

_enabled = False


def enable(on: bool = True) -> None:
    """Show progress from now on (the CLI calls this, except with --json or
    REPRO_PROGRESS=0)."""
    global _enabled
    _enabled = on and os.environ.get("REPRO_PROGRESS", "1") != "0"


def enabled() -> bool:
    return _enabled


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
def meter(
    label: str, total: int | None = None, unit: str = "files", stream: IO[str] | None = None
) -> Iterator[Meter]:
    """A Meter for the stage in the `with` block (a silent one when progress is off)."""
    if not _enabled:
        yield _Silent(label, total, unit)
        return
    out = stream or sys.stderr
    m = Meter(label, total, unit)
    stop = threading.Event()
    tty = out.isatty()
    drawer = threading.Thread(
        target=_draw_rich if tty else _draw_plain, args=(m, stop, out), daemon=True
    )
    drawer.start()
    try:
        yield m
    finally:
        stop.set()
        drawer.join()


def _draw_plain(m: Meter, stop: threading.Event, out: IO[str]) -> None:
    interval = float(os.environ.get("REPRO_PROGRESS_INTERVAL", PLAIN_INTERVAL_S))
    if stop.wait(max(DELAY_S, interval)):
        return
    while True:
        out.write(m.line() + "\n")
        out.flush()
        if stop.wait(interval):
            return


def _draw_rich(m: Meter, stop: threading.Event, out: IO[str]) -> None:
    if stop.wait(DELAY_S):
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TaskProgressColumn,
        TextColumn,
        TimeRemainingColumn,
    )

    columns: list[Any] = [
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn(m.unit),
        TaskProgressColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeRemainingColumn(),
    ]
    with Progress(*columns, console=Console(file=out), transient=True) as bar:
        task = bar.add_task(m.label, total=m.total, rate="")
        while True:
            elapsed = max(time.monotonic() - m.started, 1e-9)
            rate = f"{m.done / elapsed:,.0f} {m.unit}/s"
            bar.update(task, completed=m.done, total=m.total, rate=rate)
            if stop.wait(0.2):
                return
