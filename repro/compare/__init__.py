"""Compare a replayed output with its expected copy under the output's CompareRule."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import IO, TYPE_CHECKING, assert_never

from repro.compare.exact import ByteScan, compare_exact, scan, sha256_of
from repro.compare.finding import Finding
from repro.compare.numeric import compare_json, compare_table, compare_text_numbers
from repro.compare.pdf import compare_pdf
from repro.compare.text import compare_text
from repro.compare.tolerance import Tolerance
from repro.compare.verdict import OutputVerdict
from repro.config.models import CompareRule

if TYPE_CHECKING:
    from repro.compare.images import DifferenceSummary

__all__ = [
    "EXACT_BY_EXTENSION",
    "compare_output",
    "difference_image",
    "difference_summary",
]

ExactComparator = Callable[[ByteScan, Path, Path], Finding]
EXACT_BY_EXTENSION: dict[str, ExactComparator] = {".pdf": compare_pdf}
"""Formats whose exact comparison knows their volatile metadata (the default rule, chosen
by the output's extension): the bytes must match except those fields."""


def difference_summary(expected: Path | IO[bytes], actual: Path | IO[bytes]) -> DifferenceSummary:
    """How many pixels differ, by how much and where (see repro.compare.images)."""
    from repro.compare.images import difference_summary as summarise

    return summarise(expected, actual)


def difference_image(expected: Path | IO[bytes], actual: Path | IO[bytes]) -> bytes:
    """A PNG highlighting the pixels that differ (see repro.compare.images)."""
    from repro.compare.images import difference_image as render

    return render(expected, actual)


def compare_output(
    path: str, expected: Path | None, actual: Path | None, rule: CompareRule
) -> OutputVerdict:
    """The verdict for one output: `path` is its project-relative name (its extension picks
    the format for numeric rules); `expected` is the recorded copy, None when none was
    recorded; `actual` what the replay produced, None when it produced nothing.

    Both sha256s are filled whenever the files exist, and byte-identical files are
    "identical" whatever the method. Files the method cannot parse are "different", with the
    reason in the detail: bad data never raises.
    """
    method = rule.method
    actual_present = actual is not None and actual.is_file()
    if expected is None or not expected.is_file():
        detail = (
            "no expected value was recorded for this output, so it was not compared"
            if expected is None
            else "the expected copy of this output is not in the capsule, so it was not compared"
        )
        return OutputVerdict(
            path=path,
            verdict="not_verified",
            method=method,
            detail=detail,
            actual_sha256=sha256_of(actual) if actual is not None and actual_present else None,
        )
    if actual is None or not actual_present:
        detail = (
            "not produced by the replay"
            if actual is None or not actual.exists()
            else "produced, but not as a regular file"
        )
        return OutputVerdict(
            path=path,
            verdict="missing",
            method=method,
            detail=detail,
            expected_sha256=sha256_of(expected),
        )
    result = scan(expected, actual)
    finding = (
        Finding(verdict="identical", detail=f"byte-identical ({result.expected_size:,} bytes)")
        if result.identical
        else _compare(path, expected, actual, rule, result)
    )
    return OutputVerdict(
        path=path,
        verdict=finding.verdict,
        method=method,
        detail=finding.detail,
        max_abs_deviation=finding.max_abs_deviation,
        max_rel_deviation=finding.max_rel_deviation,
        differing_fraction=finding.differing_fraction,
        differences=list(finding.differences),
        expected_sha256=result.expected_sha256,
        actual_sha256=result.actual_sha256,
    )


def _compare(
    path: str, expected: Path, actual: Path, rule: CompareRule, result: ByteScan
) -> Finding:
    method = rule.method
    if method == "exact":
        by_format = EXACT_BY_EXTENSION.get(PurePosixPath(path).suffix.lower())
        if by_format is not None:
            return by_format(result, expected, actual)
        return compare_exact(result, expected, actual)
    if method == "text":
        return compare_text(expected.read_bytes(), actual.read_bytes(), rule.normalize)
    if method == "numeric":
        return _compare_numeric(path, expected, actual, rule)
    if method == "image":
        from repro.compare.images import compare_images  # numpy and Pillow only when needed

        return compare_images(expected, actual, rule.pixel_tolerance or 0.0)
    assert_never(method)


def _compare_numeric(path: str, expected: Path, actual: Path, rule: CompareRule) -> Finding:
    """By extension: .json, .csv, .tsv, .npy, .npz; any other file as numbers in text."""
    tolerance = Tolerance.of(rule)
    suffix = PurePosixPath(path).suffix.lower()
    if suffix in (".npy", ".npz"):
        from repro.compare.arrays import compare_arrays  # numpy only when needed

        return compare_arrays(expected, actual, tolerance)
    data_e, data_a = expected.read_bytes(), actual.read_bytes()
    if suffix == ".json":
        return compare_json(data_e, data_a, tolerance)
    if suffix == ".csv":
        return compare_table(data_e, data_a, ",", tolerance, "CSV")
    if suffix == ".tsv":
        return compare_table(data_e, data_a, "\t", tolerance, "TSV")
    return compare_text_numbers(data_e, data_a, tolerance, rule.normalize)
