"""repro.toml's validation errors as a researcher can act on them: every one, one per line,
with its line and column in the file, the key as it was written, and "did you mean" for
a misspelt key.

pydantic says *what* is wrong (`runs.0.command: Field required`); the file says *where*.
tomllib keeps no positions and tomlkit keeps layout but not line numbers, so `key_positions`
is a small index over the TOML source: which line and column each table header and key is
on, by its path (`("runs", 0, "command")`). It reads only files tomllib has already parsed.
"""

from __future__ import annotations

import difflib
import re
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from repro.errors import ConfigError

Path_ = tuple[str | int, ...]
Position = tuple[int, int]
"""1-based line and column."""

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


# --- where each key is ---------------------------------------------------------------------


def _split_keys(text: str) -> list[str]:
    """A (possibly dotted, possibly quoted) TOML key as its parts: `a."b.c".d` -> a, b.c, d."""
    parts: list[str] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch in " \t.":
            i += 1
        elif ch in "\"'":
            end = i + 1
            buf = []
            while end < n and text[end] != ch:
                if ch == '"' and text[end] == "\\" and end + 1 < n:
                    buf.append(text[end + 1])
                    end += 2
                    continue
                buf.append(text[end])
                end += 1
            parts.append("".join(buf))
            i = end + 1
        else:
            match = _BARE_KEY.match(text, i)
            if match is None:
                break
            parts.append(match.group())
            i = match.end()
    return parts


def _key_end(line: str) -> int:
    """Where the `=` of a key/value line is (outside quotes); -1 when there is none."""
    quote = ""
    for i, ch in enumerate(line):
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "\"'":
            quote = ch
        elif ch == "=":
            return i
    return -1


@dataclass
class _ValueState:
    depth: int = 0
    """Open brackets/braces of a multi-line array or inline table."""
    string: str = ""
    """The delimiter of a multi-line string still open (\"\"\" or ''')."""


def _scan_value(text: str, state: _ValueState) -> None:
    """Advance through a value's text: brackets opened and closed, strings skipped."""
    i, n = 0, len(text)
    while i < n:
        if state.string:
            end = text.find(state.string, i)
            if end < 0:
                return
            i, state.string = end + 3, ""
            continue
        ch = text[i]
        if ch == "#":
            return
        if text.startswith(('"""', "'''"), i):
            state.string = text[i : i + 3]
            i += 3
        elif ch in "\"'":
            end = i + 1
            while end < n and text[end] != ch:
                end += 2 if ch == '"' and text[end] == "\\" else 1
            i = end + 1
        else:
            state.depth += ch in "[{"
            state.depth -= ch in "]}"
            i += 1


@dataclass(frozen=True)
class TomlIndex:
    positions: dict[Path_, Position]
    """path -> (line, col) of each table header and key."""
    table_arrays: frozenset[Path_]
    """The arrays written as [[x]] headers (not `x = [{...}]`)."""


def key_positions(text: str) -> dict[Path_, Position]:
    """Where each table header and key of a (valid) TOML document is: path -> (line, col).
    Keys inside inline tables and arrays are not indexed (their parent key is)."""
    return index_toml(text).positions


def index_toml(text: str) -> TomlIndex:
    """The positions of a (valid) TOML document's headers and keys, and its [[arrays]]."""
    positions: dict[Path_, Position] = {}
    arrays: dict[Path_, int] = {}  # an array of tables -> how many [[x]] so far
    table: Path_ = ()
    state = _ValueState()

    def resolve(keys: list[str]) -> Path_:
        path: Path_ = ()
        for key in keys:
            path = (*path, key)
            if path in arrays:
                path = (*path, arrays[path] - 1)
        return path

    for lineno, line in enumerate(text.splitlines(), 1):
        if state.string or state.depth > 0:
            _scan_value(line, state)
            continue
        stripped = line.lstrip()
        col = len(line) - len(stripped) + 1
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.startswith("[["):
            keys = _split_keys(stripped[2 : stripped.find("]]")])
            parent = resolve(keys[:-1])
            array = (*parent, keys[-1])
            arrays[array] = arrays.get(array, 0) + 1
            table = (*array, arrays[array] - 1)
            positions.setdefault(array, (lineno, col))
            positions[table] = (lineno, col)
        elif stripped.startswith("["):
            table = resolve(_split_keys(stripped[1 : stripped.find("]")]))
            positions[table] = (lineno, col)
        else:
            eq = _key_end(stripped)
            if eq < 0:
                continue
            keys = _split_keys(stripped[:eq])
            for i in range(1, len(keys) + 1):
                positions.setdefault((*table, *keys[:i]), (lineno, col))
            _scan_value(stripped[eq + 1 :], state)
    return TomlIndex(positions, frozenset(arrays))


