"""Re-issue a capsule with updated metadata (a DOI stamped in at publication), re-signed."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from repro.capsule.layout import created_epoch
from repro.capsule.reader import read_capsule
from repro.capsule.writer import Source, WrittenCapsule, write_capsule
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
