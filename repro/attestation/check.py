"""Checking replay attestations: envelope, signature, statement, subject, trust; and a summary.

Offline: everything needed is in the file (the statement and the signer's public key) and in
the local trust store. An attestation whose envelope, signature or statement does not hold is
refused (`AttestationError`, exit 4); one signed by a key that is not trusted is reported as
such and refused only when the caller requires trust.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import ValidationError

from repro.attestation.statement import (
    MANIFEST_SUBJECT,
    PAYLOAD_TYPE,
    PREDICATE_TYPE,
    STATEMENT_TYPE,
    Statement,
)
from repro.capsule.manifest import Platform
from repro.errors import (
    AttestationError,
    AttestationNotFoundError,
    AttestationSubjectError,
    UntrustedAttestationError,
)
from repro.sign import Envelope, fingerprint, key_id, list_keys, pae, trusted_keys

MAX_ATTESTATION_BYTES = 16 << 20
"""An attestation is a few kilobytes; a file far larger is not one (and is not read whole)."""

Trust = Literal["trusted", "unknown"]


@dataclass(frozen=True)
class CheckedAttestation:
    """An attestation whose envelope, signature and statement hold."""

    source: str
    statement: Statement
    keyid: str
    trust: Trust
    key_name: str | None
    """The key's name in the trust store (or your own key's name)."""

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.keyid)

    @property
    def signer(self) -> str:
        if self.trust == "trusted":
            return f"{self.key_name} ({self.fingerprint})"
        return f"an unknown key ({self.fingerprint})"

    def describe(self) -> str:
        p = self.statement.predicate
        word = "reproduced" if self.statement.reproduced else "NOT reproduced"
        return (
            f"{word}: {p.capsule.title or p.capsule.file_name} ({p.capsule.id[:12]}) by "
            f"{self.signer}, on {platform_label(p.replayer.platform)} ({p.replayer.target}), "
            f"{p.started} to {p.finished}"
        )


def platform_label(p: Platform) -> str:
    """What counts as one platform in a summary: OS, architecture, Python."""
    return f"{p.distribution or p.system} {p.machine}, {p.python_implementation} {p.python_version}"


def _refuse(source: str, what: str, hint: str | None = None) -> AttestationError:
    return AttestationError(f"{source}: {what}", hint=hint)


def read_attestation(path: Path) -> CheckedAttestation:
    try:
        with path.open("rb") as fh:
            data = fh.read(MAX_ATTESTATION_BYTES + 1)
    except FileNotFoundError:
        raise AttestationNotFoundError(f"attestation not found: {path}") from None
    except IsADirectoryError:
        raise AttestationNotFoundError(f"attestation is a folder, not a file: {path}") from None
    if len(data) > MAX_ATTESTATION_BYTES:
        raise _refuse(str(path), "too large to be an attestation")
    return check_attestation(data, str(path))


def check_attestation(data: bytes, source: str) -> CheckedAttestation:
    """Parse and verify one attestation's bytes; raise AttestationError when it does not hold."""
    try:
        envelope = Envelope.model_validate_json(data)
    except ValidationError:
        raise _refuse(
            source,
            "not a DSSE envelope (malformed JSON, or fields missing)",
            hint="an attestation is the JSON file repro replay --attest writes; check that "
            "this is that file and that it was not cut short",
        ) from None
    if envelope.payloadType != PAYLOAD_TYPE:
        raise _refuse(
            source,
            f"payload type {envelope.payloadType!r} is not an in-toto statement ({PAYLOAD_TYPE})",
            hint="this is not a replay attestation (a capsule's repro.sig? check with: "
            "repro verify CAPSULE)",
        )
    try:
        payload = base64.b64decode(envelope.payload, validate=True)
    except ValueError:
        raise _refuse(source, "the envelope's payload is not base64") from None
    signed = pae(PAYLOAD_TYPE, payload)
    for sig in envelope.signatures:
        try:
            public = Ed25519PublicKey.from_public_bytes(
                base64.b64decode(sig.public_key, validate=True)
            )
            public.verify(base64.b64decode(sig.sig, validate=True), signed)
        except (ValueError, InvalidSignature):
            raise _refuse(
                source,
                f"bad signature (key {fingerprint(sig.keyid)}): the attestation was changed "
                "after it was signed",
            ) from None
        if key_id(public) != sig.keyid:
            raise _refuse(source, "a signature's key id does not match its public key")
    statement = _statement(payload, source)
    keyid, trust, name = _trust([s.keyid for s in envelope.signatures])
    return CheckedAttestation(source, statement, keyid, trust, name)


