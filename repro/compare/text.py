"""Text comparison: line endings unified, the rule's regex normalisations applied, then diffed.

Both files are read into memory.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterator

from repro.compare.finding import MAX_DIFFERENCES, Finding, shown
from repro.compare.verdict import Difference
from repro.config.models import Normalization

# Above this many line pairs still to align, difflib (quadratic in the worst case) is
# replaced by pairing lines by position: still correct about *whether* the files differ.
_DIFFLIB_BUDGET = 10_000_000


class NormalizationError(ValueError):
    """A normalisation whose replacement cannot be applied (e.g. a bad group reference)."""


def decode(data: bytes) -> str:
    """UTF-8, keeping undecodable bytes distinct (surrogateescape) so they still compare."""
    return data.decode("utf-8", "surrogateescape")


def unify_newlines(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


def normalise(text: str, rules: list[Normalization]) -> str:
    for rule in rules:
        try:
            text = re.sub(rule.pattern, rule.replacement, text)
        except (re.error, IndexError) as exc:
            raise NormalizationError(
                f"normalisation {rule.pattern!r} -> {rule.replacement!r} could not be applied: "
                f"{exc}"
            ) from exc
    return text


def describe_normalisation(rules: list[Normalization]) -> str:
    if not rules:
        return "after normalising line endings"
    plural = "" if len(rules) == 1 else "s"
    return f"after normalising line endings and applying {len(rules)} normalisation{plural}"


def compare_text(expected: bytes, actual: bytes, rules: list[Normalization]) -> Finding:
    how = describe_normalisation(rules)
    try:
        text_e = normalise(unify_newlines(decode(expected)), rules)
        text_a = normalise(unify_newlines(decode(actual)), rules)
    except NormalizationError as exc:
        return Finding(verdict="different", detail=f"not compared: {exc}")
    if text_e == text_a:
        return Finding(verdict="identical", detail=f"equal {how}")
    lines_e, lines_a = text_e.split("\n"), text_a.split("\n")
    differences: list[Difference] = []
    count = 0
    for difference in differing_lines(lines_e, lines_a):
        count += 1
        if len(differences) < MAX_DIFFERENCES:
            differences.append(difference)
    total = max(_line_count(text_e), _line_count(text_a), 1)
    return Finding(
        verdict="different",
        detail=f"{count} of {total} lines differ {how}; first at {differences[0].where}",
        differing_fraction=min(count / total, 1.0),
        differences=tuple(differences),
    )


def _line_count(text: str) -> int:
    """Lines as an editor counts them: a final newline does not start another line."""
    return text.count("\n") + (1 if text and not text.endswith("\n") else 0)


def differing_lines(lines_e: list[str], lines_a: list[str]) -> Iterator[Difference]:
    """Line-level differences in order; `where` is the expected file's line number, or the
    actual file's for lines only the actual file has."""
    head = 0
    while head < min(len(lines_e), len(lines_a)) and lines_e[head] == lines_a[head]:
        head += 1
    tail = 0
    while (
        tail < min(len(lines_e), len(lines_a)) - head and lines_e[-1 - tail] == lines_a[-1 - tail]
    ):
        tail += 1
    middle_e = lines_e[head : len(lines_e) - tail]
    middle_a = lines_a[head : len(lines_a) - tail]
    if len(middle_e) * len(middle_a) > _DIFFLIB_BUDGET:
        opcodes = [("replace", 0, len(middle_e), 0, len(middle_a))]
    else:
        matcher = difflib.SequenceMatcher(None, middle_e, middle_a, autojunk=False)
        opcodes = [op for op in matcher.get_opcodes() if op[0] != "equal"]
    for _tag, i1, i2, j1, j2 in opcodes:
        for k in range(max(i2 - i1, j2 - j1)):
            line_e = middle_e[i1 + k] if i1 + k < i2 else None
            line_a = middle_a[j1 + k] if j1 + k < j2 else None
            number = head + (i1 + k if line_e is not None else j1 + k) + 1
            yield Difference(
                where=f"line {number}",
                expected=None if line_e is None else shown(line_e),
                actual=None if line_a is None else shown(line_a),
            )
