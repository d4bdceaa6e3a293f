"""What comparing one output gives: its verdict, the method used and the differences found.

The comparators of repro.compare return these; the replay report (repro.report.replay)
collects them per run point and notebook cell.
"""

from __future__ import annotations

from typing import Literal

from repro.model_base import CompareMethod, Model

Verdict = Literal["identical", "within_tolerance", "different", "missing", "not_verified"]
"""identical bytes (or equal after the rule's normalisation); within the rule's tolerance;
different; expected but not produced; produced but no expectation was recorded."""


class Difference(Model):
    """One place where a replayed output differs from the expected one."""

    where: str
    """JSON path ($.metrics.auc), table cell (row 3, column 'b'), array index, line, pixels."""
    expected: str | None = None
    actual: str | None = None
    abs_deviation: float | None = None
    rel_deviation: float | None = None


class OutputVerdict(Model):
    path: str
    """Relative to the project, as the run wrote it."""
    verdict: Verdict
    method: CompareMethod
    detail: str
    """One line for people: what was compared and the largest deviation or first difference."""
    max_abs_deviation: float | None = None
    max_rel_deviation: float | None = None
    differing_fraction: float | None = None
    """For images: fraction of pixels that differ; for tables/arrays: fraction of values."""
    differences: list[Difference] = []
    """The first differences found (a bounded sample, in order)."""
    expected_sha256: str | None = None
    actual_sha256: str | None = None
