"""Replay attestations on Zenodo: each its own record, linked to the capsule's version DOI.

The link is a related identifier `{"identifier": CAPSULE_DOI, "relation": "isSupplementTo",
"scheme": "doi"}` on the attestation's record. Zenodo offers no "reviews"/"reproduces"
relation in its deposit API; of the relations it does offer (ZENODO.md), isSupplementTo
says what an attestation is -- a supplement to the capsule it is about, meaningless without
it -- and Zenodo (and DataCite) show it on the capsule's record as a related work, so a
reader of the capsule sees its independent reproductions. `references` would say the
attestation merely cites the capsule. The link names the version DOI the attestation's
subject is (the capsule's own stamped DOI), never the concept DOI: an attestation is about
exactly one capsule.

Finding them again: Zenodo's records search on the related identifier
(`metadata.related_identifiers.identifier:"DOI"`), each hit then checked for the link itself
(a search is not an exact match) and each of its attestation files verified and matched to
the capsule before it is kept.
"""

from __future__ import annotations

import hashlib
import tempfile
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Literal

from repro import __version__
from repro.attestation.check import (
    CheckedAttestation,
    check_attestation,
    match_capsule,
    read_attestation,
    summarise,
)
from repro.errors import AttestationError, ReproError, UsageError
from repro.model_base import Model
from repro.publish.api import ZenodoApi
from repro.publish.client import ZenodoClient
from repro.publish.errors import ChecksumMismatchError, ZenodoError
from repro.publish.journal import write_atomic
from repro.publish.metadata import Creator, RelatedIdentifier, ZenodoMetadata
from repro.publish.models import Deposition, Record
from repro.publish.target import Target, max_wait_from_env, read_token

RELATION = "isSupplementTo"
KEYWORD = "repro-attestation"
ATTESTATION_SUFFIX = ".json"


class AttestationReceipt(Model):
    """What was published where: `ATTESTATION.zenodo.json`."""

    state: Literal["draft", "published"]
    doi: str | None
    """The attestation record's DOI (reserved while a draft)."""
    record_url: str
    deposition_id: int
    file_name: str
    md5: str
    sha256: str
    capsule_doi: str
    """The capsule's version DOI the record is linked to (isSupplementTo)."""
    capsule_id: str
    verdict: str
    zenodo_url: str
    time: str


@dataclass(frozen=True)
class AttestationPublishOptions:
    attestation: Path
    target: Target
    creators: list[str]
    """'Family, Given' of the people who replayed."""
    publish: bool = False
    today: date | None = None


def _receipt_path(attestation: Path) -> Path:
    return attestation.with_name(attestation.name + ".zenodo.json")


def attestation_metadata(
    att: CheckedAttestation, capsule_doi: str, creators: list[str], today: date
) -> ZenodoMetadata:
    p = att.statement.predicate
    word = "Reproduced" if att.statement.reproduced else "Not reproduced"
    summary = att.describe()
    return ZenodoMetadata(
        upload_type="other",
        title=f"{word}: {p.capsule.title or p.capsule.file_name} (replay attestation)",
        creators=[Creator(name=c) for c in creators],
        description=(
            f"<p>A signed replay attestation (in-toto Statement, predicate "
            f"{att.statement.predicateType}) of the capsule "
            f'<a href="https://doi.org/{capsule_doi}">{capsule_doi}</a>: {summary}.</p>'
            f"<p>Check it with: <code>repro verify-attestation FILE</code>.</p>"
        ),
        license="CC0-1.0",
        publication_date=today.isoformat(),
        keywords=[KEYWORD, "reproducibility", "in-toto"],
        related_identifiers=[
            RelatedIdentifier(identifier=capsule_doi, relation=RELATION, scheme="doi")
        ],
        notes=f"repro {__version__} attestation {_marker_of(att)}",
    )


def _marker_of(att: CheckedAttestation) -> str:
    return f"attestation-{att.statement.capsule_id[:12]}-{att.keyid[:12]}"


def _sha256(path: Path) -> tuple[str, str]:
    data = path.read_bytes()
    return hashlib.md5(data, usedforsecurity=False).hexdigest(), hashlib.sha256(data).hexdigest()


def publish_attestation(
    opts: AttestationPublishOptions, api: ZenodoApi | None = None
) -> AttestationReceipt:
    """Deposit the attestation as its own record linked to its capsule's DOI (a draft
    unless `opts.publish`). A second run after a lost answer finds its draft by the
    marker in the notes; after a publish, the receipt says it is done."""
    att = read_attestation(opts.attestation)  # refuse anything that does not verify
    capsule_doi = att.statement.predicate.capsule.doi
    if not capsule_doi:
        raise UsageError(
            f"{opts.attestation}: the attested capsule carries no DOI, so there is no record "
            "to link the attestation to",
            hint="publish the capsule first (repro publish CAPSULE --publish), then replay "
            "the published capsule (repro replay DOI --attest) and publish that attestation",
        )
    if not opts.creators:
        raise UsageError(
            "an attestation record needs its creators: who replayed the capsule",
            hint='pass --creator "Family, Given" (repeatable)',
        )
    md5, sha = _sha256(opts.attestation)
    receipt_file = _receipt_path(opts.attestation)
    if receipt_file.is_file():
        try:
            done = AttestationReceipt.model_validate_json(receipt_file.read_bytes())
        except ValueError:
            done = None
        if done is not None and done.sha256 == sha and done.state == "published":
            return done
    metadata = attestation_metadata(
        att, capsule_doi, opts.creators, opts.today or datetime.now(UTC).date()
    )
    if api is not None:
        return _deposit(api, opts, att, metadata, md5, sha, receipt_file)
    token = read_token(opts.target)
    with ZenodoClient(opts.target.api_url, token, max_wait=max_wait_from_env()) as client:
        return _deposit(client, opts, att, metadata, md5, sha, receipt_file)


