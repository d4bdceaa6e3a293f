"""`repro cache list|prune`: what repro keeps in its cache, how big, when last used; pruned
without ever removing an entry in use.

Entries, by kind: `venvs` (environments built from locks), `wheels` (a lock's downloaded
wheels), `data` (remote data files), `tools` (pip-tools' own venv per Python), `zenodo`
(downloaded capsules), `blocks` (compressed blocks of earlier capsules, reused by the next
capture: repro.capsule.blockcache), and `images` (the `repro-env` / `repro-loaded` Docker images).
Each use stamps the entry (repro.paths.mark_used) and holds a shared lock on the stamp
while the process lives; a build holds the entry's build lock. Pruning takes both locks
without waiting: an entry either lock refuses is in use, and skipped.
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

from repro.engines import ContainerEngine
from repro.env.image import IMAGE_REPO, LOADED_REPO
from repro.env.virtualenv import MARKER, RECORD_SUFFIX
from repro.errors import ServiceUnavailableError, UsageError
from repro.paths import USED_DIR, cache_dir

Kind = Literal["venvs", "wheels", "data", "tools", "zenodo", "blocks", "images"]
KINDS: tuple[Kind, ...] = ("venvs", "wheels", "data", "tools", "zenodo", "blocks", "images")
FRESH_IMAGE_S = 15 * 60
"""An image built or used this recently counts as in use: the engine is shared, and another
repro (another user, another cache folder) may have built it and be about to run it."""
IMAGE_GRACE_ENV = "REPRO_IMAGE_GRACE"
"""Seconds overriding FRESH_IMAGE_S."""
IMAGE_REPOS_ENV = "REPRO_IMAGE_REPOSITORIES"
"""Comma-separated Docker repositories whose images count as repro's (default: repro-env,
repro-loaded); tests point it at a repository of their own."""


@dataclass(frozen=True)
class Entry:
    """One cache entry."""

    kind: Kind
    name: str
    size: int
    """Bytes on disk (for an image: as the engine reports it, shared layers included)."""
    last_used: float
    """Epoch seconds: its last use stamp, else when it was made."""
    in_use: bool
    path: str
    """Folder or file; for an image its tags."""


@dataclass(frozen=True)
class Listing:
    entries: list[Entry]
    warnings: list[str]

    @property
    def total(self) -> int:
        return sum(e.size for e in self.entries)


@dataclass(frozen=True)
class Pruned:
    removed: list[Entry]
    kept: list[Entry]
    skipped: list[Entry]
    """Would have been removed, but in use."""
    warnings: list[str]
    dry_run: bool

    @property
    def freed(self) -> int:
        return sum(e.size for e in self.removed)


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_kinds(names: Sequence[str] | None) -> list[Kind]:
    """--kind values -> kinds (all when none); UsageError naming the known ones."""
    chosen: list[Kind] = []
    for name in names or KINDS:
        kind = next((k for k in KINDS if k == name or k == name + "s"), None)
        if kind is None:
            raise UsageError(f"no cache kind {name!r}", hint=f"kinds: {', '.join(KINDS)}")
        chosen.append(kind)
    return list(dict.fromkeys(chosen))


def parse_age(text: str) -> float:
    """`30d`, `12h`, `2w`, `90m`, `45s` -> seconds; UsageError otherwise."""
    found = _DURATION.match(text)
    if found is None:
        raise UsageError(
            f"--older-than {text!r} is not a duration", hint="e.g. --older-than 30d (s, m, h, d, w)"
        )
    return float(found.group(1)) * _UNIT_S[found.group(2)]


def _tree_size(path: Path) -> int:
    if path.is_symlink() or path.is_file():
        return path.lstat().st_size
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_size  # noqa: PTH118
            except OSError:
                continue
    return total


def _stamp(kind: str, name: str) -> Path:
    return cache_dir() / USED_DIR / kind / name


def _build_lock(kind: Kind, path: Path) -> Path | None:
    """The lock file the entry's builder holds (the same expression it uses)."""
    if kind in ("venvs", "wheels", "tools"):
        return path.with_suffix(".lock")
    return None


def _last_used(kind: str, name: str, path: Path) -> float:
    try:
        return _stamp(kind, name).stat().st_mtime
    except OSError:
        try:
            return path.stat().st_mtime
        except OSError:
            return 0.0


@contextmanager
def _held(kind: Kind, name: str, path: Path) -> Iterator[bool]:
    """Exclusive locks on the entry's stamp and build lock, not waiting: True when both were
    taken (the entry is not in use), held for the block."""
    with ExitStack() as stack:
        for lock in (_stamp(kind, name), _build_lock(kind, path)):
            if lock is None or not lock.exists():
                continue
            try:
                fd = os.open(lock, os.O_RDWR | os.O_NOFOLLOW)
            except OSError:
                continue
            stack.callback(os.close, fd)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
        yield True


