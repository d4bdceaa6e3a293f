"""Re-issue a capsule with updated metadata (a DOI stamped in at publication), re-signed."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import ValidationError

from repro.capsule.layout import created_epoch
from repro.capsule.reader import read_capsule
from repro.capsule.writer import Source, WrittenCapsule, write_capsule
from repro.config import describe_validation_error
from repro.config.models import Metadata
from repro.errors import SigningKeyError, UsageError
from repro.hashing import sha256_bytes
from repro.paths import scratch_prefix
from repro.sign import check_signature, sign_digest


def restamp_capsule(
    src: Path,
    dest: Path,
    *,
    metadata: dict[str, Any],
    key: Ed25519PrivateKey | None,
) -> WrittenCapsule:
    """Verify `src`, change its manifest metadata, and write it (signed with `key`) to `dest`.

    The payload is carried over byte for byte (each file re-checked against the manifest as
    it is read); only repro.json, the derived tag files and repro.sig change.
    """
    with tempfile.TemporaryDirectory(prefix=scratch_prefix("restamp")) as tmp:
        capsule = read_capsule(src, Path(tmp) / "capsule")
        check_signature(capsule.capsule_id, capsule.signature)
        root = Path(tmp) / "capsule"
        manifest = capsule.manifest
        updated = manifest.model_copy(
            update={"metadata": manifest.metadata.model_copy(update=metadata)}
        )
        # Round-trip through validation: model_copy does not validate the update.
        updated = type(manifest).model_validate(updated.model_dump(mode="json"))
        sources: dict[str, Source | bytes] = {}
        for entry in manifest.files:
            if entry.link is None:
                path = root / entry.path
                sources[entry.path] = Source(path, entry.size, path.stat().st_mtime_ns)
        signature = None
        if key is not None:
            signature = sign_digest(sha256_bytes(updated.canonical_json()), key)
        epoch = created_epoch(manifest.created)
        written = write_capsule(dest, updated, sources, signature=signature, mtime=epoch)
    return written


@dataclass(frozen=True)
class Restamped:
    """What `repro restamp` wrote."""

    written: WrittenCapsule
    previous_id: str
    signed: bool
    changed: list[str]
    """The metadata fields that now differ."""


def restamp_file(
    src: Path,
    dest: Path | None,
    *,
    in_place: bool = False,
    metadata: dict[str, Any],
    key: Ed25519PrivateKey | None,
    sign: bool = True,
) -> Restamped:
    """`repro restamp`: the capsule `src` with its metadata updated (no run re-run), signed
    with `key`, written to `dest` -- or over `src` with `in_place` (atomically: a temporary
    file beside it, renamed). Deterministic: the same input and changes give the same bytes.
    """
    if in_place and dest is not None and dest.absolute() != src.absolute():
        raise UsageError("--in-place and -o name different files", hint="pass only one")
    target = src if in_place else dest
    if target is None:
        raise UsageError(
            "say where the restamped capsule goes: -o OUT, or --in-place to replace the input",
            hint="e.g. repro restamp paper.capsule.tgz --title '...' -o paper-v2.capsule.tgz",
        )
    if not in_place and target.absolute() == src.absolute():
        raise UsageError(
            f"-o {target} is the input capsule itself",
            hint="pass --in-place to replace it, or choose another -o",
        )
    before = read_capsule(src)
    if key is None and sign and before.signature is not None:
        raise SigningKeyError(
            "the capsule is signed, and restamping changes what the signature covers: a key "
            "is needed to sign it again",
            hint="create one (repro keys generate), pass --key PATH, or --no-sign",
        )
    old = before.manifest.metadata.model_dump(mode="json")
    try:
        new = Metadata.model_validate({**old, **metadata})
    except ValidationError as exc:
        raise UsageError(describe_validation_error(exc, "metadata")) from None
    changed = [k for k, v in new.model_dump(mode="json").items() if old.get(k) != v]
    written = restamp_capsule(
        src, target, metadata={k: getattr(new, k) for k in changed}, key=key if sign else None
    )
    return Restamped(written, before.capsule_id, key is not None and sign, changed)
