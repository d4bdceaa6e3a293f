"""Byte comparison, streamed: both sha256s and the first differing byte in one chunked pass."""

from __future__ import annotations

import codecs
import hashlib
from dataclasses import dataclass
from pathlib import Path

from repro.compare.finding import Finding, shown
from repro.compare.verdict import Difference

CHUNK = 1 << 20
_SNIFF = 8192
_BEFORE = 80
_AFTER = 120


@dataclass(frozen=True)
class ByteScan:
    """Both files read once, side by side, in CHUNK-sized pieces (never whole in memory)."""

    expected_sha256: str
    actual_sha256: str
    expected_size: int
    actual_size: int
    first_difference: int | None
    """Offset of the first differing byte (or the shorter file's end); None when identical."""
    line: int
    """1-based line holding the first difference."""
    line_start: int
    """Offset where that line starts."""
    textual: bool
    """Both files look like text: no NUL and valid UTF-8 in their first 8 KiB."""

    @property
    def identical(self) -> bool:
        return self.first_difference is None


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def scan(expected: Path, actual: Path) -> ByteScan:
    hash_e, hash_a = hashlib.sha256(), hashlib.sha256()
    size_e = size_a = 0
    first: int | None = None
    line, line_start = 1, 0
    textual: bool | None = None
    with expected.open("rb") as fe, actual.open("rb") as fa:
        while True:
            chunk_e, chunk_a = fe.read(CHUNK), fa.read(CHUNK)
            if textual is None:
                textual = _looks_textual(chunk_e[:_SNIFF]) and _looks_textual(chunk_a[:_SNIFF])
            if not chunk_e and not chunk_a:
                break
            hash_e.update(chunk_e)
            hash_a.update(chunk_a)
            if first is None:
                # Until the first difference both files are at the same offset.
                same = _common_prefix(chunk_e, chunk_a)
                prefix = memoryview(chunk_e)[:same].tobytes()
                line += prefix.count(b"\n")
                newline = prefix.rfind(b"\n")
                if newline >= 0:
                    line_start = size_e + newline + 1
                if same < len(chunk_e) or same < len(chunk_a):
                    first = size_e + same
            size_e += len(chunk_e)
            size_a += len(chunk_a)
    return ByteScan(
        expected_sha256=hash_e.hexdigest(),
        actual_sha256=hash_a.hexdigest(),
        expected_size=size_e,
        actual_size=size_a,
        first_difference=first,
        line=line,
        line_start=line_start,
        textual=bool(textual),
    )


def compare_exact(result: ByteScan, expected: Path, actual: Path) -> Finding:
    """Different bytes: sizes, hashes and the first differing line (text) or byte (binary)."""
    offset = result.first_difference
    if offset is None:
        raise ValueError("compare_exact is for files whose bytes differ")
    if result.expected_size == result.actual_size:
        sizes = f"{result.expected_size:,} bytes each"
    else:
        sizes = f"{result.expected_size:,} -> {result.actual_size:,} bytes"
    hashes = f"sha256 {result.expected_sha256[:12]}… -> {result.actual_sha256[:12]}…"
    detail = f"bytes differ ({sizes}, {hashes})"
    if result.textual:
        where = f"line {result.line}"
        difference = Difference(
            where=where,
            expected=_excerpt(expected, result.line_start, offset),
            actual=_excerpt(actual, result.line_start, offset),
        )
    else:
        where = f"byte {offset}"
        difference = Difference(
            where=where, expected=_byte_at(expected, offset), actual=_byte_at(actual, offset)
        )
    return Finding(
        verdict="different",
        detail=f"{detail}; first difference at {where}",
        differences=(difference,),
    )


def _common_prefix(a: bytes, b: bytes) -> int:
    """Length of the common prefix, by bisection on slice equality (C-speed comparisons)."""
    n = min(len(a), len(b))
    va, vb = memoryview(a), memoryview(b)
    if va[:n] == vb[:n]:
        return n
    lo, hi = 0, n  # va[:lo] == vb[:lo] and va[:hi] != vb[:hi]
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if va[lo:mid] == vb[lo:mid]:
            lo = mid
        else:
            hi = mid
    return lo


def _looks_textual(sample: bytes) -> bool:
    if b"\0" in sample:
        return False
    try:
        # final=False: a multi-byte character cut by the sample's end is not an error.
        codecs.getincrementaldecoder("utf-8")().decode(sample, final=False)
    except UnicodeDecodeError:
        return False
    return True


def _excerpt(path: Path, line_start: int, offset: int) -> str | None:
    """The line holding `offset`, cut to a window around it; None past the end of the file."""
    begin = max(line_start, offset - _BEFORE)
    with path.open("rb") as fh:
        fh.seek(begin)
        data = fh.read(offset - begin + _AFTER + 1)
    if not data:
        return None
    newline = data.find(b"\n")
    cut = data[:newline] if newline >= 0 else data[: offset - begin + _AFTER]
    more = newline < 0 and len(data) > offset - begin + _AFTER
    text = ("…" if begin > line_start else "") + cut.decode("utf-8", "replace")
    return shown(text + ("…" if more else ""), limit=_BEFORE + _AFTER + 2)


def _byte_at(path: Path, offset: int) -> str | None:
    with path.open("rb") as fh:
        fh.seek(offset)
        byte = fh.read(1)
    return f"0x{byte[0]:02x}" if byte else None
