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

from repro.errors import CapsuleNotFoundError, ReproError
from repro.paths import cache_dir
from repro.publish.api import Progress, ZenodoApi
from repro.publish.client import ZenodoClient
from repro.publish.errors import (
    DownloadChecksumError,
    RecordContentError,
    UnknownReferenceError,
    ZenodoNotFoundError,
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


def _verified(path: Path, shown: Path) -> VerifyReport:
    """`verify_capsule(path)`, reported as if it were at `shown` (where it goes once it
    verified)."""
    report = verify_capsule(path)
    return dataclasses.replace(report, capsule=dataclasses.replace(report.capsule, path=shown))


def _to_cache(
    api: ZenodoApi, ref: RecordRef, site: str, progress: Progress | None, verify: bool
) -> _Cached:
    """The record's capsule in the cache: downloaded (into a temporary file next to its
    place, never more than the record's declared size), checked against Zenodo's md5 and
    size and, with `verify`, verified -- then renamed into place. Nothing that failed a
    check stays: a cached copy that no longer verifies is removed too."""
    try:
        record = api.record(ref.record_id)
    except ZenodoNotFoundError:
        raise ZenodoNotFoundError(
            f"no published record {ref.record_id} on {site}",
            hint="check the DOI; drafts cannot be fetched (publish them first), and "
            "sandbox DOIs (10.5072) need --sandbox records: --zenodo-url "
            "https://sandbox.zenodo.org",
        ) from None
    remote = _pick_capsule(record.files, record.id)
    name = _safe_name(remote.key)
    folder = cache_dir() / "zenodo" / f"{record.id}-{remote.md5}"
    folder.mkdir(parents=True, exist_ok=True)
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
        return _Cached(record, remote, name, cached_path, True, report)
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
    return _Cached(record, remote, name, cached_path, False, report)


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
) -> FetchResult:
    """Resolve `reference`, download its capsule (or take it from the cache), check Zenodo's
    md5 and size, verify it (`verify=True`), and only then copy it into `dest_dir`.

    `api` is the Zenodo to read the record from; by default an anonymous `ZenodoClient` for
    the site the reference names (see `site_for`), closed when done."""
    ref = parse_reference(reference)
    if ref is None:
        raise UnknownReferenceError(f"not a Zenodo DOI or record URL: {reference!r}")
    site = site_for(ref, zenodo_url)
    if api is not None:
        got = _to_cache(api, ref, site, progress, verify)
    else:
        wait = max_wait if max_wait is not None else max_wait_from_env()
        with ZenodoClient(f"{site}/api", None, max_wait=wait) as client:
            got = _to_cache(client, ref, site, progress, verify)
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
    )


def resolve_capsule_argument(
    arg: str,
    zenodo_url: str | None,
    dest_dir: Path | None,
    progress: Progress | None,
    api: ZenodoApi | None = None,
) -> Path:
    """`arg` as a Path when it is an existing file; else the capsule of the Zenodo record it
    names, downloaded (or cached) and checked against Zenodo's md5. Not verified here: the
    caller (replay) verifies every capsule it opens first thing."""
    path = Path(arg)
    if path.is_file():
        return path
    if parse_reference(arg) is None:
        raise CapsuleNotFoundError(
            f"capsule not found: {arg}",
            hint="give a capsule file, a Zenodo DOI (10.5281/zenodo.N) or a record URL",
        )
    return fetch_capsule(
        arg, zenodo_url=zenodo_url, dest_dir=dest_dir, progress=progress, verify=False, api=api
    ).path
