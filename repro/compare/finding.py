"""What one format's comparison found, before compare_output stamps it with path and hashes."""

from __future__ import annotations

import math
from dataclasses import dataclass

from repro.compare.verdict import Difference, Verdict

MAX_DIFFERENCES = 20
"""How many Differences a verdict keeps: the first ones found, in order."""

_SHOWN_CHARS = 200


@dataclass(frozen=True)
class Finding:
    verdict: Verdict
    detail: str
    max_abs_deviation: float | None = None
    max_rel_deviation: float | None = None
    differing_fraction: float | None = None
    differences: tuple[Difference, ...] = ()


def unreadable(problems: list[str]) -> Finding:
    """A file the rule's method could not parse: reported as different, never raised."""
    return Finding(verdict="different", detail="; ".join(problems))


def fmt(value: float) -> str:
    """A deviation or tolerance for people: three significant digits (3.2e-12, 0.5, inf)."""
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return f"{value:.3g}"


def shown(text: str, limit: int = _SHOWN_CHARS) -> str:
    """Text safe to store and print: undecodable bytes replaced, CR made visible, truncated."""
    clean = text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    clean = clean.replace("\r", "\\r")
    return clean if len(clean) <= limit else clean[: limit - 1] + "…"
