"""An in-memory `ZenodoApi` for the few cases tests/zenodo_server.py cannot stage on demand.

The real-server tests (tests/integration/test_publish.py) cover the protocol; this fake
sits one level up, behind the interface, and exists for what happens *between* two calls
of one run: a draft discarded or edited on the website, a publish by someone else with a
DOI other than the reserved one. Hooks (`before`, `after`) run once, around the named
method. It keeps Zenodo's rules the flow relies on (ZENODO.md): the DOI is pre-reserved at
creation, a PUT replaces all metadata, a second publish is a 404, files lock on publish.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from repro.publish.api import Progress, ZenodoApi
from repro.publish.errors import UnsafeLinkError, ZenodoNotFoundError, ZenodoRequestError
from repro.publish.models import Deposition, DownloadedFile, Record, RemoteFile, UploadedObject

SITE = "https://zenodo.test"
API = f"{SITE}/api"
PREFIX = "10.5281"
T = TypeVar("T")


@dataclass
class FakeDep:
    id: int
    concept: int
    metadata: dict[str, Any]
    files: dict[str, bytes] = field(default_factory=dict)
    submitted: bool = False
    doi: str | None = None

    def as_json(self) -> dict[str, Any]:
        """The deposition as the deposit API shows it, parsed by the real models."""
        return {
            "id": self.id,
            "state": "done" if self.submitted else "unsubmitted",
            "submitted": self.submitted,
            "doi": self.doi,
            "conceptdoi": f"{PREFIX}/zenodo.{self.concept}" if self.submitted else None,
            "conceptrecid": str(self.concept),
            "metadata": self.metadata,
            "links": {
                "bucket": f"{API}/files/bucket-{self.id}",
                "html": f"{SITE}/deposit/{self.id}",
                "latest_draft": f"{API}/deposit/depositions/{self.id}",
                "record_html": f"{SITE}/records/{self.id}" if self.submitted else None,
            },
            "files": [_file_json(key, data) for key, data in self.files.items()],
        }


def _file_json(key: str, data: bytes) -> dict[str, Any]:
    md5 = hashlib.md5(data, usedforsecurity=False).hexdigest()
    return {"id": f"file-{key}", "filename": key, "filesize": len(data), "checksum": md5}


class FakeZenodo:
    """One user's depositions and records, in memory; `calls` lists every method called."""

    def __init__(self) -> None:
        self.deps: dict[int, FakeDep] = {}
        self.calls: list[str] = []
        self._hooks: dict[tuple[str, str], list[Callable[[], None]]] = {}
        self._ids = itertools.count(1001)

    # staging

    def before(self, method: str, hook: Callable[[], None]) -> None:
        self._hooks.setdefault(("before", method), []).append(hook)

    def after(self, method: str, hook: Callable[[], None]) -> None:
        self._hooks.setdefault(("after", method), []).append(hook)

    def _run(self, when: str, method: str) -> None:
        hooks = self._hooks.pop((when, method), [])
        for hook in hooks:
            hook()

    def _call(self, method: str) -> None:
        self.calls.append(method)
        self._run("before", method)

    def _done(self, method: str, value: T) -> T:
        self._run("after", method)
        return value

    def _dep(self, deposition_id: int) -> FakeDep:
        if deposition_id not in self.deps:
            raise ZenodoNotFoundError(f"deposition {deposition_id}: not found", status=404)
        return self.deps[deposition_id]

    # ZenodoApi

    def check_link(self, url: str) -> None:
        if not url.startswith(API + "/"):
            raise UnsafeLinkError(f"{url} is not the configured API origin")

    def create(self, metadata: dict[str, Any]) -> Deposition:
        self._call("create")
        dep_id = next(self._ids)
        reserved = {"doi": f"{PREFIX}/zenodo.{dep_id}", "recid": dep_id}
        dep = FakeDep(dep_id, next(self._ids), {**metadata, "prereserve_doi": reserved})
        self.deps[dep_id] = dep
        return self._done("create", Deposition.model_validate(dep.as_json()))

    def get(self, deposition_id: int) -> Deposition:
        self._call("get")
        dep = self._dep(deposition_id)
        return self._done("get", Deposition.model_validate(dep.as_json()))

    def get_link(self, url: str) -> Deposition:
        return self.get(int(url.rstrip("/").rsplit("/", 1)[-1]))

    def find_draft(self, marker: str, wait: float = 0.0) -> Deposition | None:
        self._call("find_draft")
        mine = [d for d in self.deps.values() if not d.submitted and marker in str(d.metadata)]
        found = Deposition.model_validate(min(mine, key=lambda d: d.id).as_json()) if mine else None
        return self._done("find_draft", found)

    def version_drafts(self, conceptrecid: str, wait: float = 0.0) -> list[Deposition]:
        self._call("version_drafts")
        drafts = [
            Deposition.model_validate(d.as_json())
            for d in self.deps.values()
            if str(d.concept) == conceptrecid and not d.submitted
        ]
        return self._done("version_drafts", drafts)

    def update_metadata(self, deposition_id: int, metadata: dict[str, Any]) -> Deposition:
        self._call("update_metadata")
        dep = self._dep(deposition_id)
        dep.metadata = {**metadata, "prereserve_doi": dep.metadata["prereserve_doi"]}
        return self._done("update_metadata", Deposition.model_validate(dep.as_json()))

    def new_version(self, deposition_id: int) -> Deposition:
        self._call("new_version")
        old = self._dep(deposition_id)
        if not old.submitted:
            raise ZenodoRequestError("only a published deposition has new versions", status=400)
        dep_id = next(self._ids)
        keep = {k: v for k, v in old.metadata.items() if k not in ("version", "publication_date")}
        reserved = {"doi": f"{PREFIX}/zenodo.{dep_id}", "recid": dep_id}
        dep = FakeDep(dep_id, old.concept, {**keep, "prereserve_doi": reserved}, dict(old.files))
        self.deps[dep_id] = dep
        return self._done("new_version", Deposition.model_validate(dep.as_json()))

    def publish(self, deposition_id: int) -> Deposition:
        self._call("publish")
        dep = self._dep(deposition_id)
        if dep.submitted:  # what Zenodo answers to a second publish
            raise ZenodoNotFoundError(f"deposition {deposition_id}: already published", status=404)
        if not dep.files:
            raise ZenodoRequestError("no files", status=400)
        dep.submitted, dep.doi = True, dep.metadata["prereserve_doi"]["doi"]
        return self._done("publish", Deposition.model_validate(dep.as_json()))

    def list_files(self, deposition_id: int) -> list[RemoteFile]:
        self._call("list_files")
        dep = self._dep(deposition_id)
        files = [RemoteFile.model_validate(_file_json(k, v)) for k, v in dep.files.items()]
        return self._done("list_files", files)

    def delete_file(self, deposition_id: int, file_id: str) -> None:
        self._call("delete_file")
        dep = self._dep(deposition_id)
        dep.files.pop(file_id.removeprefix("file-"), None)
        self._done("delete_file", None)

    def upload(
        self, bucket_url: str, key: str, path: Path, progress: Progress | None
    ) -> UploadedObject:
        self._call("upload")
        self.check_link(bucket_url)
        dep = self._dep(int(bucket_url.rsplit("-", 1)[-1]))
        if dep.submitted:
            raise ZenodoRequestError("files are locked once published", status=403)
        dep.files[key] = path.read_bytes()
        md5 = hashlib.md5(dep.files[key], usedforsecurity=False).hexdigest()
        answer = {"key": key, "size": len(dep.files[key]), "checksum": f"md5:{md5}"}
        return self._done("upload", UploadedObject.model_validate(answer))

    def record(self, record_id: int) -> Record:
        self._call("record")
        dep = self.deps.get(record_id)
        if dep is None or not dep.submitted:
            raise ZenodoNotFoundError(f"record {record_id}: not found", status=404)
        files = [{**_file_json(k, v), "key": k} for k, v in dep.files.items()]
        doc = {"id": dep.id, "doi": dep.doi, "metadata": dep.metadata, "files": files}
        return self._done("record", Record.model_validate(doc))

    def download(
        self, record_id: int, file: RemoteFile, dest: Path, progress: Progress | None
    ) -> DownloadedFile:
        self._call("download")
        data = self.deps[record_id].files[file.key]
        dest.write_bytes(data)
        digest = hashlib.md5(data, usedforsecurity=False).hexdigest()
        got = DownloadedFile(digest, hashlib.sha256(data).hexdigest(), len(data))
        return self._done("download", got)


def _conforms(fake: FakeZenodo) -> ZenodoApi:
    return fake  # mypy (when run on tests): the fake has every method of the interface
