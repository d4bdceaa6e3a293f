"""Replay stage 6, record: the signed attestation (--attest) and the replay history's line.

The attestation is checked back (`check_attestation`) right after it is signed, so what is
written, embedded in the HTML report and counted in the history is exactly what a verifier
will read. A history that cannot be written costs a warning, never the replay's verdict.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from repro import history
from repro.attestation.attest import (
    replay_statement,
    sign_statement,
    timestamp,
    write_attestation,
)
from repro.attestation.check import CheckedAttestation, check_attestation
from repro.capsule.manifest import Platform
from repro.hashing import sha256_file
from repro.replay.open import Opened
from repro.report.replay import ReplayReport


@dataclass(frozen=True)
class AttestRequest:
    """Sign the replay: where to write the attestation and the replayer's key."""

    dest: Path
    key: Ed25519PrivateKey


def attest(
    report: ReplayReport,
    opened: Opened,
    capsule: Path,
    request: AttestRequest,
    platform: Platform,
) -> tuple[ReplayReport, CheckedAttestation]:
    archive_sha256, _size = sha256_file(capsule)
    statement = replay_statement(
        report,
        opened.manifest,
        archive_name=capsule.name,
        archive_sha256=archive_sha256,
        platform=platform,
        finished=time.time(),
    )
    data = sign_statement(statement, request.key)
    checked = check_attestation(data, str(request.dest))
    write_attestation(data, request.dest)
    return report.model_copy(update={"attestation": str(request.dest)}), checked


def note_in_history(
    report: ReplayReport,
    platform: Platform,
    *,
    doi: str | None,
    concept_doi: str | None,
    report_html: Path | None,
    stamped_doi: str | None,
) -> ReplayReport:
    entry = history.HistoryEntry(
        time=timestamp(time.time()),
        capsule_id=report.capsule_id,
        capsule=str(Path(report.capsule).resolve()),
        title=report.title,
        doi=doi or stamped_doi,
        concept_doi=concept_doi,
        target=report.target,
        host=history.platform_node(),
        host_fingerprint=history.host_fingerprint(platform),
        verdict="reproduced" if report.reproduced else "not_reproduced",
        counts=report.counts,
        duration_s=report.duration_s,
        report=str(report_html.resolve()) if report_html is not None else None,
        attestation=str(Path(report.attestation).resolve()) if report.attestation else None,
    )
    try:
        history.append(entry)
    except history.HistoryError as exc:
        return report.model_copy(update={"warnings": [*report.warnings, exc.message]})
    return report
