"""Run a command under a real pseudo-terminal of a given size and read what a user sees.

The size is set on the terminal itself (TIOCSWINSZ), as a terminal emulator does, and
COLUMNS/LINES agree with it; the bytes written are fed to pyte, a VT100 emulator, so cursor
movements and redrawn spinner lines end up as they would on the screen.
"""

from __future__ import annotations

import fcntl
import os
import pty
import select
import struct
import termios
import time
from dataclasses import dataclass

import pyte


@dataclass(frozen=True)
class Screen:
    exit_code: int
    lines: list[str]
    """The screen's lines (scrolled-off history first), right-stripped, as displayed."""
    raw: str


def run_in_terminal(
    argv: list[str],
    *,
    columns: int = 80,
    rows: int = 50,
    env: dict[str, str] | None = None,
    cwd: str | None = None,
    timeout: float = 300,
) -> Screen:
    size = struct.pack("HHHH", rows, columns, 0, 0)
    full_env = {
        **os.environ,
        "COLUMNS": str(columns),
        "LINES": str(rows),
        "TERM": "xterm-256color",
        **(env or {}),
    }
    full_env.pop("NO_COLOR", None)
    pid, fd = pty.fork()
    if pid == 0:  # the child: its stdin/stdout/stderr are the terminal
        try:
            fcntl.ioctl(0, termios.TIOCSWINSZ, size)
            if cwd:
                os.chdir(cwd)
            os.execvpe(argv[0], argv, full_env)  # noqa: S606 - the program under test
        finally:
            os._exit(127)
    fcntl.ioctl(fd, termios.TIOCSWINSZ, size)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.2)
            if not ready:
                continue
            try:
                data = os.read(fd, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
        else:
            os.kill(pid, 9)
    finally:
        _, status = os.waitpid(pid, 0)
        os.close(fd)
    raw = b"".join(chunks).decode("utf-8", "replace")
    screen = pyte.HistoryScreen(columns, rows, history=10_000)
    stream = pyte.Stream(screen)
    stream.feed(raw.replace("\n", "\r\n").replace("\r\r\n", "\r\n"))
    history = ["".join(ch.data for ch in line.values()) for line in screen.history.top]
    lines = [ln.rstrip() for ln in [*history, *screen.display]]
    while lines and not lines[-1]:
        lines.pop()
    return Screen(os.waitstatus_to_exitcode(status), lines, raw)