# --- what each error says ------------------------------------------------------------------


def _unwrap(annotation: Any) -> type[BaseModel] | None:
    """The model a field holds: itself, or inside list[...], dict[str, ...], X | None."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (list, tuple, dict, typing.Union, types.UnionType) or args:
        for arg in reversed(args):  # dict[str, X]: the value's type is last
            found = _unwrap(arg)
            if found is not None:
                return found
    return None


def _model_at(root: type[BaseModel], path: Path_) -> type[BaseModel] | None:
    """The model of the table at `path` (list indexes and dict keys walked through)."""
    model: type[BaseModel] | None = root
    for part in path:
        if model is None:
            return None
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part)
        if field is None:
            # A dict's key (compare's output paths): the model of its values, one level on.
            continue
        model = _unwrap(field.annotation)
    return model


def _resolve(raw: Any, loc: Sequence[str | int], kind: str) -> Path_:
    """pydantic's error location as a path through the raw document (for a missing key,
    ending in that key). Union members' tags (`int`, `str`, `function-after[...]`) are not
    in the document and are dropped."""
    path: Path_ = ()
    current: Any = raw
    for i, part in enumerate(loc):
        inside = isinstance(current, Mapping) and part in current
        if isinstance(current, list) and isinstance(part, int):
            inside = 0 <= part < len(current)
        if inside:
            path, current = (*path, part), current[part]
        elif kind == "missing" and i == len(loc) - 1 and isinstance(current, Mapping):
            path = (*path, part)
    return path


def _where(raw: Any, path: Path_, prefix: Path_, arrays: frozenset[Path_]) -> str:
    """A table's name as the file says it: [environment], [[runs]] #2 ("plot"),
    capsule.authors #1 (an inline array), under [tool.repro] in pyproject.toml."""
    if not path:
        return "[" + ".".join(map(str, prefix)) + "]" if prefix else "the top level"
    last_index = max((i for i, p in enumerate(path) if isinstance(p, int)), default=-1)
    if last_index < 0:
        return "[" + ".".join(str(p) for p in (*prefix, *path)) + "]"
    keys = [str(p) for p in (*prefix, *path[:last_index]) if not isinstance(p, int)]
    element = raw
    for part in path[: last_index + 1]:
        element = element[part]
    name = element.get("name") or element.get("path") if isinstance(element, Mapping) else None
    header = (*prefix, *path[:last_index]) in arrays
    array = f"[[{'.'.join(keys)}]]" if header else ".".join(keys)
    number = int(path[last_index]) + 1
    base = f"{array} #{number}" + (f' ("{name}")' if isinstance(name, str) else "")
    rest = [str(p) for p in path[last_index + 1 :]]
    return f"[{'.'.join([*keys, *rest])}] of {base}" if rest else base


_KINDS = {
    "bool": "true or false",
    "int": "a whole number",
    "float": "a number",
    "str": "a string",
    "list": "an array [...]",
    "dict": "a table",
}
_TYPE_ERROR = re.compile(r"^(bool|int|float|string|list|dict|model)_(type|parsing)|_type$")


def _expected(kind: str) -> str:
    base = kind.split("_")[0]
    return _KINDS.get("str" if base == "string" else base, base)


def _show(value: Any) -> str:
    if isinstance(value, str):
        return '"' + value.replace('"', '\\"') + '"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Mapping):
        return "a table"
    if isinstance(value, list):
        return "an array"
    return str(value)


@dataclass(frozen=True)
class ConfigProblem:
    """One thing wrong with the file, and where."""

    path: Path_
    """The key (or table) at fault, through the document."""
    position: Position | None
    text: str
    suggestion: str | None = None
    """For an unknown key: the field it most likely meant."""


