"""The publish journal: what has been done on Zenodo for one capsule, so a rerun resumes.

It lives next to the capsule (`CAPSULE.zenodo-journal.json`, `CAPSULE.zenodo-sandbox-
journal.json` for the sandbox), is rewritten atomically after every step, and never holds
the token: only ids, links, checksums and the metadata that was sent.
"""

from __future__ import annotations

import json
import os
import tempfile
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from repro.publish.errors import JournalConflictError
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
