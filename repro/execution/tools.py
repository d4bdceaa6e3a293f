"""Run an external tool and wait for it: always with a timeout, its failures one-line errors.

Every short-lived command repro runs (uv, pip, git, dpkg-query, Slurm's clients, an
interpreter asked its version) goes through `run_tool`, or `probe` when the answer is
optional. Long-running user commands, with their process groups and Ctrl-C handling, are
repro.execution.runs.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from repro.errors import EnvironmentBuildError, ReproError

ErrorFactory = Callable[[str], ReproError]
"""Builds the caller's error from a one-line message: a ReproError subclass, or a partial
of one with a hint."""


def _text(raw: bytes) -> str:
    # What subprocess's text mode gives (universal newlines), without its crash on bytes that
    # are not UTF-8.
    return raw.decode("utf-8", errors="replace").replace("\r\n", "\n").replace("\r", "\n")


def last_lines(text: str, lines: int, chars: int | None = None) -> str:
    """The last `lines` non-blank lines of `text`, stripped and joined by spaces, then at most
    its last `chars` characters: the part of a tool's output worth a one-line error."""
    kept = [ln.strip() for ln in text.splitlines() if ln.strip()]
    joined = " ".join(kept[-lines:])
    return joined if chars is None else joined[-chars:]


@dataclass(frozen=True)
class Completed:
    """A command that ran to its end: its exit code and what it wrote."""

    returncode: int
    stdout_bytes: bytes
    stderr_bytes: bytes

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    @property
    def stdout(self) -> str:
        return _text(self.stdout_bytes)

    @property
    def stderr(self) -> str:
        return _text(self.stderr_bytes)

    def tail(self, lines: int = 4, chars: int | None = 500) -> str:
        """The end of stderr (of stdout when stderr is empty), as `last_lines`."""
        return last_lines(self.stderr or self.stdout, lines, chars)


def _start(
    cmd: Sequence[str], timeout: float, env: dict[str, str] | None, cwd: Path | None
) -> Completed:
    proc = subprocess.run(
        list(cmd), cwd=cwd, env=env, capture_output=True, timeout=timeout, check=False
    )
    return Completed(proc.returncode, proc.stdout, proc.stderr)


def run_tool(
    cmd: Sequence[str],
    what: str,
    *,
    timeout: float,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    error: ErrorFactory = EnvironmentBuildError,
    check: bool = True,
    not_started: Callable[[OSError], ReproError] | None = None,
    timed_out: Callable[[float], ReproError] | None = None,
) -> Completed:
    """Run `cmd` (output captured, stdin inherited) and wait at most `timeout` seconds.

    `what` names the step in messages. Failures raise `error(message)`, one line each:
    past the timeout, "{what} did not finish within {timeout} s"; an executable that does
    not exist, "{what}: {cmd[0]} is not installed"; with `check`, a non-zero exit,
    "{what} failed: " and the end of its stderr. `check=False` returns the non-zero result
    for the caller to judge. `not_started` and `timed_out` build the error instead, for
    callers whose messages say more (any OSError starting the command goes to
    `not_started`; without it, OSErrors other than a missing executable are bugs and
    propagate).
    """
    try:
        done = _start(cmd, timeout, env, cwd)
    except subprocess.TimeoutExpired:
        if timed_out is not None:
            raise timed_out(timeout) from None
        raise error(f"{what} did not finish within {timeout:g} s") from None
    except OSError as exc:
        if not_started is not None:
            raise not_started(exc) from None
        if isinstance(exc, FileNotFoundError):
            raise error(f"{what}: {cmd[0]} is not installed") from None
        raise
    if check and not done.ok:
        raise error(f"{what} failed: {done.tail() or f'exit code {done.returncode}'}")
    return done


def probe(
    cmd: Sequence[str],
    *,
    timeout: float,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> Completed | None:
    """Run a command whose answer is optional (a fingerprint, a version): None when it
    cannot be started or does not finish within `timeout` seconds; any exit code is an
    answer for the caller to judge."""
    try:
        return _start(cmd, timeout, env, cwd)
    except (OSError, subprocess.TimeoutExpired):
        return None
