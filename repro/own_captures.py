"""Capsules this user captured on this machine, by capsule id: the user's own code, which a
replay may run unsandboxed where no sandbox works (as one signed by a trusted key).

A capsule id is the sha256 of the canonical manifest, which lists every file's digest, and
replay verifies every file against it: a capsule with the id of one captured here is that
capsule, byte for byte. One empty marker file per id under repro's data directory.
"""

from __future__ import annotations

import contextlib
import re
from pathlib import Path

from repro.paths import data_dir

_ID = re.compile(r"[0-9a-f]{64}")


def _marker(capsule_id: str) -> Path | None:
    return data_dir() / "captured" / capsule_id if _ID.fullmatch(capsule_id) else None


def remember(capsule_id: str) -> None:
    """Record a capture (best effort: a capsule is written whether or not this succeeds)."""
    marker = _marker(capsule_id)
    if marker is None:
        return
    with contextlib.suppress(OSError):
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.touch()


def captured_here(capsule_id: str) -> bool:
    marker = _marker(capsule_id)
    return marker is not None and marker.is_file()
