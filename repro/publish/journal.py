"""The publish journal: what has been done on Zenodo for one capsule, so a rerun resumes.

It lives next to the capsule (`CAPSULE.zenodo-journal.json`, `CAPSULE.zenodo-sandbox-
journal.json` for the sandbox), is rewritten atomically after every step, and never holds
the token: only ids, links, checksums and the metadata that was sent.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from repro.publish.errors import JournalConflictError, PublishInProgressError
from repro.publish.target import Target


class Step(StrEnum):
    """The steps of a publication, in order; the journal records the last one completed."""

    STARTED = "started"
    """Metadata validated locally; nothing sent yet."""
    CREATING = "creating"
    """The create (or newversion) request is about to be, or was, sent."""
    CREATED = "created"
    """The deposition exists: its id, bucket and pre-reserved DOI are known."""
    CLEARED = "cleared"
    """A new version's inherited files are removed."""
    STAMPED = "stamped"
    """The capsule carrying its DOI is written and re-signed."""
    UPLOADED = "uploaded"
    """The stamped capsule is in the bucket, with Zenodo's md5 and size checked."""
    DESCRIBED = "described"
    """The complete metadata is PUT."""
    CHECKED = "checked"
    """Read back: files and metadata are as sent. A complete draft."""
    PUBLISHING = "publishing"
    """The publish request is about to be, or was, sent."""
    PUBLISHED = "published"


ORDER = list(Step)


def after(step: Step, other: Step) -> bool:
    """Whether `step` is at or past `other`."""
    return ORDER.index(step) >= ORDER.index(other)


class Journal(BaseModel):
    """The journal file's contents (mutable while a publication runs; written after each step)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    version: Literal[1] = 1
    capsule: str
    """File name of the capsule being published."""
    capsule_sha256: str
    """sha256 of the capsule file as it was given (before the DOI was stamped)."""
    api_url: str
    target: str
    step: Step = Step.STARTED
    metadata: dict[str, Any]
    """The metadata as validated when the publication started (before the DOI)."""
    marker: str
    """One-off marker in the create request's notes, to recognise a lost create."""
    new_version_arg: str | None = None
    """--new-version-of as given."""
    new_version_of: int | None = None
    """Deposition id of the published version this one follows."""
    new_version_of_doi: str | None = None
    pending_draft_before: int | None = None
    """A pending new-version draft seen before the newversion request (None: none was)."""
    deposition_id: int | None = None
    bucket_url: str | None = None
    html_url: str | None = None
    recid: int | None = None
    doi: str | None = None
    concept_doi: str | None = None
    stamped_capsule: str | None = None
    """File name of the DOI-stamped capsule, next to the original."""
    capsule_id: str | None = None
    """Capsule id (manifest sha256) of the stamped capsule."""
    file_key: str | None = None
    sha256: str | None = None
    md5: str | None = None
    size: int | None = None
    record_url: str | None = None
    updated: str = ""
    history: list[dict[str, str]] = []


def journal_path(capsule: Path, target: Target) -> Path:
    infix = "zenodo-sandbox" if target.kind == "sandbox" else "zenodo"
    return capsule.with_name(f"{capsule.name}.{infix}-journal.json")


def receipt_path(capsule: Path, target: Target) -> Path:
    infix = "zenodo-sandbox" if target.kind == "sandbox" else "zenodo"
    return capsule.with_name(f"{capsule.name}.{infix}.json")


def now() -> str:
    return datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def write_atomic(path: Path, data: bytes) -> None:
    """Write to a temporary file in the same folder, fsync, rename over: never half a file."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save(journal: Journal, path: Path, step: Step | None = None) -> None:
    if step is not None:
        journal.step = step
        journal.history = [*journal.history, {"step": step.value, "time": now()}]
    journal.updated = now()
    text = json.dumps(journal.model_dump(mode="json"), indent=2, sort_keys=True) + "\n"
    write_atomic(path, text.encode())


def load(path: Path) -> Journal | None:
    if not path.is_file():
        return None
    try:
        return Journal.model_validate_json(path.read_bytes())
    except (ValidationError, ValueError):
        raise JournalConflictError(
            f"the publish journal {path.name} is unreadable",
            hint=f"check the draft on Zenodo, then move {path} away to start over",
        ) from None


def seconds_since(journal: Journal, step: Step) -> float:
    """Seconds since `step` was last journaled (infinity when it never was)."""
    for entry in reversed(journal.history):
        if entry.get("step") == step.value:
            try:
                when = datetime.fromisoformat(entry["time"].replace("Z", "+00:00"))
            except (KeyError, ValueError):
                break
            return max(0.0, (datetime.now(UTC) - when).total_seconds())
    return float("inf")


@contextlib.contextmanager
def locked(capsule: Path) -> Iterator[None]:
    """Hold an exclusive lock on the capsule for one publication: a second `repro publish`
    of it (another process, or another thread) fails at once instead of racing this one to
    a second deposition. An flock on the capsule file itself: nothing is left behind, and
    the kernel releases it when the process dies."""
    with capsule.open("rb") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise PublishInProgressError(
                f"another repro publish of {capsule.name} is running", capsule=capsule
            ) from None
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