def _deposit(
    api: ZenodoApi,
    opts: AttestationPublishOptions,
    att: CheckedAttestation,
    metadata: ZenodoMetadata,
    md5: str,
    sha: str,
    receipt_file: Path,
) -> AttestationReceipt:
    marker = _marker_of(att)
    draft = api.find_draft(marker) or api.create(metadata.to_api())
    bucket = draft.links.bucket
    if bucket is None:
        raise ZenodoError(f"Zenodo gave deposition {draft.id} no upload bucket")
    api.check_link(bucket)
    key = opts.attestation.name
    answer = api.upload(bucket, key, opts.attestation, None)
    if answer.md5 != md5:
        raise ChecksumMismatchError(
            f"Zenodo holds {key} with md5 {answer.md5}; the attestation has md5 {md5}"
        )
    api.update_metadata(draft.id, metadata.to_api())
    state: Literal["draft", "published"] = "draft"
    final: Deposition = api.get(draft.id)
    if opts.publish:
        final = api.publish(draft.id)
        if not final.published:
            final = api.get(draft.id)
        state = "published" if final.published else "draft"
    site = opts.target.site_url
    receipt = AttestationReceipt(
        state=state,
        doi=final.doi or final.reserved_doi,
        record_url=final.links.record_html or f"{site}/records/{final.recid}",
        deposition_id=final.id,
        file_name=key,
        md5=md5,
        sha256=sha,
        capsule_doi=metadata.related_identifiers[0].identifier,
        capsule_id=att.statement.capsule_id,
        verdict=att.statement.predicate.verdict,
        zenodo_url=site,
        time=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    )
    write_atomic(receipt_file, (receipt.model_dump_json(indent=2) + "\n").encode())
    return receipt


# --- fetching them back ------------------------------------------------------------------


@dataclass(frozen=True)
class FetchedAttestation:
    record_id: int
    doi: str | None
    file_name: str
    path: Path | None
    """Where the verified attestation was written (None: it did not verify)."""
    checked: CheckedAttestation | None
    problem: str | None = None
    """Why it was not kept."""


def links_to(record: Record, doi: str) -> bool:
    related = record.metadata.get("related_identifiers") or []
    return any(
        isinstance(r, dict)
        and str(r.get("identifier", "")).lower() == doi.lower()
        and r.get("relation") == RELATION
        for r in related
    )


def fetch_attestations(
    api: ZenodoApi, capsule_doi: str, capsule_id: str, archive_sha256: str, dest_dir: Path
) -> list[FetchedAttestation]:
    """The attestation records linked to `capsule_doi`, each file downloaded, checked
    against Zenodo's md5, verified and matched to the capsule; only those are written to
    `dest_dir` (as zenodo-RECID.NAME)."""
    hits = api.search_records(f'metadata.related_identifiers.identifier:"{capsule_doi}"')
    out: list[FetchedAttestation] = []
    for record in sorted((r for r in hits if links_to(r, capsule_doi)), key=lambda r: r.id):
        for remote in record.files:
            if not remote.key.lower().endswith(ATTESTATION_SUFFIX):
                continue
            name = remote.key.rsplit("/", 1)[-1]
            with tempfile.TemporaryDirectory(prefix="repro-att-") as tmp:
                tmp_path = Path(tmp) / "attestation.json"
                try:
                    got = api.download(record.id, remote, tmp_path, None)
                    if got.md5 != remote.md5:
                        raise ZenodoError(f"md5 {got.md5} is not Zenodo's {remote.md5}")
                    data = tmp_path.read_bytes()
                    checked = check_attestation(data, f"record {record.id}: {name}")
                    match_capsule(checked, capsule_id, archive_sha256)
                except (ReproError, AttestationError) as exc:
                    out.append(
                        FetchedAttestation(record.id, record.doi, name, None, None, exc.message)
                    )
                    continue
            dest_dir.mkdir(parents=True, exist_ok=True)
            path = dest_dir / f"zenodo-{record.id}.{name}"
            write_atomic(path, data)
            out.append(FetchedAttestation(record.id, record.doi, name, path, checked))
    return out


def summary_of(fetched: list[FetchedAttestation]) -> str | None:
    """What the verified attestations say together ('reproduced twice by 2 keys ...')."""
    good = [f.checked for f in fetched if f.checked is not None]
    return summarise(good)[0].sentence() if good else None
