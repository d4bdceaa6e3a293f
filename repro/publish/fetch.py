"""`repro fetch` and the DOI resolver of `repro replay`: a Zenodo record to a checked capsule file.

Accepted references: `10.5281/zenodo.N` (any prefix), `doi:...`, `https://doi.org/...`,
`https://zenodo.org/records/N` (also `/record/N`, `/api/records/N`). The record is read
through the Zenodo API of `--zenodo-url` / `REPRO_ZENODO_URL` (tests and private instances),
else of the record URL's own site, else of the sandbox for `10.5072` DOIs, else of
zenodo.org. Downloads are anonymous (no token), streamed into a temporary file next to their
place and cut off at the record's declared size, checked against Zenodo's md5 and size and
verified, then renamed into the user cache directory (by record id and checksum) and only
then copied to `-o DIR`: nothing that failed a check is kept anywhere.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from repro.errors import CapsuleNotFoundError, ConceptDoiRefusedError, ReproError
from repro.paths import cache_dir, mark_used
from repro.publish.api import Progress, ZenodoApi
from repro.publish.attestations import FetchedAttestation, fetch_attestations
from repro.publish.client import ZenodoClient
from repro.publish.errors import (
    DownloadChecksumError,
    RecordContentError,
    UnknownReferenceError,
    ZenodoNotFoundError,
    ZenodoUnavailableError,
)
from repro.publish.models import Record, RemoteFile
from repro.publish.target import (
    PRODUCTION_URL,
    SANDBOX_DOI_PREFIX,
    SANDBOX_URL,
    URL_ENV,
    max_wait_from_env,
    normalise_site_url,
)
from repro.verify import VerifyReport, verify_capsule

CAPSULE_SUFFIXES = (".tgz", ".tar.gz")
_DOI = re.compile(
    r"(?:doi:\s*|https?://(?:dx\.)?doi\.org/)?(10\.\d{4,9})/zenodo\.(\d+)", re.IGNORECASE
)
_RECORD_SEGMENTS = ("records", "record", "uploads", "deposit", "depositions")


@dataclass(frozen=True)
class RecordRef:
    """A Zenodo record named by DOI, URL or id."""

    record_id: int
    doi: str | None = None
    site_url: str | None = None
    """The site the reference itself names (a record URL), if any."""


def parse_reference(text: str, *, allow_id: bool = False) -> RecordRef | None:
    """A record reference, or None when `text` is not one."""
    text = text.strip()
    if m := _DOI.fullmatch(text):
        return RecordRef(int(m.group(2)), f"{m.group(1)}/zenodo.{m.group(2)}")
    parts = urlsplit(text)
    if parts.scheme in ("http", "https") and parts.netloc:
        segments = parts.path.split("/")
        for i in range(len(segments) - 2, -1, -1):
            if segments[i] in _RECORD_SEGMENTS and segments[i + 1].isdigit():
                prefix = segments[:i]
                while prefix and prefix[-1] in ("api", "deposit"):
                    prefix = prefix[:-1]
                site = f"{parts.scheme}://{parts.netloc}{'/'.join(prefix)}"
                return RecordRef(int(segments[i + 1]), None, site)
    if allow_id and text.isdigit():
        return RecordRef(int(text))
    return None


def site_for(ref: RecordRef, zenodo_url: str | None) -> str:
    explicit = zenodo_url or os.environ.get(URL_ENV)
    if explicit:
        return normalise_site_url(explicit)
    if ref.site_url:
        return normalise_site_url(ref.site_url)
    if ref.doi and ref.doi.startswith(SANDBOX_DOI_PREFIX + "/"):
        return SANDBOX_URL
    return PRODUCTION_URL


@dataclass(frozen=True)
class FetchResult:
    path: Path
    record_id: int
    doi: str | None
    file_name: str
    md5: str
    size: int
    cached: bool
    """Whether the download was already in the cache."""
    report: VerifyReport | None
    warnings: list[str] = field(default_factory=list)
    concept_doi: str | None = None
    """The concept DOI given, when it was resolved to this record (its latest version)."""
    attestations: list[FetchedAttestation] = field(default_factory=list)
    """With `attestations=True`: the replay attestations linked to the record."""


def _safe_name(key: str) -> str:
    name = key.rsplit("/", 1)[-1]
    if not name or name.startswith(".") or "\\" in name or "\0" in name:
        raise RecordContentError(f"the record's file name {key!r} is not usable as a file name")
    return name


def _pick_capsule(files: list[RemoteFile], record_id: int) -> RemoteFile:
    capsules = [f for f in files if f.key.lower().endswith(CAPSULE_SUFFIXES)]
    if not capsules:
        names = ", ".join(f.key for f in files) or "no files"
        raise RecordContentError(
            f"record {record_id} holds no capsule (.tgz): {names}",
            hint="check the DOI: repro publishes the capsule as the record's .tgz file",
        )
    if len(capsules) > 1:
        raise RecordContentError(
            f"record {record_id} holds several archives: {', '.join(f.key for f in capsules)}",
            hint="download the capsule from the record page and pass the file instead",
        )
    return capsules[0]


def _md5_of(path: Path) -> str:
    md5 = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            md5.update(chunk)
    return md5.hexdigest()


@dataclass(frozen=True)
class _Cached:
    record: Record
    remote: RemoteFile
    name: str
    path: Path
    cached: bool
    report: VerifyReport | None
    """The verification, when asked for (done before the file took its place)."""
    concept_doi: str | None = None


def _verified(path: Path, shown: Path) -> VerifyReport:
    """`verify_capsule(path)`, reported as if it were at `shown` (where it goes once it
    verified)."""
    report = verify_capsule(path)
    return dataclasses.replace(report, capsule=dataclasses.replace(report.capsule, path=shown))


@dataclass(frozen=True)
class ResolvedRecord:
    record: Record
    concept_doi: str | None
    """The concept DOI (or id) given, when the reference named a concept rather than a
    version and was resolved to `record`, its latest version."""


def _concept_name(ref: RecordRef, record: Record) -> str:
    return ref.doi or record.conceptdoi or f"concept {ref.record_id}"


def resolve_record(
    api: ZenodoApi, ref: RecordRef, site: str, *, version_only: bool = False
) -> ResolvedRecord:
    """The published record a reference names. A version DOI is that version; a concept DOI
    ("cite all versions") is its latest version: `/api/records/{id}` is 404 for a concept
    id on today's Zenodo (zenodo/zenodo#2499), `/api/records/{id}/versions/latest` accepts
    it, and the DOI's redirect at doi.org leads to the latest version's page (the fallback
    where that endpoint is missing). `version_only` refuses a concept DOI."""
    record: Record | None
    try:
        record = api.record(ref.record_id)
    except ZenodoNotFoundError:
        record = None
    if record is not None and record.id == ref.record_id:
        return ResolvedRecord(record, None)
    if record is None:
        try:
            record = api.latest_version(ref.record_id)
        except ZenodoNotFoundError:
            record = None
    unresolved = ""
    if record is None and ref.doi:
        try:
            recid = api.follow_doi(ref.doi)
        except ZenodoUnavailableError:
            # The fallback only: the site itself said it has no such record (or concept).
            recid, unresolved = None, " (and the DOI resolver could not be reached)"
        if recid is not None and recid != ref.record_id:
            try:
                record = api.record(recid)
            except ZenodoNotFoundError:
                record = None
    if record is None:
        raise ZenodoNotFoundError(
            f"no published record {ref.record_id} on {site}{unresolved}",
            hint="check the DOI; drafts cannot be fetched (publish them first), and "
            "sandbox DOIs (10.5072) need --sandbox records: --zenodo-url "
            "https://sandbox.zenodo.org",
        )
    if record.conceptrecid is not None and record.conceptrecid != str(ref.record_id):
        raise RecordContentError(
            f"{ref.doi or ref.record_id} led to record {record.id}, which is not one of its "
            f"versions (its concept is {record.conceptrecid})",
            hint="check the DOI; pass the version DOI of the record you mean",
        )
    concept = _concept_name(ref, record)
    if version_only:
        raise ConceptDoiRefusedError(
            f"{concept} is a concept DOI (all versions); --version-doi-only takes the DOI "
            "of one version",
            hint=f"the latest version is {record.doi or record.id}: pass that DOI",
        )
    return ResolvedRecord(record, concept)


def _to_cache(
    api: ZenodoApi,
    ref: RecordRef,
    site: str,
    progress: Progress | None,
    verify: bool,
    version_only: bool = False,
) -> _Cached:
    """The record's capsule in the cache: downloaded (into a temporary file next to its
    place, never more than the record's declared size), checked against Zenodo's md5 and
    size and, with `verify`, verified -- then renamed into place. Nothing that failed a
    check stays: a cached copy that no longer verifies is removed too."""
    resolved = resolve_record(api, ref, site, version_only=version_only)
    record = resolved.record
    remote = _pick_capsule(record.files, record.id)
    name = _safe_name(remote.key)
    folder = cache_dir() / "zenodo" / f"{record.id}-{remote.md5}"
    folder.mkdir(parents=True, exist_ok=True)
    mark_used("zenodo", folder.name)
    cached_path = folder / name
    cached = cached_path.is_file() and cached_path.stat().st_size == remote.size
    if cached and _md5_of(cached_path) != remote.md5:
        cached = False
    report = None
    if cached:
        try:
            report = _verified(cached_path, cached_path) if verify else None
        except ReproError:
            cached_path.unlink(missing_ok=True)
            raise
        return _Cached(record, remote, name, cached_path, True, report, resolved.concept_doi)
    fd, tmp_name = tempfile.mkstemp(prefix=".download-", dir=folder)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        arrived = api.download(record.id, remote, tmp, progress)
        if arrived.md5 != remote.md5 or arrived.size != remote.size:
            raise DownloadChecksumError(
                f"downloaded {name} does not match record {record.id}: md5 {arrived.md5} "
                f"(Zenodo: {remote.md5}), {arrived.size} bytes (Zenodo: {remote.size})"
            )
        report = _verified(tmp, cached_path) if verify else None
        tmp.replace(cached_path)
    finally:
        tmp.unlink(missing_ok=True)
    return _Cached(record, remote, name, cached_path, False, report, resolved.concept_doi)


def _copy_into(cached_path: Path, dest_dir: Path, name: str) -> Path:
    """A copy of the checked capsule in `dest_dir`, renamed into place only when complete."""
    dest_dir.mkdir(parents=True, exist_ok=True)
    path = dest_dir / name
    fd, tmp_name = tempfile.mkstemp(prefix=f".{name}.", dir=dest_dir)
    os.close(fd)
    try:
        shutil.copyfile(cached_path, tmp_name)
        Path(tmp_name).replace(path)
    finally:
        Path(tmp_name).unlink(missing_ok=True)
    return path


def fetch_capsule(
    reference: str,
    *,
    zenodo_url: str | None = None,
    dest_dir: Path | None = None,
    progress: Progress | None = None,
    verify: bool = True,
    max_wait: float | None = None,
    api: ZenodoApi | None = None,
    version_only: bool = False,
    attestations: bool = False,
) -> FetchResult:
    """Resolve `reference`, download its capsule (or take it from the cache), check Zenodo's
    md5 and size, verify it (`verify=True`), and only then copy it into `dest_dir`.

    `api` is the Zenodo to read the record from; by default an anonymous `ZenodoClient` for
    the site the reference names (see `site_for`), closed when done."""
    ref = parse_reference(reference)
    if ref is None:
        raise UnknownReferenceError(f"not a Zenodo DOI or record URL: {reference!r}")
    site = site_for(ref, zenodo_url)
    found: list[FetchedAttestation] = []

    def fetch(zenodo: ZenodoApi) -> _Cached:
        got = _to_cache(zenodo, ref, site, progress, verify, version_only)
        if attestations and got.report is not None and got.record.doi:
            c = got.report.capsule
            found.extend(
                fetch_attestations(
                    zenodo, got.record.doi, c.capsule_id, c.archive_sha256, dest_dir or Path()
                )
            )
        return got

    if api is not None:
        got = fetch(api)
    else:
        wait = max_wait if max_wait is not None else max_wait_from_env()
        with ZenodoClient(f"{site}/api", None, max_wait=wait) as client:
            got = fetch(client)
    record, remote, name, report = got.record, got.remote, got.name, got.report
    path = got.path if dest_dir is None else _copy_into(got.path, dest_dir, name)
    if report is not None and dest_dir is not None:
        report = dataclasses.replace(report, capsule=dataclasses.replace(report.capsule, path=path))
    warnings: list[str] = []
    if report is not None:
        stamped = report.capsule.manifest.metadata.doi
        if record.doi and stamped and stamped.lower() != record.doi.lower():
            warnings.append(
                f"the capsule says its DOI is {stamped}, but it was fetched from {record.doi}"
            )
        elif record.doi and not stamped:
            warnings.append("the capsule carries no DOI of its own (not published by repro?)")
    return FetchResult(
        path=path,
        record_id=record.id,
        doi=record.doi or ref.doi,
        file_name=name,
        md5=remote.md5,
        size=remote.size,
        cached=got.cached,
        report=report,
        warnings=warnings,
        concept_doi=got.concept_doi,
        attestations=found,
    )


@dataclass(frozen=True)
class ResolvedCapsule:
    """A capsule argument made a file: the file, and the DOIs it came by."""

    path: Path
    doi: str | None = None
    """The version DOI it was fetched from (None: a local file)."""
    concept_doi: str | None = None
    """The concept DOI given, when it was resolved to `doi` (its latest version)."""


def resolve_capsule(
    arg: str,
    zenodo_url: str | None,
    dest_dir: Path | None,
    progress: Progress | None,
    api: ZenodoApi | None = None,
    *,
    version_only: bool = False,
) -> ResolvedCapsule:
    """`arg` as a Path when it is an existing file; else the capsule of the Zenodo record it
    names (a concept DOI: its latest version), downloaded (or cached) and checked against
    Zenodo's md5. Not verified here: the caller (replay) verifies every capsule it opens
    first thing."""
    path = Path(arg)
    if path.is_file():
        return ResolvedCapsule(path)
    if parse_reference(arg) is None:
        raise CapsuleNotFoundError(
            f"capsule not found: {arg}",
            hint="give a capsule file, a Zenodo DOI (10.5281/zenodo.N) or a record URL",
        )
    got = fetch_capsule(
        arg,
        zenodo_url=zenodo_url,
        dest_dir=dest_dir,
        progress=progress,
        verify=False,
        api=api,
        version_only=version_only,
    )
    return ResolvedCapsule(got.path, got.doi, got.concept_doi)


def resolve_capsule_argument(
    arg: str,
    zenodo_url: str | None,
    dest_dir: Path | None,
    progress: Progress | None,
    api: ZenodoApi | None = None,
) -> Path:
    """`resolve_capsule(...).path`."""
    return resolve_capsule(arg, zenodo_url, dest_dir, progress, api).path
