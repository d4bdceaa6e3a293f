"""What the terminal shows while a command works: each run's output as it is written, and
the step in progress with its elapsed time.

Everything goes to stderr (`terminal.err`), so --json keeps stdout to its one document. On a
terminal the current step is a transient spinner line (`⠋ image build Step 5/9 : RUN ...
0:00:12`) above which the step lines and run output scroll; off a terminal (a log, CI) they
are plain lines and there is no spinner. The quiet setting (-q, REPRO_QUIET=1) hides the run
output and the spinner; the step lines are the caller's (`terminal.say`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any, ParamSpec, TypeVar

from rich.console import Console
from rich.text import Text

from repro.execution.stream import Echo, StreamName
from repro.report import terminal
from repro.report.text import printable
from repro.report.verdict_lines import fold_output

Observer = Callable[[str], None]
P = ParamSpec("P")
R = TypeVar("R")


class RunEcho:
    """An Echo that prints each line of a run's output on stderr, indented under repro's
    own lines and prefixed with its sweep point (`[seed=3]`) when it has one, so the lines
    of points running at once (-j N) can be told apart. Capsule text: shown through
    `printable`, never as markup. The values in `masked` (the secret values of the user's
    environment a run was given with --pass-env) are shown as `***`: a terminal is often a
    CI log, and the capture refuses such output anyway."""

    def __init__(self, console: Console | None = None, masked: Iterable[str] = ()) -> None:
        self.console = console or terminal.err
        self._lock = threading.Lock()
        self._masked = sorted({v for v in masked if v}, key=len, reverse=True)

    def __call__(self, label: str, stream: StreamName, line: str) -> None:
        for value in self._masked:
            line = line.replace(value, "***")
        prefix = f"  [{printable(label)}] " if label else "  "
        if self.console.is_terminal:  # folded before the last column, the prefix kept clear
            rows = fold_output(line, self.console.width - 1, prefix, " " * len(prefix))
        else:
            rows = [prefix + printable(line)]
        style = "" if stream == "stdout" else "dim"
        with self._lock:
            for row in rows:
                text = Text(row[: len(prefix)], style="cyan") + Text(row[len(prefix) :], style)
                self.console.print(text, highlight=False, markup=False, soft_wrap=True)


def run_echo(quiet: bool, masked: Iterable[str] = ()) -> Echo | None:
    """The echo a command passes to the core, or None when the user asked for quiet;
    `masked`: values never shown (RunEcho)."""
    return None if quiet else RunEcho(masked=masked)


class Activity:
    """The observer of a long operation: each step is said as a line (terminal.say) and, on
    a terminal, shown in a spinner with the time it has taken so far until the next one."""

    def __init__(self, console: Console, spinner: bool) -> None:
        self.console = console
        self.spinner = spinner
        self._progress: Any = None
        self._task: Any = None
        self._lock = threading.Lock()

    def __call__(self, message: str) -> None:
        terminal.say(message)
        if self._progress is None:
            return
        with self._lock:
            if self._task is not None:
                self._progress.remove_task(self._task)
            self._task = self._progress.add_task(_short(message, self.console.width - 16))

    def start(self) -> None:
        if not self.spinner:
            return
        from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        self._progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}", markup=False),
            TimeElapsedColumn(),
            console=self.console,
            transient=True,
            # emit_json writes to sys.stdout itself: nothing may be redirected under it.
            redirect_stdout=False,
            redirect_stderr=False,
        )
        self._progress.start()

    def stop(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    def pausing(self, ask: Callable[P, R] | None) -> Callable[P, R] | None:
        """`ask` (a prompt: run unsandboxed?, the key's passphrase) with the spinner taken
        off the screen while it waits for the user, and put back after."""
        if ask is None:
            return None
        prompt = ask

        def paused(*args: P.args, **kwargs: P.kwargs) -> R:
            with self._lock:
                running = self._progress
            if running is None:
                return prompt(*args, **kwargs)
            running.stop()
            try:
                return prompt(*args, **kwargs)
            finally:
                running.start()

        return paused


def _short(message: str, width: int) -> str:
    text = printable(message)
    width = max(20, width)
    return text if len(text) <= width else text[: width - 1] + "…"


@contextmanager
def activity(quiet: bool, console: Console | None = None) -> Iterator[Activity]:
    """The observer to pass to a long core call: steps as lines, and a spinner with the
    elapsed time on a terminal (none when quiet or not a terminal)."""
    chosen = console or terminal.err
    act = Activity(chosen, spinner=chosen.is_terminal and not quiet)
    act.start()
    try:
        yield act
    finally:
        act.stop()
