"""NumPy .npy/.npz comparison: same keys, shapes and kinds of dtype; elements within tolerance.

Arrays are loaded whole into memory (never with pickle), and numeric ones are compared as
float64 (complex128 for complex) copies.
"""

from __future__ import annotations

import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from repro.compare.finding import MAX_DIFFERENCES, Finding, fmt, unreadable
from repro.compare.tolerance import Tally, Tolerance
from repro.compare.verdict import Difference

Array = npt.NDArray[Any]

# Kinds of dtype compared together: signed and unsigned integers are both "integer".
_FAMILY = {"b": "boolean", "i": "integer", "u": "integer", "f": "float", "c": "complex"}
_NUMERIC = {"integer", "float", "complex"}


def compare_arrays(expected: Path, actual: Path, tolerance: Tolerance) -> Finding:
    """A .npy file is one array (named ''), a .npz one array per key, compared key by key.

    NaN equals NaN only at the same position; inf equals inf of the same sign.
    """
    loaded: list[dict[str, Array]] = []
    problems = []
    for side, path in (("expected", expected), ("actual", actual)):
        try:
            loaded.append(_load(path))
        except (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
            problems.append(f"could not load {side} as NumPy data: {exc}")
    if problems:
        return unreadable(problems)
    arrays_e, arrays_a = loaded
    tally = Tally(tolerance)
    for key, array_e in arrays_e.items():
        if key not in arrays_a:
            tally.unequal(
                key or "array",
                _describe(array_e),
                None,
                f"{_label(key)} missing in actual",
                array_e.size,
            )
            continue
        _compare_one(tally, key, array_e, arrays_a[key])
    for key, array_a in arrays_a.items():
        if key not in arrays_e:
            tally.unequal(
                key or "array",
                None,
                _describe(array_a),
                f"{_label(key)} not in expected",
                array_a.size,
            )
    return tally.finding()


def _load(path: Path) -> dict[str, Array]:
    # Open the file ourselves: given a path, np.load leaks its handle when a corrupt .npz
    # fails in NpzFile's constructor (the handle is released from its ExitStack first).
    with path.open("rb") as fh:
        loaded = np.load(fh, allow_pickle=False)
        if isinstance(loaded, np.ndarray):
            return {"": loaded}
        with loaded:
            return {key: loaded[key] for key in loaded.files}


def _label(key: str) -> str:
    """An array in a sentence: its .npz key, or just 'array' for a .npy file."""
    return f"array {key!r}" if key else "array"


def _describe(array: Array) -> str:
    return f"shape {array.shape}, dtype {array.dtype}"


def _compare_one(tally: Tally, key: str, array_e: Array, array_a: Array) -> None:
    name = key or "array"
    family_e = _FAMILY.get(array_e.dtype.kind, array_e.dtype.kind)
    family_a = _FAMILY.get(array_a.dtype.kind, array_a.dtype.kind)
    if array_e.shape != array_a.shape:
        tally.unequal(
            name,
            f"shape {array_e.shape}",
            f"shape {array_a.shape}",
            f"{_label(key)}: shape {array_e.shape} in expected, {array_a.shape} in actual",
            max(array_e.size, array_a.size),
        )
    elif family_e != family_a or (family_e not in _NUMERIC and array_e.dtype != array_a.dtype):
        tally.unequal(
            name,
            f"dtype {array_e.dtype}",
            f"dtype {array_a.dtype}",
            f"{_label(key)}: dtype {array_e.dtype} in expected, {array_a.dtype} in actual",
            array_e.size,
        )
    elif family_e in _NUMERIC:
        _compare_numbers(tally, key, array_e, array_a)
    else:
        _compare_equal(tally, key, array_e, array_a)


def _compare_numbers(tally: Tally, key: str, array_e: Array, array_a: Array) -> None:
    working = (
        np.complex128 if array_e.dtype.kind == "c" or array_a.dtype.kind == "c" else np.float64
    )
    e = np.asarray(array_e, dtype=working).reshape(-1)
    a = np.asarray(array_a, dtype=working).reshape(-1)
    tol = tally.tolerance
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        equal = (e == a) | (np.isnan(e) & np.isnan(a))
        gap = np.abs(a - e).astype(np.float64)
        gap[equal] = 0.0
        gap[np.isnan(gap)] = np.inf
        magnitude = np.abs(e).astype(np.float64)
        within = equal | (np.isfinite(gap) & (gap <= tol.atol + tol.rtol * magnitude))
        rel = np.where(equal, 0.0, gap / magnitude)
        rel[np.isnan(rel) | ~np.isfinite(gap)] = np.inf
    outside = np.flatnonzero(~within)
    tally.count(e.size, int(outside.size), numbers=e.size)
    if e.size:
        top = int(np.argmax(gap))
        tally.observe(_where(key, array_e.shape, top), float(gap[top]), float(rel[top]))
        top_rel = int(np.argmax(rel))
        tally.observe(_where(key, array_e.shape, top_rel), float(gap[top_rel]), float(rel[top_rel]))
    for flat in outside[: MAX_DIFFERENCES - len(tally.differences)]:
        where = _where(key, array_e.shape, int(flat))
        shown_e, shown_a = str(array_e.reshape(-1)[flat]), str(array_a.reshape(-1)[flat])
        tally.note(
            Difference(
                where=where,
                expected=shown_e,
                actual=shown_a,
                abs_deviation=float(gap[flat]),
                rel_deviation=float(rel[flat]),
            ),
            f"{where}: {shown_e} -> {shown_a} (|Δ| {fmt(float(gap[flat]))})",
        )


def _compare_equal(tally: Tally, key: str, array_e: Array, array_a: Array) -> None:
    e, a = array_e.reshape(-1), array_a.reshape(-1)
    equal = np.asarray(e == a, dtype=bool)
    if e.dtype.kind in "mM":  # NaT never equals NaT, but the same NaT position is no change
        equal |= np.isnat(e) & np.isnat(a)
    outside = np.flatnonzero(~equal)
    tally.count(e.size, int(outside.size))
    for flat in outside[: MAX_DIFFERENCES - len(tally.differences)]:
        where = _where(key, array_e.shape, int(flat))
        shown_e, shown_a = str(e[flat]), str(a[flat])
        tally.note(
            Difference(where=where, expected=shown_e, actual=shown_a),
            f"{where}: {shown_e} -> {shown_a}",
        )


def _where(key: str, shape: tuple[int, ...], flat: int) -> str:
    """numpy-style location: x[3, 4], x[()] for a 0-d array; a .npy array has no name."""
    index = np.unravel_index(flat, shape) if shape else ()
    inside = ", ".join(str(int(i)) for i in index) if index else "()"
    return f"{key}[{inside}]"
