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


class CapsuleDiff(Model):
    """What `repro diff A B` found (the --json output)."""

    a: str
    b: str
    a_id: str
    b_id: str
    identical: bool
    entries: list[DiffEntry]
