"""What the commands that work with a capsule short of replaying it print with --json
(extract, restamp, cache list, cache prune); schemas in schemas/."""

from __future__ import annotations

from typing import Literal

from repro.model_base import Model


class ExtractOutput(Model):
    """`repro extract --json`."""

    ok: Literal[True]
    capsule_id: str
    dest: str
    files: list[str]
    """Paths written under dest (as inside the capsule)."""
    replaced: list[str]
    """Of those, the files that replaced one already there (--force)."""


class RestampOutput(Model):
    """`repro restamp --json`."""

    ok: Literal[True]
    capsule: str
    """The capsule written."""
    capsule_id: str
    """The new capsule's id (its manifest changed)."""
    previous_id: str
    sha256: str
    signed: bool
    changed: list[str]
    """The metadata fields set."""


class CacheEntryOutput(Model):
    kind: Literal["venvs", "wheels", "data", "tools", "zenodo", "blocks", "images"]
    name: str
    size: int
    last_used: float
    """Epoch seconds: the last use, else when it was made."""
    in_use: bool
    path: str
    """Its folder or file; for an image its tags."""


class CacheListOutput(Model):
    """`repro cache list --json`."""

    ok: Literal[True]
    cache_dir: str
    total: int
    entries: list[CacheEntryOutput]
    warnings: list[str]


class CachePruneOutput(Model):
    """`repro cache prune --json`."""

    ok: Literal[True]
    dry_run: bool
    freed: int
    """Bytes removed (with --dry-run: that would be)."""
    removed: list[CacheEntryOutput]
    skipped: list[CacheEntryOutput]
    """Entries that would have gone but are in use."""
    kept: list[CacheEntryOutput]
    warnings: list[str]
