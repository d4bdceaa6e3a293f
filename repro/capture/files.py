"""Which project files go into a capsule: git-aware listing, ignores, symlink and name checks."""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import pathspec

from repro import progress
from repro.capsule.probe import CAPSULE_SUFFIX, GZIP_SUFFIXES, is_capsule
from repro.capture.secret_scan import secret_file_reason
from repro.capture.source import git
from repro.errors import ProjectFileError, UnsafeSymlinkError
from repro.execution.outputs import is_pattern, matches
from repro.hashing import FileStat

CAPSULE_NAMES = (CAPSULE_SUFFIX, *GZIP_SUFFIXES)

BUILTIN_IGNORES = [
    ".git/",
    ".hg/",
    ".svn/",
    "__pycache__/",
    "*.py[cod]",
    ".venv/",
    "venv/",
    ".tox/",
    ".nox/",
    ".mypy_cache/",
    ".pytest_cache/",
    ".ruff_cache/",
    ".ipynb_checkpoints/",
    ".DS_Store",
    ".repro-tmp-*",
]


class ProjectFile(NamedTuple):
    """A file (or symlink) of the project, relative to the project root.

    A tuple, not an object with a Path: a study of a million files keeps a million of them
    (a Path costs about 300 bytes and 10 us to build); `path` makes one when asked."""

    rel: str
    where: str
    """The file's path as a string: the project's path joined with `rel`."""
    is_link: bool
    link_target: str | None
    executable: bool
    stat: FileStat | None = None
    """The lstat seen when listed (regular files): sizes and the stat cache use it."""

    @property
    def path(self) -> Path:
        return Path(self.where)


@dataclass(frozen=True)
class Listing:
    files: list[ProjectFile]
    excluded: list[str]


def _decode(raw: bytes, where: Path) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        shown = raw.decode("utf-8", errors="backslashreplace")
        raise ProjectFileError(
            f"file name is not valid UTF-8: {where / shown}",
            hint="rename the file (capsules travel between systems; names must be UTF-8), "
            "or add it to .reproignore",
        ) from None


def git_listing(project: Path) -> list[str] | None:
    """Tracked plus untracked-not-ignored files, relative to project; None outside git."""
    proc = git(project, "ls-files", "-z", "--cached", "--others", "--exclude-standard")
    if proc is None or not proc.ok:
        return None
    names = [n for n in proc.stdout_bytes.split(b"\0") if n]
    return sorted({_decode(n, project) for n in names})


def walk_listing(root: Path, project: Path) -> list[str]:
    """Every file and symlink under root (a folder of the project), relative to project.

    One os.scandir pass per folder (the entry's type comes with the listing: no stat per
    file), walked as bytes so a name that is not UTF-8 is caught and named, not mangled."""
    found: list[str] = []
    base = os.fsencode(project)
    start = os.fsencode(root)
    rel_start = start[len(base) :].lstrip(b"/")
    stack = [(start, rel_start)]
    append = found.append
    while stack:
        folder, rel_folder = stack.pop()
        prefix = rel_folder + b"/" if rel_folder else b""
        text_prefix = _decode(prefix, project)
        subfolders = []
        with os.scandir(folder) as entries:
            for entry in entries:
                raw = entry.name
                if entry.is_dir(follow_symlinks=False):
                    subfolders.append((entry.path, prefix + raw))
                    continue
                try:
                    append(text_prefix + raw.decode("utf-8"))
                except UnicodeDecodeError:
                    _decode(prefix + raw, project)  # raises, naming the file
        for path, rel in sorted(subfolders, reverse=True):
            _decode(rel, project)
            stack.append((path, rel))
    return found


def load_ignores(project: Path, extra: list[str]) -> pathspec.GitIgnoreSpec:
    patterns = list(BUILTIN_IGNORES)
    ignore_file = project / ".reproignore"
    if ignore_file.is_file():
        patterns += ignore_file.read_text(encoding="utf-8").splitlines()
    patterns += extra
    return pathspec.GitIgnoreSpec.from_lines(patterns)


_NAMED_GROUP = re.compile(r"\(\?P<[A-Za-z_][A-Za-z0-9_]*>")


def ignore_matcher(spec: pathspec.GitIgnoreSpec) -> Callable[[str], bool]:
    """`spec.match_file`, as one compiled regex when no pattern re-includes (`!pattern`):
    then a path is ignored exactly when some pattern matches it, and one regex search costs
    what one of pathspec's dozen does. With a negation, pathspec's own last-match-wins."""
    regexes = []
    for pattern in spec.patterns:
        regex = getattr(pattern, "regex", None)
        include = getattr(pattern, "include", None)
        if include is None:
            continue  # a blank line or a comment
        if include is False or not isinstance(regex, re.Pattern):
            return spec.match_file
        regexes.append(_NAMED_GROUP.sub("(?:", regex.pattern))
    if not regexes:
        return lambda _rel: False
    combined = re.compile(_factored(regexes))
    return lambda rel: combined.match(rel) is not None


_ANY_FOLDER = "^(?:.+/)?"
"""How pathspec begins the regex of a pattern without a slash (in any folder)."""


def _factored(regexes: list[str]) -> str:
    """The alternation of `regexes`, with their common `^(?:.+/)?` taken out once:
    A(B|C) matches exactly what AB|AC does, and the regex engine then walks the folders of
    a path once, not once per pattern (a quarter of the time at 100k paths)."""
    shared = [r[len(_ANY_FOLDER) :] for r in regexes if r.startswith(_ANY_FOLDER)]
    others = [r for r in regexes if not r.startswith(_ANY_FOLDER)]
    parts = [f"(?:{r})" for r in others]
    if shared:
        parts.append(_ANY_FOLDER + "(?:" + "|".join(f"(?:{r})" for r in shared) + ")")
    return "|".join(parts)


