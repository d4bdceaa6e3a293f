"""`repro publish`: a capsule to a Zenodo deposition with its own DOI, resumable step by step.

create (or newversion) -> pre-reserved DOI -> stamp the DOI into the capsule and re-sign it
-> upload to the bucket, check md5 and size -> PUT the complete metadata -> read back and
check -> publish (only when asked) -> receipt. Each step is journaled next to the capsule
before the next begins, so a crash or a lost connection resumes where it stopped and never
creates a second deposition. Files written next to CAPSULE (`NAME.tgz`):

- `NAME.tgz.zenodo-journal.json` the journal (`.zenodo-sandbox-journal.json` on the sandbox);
- `NAME.zenodo-RECID.tgz` the published capsule, carrying its DOI, re-signed
  (`NAME.zenodo-sandbox-RECID.tgz`); it is uploaded under the original file name;
- `NAME.tgz.zenodo.json` the receipt (`.zenodo-sandbox.json`).
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Literal

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from repro.capsule.restamp import restamp_capsule
from repro.errors import CapsuleNotFoundError, SigningKeyError
from repro.publish.api import Progress, ZenodoApi
from repro.publish.client import ZenodoClient
from repro.publish.errors import (
    ChecksumMismatchError,
    DraftGoneError,
    JournalConflictError,
    MetadataMismatchError,
    OutcomeUnknownError,
    PendingDraftError,
    UnknownReferenceError,
    ZenodoError,
    ZenodoNotFoundError,
    ZenodoRequestError,
    ZenodoUnavailableError,
)
from repro.publish.fetch import RecordRef, parse_reference, resolve_record
from repro.publish.journal import (
    Journal,
    Step,
    after,
    journal_path,
    load,
    locked,
    now,
    receipt_path,
    save,
    seconds_since,
    write_atomic,
)
from repro.publish.metadata import (
    DOI_PATTERN,
    RelatedIdentifier,
    ZenodoMetadata,
    build_metadata,
    cff_from_capsule,
    metadata_differences,
)
from repro.publish.models import Deposition
from repro.publish.receipt import Receipt
from repro.publish.target import Target, index_wait_from_env, max_wait_from_env, read_token
from repro.publish.versions import cleanup_hint, draft_id, is_wedge, pending_draft
from repro.sign import PassphrasePrompt, default_key_path, fingerprint, key_id, load_private_key
from repro.verify import VerifyReport, open_capsule

Observer = Callable[[str], None]
StepHook = Callable[[Step], None]


@dataclass(frozen=True)
class PublishOptions:
    capsule: Path
    target: Target
    publish: bool = False
    """Publish the draft (irreversible: a DOI is registered). Default: leave a draft."""
    new_version_of: str | None = None
    """DOI, URL or deposition id of the published version this one follows."""
    communities: list[str] = field(default_factory=list)
    upload_type: str | None = None
    key: Path | None = None
    """Key to re-sign the DOI-stamped capsule with (default: your default key)."""
    passphrase_prompt: PassphrasePrompt | None = None
    max_wait: float | None = None
    """Longest single wait for Retry-After and backoff (default REPRO_ZENODO_MAX_WAIT or 60 s)."""
    index_wait: float | None = None
    """How long to look for a draft a lost answer may have created, while Zenodo's lists
    (a search index) catch up (default REPRO_ZENODO_INDEX_WAIT or 30 s)."""
    today: date | None = None


@dataclass(frozen=True)
class PublishResult:
    receipt: Receipt
    receipt_path: Path
    journal_path: Path
    resumed: bool
    """A journal from an earlier run was picked up."""
    already_done: bool
    """Nothing was left to do (published before)."""
    warnings: list[str] = field(default_factory=list)


def _stamped_name(capsule: Path, target: Target, recid: int) -> str:
    stem = capsule.name
    for suffix in (".tar.gz", ".tgz"):
        if stem.endswith(suffix):
            stem = stem[: -len(suffix)]
            break
    infix = "zenodo-sandbox" if target.kind == "sandbox" else "zenodo"
    return f"{stem}.{infix}-{recid}.tgz"


def _digests(path: Path) -> tuple[str, str, int]:
    md5, sha, size = hashlib.md5(usedforsecurity=False), hashlib.sha256(), 0
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            md5.update(chunk)
            sha.update(chunk)
            size += len(chunk)
    return md5.hexdigest(), sha.hexdigest(), size


def _version_ref(arg: str | None) -> int | str | None:
    """--new-version-of compared by the record it names, however it was written."""
    if arg is None:
        return None
    ref = parse_reference(arg, allow_id=True)
    return ref.record_id if ref is not None else arg


class _Publication:
    def __init__(
        self,
        opts: PublishOptions,
        observe: Observer | None,
        progress: Progress | None,
        on_step: StepHook | None,
        api: ZenodoApi | None,
    ) -> None:
        self.opts = opts
        self.target = opts.target
        self.say = observe or (lambda _m: None)
        self.progress = progress
        self.on_step = on_step
        self.capsule = opts.capsule
        self.jpath = journal_path(self.capsule, self.target)
        self.warnings: list[str] = []
        self.key: Ed25519PrivateKey | None = None
        self.given_api = api
        self.index_wait = opts.index_wait if opts.index_wait is not None else index_wait_from_env()
        self.api: ZenodoApi
        self.journal: Journal

    # bookkeeping

    def _save(self, step: Step | None = None) -> None:
        save(self.journal, self.jpath, step)
        if step is not None and self.on_step is not None:
            self.on_step(step)

    def _wait_note(self, seconds: float, why: str) -> None:
        self.say(f"waiting {seconds:.1f} s: {why}")

    # the run

    def run(self) -> PublishResult:
        if not self.capsule.is_file():
            raise CapsuleNotFoundError(f"capsule not found: {self.capsule}")
        with locked(self.capsule):  # one publisher of a capsule at a time
            return self._run()

    def _run(self) -> PublishResult:
        report = open_capsule(self.capsule)  # every checksum and the signature, first
        sha256 = report.capsule.archive_sha256
        existing = load(self.jpath)
        if existing is not None:
            self._check_journal(existing, sha256)
            self.journal = existing
            self.say(f"resuming from {self.jpath.name} (last step: {existing.step.value})")
            if existing.step == Step.PUBLISHED:
                receipt = self._write_receipt("published")
                return self._result(receipt, resumed=True, done=True)
        else:
            metadata = self._validate(report)
        self.key = self._signing_key(report)
        token = read_token(self.target) if self.given_api is None else None
        if existing is None:
            self.journal = Journal(
                capsule=self.capsule.name,
                capsule_sha256=sha256,
                api_url=self.target.api_url,
                target=self.target.kind,
                metadata=metadata.to_api(),
                marker=secrets.token_hex(8),
                new_version_arg=self.opts.new_version_of,
            )
            self._save(Step.STARTED)
            self.say("metadata checked; nothing sent yet")
        if self.given_api is not None:
            self.api = self.given_api
            return self._steps(resumed=existing is not None)
        max_wait = self.opts.max_wait if self.opts.max_wait is not None else max_wait_from_env()
        with ZenodoClient(
            self.target.api_url, token, max_wait=max_wait, on_wait=self._wait_note
        ) as client:
            self.api = client
            return self._steps(resumed=existing is not None)

    def _steps(self, *, resumed: bool) -> PublishResult:
        j = self.journal
        if not after(j.step, Step.CREATED):
            if j.new_version_arg:
                self._new_version()
            else:
                self._create()
        deposition = self._read()
        if deposition.published:
            if after(j.step, Step.CHECKED):
                self._mark_published(deposition)
                return self._result(self._write_receipt("published"), resumed=resumed)
            raise ZenodoError(
                f"deposition {deposition.id} was published before repro finished it",
                hint=f"check the record on Zenodo; move {self.jpath.name} away to start over",
            )
        if j.new_version_of is not None and not after(j.step, Step.CLEARED):
            self._clear_inherited()
        self._stamp()
        if not after(j.step, Step.UPLOADED):
            self._upload()
        if not after(j.step, Step.DESCRIBED):
            self._describe()
        if not after(j.step, Step.PUBLISHING):
            self._check()
        if not self.opts.publish:
            receipt = self._write_receipt("draft")
            return self._result(receipt, resumed=resumed)
        self._publish()
        return self._result(self._write_receipt("published"), resumed=resumed)

    def _result(self, receipt: Receipt, *, resumed: bool, done: bool = False) -> PublishResult:
        return PublishResult(
            receipt=receipt,
            receipt_path=receipt_path(self.capsule, self.target),
            journal_path=self.jpath,
            resumed=resumed,
            already_done=done,
            warnings=self.warnings,
        )

    # before any request

    def _check_journal(self, journal: Journal, sha256: str) -> None:
        move = f"move {self.jpath} away to start a new publication"
        if journal.capsule_sha256 != sha256:
            where = (
                f"deposition {journal.deposition_id}" if journal.deposition_id else "no deposition"
            )
            hint = f"publish the new capsule under another file name, or {move}"
            if journal.deposition_id and journal.step != Step.PUBLISHED:
                hint += (
                    f" (and discard the draft: {self.target.site_url}/deposit/"
                    f"{journal.deposition_id})"
                )
            raise JournalConflictError(
                f"{self.jpath.name} is about another version of {self.capsule.name} "
                f"({where}, last step: {journal.step.value})",
                hint=hint,
            )
        if journal.api_url != self.target.api_url:
            raise JournalConflictError(
                f"{self.capsule.name} is being published to {journal.api_url}, not "
                f"{self.target.api_url}",
                hint=f"finish that one with the same --zenodo-url, or {move}",
            )
        given = self.opts.new_version_of
        if given is not None and _version_ref(given) != _version_ref(journal.new_version_arg):
            started = (
                f"as a new version of {journal.new_version_arg}"
                if journal.new_version_arg
                else "as a first version"
            )
            raise JournalConflictError(
                f"the publication in {self.jpath.name} was started {started}",
                hint=f"run the command with the same --new-version-of, or {move}",
            )

    def _validate(self, report: VerifyReport) -> ZenodoMetadata:
        manifest = report.capsule.manifest
        cff = cff_from_capsule(self.capsule, manifest)
        today = self.opts.today or datetime.now(UTC).date()
        return build_metadata(
            manifest,
            cff,
            today=today,
            upload_type=self.opts.upload_type,
            communities=self.opts.communities,
        )

    def _signing_key(self, report: VerifyReport) -> Ed25519PrivateKey | None:
        path = self.opts.key or default_key_path()
        if path is None:
            if report.capsule.signature is not None:
                raise SigningKeyError(
                    "the capsule is signed, and stamping its DOI in means signing it again: "
                    "no key to sign with",
                    hint="pass --key PATH (the key it was signed with), or create one: "
                    "repro keys generate",
                )
            self.warnings.append("no signing key: the published capsule is unsigned")
            return None
        key = load_private_key(path, self.opts.passphrase_prompt)
        if report.signature.keyid and report.signature.keyid != key_id(key.public_key()):
            self.warnings.append(
                f"the capsule was signed by {fingerprint(report.signature.keyid)}; the "
                f"published one is signed by your key {fingerprint(key_id(key.public_key()))}"
            )
        return key

    # create / new version

    def _adopt(self, deposition: Deposition) -> None:
        j = self.journal
        bucket = deposition.links.bucket
        if bucket is None:
            raise ZenodoError(f"Zenodo gave deposition {deposition.id} no upload bucket")
        self.api.check_link(bucket)  # before anything else is done for it
        recid = deposition.recid
        if self.target.doi_prefix is not None:
            # The sandbox's pre-reserved DOI may carry the production prefix (ZENODO.md).
            doi = f"{self.target.doi_prefix}/zenodo.{recid}"
        else:
            doi = deposition.reserved_doi or ""
            if not DOI_PATTERN.fullmatch(doi):
                raise ZenodoError(f"Zenodo gave deposition {deposition.id} no pre-reserved DOI")
        j.deposition_id = deposition.id
        j.bucket_url = bucket
        j.html_url = deposition.links.html
        j.recid = recid
        j.doi = doi
        j.concept_doi = deposition.conceptdoi or None
        self._save(Step.CREATED)
        self.say(f"draft {deposition.id} created; DOI reserved: {doi}")

    def _index_wait(self) -> float:
        """How long Zenodo's lists may still be behind the last create/newversion request:
        the index wait, less the time since that request (a resume hours later waits not)."""
        return max(0.0, self.index_wait - seconds_since(self.journal, Step.CREATING))

    def _find_marked(self) -> Deposition | None:
        """Our draft among the user's drafts, by the marker the create request carried."""
        return self.api.find_draft(self.journal.marker, wait=self._index_wait())

    def _create(self) -> None:
        j = self.journal
        was_creating = j.step == Step.CREATING
        if was_creating:
            found = self._find_marked()
            if found is not None:
                self.say("the create request of the last run went through: using its draft")
                self._adopt(found)
                return
        self._save(Step.CREATING)
        metadata = ZenodoMetadata.model_validate(j.metadata).with_marker(j.marker).to_api()
        for _ in range(3):
            try:
                deposition = self.api.create(metadata)
            except OutcomeUnknownError as exc:
                self.say(f"no clear answer to create ({exc.message}); looking for the draft")
                found = self._find_marked()
                if found is None:
                    continue
                deposition = found
            self._adopt(deposition)
            return
        raise ZenodoUnavailableError("Zenodo did not confirm creating the deposition")

    def _previous(self) -> Deposition:
        arg = self.journal.new_version_arg or ""
        ref = parse_reference(arg, allow_id=True)
        if ref is None:
            raise UnknownReferenceError(f"--new-version-of: not a DOI, URL or id: {arg!r}")
        try:
            previous = self.api.get(ref.record_id)
        except ZenodoNotFoundError:
            previous = self._latest_of_concept(ref)
        if not previous.published:
            raise ZenodoError(
                f"--new-version-of: deposition {previous.id} is not published",
                hint="publish it first (repro publish ... --publish), or publish this capsule "
                "as a first version",
            )
        return previous

    def _latest_of_concept(self, ref: RecordRef) -> Deposition:
        """--new-version-of named no deposition: a concept DOI names its latest version."""
        try:
            resolved = resolve_record(self.api, ref, self.target.site_url)
            latest = self.api.get(resolved.record.id)
        except ZenodoNotFoundError:
            raise ZenodoNotFoundError(
                f"--new-version-of: no deposition or concept {ref.record_id} of yours on "
                "this Zenodo",
                hint="give the DOI of the capsule's record (a version DOI or its concept DOI)",
            ) from None
        if resolved.concept_doi is not None:
            self.say(
                f"--new-version-of: {resolved.concept_doi} is a concept DOI; its latest "
                f"version is {latest.doi or latest.id}"
            )
        return latest

    def _pending(self, previous: Deposition, *, wait: bool = False) -> int | None:
        """The concept's pending new-version draft; `wait`: give the index the time a
        request just made may need."""
        return pending_draft(self.api, previous, self._index_wait() if wait else 0.0)

    def _new_version(self) -> None:
        j = self.journal
        previous = self._previous()
        if not previous.doi:
            raise ZenodoError(f"--new-version-of: deposition {previous.id} has no DOI")
        was_creating = j.step == Step.CREATING
        j.new_version_of = previous.id
        j.new_version_of_doi = previous.doi
        metadata = ZenodoMetadata.model_validate(j.metadata)
        link = RelatedIdentifier(identifier=previous.doi, relation="isNewVersionOf", scheme="doi")
        if link not in metadata.related_identifiers:
            metadata = metadata.model_copy(
                update={"related_identifiers": [*metadata.related_identifiers, link]}
            )
            j.metadata = metadata.to_api()
        pending = self._pending(previous)
        if pending is not None:
            if was_creating:
                # None was pending when the last run sent newversion (it checked): ours.
                self.say(f"the newversion request of the last run went through: draft {pending}")
                self._adopt(self.api.get(pending))
                return
            raise PendingDraftError(
                f"a new version of {previous.doi} is already being prepared (draft {pending}), "
                "and this capsule's journal does not know it",
                hint=cleanup_hint(self.target, pending),
            )
        self._save(Step.CREATING)
        self._adopt(self._send_new_version(previous, ours=was_creating))

    def _send_new_version(self, previous: Deposition, *, ours: bool) -> Deposition:
        """POST newversion, settling a lost answer by finding the concept's draft. `ours`: a
        request of an earlier run may have made a draft already (none was pending before)."""
        for _ in range(3):
            try:
                deposition = self.api.new_version(previous.id)
            except OutcomeUnknownError as exc:
                self.say(f"no clear answer to newversion ({exc.message}); looking for the draft")
                ours = True
                pending = self._pending(previous, wait=True)
                if pending is not None:
                    return self.api.get(pending)
                continue
            except ZenodoRequestError as exc:
                if not is_wedge(exc):
                    raise
                draft = self._pending(previous, wait=True)
                if draft is not None and ours:
                    self.say(f"the newversion request went through: draft {draft}")
                    return self.api.get(draft)
                raise PendingDraftError(
                    f"a half-finished new version of {previous.doi} blocks a new one "
                    f"(draft {draft or '?'}: 'Please remove all files first.')",
                    hint=cleanup_hint(self.target, draft),
                ) from None
            if deposition.id != previous.id:
                return deposition
            # The documented answer: the old deposition, the new draft behind
            # links.latest_draft -- or, where that names the old one, among the drafts.
            latest = draft_id(deposition.links.latest_draft)
            if latest is not None and latest != previous.id:
                return self.api.get(latest)
            pending = self._pending(previous, wait=True)
            if pending is None:
                raise ZenodoError("newversion answered, but its draft is nowhere to be found")
            return self.api.get(pending)
        raise ZenodoUnavailableError("Zenodo did not confirm creating the new version")

    def _read(self) -> Deposition:
        j = self.journal
        assert j.deposition_id is not None  # noqa: S101 (set at CREATED)
        try:
            return self.api.get(j.deposition_id)
        except ZenodoNotFoundError:
            raise DraftGoneError(
                f"deposition {j.deposition_id} of the journal no longer exists "
                "(discarded on the website?)",
                hint=f"move {self.jpath} away to start a new publication",
            ) from None

    def _clear_inherited(self) -> None:
        j = self.journal
        assert j.deposition_id is not None  # noqa: S101
        files = self.api.list_files(j.deposition_id)
        for remote in files:
            self.api.delete_file(j.deposition_id, remote.id)
        self._save(Step.CLEARED)
        if files:
            self.say(f"removed {len(files)} file(s) inherited from the previous version")

    # the capsule

    def _stamp(self) -> None:
        j = self.journal
        assert j.recid is not None and j.doi is not None  # noqa: S101
        stamped = self.capsule.with_name(_stamped_name(self.capsule, self.target, j.recid))
        done = after(j.step, Step.STAMPED)
        if done and stamped.is_file() and _digests(stamped)[1] == j.sha256:
            return
        written = restamp_capsule(self.capsule, stamped, metadata={"doi": j.doi}, key=self.key)
        md5, sha, size = _digests(stamped)
        if done and sha == j.sha256:
            return  # written again, byte for byte the same (Ed25519 signatures are deterministic)
        if after(j.step, Step.UPLOADED):
            self.say("the stamped capsule differs from the one uploaded: uploading it again")
        j.stamped_capsule = stamped.name
        j.capsule_id = written.capsule_id
        j.file_key = self.capsule.name
        j.md5, j.sha256, j.size = md5, sha, size
        self._save(Step.STAMPED)
        self.say(f"stamped {j.doi} into {stamped.name}" + (", re-signed" if self.key else ""))

    def _upload(self) -> None:
        j = self.journal
        assert j.bucket_url and j.stamped_capsule and j.file_key  # noqa: S101
        stamped = self.capsule.with_name(j.stamped_capsule)
        self.say(f"uploading {j.file_key} ({j.size} bytes)")
        answer = self.api.upload(j.bucket_url, j.file_key, stamped, self.progress)
        if answer.md5 != j.md5 or answer.size != j.size:
            raise ChecksumMismatchError(
                f"Zenodo holds {j.file_key} with md5 {answer.md5} and {answer.size} bytes; "
                f"the capsule has md5 {j.md5} and {j.size} bytes (nothing was published)"
            )
        self._save(Step.UPLOADED)
        self.say("uploaded; Zenodo's md5 and size match")

    # metadata

    def _final_metadata(self) -> dict[str, object]:
        j = self.journal
        assert j.doi is not None  # noqa: S101
        return ZenodoMetadata.model_validate(j.metadata).for_doi(j.doi).to_api()

    def _describe(self) -> None:
        j = self.journal
        assert j.deposition_id is not None  # noqa: S101
        self.api.update_metadata(j.deposition_id, self._final_metadata())
        self._save(Step.DESCRIBED)
        self.say("metadata sent")

    def _check(self) -> None:
        j = self.journal
        assert j.deposition_id is not None  # noqa: S101
        deposition = self._read()
        files = self.api.list_files(j.deposition_id)
        problems = []
        if [(f.key, f.md5, f.size) for f in files] != [(j.file_key, j.md5, j.size)]:
            held = ", ".join(f"{f.key} (md5 {f.md5}, {f.size} bytes)" for f in files) or "none"
            problems.append(f"files: expected only {j.file_key} (md5 {j.md5}), Zenodo has {held}")
        problems += metadata_differences(self._final_metadata(), deposition.metadata)
        reserved = deposition.reserved_doi
        if self.target.doi_prefix is None and reserved and reserved != j.doi:
            problems.append(f"prereserve_doi: {reserved}, but the capsule carries {j.doi}")
        if problems:
            if any(p.startswith("files:") for p in problems):
                j.step = Step.STAMPED  # upload again on the next run
            else:
                j.step = Step.UPLOADED  # send the metadata again on the next run
            self._save()
            raise MetadataMismatchError(
                f"draft {j.deposition_id} does not hold what was sent: " + "; ".join(problems)
            )
        self._save(Step.CHECKED)
        self.say("read back: the draft holds the capsule and the metadata as sent")

    # publish

    def _mark_published(self, deposition: Deposition) -> None:
        j = self.journal
        if deposition.doi and j.doi and deposition.doi.lower() != j.doi.lower():
            self.warnings.append(
                f"Zenodo registered {deposition.doi}, but the capsule carries {j.doi}"
            )
        j.doi = deposition.doi or j.doi
        j.concept_doi = deposition.conceptdoi or j.concept_doi
        j.record_url = (
            deposition.links.record_html or f"{self.target.site_url}/records/{deposition.recid}"
        )
        self._save(Step.PUBLISHED)
        self.say(f"published {j.doi}")

    def _publish(self) -> None:
        j = self.journal
        assert j.deposition_id is not None  # noqa: S101
        self._save(Step.PUBLISHING)
        for _ in range(3):
            current = self._read()
            if current.published:  # a publish whose answer was lost did happen
                self._mark_published(current)
                return
            try:
                deposition = self.api.publish(j.deposition_id)
            except OutcomeUnknownError as exc:
                self.say(f"no clear answer to publish ({exc.message}); reading the deposition")
                continue
            except ZenodoNotFoundError:
                continue  # a second publish is 404: read the deposition to know
            if not deposition.published:
                deposition = self._read()
            if deposition.published:
                self._mark_published(deposition)
                return
        current = self._read()
        if current.published:
            self._mark_published(current)
            return
        raise ZenodoUnavailableError(
            f"Zenodo did not confirm publishing deposition {j.deposition_id}"
        )

    # the receipt

    def _write_receipt(self, state: Literal["draft", "published"]) -> Receipt:
        j = self.journal
        assert j.deposition_id is not None and j.doi is not None  # noqa: S101
        assert j.md5 and j.sha256 and j.size is not None and j.stamped_capsule  # noqa: S101
        receipt = Receipt(
            state=state,
            doi=j.doi,
            concept_doi=j.concept_doi,
            record_url=j.record_url or f"{self.target.site_url}/records/{j.recid}",
            draft_url=None if state == "published" else j.html_url,
            deposition_id=j.deposition_id,
            file_name=j.file_key or self.capsule.name,
            md5=j.md5,
            sha256=j.sha256,
            size=j.size,
            capsule=str(self.capsule.with_name(j.stamped_capsule)),
            capsule_id=j.capsule_id or "",
            target=self.target.kind,
            zenodo_url=self.target.site_url,
            new_version_of=j.new_version_of_doi if j.new_version_of else None,
            time=now(),
        )
        text = receipt.model_dump_json(indent=2) + "\n"
        write_atomic(receipt_path(self.capsule, self.target), text.encode())
        return receipt


def publish(
    opts: PublishOptions,
    *,
    observe: Observer | None = None,
    progress: Progress | None = None,
    on_step: StepHook | None = None,
    api: ZenodoApi | None = None,
) -> PublishResult:
    """Publish (or prepare as a draft) a capsule on Zenodo, resuming from its journal.

    `observe` gets one line per step; `progress` the upload's (bytes done, total);
    `on_step` is called after each step is journaled (tests use it to simulate a crash).
    `api` is the Zenodo to talk to; by default a `ZenodoClient` for `opts.target` with the
    token from the environment, closed when done (a given one is left open, and its own
    token, waits and observers are the caller's).
    """
    try:
        return _Publication(opts, observe, progress, on_step, api).run()
    except ZenodoUnavailableError as exc:
        # Only a publish has a journal to resume from (fetch and the rest do not).
        exc.hint += ": it resumes from the journal next to the capsule"
        raise
