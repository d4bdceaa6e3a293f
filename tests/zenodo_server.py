"""A Zenodo-compatible HTTP server for the tests: stateful, threaded, on 127.0.0.1.

It implements the legacy deposit API as ../shared/ZENODO.md describes zenodo.org today:
depositions with a pre-reserved DOI, buckets with md5 checksums (same key replaces),
metadata PUT that replaces everything (unknown keys -> 400, unknown license -> 400), publish
freezing the record and minting the DOI (second publish -> 404, no files -> 400),
newversion answering with the new draft that inherits the files and loses version and
publication date (or, `newversion_returns_old=True`, the old deposition as the docs say),
the "Please remove all files first." wedge, edit/discard (204 empty), records with
download links, exact content types (415), both error body shapes plus `{"errors": text}`
and HTML from the gateway, rate-limit headers on every response and 429 over the limit,
a session cookie on every response (a client must not send it back), and 403
"Permission denied." for a bad token.

Faults are injected per endpoint for the next N calls: a status without doing anything
(5xx, 429 with Retry-After), a dropped connection before or after doing the work, a status
after doing the work (the 504 that hides a publish that happened), and corrupted bytes on
upload or download.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import re
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal
from urllib.parse import parse_qs, unquote, urlsplit

FaultKind = Literal["status", "drop", "drop_after", "status_after", "corrupt", "oversize"]
OVERSIZE = 3 << 20
"""Extra bytes an "oversize" download fault sends past the file (chunked: no length told)."""

UPLOAD_TYPES = {
    "publication",
    "poster",
    "presentation",
    "dataset",
    "image",
    "video",
    "software",
    "lesson",
    "physicalobject",
    "other",
}
RELATIONS = {
    "isCitedBy",
    "cites",
    "isSupplementTo",
    "isSupplementedBy",
    "isNewVersionOf",
    "isPreviousVersionOf",
    "isPartOf",
    "hasPart",
    "isDerivedFrom",
    "isSourceOf",
    "references",
    "isReferencedBy",
    "isIdenticalTo",
    "isDocumentedBy",
    "documents",
}
# The server's own idea of valid licences (independent of the client's list on purpose).
LICENSES = {
    "cc-by-4.0",
    "cc-by-sa-4.0",
    "cc0-1.0",
    "mit",
    "apache-2.0",
    "bsd-3-clause",
    "gpl-3.0-or-later",
}
METADATA_KEYS = {
    "upload_type",
    "publication_type",
    "image_type",
    "publication_date",
    "title",
    "creators",
    "description",
    "access_right",
    "license",
    "embargo_date",
    "access_conditions",
    "doi",
    "prereserve_doi",
    "keywords",
    "notes",
    "related_identifiers",
    "contributors",
    "references",
    "communities",
    "grants",
    "subjects",
    "version",
    "language",
    "method",
}


@dataclass
class Fault:
    endpoint: str
    kind: FaultKind
    status: int = 500
    times: int = 1
    headers: dict[str, str] = field(default_factory=dict)
    skip: int = 0
    """Calls of the endpoint to let through before misbehaving."""
    body: Any = None
    """The error body to send instead of the usual one (a str is sent as HTML)."""


@dataclass
class StoredFile:
    key: str
    data: bytes
    id: str = field(default_factory=lambda: str(uuid.uuid4()))

    @property
    def md5(self) -> str:
        return hashlib.md5(self.data, usedforsecurity=False).hexdigest()


@dataclass
class Dep:
    id: int
    conceptrecid: int
    owner: str
    metadata: dict[str, Any]
    bucket: str
    files: dict[str, StoredFile] = field(default_factory=dict)
    submitted: bool = False
    state: str = "unsubmitted"
    doi: str = ""
    conceptdoi: str = ""
    editing: bool = False
    created: str = field(default_factory=lambda: datetime.now(UTC).isoformat())
    indexed_at: float = field(default_factory=time.monotonic)
    """When the search index (the deposition lists) shows it: creation plus the index lag."""


@dataclass
class Call:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    endpoint: str
    status: int | None = None
    """None when the connection was dropped."""


class HttpError(Exception):
    def __init__(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        super().__init__(status)
        self.status = status
        self.body = body
        self.headers = headers or {}


def field_error(status: int, *errors: tuple[str, str], legacy: bool = False) -> HttpError:
    if legacy:
        items = [{"field": f, "message": m} for f, m in errors]
    else:
        items = [{"field": f, "messages": [m]} for f, m in errors]
    return HttpError(status, {"status": status, "message": "Validation error.", "errors": items})


ROUTES: list[tuple[str, re.Pattern[str], str]] = [
    ("POST", re.compile(r"^/api/deposit/depositions/?$"), "create"),
    ("GET", re.compile(r"^/api/deposit/depositions/?$"), "list"),
    ("GET", re.compile(r"^/api/deposit/depositions/(\d+)$"), "read"),
    ("PUT", re.compile(r"^/api/deposit/depositions/(\d+)$"), "update"),
    ("GET", re.compile(r"^/api/deposit/depositions/(\d+)/files$"), "files"),
    ("DELETE", re.compile(r"^/api/deposit/depositions/(\d+)/files/([^/]+)$"), "delete_file"),
    (
        "POST",
        re.compile(r"^/api/deposit/depositions/(\d+)/actions/(publish|newversion|edit|discard)$"),
        "action",
    ),
    ("PUT", re.compile(r"^/api/files/([^/]+)/(.+)$"), "upload"),
    ("GET", re.compile(r"^/api/records/?$"), "search"),
    ("GET", re.compile(r"^/api/records/(\d+)$"), "record"),
    ("GET", re.compile(r"^/api/records/(\d+)/versions/latest$"), "versions_latest"),
    # doi.org, as far as a DOI's redirects go (REPRO_DOI_RESOLVER=URL/doi-resolver): to the
    # site's /doi/DOI, and from there to the latest version's page, as zenodo.org does.
    ("GET", re.compile(r"^/doi-resolver/(.+)$"), "doi_resolver"),
    ("GET", re.compile(r"^/doi/(.+)$"), "doi_landing"),
    ("GET", re.compile(r"^/api/records/(\d+)/files/(.+)/content$"), "download"),
]


class ZenodoServer:
    """Start with `with ZenodoServer(token=...) as server:`; `server.url` is the site root."""

    def __init__(
        self,
        *,
        tokens: tuple[str, ...] = (),
        prefix: str = "10.5281",
        bucket_base: str | None = None,
        auth_status: int = 403,
        newversion_returns_old: bool = False,
        legacy_errors: bool = False,
        echo_token: bool = False,
        rate_limit: int = 100,
        rate_window: float = 60.0,
        link_suffix: str = "",
        index_lag: float = 0.0,
    ) -> None:
        """`link_suffix` is appended to every link the server hands out (a server that puts
        `?access_token=...` into its links); `index_lag` is how long a new deposition stays
        out of the lists (Zenodo's lists are a search index that lags behind writes)."""
        self.tokens = set(tokens)
        self.prefix = prefix
        self.bucket_base = bucket_base
        self.auth_status = auth_status
        self.newversion_returns_old = newversion_returns_old
        self.legacy_errors = legacy_errors
        self.echo_token = echo_token
        self.rate_limit = rate_limit
        self.rate_window = rate_window
        self.link_suffix = link_suffix
        self.index_lag = index_lag
        self.slow: dict[str, float] = {}
        """Seconds to sleep before handling a call of the endpoint (outside the lock)."""
        self.lock = threading.RLock()
        self.deps: dict[int, Dep] = {}
        self.buckets: dict[str, int] = {}
        self.records: dict[int, dict[str, Any]] = {}
        self.record_files: dict[int, dict[str, bytes]] = {}
        self.calls: list[Call] = []
        self.faults: list[Fault] = []
        self._next_id = 1000
        self._windows: dict[str, tuple[float, int]] = {}
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # lifecycle

    def __enter__(self) -> ZenodoServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        server = self

        class Handler(_Handler):
            zenodo = server

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    @property
    def url(self) -> str:
        assert self._httpd is not None
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def api(self) -> str:
        return f"{self.url}/api"

    # test controls

    def inject(
        self,
        endpoint: str,
        kind: FaultKind,
        *,
        status: int = 500,
        times: int = 1,
        headers: dict[str, str] | None = None,
        skip: int = 0,
        body: Any = None,
    ) -> None:
        """Misbehave on the next `times` calls of `endpoint` (create, list, read, update,
        files, delete_file, publish, newversion, edit, discard, upload, record, download),
        after letting `skip` calls through; `body` replaces a status fault's error body."""
        with self.lock:
            self.faults.append(Fault(endpoint, kind, status, times, headers or {}, skip, body))

    def _take_fault(self, endpoint: str) -> Fault | None:
        with self.lock:
            for fault in self.faults:
                if fault.endpoint == endpoint and fault.times > 0:
                    if fault.skip > 0:
                        fault.skip -= 1
                        return None
                    fault.times -= 1
                    return fault
        return None

    def count(self, endpoint: str, *, answered: bool = False) -> int:
        return sum(
            1
            for c in self.calls
            if c.endpoint == endpoint and (not answered or c.status is not None)
        )

    def new_id(self) -> int:
        with self.lock:
            self._next_id += 1
            return self._next_id

    def make_dep(self, owner: str, metadata: dict[str, Any], conceptrecid: int | None) -> Dep:
        with self.lock:
            concept = conceptrecid if conceptrecid is not None else self.new_id()
            dep_id = self.new_id()
            bucket = str(uuid.uuid4())
            meta = {k: v for k, v in metadata.items() if k not in ("prereserve_doi", "doi")}
            meta["prereserve_doi"] = {"doi": f"{self.prefix}/zenodo.{dep_id}", "recid": dep_id}
            dep = Dep(dep_id, concept, owner, meta, bucket)
            dep.indexed_at = time.monotonic() + self.index_lag
            self.deps[dep_id] = dep
            self.buckets[bucket] = dep_id
            return dep

    def pending_draft(self, concept: int) -> Dep | None:
        for dep in self.deps.values():
            if dep.conceptrecid == concept and not dep.submitted:
                return dep
        return None

    def new_version_draft(self, dep: Dep) -> Dep:
        """What newversion does (also used by tests to leave a half-finished draft)."""
        with self.lock:
            meta = copy.deepcopy(dep.metadata)
            for key in ("version", "publication_date", "doi", "prereserve_doi"):
                meta.pop(key, None)
            draft = self.make_dep(dep.owner, meta, dep.conceptrecid)
            for stored in dep.files.values():
                draft.files[stored.key] = StoredFile(stored.key, stored.data)
            return draft

    def latest_of(self, record_or_concept: int) -> int | None:
        """The newest published record of the concept the id is, or is a version of."""
        concept = record_or_concept
        if record_or_concept in self.records:
            concept = int(self.records[record_or_concept]["conceptrecid"])
        ids = [r for r, rec in self.records.items() if int(rec["conceptrecid"]) == concept]
        return max(ids) if ids else None

    def search(self, q: str) -> dict[str, Any]:
        """The records search, as far as the related-identifier query goes."""
        m = re.fullmatch(r'metadata\.related_identifiers\.identifier:"([^"]+)"', q)
        hits = []
        for rec in self.records.values():
            related = rec["metadata"].get("related_identifiers", [])
            if m is None or any(
                str(r.get("identifier", "")).lower() == m.group(1).lower() for r in related
            ):
                hits.append(rec)
        return {"hits": {"hits": hits, "total": len(hits)}}

    def published(self) -> list[Dep]:
        return [d for d in self.deps.values() if d.submitted]

    # rendering

    def dep_json(self, dep: Dep) -> dict[str, Any]:
        api = self.api
        base = f"{api}/deposit/depositions/{dep.id}"
        # As zenodo.org does: a published deposition's latest_draft names itself, even while a
        # new-version draft of its concept is pending (so a client cannot find that draft by
        # following it). Only newversion's own answer, in its documented form, links the draft.
        latest_draft = dep
        links = {
            "self": base,
            "html": f"{self.url}/deposit/{dep.id}",
            "bucket": f"{self.bucket_base or self.url}/api/files/{dep.bucket}",
            "files": f"{base}/files",
            "publish": f"{base}/actions/publish",
            "edit": f"{base}/actions/edit",
            "discard": f"{base}/actions/discard",
            "newversion": f"{base}/actions/newversion",
            "latest_draft": f"{api}/deposit/depositions/{latest_draft.id}",
            "latest_draft_html": f"{self.url}/deposit/{latest_draft.id}",
        }
        if dep.submitted:
            links.update(
                {
                    "record": f"{api}/records/{dep.id}",
                    "record_html": f"{self.url}/records/{dep.id}",
                    "doi": f"https://doi.org/{dep.doi}",
                    "latest": f"{api}/records/{dep.id}",
                }
            )
        links = {name: link + self.link_suffix for name, link in links.items()}
        return {
            "id": dep.id,
            "record_id": dep.id,
            "conceptrecid": str(dep.conceptrecid),
            "conceptdoi": dep.conceptdoi,
            "doi": dep.doi,
            "doi_url": f"https://doi.org/{dep.doi}" if dep.doi else "",
            "created": dep.created,
            "modified": datetime.now(UTC).isoformat(),
            "owner": 1,
            "state": dep.state,
            "submitted": dep.submitted,
            "title": dep.metadata.get("title", ""),
            "metadata": copy.deepcopy(dep.metadata),
            "files": [self.file_json(dep, f) for f in dep.files.values()],
            "links": links,
        }

    def file_json(self, dep: Dep, stored: StoredFile) -> dict[str, Any]:
        base = f"{self.api}/deposit/depositions/{dep.id}/files/{stored.id}"
        return {
            "id": stored.id,
            "filename": stored.key,
            "filesize": len(stored.data),
            "checksum": stored.md5,
            "links": {"self": base, "download": f"{self.api}/files/{dep.bucket}/{stored.key}"},
        }

    # the API

    def validate_metadata(self, metadata: Any) -> None:
        if not isinstance(metadata, dict):
            raise HttpError(400, {"status": 400, "message": "metadata must be an object"})
        errors: list[tuple[str, str]] = []
        for key in metadata:
            if key not in METADATA_KEYS:
                errors.append((f"metadata.{key}", "Unknown field name."))
        if "upload_type" in metadata and metadata["upload_type"] not in UPLOAD_TYPES:
            errors.append(("metadata.upload_type", "Invalid upload type."))
        if "license" in metadata:
            lic = metadata["license"]
            lic_id = lic.get("id") if isinstance(lic, dict) else lic
            if str(lic_id).lower() not in LICENSES:
                raise HttpError(
                    400, {"status": 400, "message": "Invalid license provided", "errors": []}
                )
        for i, creator in enumerate(metadata.get("creators", [])):
            if not isinstance(creator, dict) or not creator.get("name"):
                errors.append((f"metadata.creators.{i}.name", "Missing data for required field."))
        if "publication_date" in metadata:
            try:
                date.fromisoformat(metadata["publication_date"])
            except (TypeError, ValueError):
                errors.append(("metadata.publication_date", "Not a valid date."))
        for i, rel in enumerate(metadata.get("related_identifiers", [])):
            if not isinstance(rel, dict) or rel.get("relation") not in RELATIONS:
                errors.append((f"metadata.related_identifiers.{i}.relation", "Invalid relation."))
        if errors:
            raise field_error(400, *errors, legacy=self.legacy_errors)

    def owned(self, dep_id: int, owner: str) -> Dep:
        dep = self.deps.get(dep_id)
        if dep is None:
            raise HttpError(404, {"status": 404, "message": "PID does not exist."})
        if dep.owner != owner:
            raise HttpError(403, {"status": 403, "message": "Permission denied."})
        return dep

    def handle(
        self,
        endpoint: str,
        groups: tuple[str, ...],
        owner: str | None,
        query: dict[str, Any],
        body: Any,
        raw: bytes,
        corrupt: bool,
    ) -> tuple[int, Any, dict[str, str]]:
        with self.lock:
            if endpoint == "versions_latest":
                # InvenioRDM accepts a concept id or any version's id here and redirects to
                # the latest published version's API record.
                latest = self.latest_of(int(groups[0]))
                if latest is None:
                    raise HttpError(404, {"status": 404, "message": "PID does not exist."})
                return 302, None, {"Location": f"{self.api}/records/{latest}"}
            if endpoint == "search":
                return 200, self.search((query.get("q") or [""])[0]), {}
            if endpoint == "doi_resolver":
                return 302, None, {"Location": f"{self.url}/doi/{groups[0]}"}
            if endpoint == "doi_landing":
                m = re.fullmatch(r"\d+\.\d+/zenodo\.(\d+)", unquote(groups[0]))
                latest = self.latest_of(int(m.group(1))) if m else None
                if latest is None:
                    raise HttpError(404, {"status": 404, "message": "DOI not found."})
                if int(m.group(1)) in self.records:  # a version DOI lands on its own page
                    latest = int(m.group(1))
                return 302, None, {"Location": f"{self.url}/records/{latest}"}
            if endpoint == "record":
                record = self.records.get(int(groups[0]))
                if record is None:
                    raise HttpError(404, {"status": 404, "message": "PID does not exist."})
                return 200, record, {}
            if endpoint == "download":
                files = self.record_files.get(int(groups[0]), {})
                data = files.get(unquote(groups[1]))
                if data is None:
                    raise HttpError(404, {"status": 404, "message": "File not found."})
                if corrupt:
                    data = bytes([data[0] ^ 0xFF]) + data[1:]
                return 200, data, {"Content-Type": "application/octet-stream"}
            assert owner is not None
            if endpoint == "create":
                if not isinstance(body, dict) or set(body) - {"metadata"}:
                    raise HttpError(400, {"errors": "Unknown top-level field in the request."})
                metadata = body.get("metadata", {})
                self.validate_metadata(metadata)
                dep = self.make_dep(owner, metadata, None)
                return 201, self.dep_json(dep), {}
            if endpoint == "list":
                now = time.monotonic()
                deps = [d for d in self.deps.values() if d.owner == owner and d.indexed_at <= now]
                concept = re.fullmatch(r"conceptrecid:(\d+)", (query.get("q") or [""])[0])
                if concept is not None:
                    deps = [d for d in deps if d.conceptrecid == int(concept.group(1))]
                if query.get("status") == ["draft"]:
                    deps = [d for d in deps if not d.submitted]
                elif query.get("status") == ["published"]:
                    deps = [d for d in deps if d.submitted]
                return 200, [self.dep_json(d) for d in sorted(deps, key=lambda d: -d.id)], {}
            if endpoint == "upload":
                dep_id = self.buckets.get(groups[0])
                if dep_id is None:
                    raise HttpError(404, {"status": 404, "message": "Bucket does not exist."})
                dep = self.owned(dep_id, owner)
                if dep.submitted and not dep.editing:
                    raise HttpError(403, {"status": 403, "message": "Bucket is locked."})
                key = unquote(groups[1])
                data = bytes([raw[0] ^ 0xFF]) + raw[1:] if corrupt and raw else raw
                dep.files[key] = StoredFile(key, data)
                stored = dep.files[key]
                return (
                    201,
                    {
                        "key": key,
                        "size": len(data),
                        "checksum": f"md5:{stored.md5}",
                        "mimetype": "application/octet-stream",
                        "version_id": str(uuid.uuid4()),
                        "is_head": True,
                        "delete_marker": False,
                        "created": datetime.now(UTC).isoformat(),
                        "links": {"self": f"{self.api}/files/{dep.bucket}/{key}"},
                    },
                    {},
                )
            dep = self.owned(int(groups[0]), owner)
            if endpoint == "read":
                return 200, self.dep_json(dep), {}
            if endpoint == "update":
                if dep.submitted and not dep.editing:
                    raise HttpError(403, {"status": 403, "message": "Deposition is published."})
                if not isinstance(body, dict) or set(body) != {"metadata"}:
                    raise HttpError(400, {"errors": "Unknown top-level field in the request."})
                self.validate_metadata(body["metadata"])
                reserved = dep.metadata.get("prereserve_doi")
                dep.metadata = copy.deepcopy(body["metadata"])
                dep.metadata["prereserve_doi"] = reserved
                return 200, self.dep_json(dep), {}
            if endpoint == "files":
                return 200, [self.file_json(dep, f) for f in dep.files.values()], {}
            if endpoint == "delete_file":
                if dep.submitted and not dep.editing:
                    raise HttpError(403, {"status": 403, "message": "Files are locked."})
                for key, stored in list(dep.files.items()):
                    if stored.id == groups[1]:
                        del dep.files[key]
                        return 204, None, {}
                raise HttpError(404, {"status": 404, "message": "File does not exist."})
            action = groups[1]
            if action == "publish":
                return self.publish(dep)
            if action == "newversion":
                if not dep.submitted:
                    raise HttpError(400, {"status": 400, "message": "Deposition is a draft."})
                pending = self.pending_draft(dep.conceptrecid)
                if pending is not None and pending.files:
                    raise field_error(
                        400,
                        ("files.enabled", "Please remove all files first."),
                        legacy=self.legacy_errors,
                    )
                draft = pending or self.new_version_draft(dep)
                if not self.newversion_returns_old:
                    return 201, self.dep_json(draft), {}
                shown = self.dep_json(dep)  # the documented answer: the old one, linking the draft
                shown["links"]["latest_draft"] = f"{self.api}/deposit/depositions/{draft.id}"
                return 201, shown, {}
            if action == "edit":
                dep.editing = True
                return 201, self.dep_json(dep), {}
            # discard
            if not dep.submitted:
                del self.deps[dep.id]
                del self.buckets[dep.bucket]
            dep.editing = False
            return 204, None, {}

    def publish(self, dep: Dep) -> tuple[int, Any, dict[str, str]]:
        if dep.submitted and not dep.editing:
            raise HttpError(404, {"status": 404, "message": "Deposition is already published."})
        if not dep.files:
            raise field_error(
                400, ("files", "Minimum one file must be provided."), legacy=self.legacy_errors
            )
        missing = [
            (f"metadata.{k}", "Missing data for required field.")
            for k in ("upload_type", "title", "creators", "description")
            if not dep.metadata.get(k)
        ]
        if dep.metadata.get("access_right", "open") == "open" and not dep.metadata.get("license"):
            missing.append(("metadata.license", "Missing data for required field."))
        if missing:
            raise field_error(400, *missing, legacy=self.legacy_errors)
        dep.metadata.setdefault("publication_date", date.today().isoformat())
        dep.submitted, dep.state, dep.editing = True, "done", False
        dep.doi = f"{self.prefix}/zenodo.{dep.id}"
        dep.conceptdoi = f"{self.prefix}/zenodo.{dep.conceptrecid}"
        meta = copy.deepcopy(dep.metadata)
        meta.pop("prereserve_doi", None)
        meta["doi"] = dep.doi
        self.record_files[dep.id] = {k: f.data for k, f in dep.files.items()}
        self.records[dep.id] = {
            "id": dep.id,
            "recid": str(dep.id),
            "doi": dep.doi,
            "doi_url": f"https://doi.org/{dep.doi}",
            "conceptdoi": dep.conceptdoi,
            "conceptrecid": str(dep.conceptrecid),
            "created": dep.created,
            "metadata": meta,
            "files": [
                {
                    "id": f.id,
                    "key": f.key,
                    "size": len(f.data),
                    "checksum": f"md5:{f.md5}",
                    "links": {"self": f"{self.api}/records/{dep.id}/files/{f.key}/content"},
                }
                for f in dep.files.values()
            ],
            "links": {
                "self": f"{self.api}/records/{dep.id}",
                "html": f"{self.url}/records/{dep.id}",
                "doi": f"https://doi.org/{dep.doi}",
            },
        }
        return 202, self.dep_json(dep), {}

    def rate_headers(self, who: str) -> tuple[dict[str, str], bool]:
        with self.lock:
            now = time.time()
            start, count = self._windows.get(who, (now, 0))
            if now - start >= self.rate_window:
                start, count = now, 0
            count += 1
            self._windows[who] = (start, count)
            reset = start + self.rate_window
            over = count > self.rate_limit
            headers = {
                "X-RateLimit-Limit": str(self.rate_limit),
                "X-RateLimit-Remaining": str(max(0, self.rate_limit - count)),
                "X-RateLimit-Reset": str(int(reset)),
                "Retry-After": str(max(1, int(reset - now + 0.999))),
            }
            return headers, over


GATEWAY_HTML = (
    "<html><head><title>{status} Gateway Time-out</title></head><body>"
    "<center><h1>{status} Gateway Time-out</h1></center><hr><center>nginx</center>"
    "</body></html>"
)


def _fault_body(status: int) -> Any:
    if status in (502, 504):
        return GATEWAY_HTML.format(status=status)
    message = {
        429: "Too many requests.",
        403: "Permission denied.",
        404: "The requested URL was not found.",
    }.get(status, "Internal server error." if status >= 500 else "Bad request.")
    return {"status": status, "message": message}


class _Handler(BaseHTTPRequestHandler):
    zenodo: ZenodoServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the base signature)
        return

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_PUT(self) -> None:
        self._serve("PUT")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(self, status: int, payload: Any, headers: dict[str, str]) -> None:
        if status == 204 or payload is None:
            data = b""
        elif isinstance(payload, bytes):
            data = payload
        elif isinstance(payload, str):
            data = payload.encode()
            headers.setdefault("Content-Type", "text/html")
        else:
            data = json.dumps(payload).encode()
            headers.setdefault("Content-Type", "application/json")
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Set-Cookie", "session=zenodo-session-cookie; Path=/; HttpOnly")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if data:
            self.wfile.write(data)

    def _send_chunked(self, status: int, data: bytes, headers: dict[str, str]) -> None:
        """A body without a Content-Length (chunked): the client learns its size by reading."""
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        with contextlib.suppress(OSError):  # the client may stop reading: that is the point
            for i in range(0, len(data), 1 << 16):
                part = data[i : i + (1 << 16)]
                self.wfile.write(f"{len(part):x}\r\n".encode() + part + b"\r\n")
            self.wfile.write(b"0\r\n\r\n")
        self.close_connection = True

    def _drop(self, call: Call) -> None:
        call.status = None
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def _serve(self, method: str) -> None:
        z = self.zenodo
        parts = urlsplit(self.path)
        query = parse_qs(parts.query)
        endpoint, groups = "unknown", ()
        for route_method, pattern, name in ROUTES:
            m = pattern.match(parts.path)
            if m and route_method == method:
                endpoint, groups = name, m.groups()
                if name == "action":
                    endpoint = m.group(2)
                break
        call = Call(
            method, parts.path, query, {k.lower(): v for k, v in self.headers.items()}, endpoint
        )
        with z.lock:
            z.calls.append(call)
        raw = self._body()
        auth = self.headers.get("Authorization", "")
        token = auth.removeprefix("Bearer ").strip() if auth.startswith("Bearer ") else None
        token = token or (query.get("access_token") or [None])[0]
        rate, over = z.rate_headers(token or self.client_address[0])
        fault = z._take_fault(endpoint)
        if endpoint in z.slow:
            time.sleep(z.slow[endpoint])
        try:
            if fault is not None and fault.kind == "drop":
                self._drop(call)
                return
            if fault is not None and fault.kind == "status":
                shown = fault.body if fault.body is not None else _fault_body(fault.status)
                raise HttpError(fault.status, shown, dict(fault.headers))
            if over:
                raise HttpError(429, {"status": 429, "message": "Too many requests."})
            if endpoint == "unknown":
                raise HttpError(404, {"status": 404, "message": "The requested URL was not found."})
            anonymous = endpoint in (
                "record",
                "download",
                "search",
                "versions_latest",
                "doi_resolver",
                "doi_landing",
            )
            if not anonymous and (token is None or token not in z.tokens):
                message = "Permission denied."
                if z.echo_token and token:
                    message = f"Permission denied for token {token}."
                raise HttpError(z.auth_status, {"status": z.auth_status, "message": message})
            body: Any = None
            if method in ("POST", "PUT") and endpoint in ("create", "update"):
                if self.headers.get("Content-Type") != "application/json":
                    raise HttpError(415, {"status": 415, "message": "Unsupported media type."})
                try:
                    body = json.loads(raw or b"{}")
                except ValueError:
                    raise HttpError(400, {"status": 400, "message": "Invalid JSON."}) from None
            if endpoint == "upload" and self.headers.get("Content-Type") not in (
                None,
                "application/octet-stream",
            ):
                raise HttpError(415, {"status": 415, "message": "Unsupported media type."})
            corrupt = fault is not None and fault.kind == "corrupt"
            status, payload, headers = z.handle(
                endpoint, groups, token if not anonymous else None, query, body, raw, corrupt
            )
        except HttpError as exc:
            call.status = exc.status
            self._send(exc.status, exc.body, {**rate, **exc.headers})
            return
        if fault is not None and fault.kind == "drop_after":
            self._drop(call)
            return
        if fault is not None and fault.kind == "oversize" and isinstance(payload, bytes):
            call.status = status
            self._send_chunked(status, payload + b"\0" * OVERSIZE, {**rate, **headers})
            return
        if fault is not None and fault.kind == "status_after":
            call.status = fault.status
            self._send(fault.status, GATEWAY_HTML.format(status=fault.status), {**rate})
            return
        call.status = status
        self._send(status, payload, {**rate, **headers})
