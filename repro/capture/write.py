"""Capture's last stage: scan the manifest and the generated files for secrets, sign the
manifest and write the capsule (nothing reaches the destination unless all of it succeeds)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from repro.capsule.blockcache import default_block_cache
from repro.capsule.layout import check_manifest
from repro.capsule.writer import WrittenCapsule, write_capsule
from repro.capture.assemble import Assembled
from repro.capture.options import CaptureOptions
from repro.capture.secret_scan import SecretScanner, fail_on_hits
from repro.capture.snapshot import hash_cache
from repro.errors import FileChangedError, SigningKeyError
from repro.hashing import sha256_bytes
from repro.sign import default_key_path, load_private_key, sign_digest


def signing_key(opts: CaptureOptions) -> Ed25519PrivateKey | None:
    """The key to sign with, loaded up front so that a wrong passphrase fails fast."""
    if opts.sign is False:
        return None
    path = opts.key or default_key_path()
    if path is None:
        if opts.sign:
            raise SigningKeyError("--sign was given but there is no signing key")
        return None
    return load_private_key(path, opts.passphrase_prompt)


def scan_generated(
    scanner: SecretScanner,
    assembled: Assembled,
    expectations: Mapping[str, bytes],
    manifest_bytes: bytes,
) -> None:
    """The manifest and the generated files travel too: commands, recorded variables, job
    scripts and the crate are scanned like the project's files (the notebooks'
    expectations were scanned with the results)."""
    check_manifest(manifest_bytes)  # exactly what verify can read
    fail_on_hits(
        scanner.scan_bytes(manifest_bytes, "repro.json")
        + [
            hit
            for path, content in assembled.sources.items()
            if isinstance(content, bytes) and path not in expectations
            for hit in scanner.scan_bytes(content, path)
        ],
        hint="it comes from a run command, a recorded variable or the metadata: remove it "
        "there and pass secrets to runs through the environment at run time",
    )


def write(
    output: Path,
    assembled: Assembled,
    key: Ed25519PrivateKey | None,
    epoch: int,
    manifest_bytes: bytes,
) -> WrittenCapsule:
    """The capsule at `output`, signed with `key` when there is one; `manifest_bytes` is
    the manifest's canonical JSON, made once for the scan, the signature and the writer
    (about 0.6 s at 100,000 files)."""
    manifest = assembled.manifest
    signature = None
    if key is not None:
        signature = sign_digest(sha256_bytes(manifest_bytes), key)
    try:
        return write_capsule(
            output,
            manifest,
            dict(assembled.sources),
            signature=signature,
            mtime=epoch,
            cache=default_block_cache(),
            manifest_bytes=manifest_bytes,
        )
    except FileChangedError as exc:
        # The digest recorded for it may have come from the stat cache: the next capture
        # must read the file again rather than trust that entry.
        if exc.path is not None:
            hash_cache(lambda _m: None).forget([exc.path])
        raise
