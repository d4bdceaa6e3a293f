"""A record of every file of a built environment, and the check of the environment against
it before it is reused: a file added (a planted `.pth`), changed or removed is found.

The record is written when the build ends and kept outside the environment. Checking is
cheap: one `lstat` per file, compared with the recorded size, mtime, ctime and inode (ctime
changes on every write and cannot be set back, so an edit whose mtime was restored is still
seen); only a file whose stat differs but whose size does not is read again and compared by
sha256. Bytecode (`__pycache__/*.pyc`) the record does not know is removed rather than
trusted — Python writes it again from the checked sources — so a planted `.pyc` never runs.
"""

from __future__ import annotations

import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from repro.hashing import sha256_file

RECORD_VERSION = 1


@dataclass(frozen=True)
class Mismatch:
    """Why a folder is not what was recorded: the first few paths, by kind."""

    added: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.added or self.changed or self.removed)

    def describe(self, limit: int = 3) -> str:
        parts = []
        for what, paths in (("added", self.added), ("changed", self.changed)):
            if paths:
                more = f" and {len(paths) - limit} more" if len(paths) > limit else ""
                parts.append(f"{what}: {', '.join(paths[:limit])}{more}")
        if self.removed:
            parts.append(f"{len(self.removed)} file(s) removed")
        return "; ".join(parts) or "no difference"


def _walk(root: Path) -> tuple[dict[str, os.stat_result], dict[str, str]]:
    """Every regular file (with its lstat) and every link (with its target) under root,
    relative; links are never followed (a venv's lib64 -> lib)."""
    files: dict[str, os.stat_result] = {}
    links: dict[str, str] = {}
    stack = [""]
    while stack:
        rel_dir = stack.pop()
        with os.scandir(root / rel_dir if rel_dir else root) as entries:
            for entry in entries:
                rel = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
                st = entry.stat(follow_symlinks=False)
                if stat.S_ISLNK(st.st_mode):
                    links[rel] = str(Path(entry.path).readlink())
                elif stat.S_ISDIR(st.st_mode):
                    stack.append(rel)
                else:
                    files[rel] = st  # sockets, fifos: recorded as files, so they must match
    return files, links


def _key(st: os.stat_result) -> list[int]:
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_mode]


def record_tree(root: Path, record: Path) -> None:
    """Write the record of root's files (size, sha256, stat) to `record`, atomically."""
    files, links = _walk(root)
    entries = {}
    for rel, st in files.items():
        sha = sha256_file(root / rel)[0] if stat.S_ISREG(st.st_mode) else ""
        entries[rel] = [sha, *_key(st)]
    data = {"version": RECORD_VERSION, "files": entries, "links": links}
    tmp = record.with_name(f".{record.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, separators=(",", ":")), encoding="utf-8")
    tmp.replace(record)


def _is_bytecode(rel: str) -> bool:
    parts = rel.rsplit("/", 2)
    return len(parts) >= 2 and parts[-2] == "__pycache__" and rel.endswith(".pyc")


def check_tree(root: Path, record: Path) -> Mismatch | None:
    """None when root holds exactly the recorded files; else what differs. A missing or
    unreadable record is a mismatch too (nothing vouches for the folder). Unrecorded
    bytecode is removed, not reported."""
    try:
        data = json.loads(record.read_text(encoding="utf-8"))
        recorded: dict[str, list[object]] = data["files"]
        recorded_links: dict[str, str] = data["links"]
        if data.get("version") != RECORD_VERSION:
            raise ValueError("another record version")
    except (OSError, ValueError, KeyError, TypeError):
        return Mismatch(added=("(no record of the environment's files)",))
    files, links = _walk(root)
    added, changed = [], []
    for rel, st in files.items():
        entry = recorded.get(rel)
        if entry is None:
            if _is_bytecode(rel):
                (root / rel).unlink(missing_ok=True)
                continue
            added.append(rel)
        elif entry[1:] != _key(st):
            same_size = entry[1] == st.st_size and entry[5] == st.st_mode
            if _is_bytecode(rel):
                (root / rel).unlink(missing_ok=True)
            elif not (
                same_size and stat.S_ISREG(st.st_mode) and sha256_file(root / rel)[0] == entry[0]
            ):
                changed.append(rel)
    added += sorted(set(links) - set(recorded_links))
    changed += sorted(r for r in set(links) & set(recorded_links) if links[r] != recorded_links[r])
    removed = sorted(r for r in set(recorded) - set(files) if not _is_bytecode(r)) + sorted(
        set(recorded_links) - set(links)
    )
    mismatch = Mismatch(tuple(sorted(added)), tuple(sorted(changed)), tuple(removed))
    return mismatch or None
