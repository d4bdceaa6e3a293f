"""PDF files compared byte for byte except their volatile metadata: the document dates
(/CreationDate, /ModDate), the trailer's /ID and the XMP packet's timestamps and ids.

No PDF library: the volatile values are found with regular expressions over the bytes and
replaced by the same placeholder in both files; the cross-reference offsets, `startxref`
and direct `/Length` values are zeroed too, because a date of another length shifts every
object after it (what they point at is still compared, byte for byte). Metadata inside a
compressed object or XMP stream is not seen: such files compare as exact bytes, and differ
when their dates do. See docs/volatile-metadata.md.
"""

from __future__ import annotations

import re
from pathlib import Path

from repro.compare.exact import ByteScan, compare_exact
from repro.compare.finding import Finding, shown
from repro.compare.verdict import Difference

MAX_BYTES = 256 << 20
"""Larger PDFs are compared as exact bytes (the normalisation holds both in memory)."""

_STRING = rb"(?:\((?:[^()\\]|\\.)*\)|<[0-9A-Fa-f\s]*>)"
_XMP_KEYS = (
    rb"xmp:CreateDate|xmp:ModifyDate|xmp:MetadataDate|"
    rb"xmpMM:InstanceID|xmpMM:DocumentID|xmpMM:OriginalDocumentID"
)
# (name shown in the detail, pattern, replacement)
_VOLATILE: tuple[tuple[str, re.Pattern[bytes], bytes], ...] = (
    ("/CreationDate", re.compile(rb"/CreationDate\s*" + _STRING, re.S), b"/CreationDate()"),
    ("/ModDate", re.compile(rb"/ModDate\s*" + _STRING, re.S), b"/ModDate()"),
    ("/ID", re.compile(rb"/ID\s*\[\s*" + _STRING + rb"\s*" + _STRING + rb"\s*\]", re.S), b"/ID[]"),
    (
        "XMP dates and ids",
        re.compile(rb"<(" + _XMP_KEYS + rb")>[^<]*</\1>"),
        rb"<\1></\1>",
    ),
    (
        "XMP dates and ids",
        re.compile(rb"\b(" + _XMP_KEYS + rb")\s*=\s*(\"[^\"]*\"|'[^']*')"),
        rb'\1=""',
    ),
)
# Positions that move when a volatile value changes length.
_OFFSETS: tuple[tuple[re.Pattern[bytes], bytes], ...] = (
    (re.compile(rb"(?m)^\d{10}( \d{5} [nf])"), rb"0000000000\1"),
    (re.compile(rb"startxref\s+\d+"), b"startxref 0"),
    (re.compile(rb"/Length\s+\d+(?!\s+\d+\s+R)"), b"/Length 0"),
)
_CONTEXT = 40


def normalise(data: bytes) -> bytes:
    """The PDF with its volatile metadata and the offsets they move made equal."""
    for _, pattern, replacement in _VOLATILE:
        data = pattern.sub(replacement, data)
    for pattern, replacement in _OFFSETS:
        data = pattern.sub(replacement, data)
    return data


def volatile_differences(expected: bytes, actual: bytes) -> list[str]:
    """Names of the volatile fields whose values differ between the two files."""
    names: list[str] = []
    for name, pattern, _ in _VOLATILE:
        if pattern.findall(expected) != pattern.findall(actual) and name not in names:
            names.append(name)
    return names


def compare_pdf(result: ByteScan, expected: Path, actual: Path) -> Finding:
    """Two PDFs whose bytes differ: identical when only their volatile metadata does."""
    if max(result.expected_size, result.actual_size) > MAX_BYTES:
        return compare_exact(result, expected, actual)
    raw_e, raw_a = expected.read_bytes(), actual.read_bytes()
    if not (raw_e.startswith(b"%PDF-") and raw_a.startswith(b"%PDF-")):
        return compare_exact(result, expected, actual)
    norm_e, norm_a = normalise(raw_e), normalise(raw_a)
    ignored = volatile_differences(raw_e, raw_a)
    if norm_e == norm_a:
        what = ", ".join(ignored) or "offsets"
        return Finding(
            verdict="identical",
            detail=f"identical PDF content; only its volatile metadata differs ({what}), "
            "which is not compared",
        )
    offset = next(
        (i for i, (a, b) in enumerate(zip(norm_e, norm_a, strict=False)) if a != b),
        min(len(norm_e), len(norm_a)),
    )
    return Finding(
        verdict="different",
        detail=f"PDF content differs (sha256 {result.expected_sha256[:12]}… -> "
        f"{result.actual_sha256[:12]}…); first difference at byte {offset} of the files with "
        "their volatile metadata masked",
        differences=(
            Difference(
                where=f"byte {offset} (metadata masked)",
                expected=_excerpt(norm_e, offset),
                actual=_excerpt(norm_a, offset),
            ),
        ),
    )


def _excerpt(data: bytes, offset: int) -> str | None:
    if offset >= len(data):
        return None
    piece = data[max(0, offset - _CONTEXT // 2) : offset + _CONTEXT]
    return shown(piece.decode("latin-1").encode("ascii", "backslashreplace").decode())
