"""How much the CLI says while it works: the one place the quiet setting is read.

`-q/--quiet` (the app callback) and `REPRO_QUIET=1` both mean: no live output of the runs,
no progress spinners; results, warnings and errors are still shown.
"""

from __future__ import annotations

import os

QUIET_ENV = "REPRO_QUIET"

_quiet_flag = False


def set_quiet(value: bool) -> None:
    """What the app callback calls with its -q/--quiet flag."""
    global _quiet_flag
    _quiet_flag = value


def quiet() -> bool:
    """Whether the user asked for quiet (-q, or REPRO_QUIET=1 in the environment)."""
    from repro.report.verbosity import verbosity

    if _quiet_flag or verbosity().quiet:
        return True
    return os.environ.get(QUIET_ENV, "").strip().lower() in {"1", "true", "yes"}
