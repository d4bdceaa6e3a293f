"""`repro verify` and `repro inspect`: read a capsule through the safe reader and summarise it."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from repro.capsule.reader import VerifiedCapsule, read_capsule
from repro.errors import UntrustedCapsuleError
from repro.sign import SignatureStatus, check_signature

UNSIGNED_HINT = (
    "no key can vouch for an unsigned capsule; its author signs it: repro keys generate, "
    "then repro capture again (it signs with that key)"
)


@dataclass(frozen=True)
class Policy:
    """What a pipeline demands of a capsule's signature."""

    require_signed: bool = False
    require_trusted: bool = False

    def enforce(self, status: SignatureStatus) -> None:
        unsigned = status.state == "unsigned"
        if self.require_trusted and status.state != "trusted":
            raise UntrustedCapsuleError(
                f"capsule is not signed by a trusted key ({status.describe()})",
                hint=UNSIGNED_HINT if unsigned else None,
            )
        if self.require_signed and unsigned:
            raise UntrustedCapsuleError("capsule is unsigned", hint=UNSIGNED_HINT)


@dataclass(frozen=True)
class VerifyReport:
    capsule: VerifiedCapsule
    signature: SignatureStatus

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
            "signature": {
                "state": self.signature.state,
                "keyid": self.signature.keyid,
                "fingerprint": self.signature.fingerprint,
                "trusted_name": self.signature.name,
            },
        }


def open_capsule(
    path: Path,
    dest: Path | None = None,
    *,
    policy: Policy | None = None,
    progress: Callable[[int], None] | None = None,
    only: Callable[[str], bool] | None = None,
) -> VerifyReport:
    """The one way in: every checksum, the manifest against the archive member by member,
    the signature against the manifest digest, then the caller's signature policy.
    With `dest`, the capsule is unpacked there (only when all of it checked out; `only`:
    just the members it says yes to, as read_capsule)."""
    capsule = read_capsule(path, dest, progress=progress, only=only)
    try:
        status = check_signature(capsule.capsule_id, capsule.signature)
        (policy or Policy()).enforce(status)
    except BaseException:
        if dest is not None:
            shutil.rmtree(dest, ignore_errors=True)  # refused: leave nothing unpacked
        raise
    return VerifyReport(capsule, status)


def verify_capsule(
    path: Path, policy: Policy | None = None, progress: Callable[[int], None] | None = None
) -> VerifyReport:
    """`repro verify`: integrity and signature; nothing is unpacked or executed."""
    return open_capsule(path, policy=policy, progress=progress)


def inspect_capsule(path: Path) -> VerifyReport:
    """`repro inspect`: everything the manifest says, after the same checks as verify."""
    return open_capsule(path)
