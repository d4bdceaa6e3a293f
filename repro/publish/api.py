"""The one interface the publish and fetch flows need from Zenodo: `ZenodoApi`.

`repro.publish.client.ZenodoClient` is the one real implementation (httpx, against
zenodo.org, the sandbox or any Zenodo-compatible site). Transport, auth and retries are its
business, not the interface's: a caller of these methods never sees HTTP. What the flows
rely on, and any implementation must honour:

- every method returns parsed values (`repro.publish.models`) or raises a
  `repro.publish.errors.ZenodoError` / `ZenodoUnavailableError` subclass;
- a missing deposition or record is `ZenodoNotFoundError` (also a second publish);
- a 4xx with field errors is `ZenodoRequestError` carrying them (the new-version wedge is
  recognised by its "Please remove all files first." message);
- a POST (`create`, `new_version`, `publish`) whose outcome is unknown raises
  `OutcomeUnknownError`, never repeats itself: the flow settles it by reading state;
- `delete_file` of a file that is already gone succeeds.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from repro.publish.models import Deposition, DownloadedFile, Record, RemoteFile, UploadedObject

Progress = Callable[[int, int | None], None]
"""Called with (bytes done, total bytes or None) while a file moves."""
WaitObserver = Callable[[float, str], None]
"""Called with (seconds, why) before the client sleeps."""


class ZenodoApi(Protocol):
    """The calls of Zenodo's legacy deposit API and records API the flows depend on."""

    def check_link(self, url: str) -> None:
        """Raise `UnsafeLinkError` unless authenticated calls to `url` (a link the server
        handed out, like a bucket) would be sent: the flow checks before it keeps one."""
        ...

    # depositions

    def create(self, metadata: dict[str, Any]) -> Deposition:
        """A new draft carrying `metadata` (POST /deposit/depositions)."""
        ...

    def get(self, deposition_id: int) -> Deposition:
        """One of the user's depositions, draft or published."""
        ...

    def get_link(self, url: str) -> Deposition:
        """The deposition a link of another deposition names (`links.latest_draft`)."""
        ...

    def find_draft(self, marker: str, wait: float = 0.0) -> Deposition | None:
        """The user's oldest draft whose metadata notes hold `marker`, or None: how a
        create whose answer was lost is recognised. The drafts list is a search index that
        lags behind writes: keep looking for up to `wait` seconds before answering None."""
        ...

    def version_drafts(self, conceptrecid: str, wait: float = 0.0) -> list[Deposition]:
        """The user's unpublished drafts of the concept `conceptrecid` (a pending new
        version), looking for up to `wait` seconds while none shows. How a new version's
        draft is found: a published deposition's `links.latest_draft` names itself."""
        ...

    def update_metadata(self, deposition_id: int, metadata: dict[str, Any]) -> Deposition:
        """Replace all of the deposition's metadata (PUT)."""
        ...

    def new_version(self, deposition_id: int) -> Deposition:
        """POST actions/newversion on a published deposition: the answer as Zenodo gives it
        (today the new draft; as documented, the old deposition with `links.latest_draft`)."""
        ...

    def publish(self, deposition_id: int) -> Deposition:
        """POST actions/publish: registers the DOI. Irreversible."""
        ...

    # files

    def list_files(self, deposition_id: int) -> list[RemoteFile]:
        """The files the deposition holds now."""
        ...

    def delete_file(self, deposition_id: int, file_id: str) -> None:
        """Remove one file of a draft; a file already gone counts as removed."""
        ...

    def upload(
        self, bucket_url: str, key: str, path: Path, progress: Progress | None
    ) -> UploadedObject:
        """Put `path` into the bucket under `key` (the same key again replaces it); Zenodo's
        own account of what it stored, to be checked against ours."""
        ...

    # records (anonymous)

    def record(self, record_id: int) -> Record:
        """A published record with its files."""
        ...

    def latest_version(self, record_id: int) -> Record:
        """The latest published version of the concept `record_id` belongs to, or is
        (GET /api/records/{id}/versions/latest: it accepts a concept id, where
        /api/records/{conceptrecid} is 404 -- zenodo/zenodo#2499)."""
        ...

    def follow_doi(self, doi: str) -> int | None:
        """The record id the DOI's resolver (doi.org) redirects to, without fetching the
        landing page; None when the redirects lead to no record page."""
        ...

    def search_records(self, query: str) -> list[Record]:
        """Published records matching a search query (GET /api/records?q=...), all
        versions, the first page of up to 100."""
        ...

    def download(
        self, record_id: int, file: RemoteFile, dest: Path, progress: Progress | None
    ) -> DownloadedFile:
        """Stream one file of a record into `dest`; what arrived, measured on the way. Never
        more than the `file.size` the record declares (Zenodo's sizes are exact): a longer
        answer raises `DownloadTooLargeError`."""
        ...
