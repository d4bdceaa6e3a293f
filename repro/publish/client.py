"""`ZenodoClient`: the real `ZenodoApi`, Zenodo's deposit and records endpoints over httpx.

Each method is one call (or one small search) of the legacy deposit API or the records API,
sent through `ZenodoTransport` (auth, origin check, retries, error parsing) and parsed into
`repro.publish.models` at once. Nothing connects before the first request.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
from pydantic import ValidationError

from repro.publish.api import Progress, WaitObserver
from repro.publish.errors import ZenodoError, ZenodoNotFoundError, ZenodoUnavailableError
from repro.publish.models import Deposition, DownloadedFile, Record, RemoteFile, UploadedObject
from repro.publish.target import DEFAULT_MAX_WAIT, Secret
from repro.publish.transport import USER_AGENT, ZenodoTransport

MAX_POLLS = 40
"""Reads of a list while waiting for the search index (a bound even if sleeping is faked)."""
DOI_RESOLVER_ENV = "REPRO_DOI_RESOLVER"
DOI_RESOLVER = "https://doi.org"
MAX_REDIRECTS = 6


def doi_resolver() -> str:
    """REPRO_DOI_RESOLVER (tests, a local mirror), else https://doi.org."""
    return (os.environ.get(DOI_RESOLVER_ENV) or DOI_RESOLVER).rstrip("/")


def follow_doi(doi: str, resolver: str, timeout: float = 30.0) -> int | None:
    """Follow the DOI's redirects (never sending a token: a client of its own) until one
    names a record page (/records/N); the landing page itself is never downloaded."""
    from repro.publish.fetch import parse_reference

    url = f"{resolver}/{quote(doi, safe='/')}"
    with httpx.Client(
        headers={"User-Agent": USER_AGENT}, follow_redirects=False, timeout=timeout
    ) as http:
        for _ in range(MAX_REDIRECTS):
            try:
                response = http.get(url)
            except httpx.HTTPError as exc:
                raise ZenodoUnavailableError(
                    f"cannot resolve {doi} through {resolver} ({type(exc).__name__})"
                ) from None
            location = response.headers.get("Location")
            if not response.is_redirect or not location:
                return None
            url = str(response.url.join(location))
            ref = parse_reference(url)
            if ref is not None and ref.site_url is not None:
                return ref.record_id
    return None


