"""The replay history: an append-only ledger of JSON lines, one per finished replay.

`history.jsonl` in repro's data directory (REPRO_DATA_DIR, else the user data directory).
Each replay appends one line under an exclusive flock of a lock file beside it, in a single
O_APPEND write followed by fsync, so concurrent replays (threads or processes) never
interleave or lose lines. Reading skips a line it cannot parse (a machine that lost power
mid-write leaves at most one) and counts it, rather than failing the whole history.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import platform as _platform
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import ValidationError

from repro.capsule.manifest import Platform, canonical_json
from repro.errors import ReproError
from repro.model_base import Model, Sha256
from repro.paths import data_dir

LEDGER = "history.jsonl"
FORMAT: Literal["repro-history/1"] = "repro-history/1"


class HistoryError(ReproError):
    default_hint = "check that repro's data directory is writable (REPRO_DATA_DIR)"


class HistoryEntry(Model):
    """One replay, as the ledger records it."""

    format: Literal["repro-history/1"] = FORMAT
    time: str
    """When the replay finished (UTC, RFC 3339)."""
    capsule_id: Sha256
    capsule: str
    """The capsule file replayed (a cache path when it came from a DOI)."""
    title: str
    doi: str | None = None
    """The version DOI the capsule was fetched from, or the one stamped into it."""
    concept_doi: str | None = None
    """The concept DOI given, when one was resolved to its latest version."""
    target: str
    host: str
    """The machine's name."""
    host_fingerprint: str
    """sha256 (first 16 hex digits) of the machine's name and platform fingerprint."""
    verdict: Literal["reproduced", "not_reproduced"]
    counts: dict[str, int] = {}
    duration_s: float
    report: str | None = None
    """The HTML report written, if any."""
    attestation: str | None = None
    """The attestation written, if any."""


def ledger_path() -> Path:
    return data_dir() / LEDGER


def platform_node() -> str:
    return _platform.node()


def host_fingerprint(platform: Platform) -> str:
    data = canonical_json({"node": platform_node(), "platform": platform.model_dump(mode="json")})
    return hashlib.sha256(data).hexdigest()[:16]


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    lock = path.with_name(path.name + ".lock")
    with lock.open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def append(entry: HistoryEntry, path: Path | None = None) -> Path:
    """Add one line to the ledger; returns where."""
    path = path or ledger_path()
    line = entry.model_dump_json() + "\n"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with _locked(path):
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                data = line.encode()
                written = os.write(fd, data)
                while written < len(data):  # a short write (a full disk): finish or fail
                    written += os.write(fd, data[written:])
                os.fsync(fd)
            finally:
                os.close(fd)
    except OSError as exc:
        raise HistoryError(f"cannot add to the replay history {path}: {exc.strerror}") from None
    return path


@dataclass(frozen=True)
class History:
    entries: list[HistoryEntry]
    skipped: int
    """Lines that could not be read (a write cut short)."""
    path: Path


def read(path: Path | None = None) -> History:
    path = path or ledger_path()
    entries: list[HistoryEntry] = []
    skipped = 0
    try:
        with _locked(path), path.open(encoding="utf-8", errors="replace") as fh:
            lines = fh.readlines()
    except FileNotFoundError:
        return History([], 0, path)
    except OSError as exc:
        raise HistoryError(f"cannot read the replay history {path}: {exc.strerror}") from None
    for line in lines:
        if not line.strip():
            continue
        try:
            entries.append(HistoryEntry.model_validate_json(line))
        except ValidationError:
            skipped += 1
    return History(entries, skipped, path)


def select(history: History, what: str | None, capsule_id: str | None = None) -> History:
    """The entries about one capsule: by capsule id (or prefix), DOI, or a capsule file
    (`capsule_id`: the id of the file `what` names, worked out by the caller)."""
    if not what:
        return history
    wanted = what.strip().lower()
    for prefix in ("https://doi.org/", "http://doi.org/", "doi:"):
        wanted = wanted.removeprefix(prefix)

    def matches(e: HistoryEntry) -> bool:
        if capsule_id is not None:
            return e.capsule_id == capsule_id
        dois = {d.lower() for d in (e.doi, e.concept_doi) if d}
        return wanted in dois or (len(wanted) >= 8 and e.capsule_id.startswith(wanted))

    return History([e for e in history.entries if matches(e)], history.skipped, history.path)
