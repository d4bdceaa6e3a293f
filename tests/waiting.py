"""Waiting in tests: every wait has a deadline and fails naming what it waited for."""

from __future__ import annotations

import queue
import re
import threading
import time
from collections.abc import Callable
from typing import IO, TypeVar

import pytest

T = TypeVar("T")


def wait_until(condition: Callable[[], T], timeout: float, what: str, every: float = 0.1) -> T:
    """Poll `condition` until it returns something truthy (returned); fail after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            pytest.fail(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(every)


class LineReader:
    """A text pipe read line by line on a thread, so that waiting for a line has a deadline
    (a blocking `readline()` has none, and returns "" forever once the writer is gone)."""

    def __init__(self, stream: IO[str]) -> None:
        self.seen: list[str] = []
        self._lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._pump, args=(stream,), daemon=True).start()

    def _pump(self, stream: IO[str]) -> None:
        for line in stream:
            self._lines.put(line)
        self._lines.put(None)  # end of stream

    def _next(self, deadline: float, what: str) -> str | None:
        try:
            line = self._lines.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            pytest.fail(f"timed out waiting for {what}; output so far:\n{''.join(self.seen)}")
        if line is not None:
            self.seen.append(line)
        return line

    def wait_for(self, pattern: str, timeout: float) -> re.Match[str]:
        """The first match of `pattern` in a line still to come; fails after `timeout` s or
        when the stream ends first."""
        deadline = time.monotonic() + timeout
        what = f"a line matching {pattern!r} (up to {timeout:g} s)"
        while (line := self._next(deadline, what)) is not None:
            if match := re.search(pattern, line):
                return match
        pytest.fail(f"the output ended before {what}:\n{''.join(self.seen)}")

    def rest(self, timeout: float) -> str:
        """Everything still to come, up to the end of the stream (within `timeout` s)."""
        deadline = time.monotonic() + timeout
        start = len(self.seen)
        while self._next(deadline, f"the end of the output (up to {timeout:g} s)") is not None:
            pass
        return "".join(self.seen[start:])