def _statement(payload: bytes, source: str) -> Statement:
    try:
        raw = json.loads(payload)
    except ValueError:
        raise _refuse(source, "the signed payload is not JSON") from None
    if not isinstance(raw, dict):
        raise _refuse(source, "the signed payload is not an in-toto statement")
    if raw.get("_type") != STATEMENT_TYPE:
        raise _refuse(
            source,
            f"statement type {raw.get('_type')!r} is not {STATEMENT_TYPE}",
            hint="repro reads in-toto Statement v1 attestations",
        )
    if raw.get("predicateType") != PREDICATE_TYPE:
        raise _refuse(
            source,
            f"predicate type {raw.get('predicateType')!r} is not {PREDICATE_TYPE}",
            hint="this in-toto attestation is not a repro replay attestation (or one from "
            "a newer repro: pip install --upgrade repro-capsule)",
        )
    try:
        statement = Statement.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(map(str, first["loc"]))
        raise _refuse(
            source,
            f"the replay predicate is malformed: {first['msg']} at {where}",
            hint="it was signed this way, so whoever made it wrote a broken statement; ask "
            "for a fresh attestation (or upgrade repro if it is from a newer version)",
        ) from None
    capsule = statement.predicate.capsule
    if statement.digest_of(MANIFEST_SUBJECT) != capsule.id or (
        statement.digest_of(capsule.file_name) != capsule.archive_sha256
    ):
        raise _refuse(source, "the statement's subject and its predicate name other capsules")
    return statement


def _trust(keyids: Sequence[str]) -> tuple[str, Trust, str | None]:
    trusted = trusted_keys()
    for keyid in keyids:
        if keyid in trusted:
            return keyid, "trusted", trusted[keyid].get("name")
    own = {k.keyid: f"{k.name} (your own key)" for k in list_keys()}
    for keyid in keyids:
        if keyid in own:
            return keyid, "trusted", own[keyid]
    return keyids[0], "unknown", None


def require_trusted(att: CheckedAttestation) -> None:
    if att.trust != "trusted":
        raise UntrustedAttestationError(
            f"{att.source}: signed by a key that is not in the trust store ({att.fingerprint})"
        )


@dataclass(frozen=True)
class SubjectMatch:
    """How an attestation's subject compares with a capsule file."""

    archive_matches: bool
    """False: the same manifest (capsule id), in another archive (repacked)."""


def match_capsule(att: CheckedAttestation, capsule_id: str, archive_sha256: str) -> SubjectMatch:
    """Raise AttestationSubjectError unless the attestation is about this capsule."""
    if att.statement.capsule_id != capsule_id:
        raise AttestationSubjectError(
            f"{att.source} is about capsule {att.statement.capsule_id[:12]}…, not "
            f"{capsule_id[:12]}… (the capsule given)"
        )
    capsule = att.statement.predicate.capsule
    return SubjectMatch(archive_matches=capsule.archive_sha256 == archive_sha256)


# --- several attestations ----------------------------------------------------------------


@dataclass(frozen=True)
class CapsuleSummary:
    """What the attestations of one capsule say together."""

    capsule_id: str
    title: str
    doi: str | None
    reproduced: int
    not_reproduced: int
    keys: int
    """Distinct keys among the reproducing attestations."""
    platforms: int
    """Distinct platforms (OS, architecture, Python) among the reproducing attestations."""
    trusted_keys: int
    """Distinct trusted keys among the reproducing attestations."""

    def sentence(self) -> str:
        def times(n: int) -> str:
            return {1: "once", 2: "twice"}.get(n, f"{n} times")

        def plural(n: int, word: str) -> str:
            return f"{n} {word}{'' if n == 1 else 's'}"

        if self.reproduced:
            text = (
                f"reproduced {times(self.reproduced)} by {plural(self.keys, 'key')} on "
                f"{plural(self.platforms, 'platform')}"
            )
            if self.trusted_keys < self.keys:
                text += f" ({self.trusted_keys} of the keys trusted)"
        else:
            text = "never reproduced"
        if self.not_reproduced:
            text += f"; not reproduced {times(self.not_reproduced)}"
        return text


def summarise(attestations: Sequence[CheckedAttestation]) -> list[CapsuleSummary]:
    """One summary per capsule, in the order the capsules first appear."""
    groups: dict[str, list[CheckedAttestation]] = {}
    for att in attestations:
        groups.setdefault(att.statement.capsule_id, []).append(att)
    out = []
    for capsule_id, group in groups.items():
        good = [a for a in group if a.statement.reproduced]
        capsule = group[0].statement.predicate.capsule
        out.append(
            CapsuleSummary(
                capsule_id=capsule_id,
                title=capsule.title,
                doi=capsule.doi,
                reproduced=len(good),
                not_reproduced=len(group) - len(good),
                keys=len({a.keyid for a in good}),
                platforms=len(
                    {platform_label(a.statement.predicate.replayer.platform) for a in good}
                ),
                trusted_keys=len({a.keyid for a in good if a.trust == "trusted"}),
            )
        )
    return out
