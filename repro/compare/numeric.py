"""Numbers within a tolerance, in JSON documents, CSV/TSV tables and plain text.

Both files are parsed in memory.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from typing import Any

from repro.compare.finding import Finding, shown, unreadable
from repro.compare.text import NormalizationError, decode, normalise, unify_newlines
from repro.compare.tolerance import Tally, Tolerance
from repro.config.models import Normalization

_ABSENT: Any = object()
"""Stands for the missing side of a key only one JSON object has."""
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_CELL_NUMBER = re.compile(
    r"\s*[-+]?(?:(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?|(?i:nan|inf(?:inity)?))\s*"
)
# A number in running text: not glued to a preceding word or dot, so "run42" or "v1.5"
# stay text while "loss=0.25" and "12ms" hold numbers.
_TEXT_NUMBER = re.compile(
    r"(?<![\w.])([-+]?(?:(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?|(?i:nan|inf(?:inity)?)(?!\w)))"
)


# --- JSON --------------------------------------------------------------------------------


def compare_json(expected: bytes, actual: bytes, tolerance: Tolerance) -> Finding:
    """Same structure required (keys, lengths, types); numbers within tolerance; the rest equal."""
    documents: list[Any] = []
    problems = []
    for side, data in (("expected", expected), ("actual", actual)):
        try:
            documents.append(json.loads(data))
        except (ValueError, RecursionError) as exc:  # JSONDecodeError, UnicodeDecodeError
            problems.append(f"could not parse {side} as JSON: {exc}")
    if problems:
        return unreadable(problems)
    tally = Tally(tolerance)
    # Iterative, not recursive: nesting as deep as the parser accepts must not overflow here.
    # Children are pushed in reverse so that differences come out in document order.
    stack: list[tuple[str, Any, Any]] = [("$", documents[0], documents[1])]
    while stack:
        where, value_e, value_a = stack.pop()
        if value_a is _ABSENT:
            tally.unequal(
                where, _short(value_e), None, f"{where} missing in actual", _leaves(value_e)
            )
            continue
        if value_e is _ABSENT:
            tally.unequal(
                where, None, _short(value_a), f"{where} not in expected", _leaves(value_a)
            )
            continue
        kind_e, kind_a = _kind(value_e), _kind(value_a)
        children: list[tuple[str, Any, Any]] = []
        if kind_e != kind_a:
            tally.unequal(
                where,
                _short(value_e),
                _short(value_a),
                f"{where} is {_article(kind_e)} in expected, {_article(kind_a)} in actual",
                values=_leaves(value_e),
            )
        elif kind_e == "object":
            children = [
                (_key_path(where, key), child, value_a.get(key, _ABSENT))
                for key, child in value_e.items()
            ]
            children += [
                (_key_path(where, key), _ABSENT, child)
                for key, child in value_a.items()
                if key not in value_e
            ]
        elif kind_e == "array":
            if len(value_e) != len(value_a):
                surplus = value_e[len(value_a) :] or value_a[len(value_e) :]
                tally.unequal(
                    where,
                    f"{len(value_e)} items",
                    f"{len(value_a)} items",
                    f"{where} has {len(value_e)} items in expected, {len(value_a)} in actual",
                    sum(_leaves(item) for item in surplus),
                )
            children = [
                (f"{where}[{i}]", e, a)
                for i, (e, a) in enumerate(zip(value_e, value_a, strict=False))
            ]
        elif kind_e == "number":
            if value_e == value_a:
                tally.count(1, numbers=1)
            else:
                tally.number(
                    where,
                    _as_float(value_e),
                    _as_float(value_a),
                    (_short(value_e), _short(value_a)),
                )
        elif value_e == value_a:
            tally.equal()
        else:
            shown_e, shown_a = _short(value_e), _short(value_a)
            tally.unequal(where, shown_e, shown_a, f"{where}: {shown_e} -> {shown_a}")
        stack.extend(reversed(children))
    return tally.finding()


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    return "null"


def _article(kind: str) -> str:
    return f"an {kind}" if kind[0] in "aeiou" else f"a {kind}"


def _key_path(where: str, key: str) -> str:
    return f"{where}.{key}" if _IDENTIFIER.fullmatch(key) else f"{where}[{json.dumps(key)}]"


def _short(value: Any) -> str:
    return shown(json.dumps(value, ensure_ascii=False))


def _leaves(value: Any) -> int:
    """Leaf values in a JSON subtree (at least 1), counted without recursion."""
    count, stack = 0, [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        else:
            count += 1
    return max(count, 1)


def _as_float(value: int | float) -> float:
    try:
        return float(value)
    except OverflowError:  # an integer beyond float range
        return math.inf if value > 0 else -math.inf


# --- CSV / TSV ---------------------------------------------------------------------------


class _TableError(ValueError):
    pass


def compare_table(
    expected: bytes, actual: bytes, delimiter: str, tolerance: Tolerance, kind: str
) -> Finding:
    """Same shape and header; cells that both parse as numbers within tolerance, others equal.

    The first row is a header unless every cell of the expected first row is a number. Rows
    are counted from 1 after the header; blank lines are skipped.
    """
    tables: list[list[list[str]]] = []
    problems = []
    for side, data in (("expected", expected), ("actual", actual)):
        try:
            tables.append(_read_table(data, delimiter))
        except _TableError as exc:
            problems.append(f"could not parse {side} as {kind}: {exc}")
    if problems:
        return unreadable(problems)
    rows_e, rows_a = tables
    tally = Tally(tolerance)
    if not rows_e or not rows_a:
        if rows_e or rows_a:
            empty = "actual" if rows_e else "expected"
            rows = rows_e or rows_a
            tally.unequal(
                "rows",
                f"{len(rows_e)} rows",
                f"{len(rows_a)} rows",
                f"{empty} has no rows",
                len(rows) * len(rows[0]),
            )
        return tally.finding()
    width_e, width_a = len(rows_e[0]), len(rows_a[0])
    if width_e != width_a:
        tally.unequal(
            "columns",
            f"{width_e} columns",
            f"{width_a} columns",
            f"expected has {width_e} columns, actual {width_a}",
            max(width_e, width_a) * max(len(rows_e), len(rows_a)),
        )
        return tally.finding()
    names = [f"column {i + 1}" for i in range(width_e)]
    if not all(_cell_number(cell) is not None for cell in rows_e[0]):
        header_e, header_a = rows_e[0], rows_a[0]
        names = [f"column {name!r}" for name in header_e]
        for i, (name_e, name_a) in enumerate(zip(header_e, header_a, strict=True)):
            where = f"header, column {i + 1}"
            if name_e == name_a:
                tally.equal()
            else:
                tally.unequal(
                    where,
                    shown(name_e),
                    shown(name_a),
                    f"{where}: {shown(name_e)!r} -> {shown(name_a)!r}",
                )
        rows_e, rows_a = rows_e[1:], rows_a[1:]
    if len(rows_e) != len(rows_a):
        extra = abs(len(rows_e) - len(rows_a))
        tally.unequal(
            "rows",
            f"{len(rows_e)} rows",
            f"{len(rows_a)} rows",
            f"expected has {len(rows_e)} data rows, actual {len(rows_a)}",
            extra * width_e,
        )
    for r, (row_e, row_a) in enumerate(zip(rows_e, rows_a, strict=False), start=1):
        for name, cell_e, cell_a in zip(names, row_e, row_a, strict=True):
            where = f"row {r}, {name}"
            number_e, number_a = _cell_number(cell_e), _cell_number(cell_a)
            if number_e is not None and number_a is not None:
                tally.number(where, number_e, number_a, (shown(cell_e), shown(cell_a)))
            elif cell_e == cell_a:
                tally.equal()
            else:
                tally.unequal(
                    where,
                    shown(cell_e),
                    shown(cell_a),
                    f"{where}: {shown(cell_e)!r} -> {shown(cell_a)!r}",
                )
    return tally.finding()


def _read_table(data: bytes, delimiter: str) -> list[list[str]]:
    text = decode(data).removeprefix("\ufeff")
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    rows: list[list[str]] = []
    try:
        for row in reader:
            if not row:
                continue
            if rows and len(row) != len(rows[0]):
                raise _TableError(
                    f"line {reader.line_num} has {len(row)} fields, the first row {len(rows[0])}"
                )
            rows.append(row)
    except csv.Error as exc:
        raise _TableError(f"line {reader.line_num}: {exc}") from exc
    return rows


def _cell_number(cell: str) -> float | None:
    return float(cell) if _CELL_NUMBER.fullmatch(cell) else None


# --- numbers in text ---------------------------------------------------------------------


def compare_text_numbers(
    expected: bytes, actual: bytes, tolerance: Tolerance, rules: list[Normalization]
) -> Finding:
    """Line by line: the text around numbers must be equal, numbers within tolerance.

    Line endings are unified and the rule's normalisations applied first. Each line's text
    (with its numbers taken out) counts as one value, and each number as one.
    """
    try:
        text_e = normalise(unify_newlines(decode(expected)), rules)
        text_a = normalise(unify_newlines(decode(actual)), rules)
    except NormalizationError as exc:
        return Finding(verdict="different", detail=f"not compared: {exc}")
    lines_e, lines_a = text_e.split("\n"), text_a.split("\n")
    tally = Tally(tolerance)
    if len(lines_e) != len(lines_a):
        tally.unequal(
            "lines",
            f"{len(lines_e)} lines",
            f"{len(lines_a)} lines",
            f"expected has {len(lines_e)} lines, actual {len(lines_a)}",
            abs(len(lines_e) - len(lines_a)),
        )
    for n, (line_e, line_a) in enumerate(zip(lines_e, lines_a, strict=False), start=1):
        parts_e, parts_a = _TEXT_NUMBER.split(line_e), _TEXT_NUMBER.split(line_a)
        # split() with one group alternates text, number, text, ..., text.
        if len(parts_e) != len(parts_a) or parts_e[::2] != parts_a[::2]:
            tally.unequal(
                f"line {n}",
                shown(line_e),
                shown(line_a),
                f"line {n}: the text around the numbers differs",
                1 + len(parts_e) // 2,
            )
            continue
        tally.equal()
        column = 1
        for i, part_e in enumerate(parts_e):
            if i % 2:
                part_a = parts_a[i]
                where = f"line {n}, column {column}"
                tally.number(where, float(part_e), float(part_a), (part_e, part_a))
            column += len(part_e)
    return tally.finding()
