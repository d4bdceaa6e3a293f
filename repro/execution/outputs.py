"""A run's declared outputs as files: plain paths, folders (`results/`) and globs
(`figures/*.pdf`, `tables/**/*.csv`), matched the same way at capture and at replay.

A pattern matches regular files only (never a symbolic link, never a folder): `*`, `?` and
`[...]` match within one path segment, `**` any number of segments, and an entry ending in
`/` every file below that folder. Names with spaces are ordinary names. Repro's own working
folders (`.repro-*` at the top of the project) are never matched.
"""

from __future__ import annotations

import os
import stat
from fnmatch import fnmatchcase
from pathlib import Path

_GLOB_CHARS = frozenset("*?[")
_OWN_PREFIX = ".repro-"


def is_pattern(output: str) -> bool:
    """Whether a (rendered) output entry names many files: a folder or a glob."""
    return output.endswith("/") or any(c in _GLOB_CHARS for c in output)


def pattern_parts(pattern: str) -> list[str]:
    """The segments to match; a folder `d/` is `d/**/*` (every file below it)."""
    parts = [p for p in pattern.split("/") if p]
    return [*parts, "**", "*"] if pattern.endswith("/") else parts


def matches(pattern: str, rel: str) -> bool:
    """Whether the project-relative POSIX path `rel` is one of the files `pattern` names."""
    if not is_pattern(pattern):
        return rel == pattern
    parts = rel.split("/")
    if parts and parts[0].startswith(_OWN_PREFIX):
        return False
    return _match(pattern_parts(pattern), parts)


def _match(pats: list[str], parts: list[str]) -> bool:
    if not pats:
        return not parts
    head, rest = pats[0], pats[1:]
    if head == "**":
        return any(_match(rest, parts[i:]) for i in range(len(parts) + 1))
    return bool(parts) and fnmatchcase(parts[0], head) and _match(rest, parts[1:])


def expand(pattern: str, root: Path) -> list[str]:
    """The regular files under `root` that `pattern` names, sorted (project-relative POSIX
    paths). Only the folder the pattern's literal head names is walked; links are not
    followed."""
    parts = pattern_parts(pattern)
    literal: list[str] = []
    for part in parts:
        if any(c in _GLOB_CHARS for c in part):
            break
        literal.append(part)
    start = root.joinpath(*literal) if literal else root
    try:
        if not stat.S_ISDIR(start.lstat().st_mode):
            return []
    except OSError:
        return []
    found: list[str] = []
    for dirpath, dirnames, filenames in os.walk(start):
        here = Path(dirpath)
        rel_dir = here.relative_to(root).as_posix()
        if rel_dir == ".":
            dirnames[:] = [d for d in dirnames if not d.startswith(_OWN_PREFIX)]
        dirnames.sort()
        for name in filenames:
            rel = name if rel_dir == "." else f"{rel_dir}/{name}"
            try:
                mode = (here / name).lstat().st_mode
            except OSError:
                continue
            if stat.S_ISREG(mode) and _match(parts, rel.split("/")):
                found.append(rel)
    return sorted(found)
