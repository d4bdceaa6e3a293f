"""`repro verify` and `repro inspect`: read a capsule through the safe reader and summarise it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from repro.capsule.reader import VerifiedCapsule, read_capsule

SignatureState = Literal["unsigned", "signed"]


@dataclass(frozen=True)
class VerifyReport:
    capsule: VerifiedCapsule
    signature: SignatureState

    def to_json(self) -> dict[str, Any]:
        m = self.capsule.manifest
        return {
            "ok": True,
            "capsule": str(self.capsule.path),
            "capsule_id": self.capsule.capsule_id,
            "archive_sha256": self.capsule.archive_sha256,
            "archive_size": self.capsule.archive_size,
            "format": m.format,
            "files": len(m.files),
            "payload_size": m.payload_size,
            "signature": self.signature,
        }


def verify_capsule(path: Path, progress: Callable[[int], None] | None = None) -> VerifyReport:
    """Recompute every checksum and check the manifest against the archive, member by member.

    Signatures are checked once signing exists (trust issue); until then a capsule's
    signature file, if any, is reported as present but not verified.
    """
    capsule = read_capsule(path, progress=progress)
    return VerifyReport(capsule, "signed" if capsule.signature else "unsigned")


def inspect_capsule(path: Path) -> VerifiedCapsule:
    """Everything the manifest says, after the same checks as verify."""
    return read_capsule(path)