def problems(
    exc: ValidationError,
    raw: Mapping[str, Any],
    root: type[BaseModel],
    index: TomlIndex,
    prefix: Path_ = (),
) -> list[ConfigProblem]:
    """Every validation error as a ConfigProblem, in the file's order (union members'
    failures merged into one; a required key reported missing because it was misspelt is
    said once, as the misspelling). `index` is key_positions of the file; `prefix` where
    the config table is in it (("tool", "repro") in pyproject.toml)."""
    grouped: dict[Path_, list[dict[str, Any]]] = {}
    for error in exc.errors():
        full = _resolve(raw, error["loc"], error["type"])
        grouped.setdefault(full, []).append(dict(error))
    found: list[ConfigProblem] = []
    suggested: set[Path_] = set()
    for full, errors in grouped.items():
        position = _position(index.positions, (*prefix, *full))
        first = errors[0]
        key_path = full
        while key_path and isinstance(key_path[-1], int):
            key_path = key_path[:-1]  # an array's item: named by its array's key
        if first["type"] == "value_error" and isinstance(first.get("input"), Mapping):
            # A table's own validator (a run's outputs and compare rules disagree): its
            # message names the keys; the table is named by where it is.
            where = _where(raw, full, prefix, index.table_arrays)
            found.append(ConfigProblem(full, position, f"{where}: {_message(first)}"))
            continue
        if not key_path:
            found.append(ConfigProblem(full, position, _message(first)))
            continue
        container, key = key_path[:-1], str(key_path[-1])
        where = _where(raw, container, prefix, index.table_arrays)
        item = f" item #{full[-1] + 1}" if isinstance(full[-1], int) else ""
        name = f"'{key}'{item} in {where}"
        if first["type"] == "extra_forbidden" and not item:
            model = _model_at(root, container)
            names = list(model.model_fields) if model is not None else []
            close = difflib.get_close_matches(key, names, n=1, cutoff=0.6)
            suggestion = close[0] if close else None
            if suggestion is not None:
                suggested.add((*container, suggestion))
            tail = f": did you mean '{suggestion}'?" if suggestion else ""
            known = "" if suggestion or not names else f" (it may hold: {', '.join(names)})"
            text = f"unknown key '{key}' in {where}{tail}{known}"
            found.append(ConfigProblem(full, position, text, suggestion))
        elif first["type"] == "missing":
            found.append(ConfigProblem(full, position, f"{where} has no '{key}' (required)"))
        elif all(_TYPE_ERROR.search(e["type"]) for e in errors):
            kinds = list(dict.fromkeys(_expected(e["type"]) for e in errors))
            wanted = kinds[0] if len(kinds) == 1 else ", ".join(kinds[:-1]) + " or " + kinds[-1]
            text = f"{name} should be {wanted}, not {_show(first.get('input'))}"
            found.append(ConfigProblem(full, position, text))
        else:
            found.append(ConfigProblem(full, position, _other(first, name, key, container, root)))
    found = [p for p in found if not (p.path in suggested and "(required)" in p.text)]
    return sorted(found, key=lambda p: p.position or (1 << 30, 0))


def _message(error: Mapping[str, Any]) -> str:
    """pydantic's message without its jargon: `Value error, X` -> X, `Input should` -> should."""
    message = str(error["msg"]).removeprefix("Value error, ")
    return re.sub(r"^Input should", "should", message)


def _other(
    error: Mapping[str, Any], name: str, key: str, container: Path_, root: type[BaseModel]
) -> str:
    """Any other error: a validator's own message, or a value of the wrong form with what
    the field's description says it should be."""
    kind = str(error["type"])
    if kind == "value_error":
        return f"{name}: {_message(error)}"
    model = _model_at(root, container)
    field = model.model_fields.get(key) if model is not None else None
    described = f" ({field.description.rstrip('.')})" if field and field.description else ""
    return f"{name} {_message(error)}, not {_show(error.get('input'))}{described}"


def _position(index: Mapping[Path_, Position], path: Path_) -> Position | None:
    """Where `path` is written, else where its nearest enclosing key or table is."""
    for end in range(len(path), 0, -1):
        if path[:end] in index:
            return index[path[:end]]
    return None


def config_error(
    exc: ValidationError,
    raw: Mapping[str, Any],
    root: type[BaseModel],
    source: str,
    text: str | None = None,
    prefix: Path_ = (),
) -> ConfigError:
    """The ConfigError for a file that does not validate: one line per problem (FILE:LINE:COL:
    what), the first as the message when it is the only one."""
    index = index_toml(text) if text is not None else TomlIndex({}, frozenset())
    found = problems(exc, raw, root, index, prefix)
    file = source.split(" ", 1)[0]
    lines = [
        f"{file}:{p.position[0]}:{p.position[1]}: {p.text}" if p.position else f"{source}: {p.text}"
        for p in found
    ]
    hint = (
        f"fix {file} and run the command again (every key it may hold: "
        "README.md, 'repro.toml reference')"
    )
    if len(lines) == 1:
        return ConfigError(lines[0], hint=hint)
    return ConfigError(f"{source} has {len(lines)} problems", hint=hint, details=lines)