class ZenodoClient:
    """One Zenodo site's API. With no token it is an anonymous reader (records, downloads).
    Implements `repro.publish.api.ZenodoApi`; use it as a context manager to close it."""

    def __init__(
        self,
        api_url: str,
        token: Secret | None = None,
        *,
        max_wait: float = DEFAULT_MAX_WAIT,
        on_wait: WaitObserver | None = None,
        http: ZenodoTransport | None = None,
    ) -> None:
        """`http` replaces the transport built from the other arguments (tests, tuning)."""
        self.http = http or ZenodoTransport(api_url, token, max_wait=max_wait, on_wait=on_wait)
        self._anonymous: ZenodoTransport | None = None

    def _reader(self) -> ZenodoTransport:
        """The transport for public reads that answer with a redirect: anonymous (it follows
        redirects; the authenticated one does not, so the token never leaves the origin)."""
        if self.http.token is None:
            return self.http
        if self._anonymous is None:
            self._anonymous = ZenodoTransport(
                self.http.api_url,
                None,
                max_wait=self.http.max_wait,
                on_wait=self.http.on_wait,
                http_transport=self.http.http_transport,
            )
        return self._anonymous

    def close(self) -> None:
        self.http.close()
        if self._anonymous is not None:
            self._anonymous.close()

    def __enter__(self) -> ZenodoClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def check_link(self, url: str) -> None:
        self.http.check_origin(url)

    # parsing

    def _deposition(self, response: httpx.Response, what: str) -> Deposition:
        try:
            return Deposition.model_validate(self.http.json(response, what))
        except ValidationError as exc:
            raise ZenodoError(
                f"unexpected answer to {what}: {exc.errors()[0]['msg']} "
                f"at {'.'.join(map(str, exc.errors()[0]['loc']))}"
            ) from None

    def _depositions_url(self, suffix: str = "") -> str:
        return self.http.url(f"deposit/depositions{suffix}")

    # the deposit API

    def create(self, metadata: dict[str, Any] | None = None) -> Deposition:
        body = {"metadata": metadata} if metadata else {}
        response = self.http.request("POST", self._depositions_url(), json_body=body)
        return self._deposition(response, "create")

    def get(self, deposition_id: int) -> Deposition:
        response = self.http.request("GET", self._depositions_url(f"/{deposition_id}"))
        return self._deposition(response, "read")

    def get_link(self, url: str) -> Deposition:
        return self._deposition(self.http.request("GET", url), "read")

    def _list(self, query: str, what: str) -> list[Deposition]:
        response = self.http.request("GET", self._depositions_url(f"?{query}"))
        data = self.http.json(response, what)
        if not isinstance(data, list):
            raise ZenodoError(f"unexpected answer to the {what}: not a JSON array")
        out = []
        for item in data:
            try:
                out.append(Deposition.model_validate(item))
            except ValidationError:
                continue  # a draft we cannot read is not one of ours
        return out

    def list_drafts(self) -> list[Deposition]:
        return self._list("status=draft&size=100", "list of drafts")

    def _poll(
        self, read: Callable[[], list[Deposition]], wait: float, why: str
    ) -> list[Deposition]:
        """`read()` until it finds something or `wait` seconds have passed: the lists are a
        search index, and a deposition made a moment ago may not be in it yet (zenodo.org
        has lagged by seconds). Sleeps double from the transport's backoff."""
        deadline = time.monotonic() + max(0.0, wait)
        for attempt in range(MAX_POLLS):
            found = read()
            left = deadline - time.monotonic()
            if found or left <= 0:
                return found
            pause = min(self.http.backoff * 2**attempt, left)
            if self.http.on_wait is not None:
                self.http.on_wait(pause, why)
            self.http.sleep(pause)
        return []

    def find_draft(self, marker: str, wait: float = 0.0) -> Deposition | None:
        mine = self._poll(
            lambda: [d for d in self.list_drafts() if marker in d.notes and not d.published],
            wait,
            "waiting for Zenodo's index to show the draft",
        )
        return min(mine, key=lambda d: d.id) if mine else None

    def version_drafts(self, conceptrecid: str, wait: float = 0.0) -> list[Deposition]:
        query = f"q=conceptrecid:{quote(conceptrecid)}&all_versions=true&status=draft&size=100"
        return self._poll(
            lambda: [
                d
                for d in self._list(query, "list of the concept's drafts")
                if d.conceptrecid == conceptrecid and not d.published
            ],
            wait,
            "waiting for Zenodo's index to show the new version's draft",
        )

    def update_metadata(self, deposition_id: int, metadata: dict[str, Any]) -> Deposition:
        response = self.http.request(
            "PUT", self._depositions_url(f"/{deposition_id}"), json_body={"metadata": metadata}
        )
        return self._deposition(response, "metadata update")

    def list_files(self, deposition_id: int) -> list[RemoteFile]:
        response = self.http.request("GET", self._depositions_url(f"/{deposition_id}/files"))
        data = self.http.json(response, "files")
        try:
            return [RemoteFile.model_validate(item) for item in data]
        except (ValidationError, TypeError):
            raise ZenodoError("unexpected answer to the list of files") from None

    def delete_file(self, deposition_id: int, file_id: str) -> None:
        url = self._depositions_url(f"/{deposition_id}/files/{file_id}")
        try:
            self.http.request("DELETE", url)
        except ZenodoNotFoundError:
            # DELETE can time out and then 404 once it went through (ZENODO.md): gone is gone.
            return

    def upload(
        self, bucket_url: str, key: str, path: Path, progress: Progress | None
    ) -> UploadedObject:
        """PUT the file into the bucket (same key again replaces it); Zenodo's answer."""
        url = f"{bucket_url.rstrip('/')}/{quote(key, safe='')}"
        response = self.http.request("PUT", url, upload=path, progress=progress)
        try:
            return UploadedObject.model_validate(self.http.json(response, "upload"))
        except ValidationError:
            raise ZenodoError("unexpected answer to the upload: no key, size or md5") from None

    def action(self, deposition_id: int, name: str) -> httpx.Response:
        """POST actions/NAME (publish, newversion, edit, discard) as it is answered."""
        return self.http.request("POST", self._depositions_url(f"/{deposition_id}/actions/{name}"))

    def publish(self, deposition_id: int) -> Deposition:
        return self._deposition(self.action(deposition_id, "publish"), "publish")

    def new_version(self, deposition_id: int) -> Deposition:
        return self._deposition(self.action(deposition_id, "newversion"), "newversion")

    # records (anonymous)

    def record(self, record_id: int) -> Record:
        response = self.http.request("GET", self.http.url(f"records/{record_id}"))
        try:
            return Record.model_validate(self.http.json(response, "record"))
        except ValidationError as exc:
            raise ZenodoError(
                f"unexpected answer for record {record_id}: {exc.errors()[0]['msg']}"
            ) from None

    def latest_version(self, record_id: int) -> Record:
        # InvenioRDM answers with a redirect to the latest record; an anonymous transport
        # follows it. Zenodo sites that answer with the record itself work the same.
        reader = self._reader()
        response = reader.request("GET", reader.url(f"records/{record_id}/versions/latest"))
        try:
            return Record.model_validate(reader.json(response, "latest version"))
        except ValidationError as exc:
            raise ZenodoError(
                f"unexpected answer for the latest version of {record_id}: {exc.errors()[0]['msg']}"
            ) from None

    def follow_doi(self, doi: str) -> int | None:
        return follow_doi(doi, doi_resolver())

    def search_records(self, query: str) -> list[Record]:
        url = self.http.url(f"records?q={quote(query, safe='')}&all_versions=true&size=100")
        data = self.http.json(self.http.request("GET", url), "record search")
        hits = data.get("hits", {}).get("hits", []) if isinstance(data, dict) else data
        if not isinstance(hits, list):
            raise ZenodoError("unexpected answer to the record search: no hits")
        found = []
        for item in hits:
            try:
                found.append(Record.model_validate(item))
            except ValidationError:
                continue  # a hit we cannot read is not one we can use
        return found

    def download(
        self, record_id: int, file: RemoteFile, dest: Path, progress: Progress | None
    ) -> DownloadedFile:
        url = file.download_url or self.http.url(
            f"records/{record_id}/files/{quote(file.key, safe='')}/content"
        )
        return self.http.download(url, dest, progress, limit=file.size)
