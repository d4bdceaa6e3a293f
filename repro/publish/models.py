"""What Zenodo answers, as frozen typed values parsed once at the edge of the client.

Zenodo's JSON is open-ended and changes under us (ZENODO.md: the legacy deposit API on top
of InvenioRDM), so these models ignore unknown fields (``extra="ignore"``) instead of
refusing them, and accept every shape Zenodo uses for the same thing. Deposition and record
metadata stay plain JSON: the flow compares them with what it sent, field by field.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from repro.credentials import strip_url_credentials


class Lenient(BaseModel):
    """Answers of a service we do not control: unknown fields are ignored, not an error."""

    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)


def _strip_md5(value: Any) -> Any:
    if isinstance(value, str):
        return value.removeprefix("md5:").lower()
    return value


def _only_links(data: Any) -> Any:
    """Links that are non-empty strings (anything else Zenodo puts there is no link), without
    credential query parameters: a server that appends `?access_token=...` to its links
    must not get the token into the journal or the receipt (issue 16)."""
    if isinstance(data, dict):
        return {k: strip_url_credentials(v) for k, v in data.items() if isinstance(v, str) and v}
    return data


class FileLinks(Lenient):
    """Where a file's bytes can be read."""

    content: str | None = None
    download: str | None = None
    self_: str | None = Field(default=None, alias="self")

    @model_validator(mode="before")
    @classmethod
    def _links(cls, data: Any) -> Any:
        return _only_links(data)


class RemoteFile(Lenient):
    """A file of a deposition or record, in any of the shapes Zenodo uses for it."""

    id: str = ""
    key: str
    size: int
    md5: str
    links: FileLinks = FileLinks()

    @model_validator(mode="before")
    @classmethod
    def _shapes(cls, data: Any) -> Any:
        # Legacy deposit files: filename/filesize/checksum (bare hex); bucket and records
        # API: key/size/checksum "md5:HEX".
        if isinstance(data, dict):
            data = dict(data)
            data.setdefault("key", data.get("filename"))
            data.setdefault("size", data.get("filesize"))
            data.setdefault("md5", _strip_md5(data.get("checksum")))
            if data.get("id") is not None:
                data["id"] = str(data["id"])
        return data

    @field_validator("md5")
    @classmethod
    def _hex(cls, value: str) -> str:
        if not re.fullmatch(r"[0-9a-f]{32}", value):
            raise ValueError("not an md5 checksum")
        return value

    @property
    def download_url(self) -> str | None:
        return self.links.content or self.links.download or self.links.self_


class DepositionLinks(Lenient):
    """The links of a deposition the flow follows."""

    bucket: str | None = None
    """Where the files go (PUT bucket/KEY); checked against the API origin before use."""
    html: str | None = None
    """The draft's page."""
    latest_draft: str | None = None
    """The concept's newest draft (the deposition itself when there is no other)."""
    record_html: str | None = None
    """The published record's page."""

    @model_validator(mode="before")
    @classmethod
    def _links(cls, data: Any) -> Any:
        return _only_links(data)


class Deposition(Lenient):
    """A deposition of the legacy deposit API (draft or published)."""

    id: int
    state: str = "unsubmitted"
    submitted: bool = False
    doi: str | None = None
    conceptdoi: str | None = None
    conceptrecid: str | None = None
    record_id: int | None = None
    metadata: dict[str, Any] = {}
    links: DepositionLinks = DepositionLinks()
    files: list[RemoteFile] = []

    @field_validator("conceptrecid", mode="before")
    @classmethod
    def _text(cls, value: Any) -> Any:
        return None if value in (None, "") else str(value)

    @property
    def published(self) -> bool:
        return self.submitted and self.state == "done"

    @property
    def reserved_doi(self) -> str | None:
        reserved = self.metadata.get("prereserve_doi")
        if isinstance(reserved, dict) and isinstance(reserved.get("doi"), str):
            return str(reserved["doi"])
        return None

    @property
    def recid(self) -> int:
        reserved = self.metadata.get("prereserve_doi")
        if isinstance(reserved, dict) and str(reserved.get("recid", "")).isdigit():
            return int(reserved["recid"])
        return self.record_id or self.id

    @property
    def notes(self) -> str:
        return str(self.metadata.get("notes") or "")


class UploadedObject(Lenient):
    """The bucket's answer to an upload."""

    key: str
    size: int
    md5: str

    @model_validator(mode="before")
    @classmethod
    def _checksum(cls, data: Any) -> Any:
        if isinstance(data, dict):
            data = dict(data)
            data.setdefault("md5", _strip_md5(data.get("checksum")))
        return data


class Record(Lenient):
    """A published record (GET /api/records/{id})."""

    id: int
    doi: str | None = None
    conceptdoi: str | None = None
    conceptrecid: str | None = None
    metadata: dict[str, Any] = {}
    files: list[RemoteFile] = []

    @field_validator("conceptrecid", mode="before")
    @classmethod
    def _text(cls, value: Any) -> Any:
        return None if value in (None, "") else str(value)

    @field_validator("files", mode="before")
    @classmethod
    def _entries(cls, value: Any) -> Any:
        # InvenioRDM's native shape: {"enabled": true, "entries": {key: {...}}}.
        if isinstance(value, dict):
            entries = value.get("entries") or {}
            return list(entries.values()) if isinstance(entries, dict) else entries
        return value


@dataclass(frozen=True)
class DownloadedFile:
    """What arrived from a download, measured while it was written."""

    md5: str
    sha256: str
    size: int