def list_project(
    project: Path,
    *,
    data_paths: list[str],
    extra_ignores: list[str],
    exclude: set[str],
    allow_secrets: set[str] | None = None,
) -> Listing:
    """The files a capsule of `project` embeds.

    In a git work tree: tracked plus untracked-not-ignored files; elsewhere every file.
    Then .reproignore, built-in ignores and `exclude` (declared outputs -- paths, folders
    ending in / and globs -- and the capsule being written) are removed; declared data
    paths are always walked, even when git ignores them.
    Files that usually hold secrets are left out (and reported) unless in `allow_secrets`.
    """
    spec = load_ignores(project, extra_ignores)
    names = git_listing(project)
    walked = names is None  # every file under the project is listed already
    if names is None:
        names = walk_listing(project, project)
    names_set = set(names)
    for data in data_paths:
        target = project / data
        if target.is_dir() and not target.is_symlink():
            if not (walked and _walked_by_the_project(project, data)):
                names_set.update(walk_listing(target, project))
        elif target.exists() or target.is_symlink():
            names_set.add(Path(data).as_posix())
        else:
            raise ProjectFileError(
                f"data path not found: {data}",
                hint="check [[data]] path in repro.toml (relative to the project)",
            )

    files: list[ProjectFile] = []
    excluded: list[str] = []
    real_root = project.resolve()
    # A folder or glob output names every file it matches: none of them is a project file.
    patterns = [e for e in exclude if is_pattern(e)]
    ignored = ignore_matcher(spec)
    allowed = allow_secrets or set()
    # Per file, only strings and one lstat: no Path (the loop runs a million times).
    root = os.fspath(project)
    prefix = "" if root == "." else root if root.endswith("/") else root + "/"
    lstat, is_reg, is_link, is_dir = os.lstat, stat.S_ISREG, stat.S_ISLNK, stat.S_ISDIR
    append = files.append
    with progress.meter("listing", total=len(names_set)) as shown:
        for rel in sorted(names_set):
            shown.advance()
            if rel in exclude or (patterns and any(matches(pattern, rel) for pattern in patterns)):
                excluded.append(f"{rel} (declared output or remote data)")
                continue
            if ignored(rel):
                continue
            where = prefix + rel
            try:
                st = lstat(where)
            except FileNotFoundError:
                # Tracked in git but deleted in the work tree: the capsule holds the work tree.
                continue
            mode = st.st_mode
            if is_reg(mode):
                if rel.endswith(CAPSULE_NAMES) and is_capsule(rel, Path(where)):
                    excluded.append(f"{rel} (a repro capsule: capsules are never packed into one)")
                    continue
                reason = None if rel in allowed else secret_file_reason(rel, where)
                if reason is not None:
                    excluded.append(f"{rel} ({reason})")
                    continue
                append(
                    ProjectFile(
                        rel,
                        where,
                        False,
                        None,
                        bool(mode & 0o111),
                        FileStat(st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns),
                    )
                )
            elif is_link(mode):
                files.append(_symlink(project, real_root, rel, Path(where)))
            elif is_dir(mode):
                continue  # a git submodule appears as a directory; its files are not ours
            else:
                raise ProjectFileError(f"not a regular file: {rel} (a device, socket or FIFO)")
    check_link_targets(files)
    return Listing(files=files, excluded=excluded)


def _walked_by_the_project(project: Path, data: str) -> bool:
    """Whether walking the project lists the folder `data` whole, as walking it does: a plain
    relative path whose folders are none of them a symlink (a walk does not follow one)."""
    parts = Path(data).parts
    if not parts or any(part in (".", "..") for part in parts) or Path(data).is_absolute():
        return False
    folder = project
    for part in parts:
        folder = folder / part
        if folder.is_symlink() or not folder.is_dir():
            return False
    return True


def _symlink(project: Path, real_root: Path, rel: str, path: Path) -> ProjectFile:
    target = str(path.readlink())
    resolved = Path(os.path.realpath(path))
    if not resolved.is_relative_to(real_root):
        raise UnsafeSymlinkError(f"symlink leaves the project: {rel} -> {target}")
    if not resolved.exists():
        raise UnsafeSymlinkError(
            f"broken symlink: {rel} -> {target}",
            hint="fix or remove the link, or add it to .reproignore",
        )
    # Stored relative to the link's own folder, so it resolves the same inside the capsule.
    relative_target = os.path.relpath(resolved, Path(os.path.realpath(path.parent)))
    return ProjectFile(rel, str(path), True, Path(relative_target).as_posix(), False)


def check_link_targets(files: list[ProjectFile]) -> None:
    """Every kept symlink must point at something the capsule holds."""
    links = [(f.rel, f.link_target) for f in files if f.link_target is not None]
    if not links:
        return
    names = {f.rel for f in files}
    folders = {str(parent) for n in names for parent in Path(n).parents}
    for rel, link_target in links:
        target = os.path.normpath(str(Path(rel).parent / link_target))
        if target not in names and target not in folders:
            raise UnsafeSymlinkError(
                f"symlink points at a file the capsule leaves out: {rel} -> {link_target}",
                hint="include the target (check .reproignore and .gitignore) or drop the link",
            )
