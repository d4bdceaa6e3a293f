"""What -q/--quiet and -v/--verbose asked for: set by the CLI's app callback for the command
that follows, read by the terminal renderers (repro.report.terminal) and the CLI commands.

(Here, not in repro.cli, so that the renderers can read it: repro.cli imports them, not the
other way round.)
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Verbosity:
    """quiet: no progress lines, progress bars or run output on stderr (results, warnings
    and errors still print). verbose (-v, -vv): more detail (the commands being run, an
    error's kind and exit code)."""

    quiet: bool = False
    verbose: int = 0


_verbosity = Verbosity()


def verbosity() -> Verbosity:
    """The current command's -q/-v (the defaults outside a command)."""
    return _verbosity


def set_verbosity(value: Verbosity) -> None:
    """Called once per command line, by the app callback (so no test inherits another's)."""
    global _verbosity
    _verbosity = value