def _in_use(kind: Kind, name: str, path: Path) -> bool:
    with _held(kind, name, path) as free:
        return not free


def _files(kind: Kind) -> list[Entry]:
    folder = cache_dir() / kind
    if not folder.is_dir():
        return []
    entries = []
    for path in sorted(folder.iterdir()):
        name = path.name
        if path.is_symlink() or name.startswith("."):
            continue  # a download in progress (.download-*), or nothing of repro's
        if kind == "data" and not path.is_file():
            continue
        if kind != "data" and (not path.is_dir() or name.endswith(RECORD_SUFFIX)):
            continue  # lock files and venv records go with their entry
        entries.append(
            Entry(
                kind,
                name,
                _tree_size(path),
                _last_used(kind, name, path),
                _in_use(kind, name, path),
                str(path),
            )
        )
    return entries


def _grace() -> float:
    try:
        return float(os.environ.get(IMAGE_GRACE_ENV, FRESH_IMAGE_S))
    except ValueError:
        return FRESH_IMAGE_S


def image_repositories() -> tuple[str, ...]:
    named = os.environ.get(IMAGE_REPOS_ENV)
    if named:
        return tuple(r.strip() for r in named.split(",") if r.strip())
    return (IMAGE_REPO, LOADED_REPO)


def _images(engine: ContainerEngine) -> list[Entry]:
    used = engine.images_in_use()
    entries = []
    for image in engine.images(image_repositories()):
        short = image.id.removeprefix("sha256:")
        stamp = _stamp("images", short)
        last = stamp.stat().st_mtime if stamp.exists() else image.created
        in_use = (
            image.id in used
            or time.time() - max(last, image.created) < _grace()
            or _in_use("images", short, stamp)
        )
        entries.append(
            Entry("images", short, image.size, last, in_use, " ".join(sorted(image.tags)))
        )
    return entries


def list_cache(kinds: Sequence[Kind] = KINDS, engine: ContainerEngine | None = None) -> Listing:
    """Every cache entry of `kinds`, most recently used first within each kind; images only
    when `engine` answers (otherwise a warning says they were not listed)."""
    entries: list[Entry] = []
    warnings: list[str] = []
    for kind in kinds:
        if kind != "images":
            entries += sorted(_files(kind), key=lambda e: -e.last_used)
            continue
        if engine is None:
            continue
        try:
            entries += sorted(_images(engine), key=lambda e: -e.last_used)
        except ServiceUnavailableError as exc:
            warnings.append(f"images not listed: {exc.message}")
    return Listing(entries, warnings)


def prune_cache(
    *,
    older_than_s: float | None = None,
    keep_last: int | None = None,
    everything: bool = False,
    kinds: Sequence[Kind] = KINDS,
    dry_run: bool = False,
    engine: ContainerEngine | None = None,
    now: float | None = None,
) -> Pruned:
    """Remove the entries not used for `older_than_s` and beyond the `keep_last` most
    recently used of their kind (both given: an entry goes when both say so), or with
    `everything` all of them; never one in use (skipped and reported)."""
    if older_than_s is None and keep_last is None and not everything:
        raise UsageError(
            "say what to prune: --older-than AGE, --keep-last N, or --all",
            hint="see first what is there: repro cache list",
        )
    listing = list_cache(kinds, engine)
    moment = time.time() if now is None else now
    rank: dict[Kind, int] = {}
    removed, kept, skipped = [], [], []
    for entry in listing.entries:  # most recently used first within each kind
        position = rank.get(entry.kind, 0)
        rank[entry.kind] = position + 1
        old = older_than_s is None or moment - entry.last_used > older_than_s
        beyond = keep_last is None or position >= keep_last
        if not (everything or (old and beyond)):
            kept.append(entry)
        elif entry.in_use:
            skipped.append(entry)
        elif dry_run or _remove(entry, engine):
            removed.append(entry)
        else:
            skipped.append(replace(entry, in_use=True))
    return Pruned(removed, kept, skipped, listing.warnings, dry_run)


def _remove(entry: Entry, engine: ContainerEngine | None) -> bool:
    """Remove one entry under its locks; False when it came into use meanwhile."""
    if entry.kind == "images":
        if engine is None:
            return False
        stamp = _stamp("images", entry.name)
        with _held("images", entry.name, stamp) as free:
            if not free:
                return False
            for tag in entry.path.split():
                engine.remove_image(tag)
        stamp.unlink(missing_ok=True)
        return True
    path = Path(entry.path)
    with _held(entry.kind, entry.name, path) as free:
        if not free:
            return False
        if path.is_dir() and not path.is_symlink():
            # A venv loses its completion marker first: interrupted here, it is rebuilt.
            (path / MARKER).unlink(missing_ok=True)
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        if entry.kind == "venvs":
            path.with_name(path.name + RECORD_SUFFIX).unlink(missing_ok=True)
        _stamp(entry.kind, entry.name).unlink(missing_ok=True)
    return True
