"""Replay stage 3, execute: every selected point and notebook, on the prepared target."""

from __future__ import annotations

from repro.errors import UsageError
from repro.execution.runs import PointLines, PointOutcome
from repro.replay.open import Opened
from repro.replay.targets import Observer, Target


def execute(target: Target, opened: Opened, say: Observer) -> list[PointOutcome]:
    """The outcome of every selected point (failures included), then of every notebook."""
    selection = opened.selection
    n_points = selection.point_count()
    if n_points == 0 and not selection.notebooks:
        raise UsageError(
            "no run point matches the selection", hint="see the points: repro inspect CAPSULE"
        )
    say(
        f"replaying {len(selection.runs)} run(s), {n_points} point(s)"
        + (f", {len(selection.notebooks)} notebook(s)" if selection.notebooks else "")
        + f" on {target.name}"
    )
    lines = PointLines(say)  # a large sweep in one line, its failed points each
    outcomes = target.execute(
        selection.runs + opened.notebook_runs, opened.project, selection.selects, lines
    )
    lines.flush()
    return outcomes
