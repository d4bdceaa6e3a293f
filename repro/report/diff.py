"""What `repro diff A B` found between two capsules (its --json output, diff.schema.json)."""

from __future__ import annotations

from typing import Literal

from repro.model_base import Model

DiffKind = Literal["code", "data", "dependency", "run", "result", "environment", "metadata"]


class DiffEntry(Model):
    kind: DiffKind
    name: str
    change: Literal["added", "removed", "changed"]
    before: str | None = None
    after: str | None = None
    detail: str | None = None
    unified: str | None = None
    """A unified diff, for a text file of at most 256 KiB on both sides (code, config,
    small text data and results); None otherwise. At most 400 lines, then a marker."""
    a_path: str | None = None
    """The member it compares in capsule A (data/...), when a file."""
    b_path: str | None = None


class CapsuleDiff(Model):
    """What `repro diff A B` found (the --json output)."""

    a: str
    b: str
    a_id: str
    b_id: str
    identical: bool
    entries: list[DiffEntry]
