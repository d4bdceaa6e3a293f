"""The --json outputs about attestations and the replay history: verify-attestation, history,
publish --attestation (schemas in schemas/).

Built from core results (imported for type checking only, as in repro.report.models).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal, Self

from repro.attestation.statement import ReplayPredicate
from repro.model_base import Model

if TYPE_CHECKING:
    from repro.attestation.check import CapsuleSummary, CheckedAttestation
    from repro.history import History
    from repro.publish.attestations import AttestationReceipt, FetchedAttestation

from repro.history import HistoryEntry


class AttestationCheck(Model):
    """One attestation that verified."""

    source: str
    """The file (or record) it was read from."""
    capsule_id: str
    verdict: Literal["reproduced", "not_reproduced"]
    keyid: str
    fingerprint: str
    trust: Literal["trusted", "unknown"]
    """trusted: the key is in the trust store (or is your own); unknown: it is not."""
    key_name: str | None
    capsule_matches: bool | None = None
    """With --capsule: whether the archive's sha256 matches too (the capsule id always
    does, or the command failed)."""
    summary: str
    """One line for people: who reproduced what, where and when."""
    predicate: ReplayPredicate

    @classmethod
    def build(cls, att: CheckedAttestation, archive_matches: bool | None = None) -> Self:
        return cls(
            source=att.source,
            capsule_id=att.statement.capsule_id,
            verdict=att.statement.predicate.verdict,
            keyid=att.keyid,
            fingerprint=att.fingerprint,
            trust=att.trust,
            key_name=att.key_name,
            capsule_matches=archive_matches,
            summary=att.describe(),
            predicate=att.statement.predicate,
        )


class CapsuleAttestations(Model):
    """What the attestations of one capsule say together."""

    capsule_id: str
    title: str
    doi: str | None
    reproduced: int
    not_reproduced: int
    keys: int
    platforms: int
    trusted_keys: int
    summary: str
    """'reproduced 3 times by 2 keys on 2 platforms'."""

    @classmethod
    def build(cls, s: CapsuleSummary) -> Self:
        return cls(
            capsule_id=s.capsule_id,
            title=s.title,
            doi=s.doi,
            reproduced=s.reproduced,
            not_reproduced=s.not_reproduced,
            keys=s.keys,
            platforms=s.platforms,
            trusted_keys=s.trusted_keys,
            summary=s.sentence(),
        )


class VerifyAttestationOutput(Model):
    """`repro verify-attestation --json`."""

    ok: Literal[True]
    reproduced: bool
    """Every attestation verified and says reproduced (exit 0); else exit 3."""
    attestations: list[AttestationCheck]
    capsules: list[CapsuleAttestations]
    badge: str | None = None
    """The SVG badge written (--badge)."""


class HistoryOutput(Model):
    """`repro history --json`."""

    ok: Literal[True]
    ledger: str
    """The ledger file (JSON lines)."""
    skipped: int
    """Lines of the ledger that could not be read."""
    entries: list[HistoryEntry]

    @classmethod
    def build(cls, history: History) -> Self:
        return cls(
            ok=True, ledger=str(history.path), skipped=history.skipped, entries=history.entries
        )


class PublishAttestationOutput(Model):
    """`repro publish --attestation ATT --json`."""

    ok: Literal[True]
    state: Literal["draft", "published"]
    doi: str | None
    record_url: str
    deposition_id: int
    file_name: str
    md5: str
    sha256: str
    capsule_doi: str
    """The capsule's DOI the record is linked to (relation isSupplementTo)."""
    capsule_id: str
    verdict: str
    zenodo_url: str
    time: str
    receipt: str

    @classmethod
    def build(cls, receipt: AttestationReceipt, path: str) -> Self:
        return cls(ok=True, **receipt.model_dump(), receipt=path)


class FetchedAttestationOutput(Model):
    record_id: int
    doi: str | None
    file_name: str
    path: str | None
    """Where the verified attestation was written (None: it did not verify)."""
    verdict: Literal["reproduced", "not_reproduced"] | None
    trust: Literal["trusted", "unknown"] | None
    problem: str | None
    """Why it was not kept."""

    @classmethod
    def build(cls, f: FetchedAttestation) -> Self:
        return cls(
            record_id=f.record_id,
            doi=f.doi,
            file_name=f.file_name,
            path=str(f.path) if f.path else None,
            verdict=f.checked.statement.predicate.verdict if f.checked else None,
            trust=f.checked.trust if f.checked else None,
            problem=f.problem,
        )
