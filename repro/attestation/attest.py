"""Making a replay attestation: the replay report -> an in-toto Statement -> a signed DSSE envelope.

The envelope is the same DSSE shape as a capsule's repro.sig (`repro.sign`), with in-toto's
payload type; the signature is Ed25519 over DSSE's pre-authentication encoding, by the
replayer's key. The bytes are canonical JSON, so the same replay signed twice with the same
key gives the same file (Ed25519 signatures are deterministic).
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from repro import __version__
from repro.atomic import write_atomically
from repro.attestation.statement import (
    MANIFEST_SUBJECT,
    PAYLOAD_TYPE,
    PREDICATE_TYPE,
    STATEMENT_TYPE,
    AttestedCapsule,
    AttestedNotebook,
    AttestedOutput,
    AttestedPoint,
    Digest,
    PointResources,
    Replayer,
    ReplayPredicate,
    Resources,
    Statement,
    Subject,
)
from repro.capsule.manifest import Manifest, Platform, canonical_json
from repro.config.models import CompareRule
from repro.report.replay import ReplayReport
from repro.sign import key_id, pae, raw_public


def timestamp(when: float) -> str:
    return datetime.fromtimestamp(int(when), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _rules(manifest: Manifest) -> dict[tuple[str, str, str], CompareRule]:
    return {
        (record.run, record.point_id, out.path): out.rule
        for record in manifest.results
        for out in record.outputs
    }


def replay_statement(
    report: ReplayReport,
    manifest: Manifest,
    *,
    archive_name: str,
    archive_sha256: str,
    platform: Platform,
    finished: float,
) -> Statement:
    """The statement of one replay: its subject is the capsule (id and archive digest)."""
    rules = _rules(manifest)
    points = [
        AttestedPoint(
            run=p.run,
            point=p.point,
            point_id=p.point_id,
            status=p.status,
            exit_code=p.exit_code,
            outputs=[
                AttestedOutput(rule=rules.get((p.run, p.point_id, o.path)), result=o)
                for o in p.outputs
            ],
        )
        for p in report.points
    ]
    notebooks = [
        AttestedNotebook(path=nb.path, verdict=nb.verdict, status=nb.status, cells=nb.cells)
        for nb in report.notebooks
    ]
    resources = Resources(
        duration_s=report.duration_s,
        runs=[
            PointResources(
                what=f"{p.run}/{p.point_id}",
                duration_s=p.duration_s,
                captured_duration_s=p.captured_duration_s,
            )
            for p in report.points
        ]
        + [
            PointResources(
                what=nb.path,
                duration_s=nb.duration_s,
                captured_duration_s=nb.captured_duration_s,
            )
            for nb in report.notebooks
        ],
    )
    predicate = ReplayPredicate(
        capsule=AttestedCapsule(
            id=report.capsule_id,
            archive_sha256=archive_sha256,
            file_name=archive_name,
            title=report.title,
            doi=manifest.metadata.doi,
            signature=report.signature,
        ),
        verdict="reproduced" if report.reproduced else "not_reproduced",
        verified=report.verified,
        counts=report.counts,
        points=points,
        notebooks=notebooks,
        replayer=Replayer(target=report.target, platform=platform, repro_version=__version__),
        environment_differences=report.environment_differences,
        resources=resources,
        started=report.started,
        finished=timestamp(finished),
        warnings=report.warnings,
    )
    return Statement.model_validate(
        {
            "_type": STATEMENT_TYPE,
            "subject": [
                Subject(name=MANIFEST_SUBJECT, digest=Digest(sha256=report.capsule_id)),
                Subject(name=archive_name, digest=Digest(sha256=archive_sha256)),
            ],
            "predicateType": PREDICATE_TYPE,
            "predicate": predicate,
        }
    )


def statement_bytes(statement: Statement) -> bytes:
    return canonical_json(statement.model_dump(mode="json", by_alias=True))


def sign_statement(statement: Statement, key: Ed25519PrivateKey) -> bytes:
    """The DSSE envelope (canonical JSON bytes, newline-terminated) around `statement`."""
    payload = statement_bytes(statement)
    public = key.public_key()
    envelope = {
        "payload": base64.b64encode(payload).decode(),
        "payloadType": PAYLOAD_TYPE,
        "signatures": [
            {
                "keyid": key_id(public),
                "sig": base64.b64encode(key.sign(pae(PAYLOAD_TYPE, payload))).decode(),
                "publicKey": base64.b64encode(raw_public(public)).decode(),
            }
        ],
    }
    return canonical_json(envelope) + b"\n"


def write_attestation(data: bytes, dest: Path) -> None:
    """Write atomically: a temporary file in the destination's folder, then a rename."""
    write_atomically(dest, data, "the attestation")


def default_attestation_path(capsule: Path, folder: Path | None = None) -> Path:
    """NAME.attestation.json for NAME.capsule.tgz, NAME.tgz or NAME.tar.gz, in `folder`
    (default: the current directory)."""
    stem = capsule.name
    for suffix in (".tar.gz", ".tgz"):
        if stem.endswith(suffix):
            stem = stem[: -len(suffix)]
            break
    stem = stem.removesuffix(".capsule") or stem
    return (folder or Path.cwd()) / f"{stem}.attestation.json"
