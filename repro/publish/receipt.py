"""The receipt of a publication, `CAPSULE.zenodo.json`: what was published where."""

from __future__ import annotations

from typing import Literal

from repro.model_base import Model


class Receipt(Model):
    """What was published where: `CAPSULE.zenodo.json`."""

    state: Literal["draft", "published"]
    doi: str
    """The record's DOI (reserved, not yet registered, while a draft)."""
    concept_doi: str | None
    """The DOI of all versions (known once published)."""
    record_url: str
    draft_url: str | None
    deposition_id: int
    file_name: str
    """The capsule's name on Zenodo."""
    md5: str
    sha256: str
    size: int
    capsule: str
    """The DOI-stamped capsule written next to the original."""
    capsule_id: str
    target: str
    """production, sandbox or custom."""
    zenodo_url: str
    new_version_of: str | None = None
    time: str
