"""Numeric tolerance and the running tally of deviations shared by the numeric comparisons."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from repro.compare.finding import MAX_DIFFERENCES, Finding, fmt
from repro.compare.verdict import Difference
from repro.config.models import CompareRule


@dataclass(frozen=True)
class Tolerance:
    """numpy.isclose semantics: |actual - expected| <= atol + rtol * |expected|."""

    rtol: float = 0.0
    atol: float = 0.0

    @classmethod
    def of(cls, rule: CompareRule) -> Tolerance:
        return cls(rtol=rule.rtol or 0.0, atol=rule.atol or 0.0)

    def describe(self) -> str:
        parts = []
        if self.rtol:
            parts.append(f"rtol={fmt(self.rtol)}")
        if self.atol:
            parts.append(f"atol={fmt(self.atol)}")
        return ", ".join(parts) or "rtol=0, atol=0"

    def deviation(self, expected: float, actual: float) -> tuple[float, float, bool]:
        """(absolute, relative, within). NaN equals NaN; any other NaN or inf gap is inf."""
        if expected == actual or (math.isnan(expected) and math.isnan(actual)):
            return 0.0, 0.0, True
        gap = abs(actual - expected)
        if not math.isfinite(gap):
            return math.inf, math.inf, False
        rel = gap / abs(expected) if expected != 0 and math.isfinite(expected) else math.inf
        return gap, rel, gap <= self.atol + self.rtol * abs(expected)


@dataclass
class Tally:
    """Counts values, differing values and the largest deviations; keeps the first Differences.

    A value is a leaf compared (a number, a string, a table cell, an array element); a
    structural problem (missing key, wrong length) counts as the values it leaves unmatched.
    """

    tolerance: Tolerance
    values: int = 0
    differing: int = 0
    numbers: int = 0
    max_abs: float = 0.0
    max_abs_at: str | None = None
    max_abs_rel: float = 0.0
    max_rel: float = 0.0
    max_rel_at: str | None = None
    first_problem: str | None = None
    differences: list[Difference] = field(default_factory=list)

    def count(self, values: int, differing: int = 0, numbers: int = 0) -> None:
        self.values += values
        self.differing += differing
        self.numbers += numbers

    def observe(self, where: str, abs_deviation: float, rel_deviation: float) -> None:
        """Track the largest absolute and relative deviations and where they are."""
        if abs_deviation > self.max_abs:
            self.max_abs, self.max_abs_at, self.max_abs_rel = abs_deviation, where, rel_deviation
        if rel_deviation > self.max_rel:
            self.max_rel, self.max_rel_at = rel_deviation, where

    def note(self, difference: Difference, problem: str) -> None:
        """Keep a Difference (the first MAX_DIFFERENCES) and the first problem for the detail."""
        if self.first_problem is None:
            self.first_problem = problem
        if len(self.differences) < MAX_DIFFERENCES:
            self.differences.append(difference)

    def number(self, where: str, expected: float, actual: float, shown: tuple[str, str]) -> None:
        """Compare two numbers; `shown` is how each side was written."""
        gap, rel, within = self.tolerance.deviation(expected, actual)
        self.count(1, 0 if within else 1, numbers=1)
        self.observe(where, gap, rel)
        if not within:
            self.note(
                Difference(
                    where=where,
                    expected=shown[0],
                    actual=shown[1],
                    abs_deviation=gap,
                    rel_deviation=rel,
                ),
                f"{where}: {shown[0]} -> {shown[1]} (|Δ| {fmt(gap)})",
            )

    def equal(self, values: int = 1) -> None:
        self.count(values)

    def unequal(
        self, where: str, expected: str | None, actual: str | None, problem: str, values: int = 1
    ) -> None:
        """Values that must be equal and are not, or a structural problem covering `values`."""
        self.count(max(values, 1), max(values, 1))
        self.note(Difference(where=where, expected=expected, actual=actual), problem)

    def finding(self) -> Finding:
        tol = self.tolerance.describe()
        has_numbers = self.numbers > 0
        fraction = self.differing / self.values if self.values else None
        largest = ""
        if self.max_abs_at is not None:
            largest = (
                f"max |Δ| {fmt(self.max_abs)} (rel {fmt(self.max_abs_rel)}) at {self.max_abs_at}"
            )
            if self.max_rel_at not in (None, self.max_abs_at) and self.max_rel > self.max_abs_rel:
                largest += f"; max rel {fmt(self.max_rel)} at {self.max_rel_at}"
        if self.differing == 0:
            if self.max_abs_at is None:
                detail = (
                    f"all {self.values} values equal; the bytes differ only in formatting"
                    if self.values
                    else "no values to compare; the bytes differ only in formatting"
                )
            else:
                detail = f"{largest}, within {tol}"
            return Finding(
                verdict="within_tolerance",
                detail=detail,
                max_abs_deviation=self.max_abs if has_numbers else None,
                max_rel_deviation=self.max_rel if has_numbers else None,
                differing_fraction=fraction,
            )
        detail = f"{self.differing} of {self.values} values differ"
        if has_numbers:
            detail += f" (numbers compared with {tol})"
        detail += f"; first: {self.first_problem}"
        if largest:
            detail += f"; {largest}"
        return Finding(
            verdict="different",
            detail=detail,
            max_abs_deviation=self.max_abs if has_numbers else None,
            max_rel_deviation=self.max_rel if has_numbers else None,
            differing_fraction=fraction,
            differences=tuple(self.differences),
        )
