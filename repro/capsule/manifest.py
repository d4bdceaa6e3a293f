"""The capsule manifest (repro.json): the format's single source of truth, and its invariants.

The manifest embeds config models as they were at capture (repro.config.models); its JSON
Schema is schemas/manifest.schema.json, pinned per `repro.FORMAT` by
tests/unit/test_manifest_format.py. `canonical_json` gives the bytes the capsule id hashes.
"""

from __future__ import annotations

import json
import os
import re
from typing import Any, Literal, Self

from pydantic import Field, field_validator, model_validator

from repro import FORMAT
from repro.config.models import (
    CompareRule,
    Metadata,
    NotebookSpec,
    Resources,
    Run,
    check_notebook_names,
    check_run_names,
)
from repro.model_base import (
    AptPackage,
    DataUrl,
    ImageReference,
    Model,
    Sha256,
    SweepValue,
    check_path_limits,
    safe_relative,
)
from repro.resource_usage import ResourceUsage

_VARIABLE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
Role = Literal["code", "data", "env", "result", "notebook", "job", "metadata"]


class FileEntry(Model):
    """One payload file of the capsule."""

    path: str
    """Path inside the capsule, under data/."""
    sha256: Sha256
    """Of the content; for a symlink, of the link target text."""
    size: int = Field(ge=0)
    mode: int
    """0o644 or 0o755 for files, 0o777 for links."""
    role: Role
    link: str | None = None
    """Symlink target (relative), when the entry is a symbolic link."""

    @field_validator("path")
    @classmethod
    def _path_fits(cls, value: str) -> str:
        return check_path_limits(value, "file path")

    @field_validator("link")
    @classmethod
    def _link_fits(cls, value: str | None) -> str | None:
        return value if value is None else check_path_limits(value, "symlink target")


def checked_entry(values: dict[str, object], fields_set: set[str]) -> FileEntry:
    """A FileEntry of `values` (all six fields) that the caller checked as FileEntry's
    validators check them, built as pydantic's model_construct does, without its loop over
    fields and defaults (it runs for every file of a capsule). `fields_set` is shared by the
    entries (frozen entries never change it; model_copy copies it before adding to it)."""
    entry = _new(FileEntry)
    _set(entry, "__dict__", values)
    _set(entry, "__pydantic_fields_set__", fields_set)
    _set(entry, "__pydantic_extra__", None)
    _set(entry, "__pydantic_private__", None)
    return entry


_new, _set = object.__new__, object.__setattr__


class RemoteData(Model):
    """Data fetched by URL at replay, checked against its sha256; not embedded."""

    url: DataUrl
    sha256: Sha256
    size: int = Field(ge=0)
    path: str
    """Where it is placed, relative to the project."""

    @field_validator("path")
    @classmethod
    def _safe(cls, value: str) -> str:
        return safe_relative(value, "remote data path")


class SourceState(Model):
    kind: Literal["git", "directory"]
    remote: str | None = None
    commit: str | None = None
    branch: str | None = None
    dirty: bool = False
    diff_sha256: Sha256 | None = None
    """sha256 of `git diff HEAD` when the work tree has uncommitted changes."""


class Gpu(Model):
    name: str
    driver: str | None = None
    memory: str | None = None


class Platform(Model):
    system: str
    release: str
    distribution: str | None
    machine: str
    python_implementation: str
    python_version: str
    python_abi: str | None = None
    """The interpreter's ABI tag (cp36m, cp311): which compiled wheels it takes."""
    cpu_model: str | None
    cpu_count: int | None
    memory_bytes: int | None
    gpus: list[Gpu] = []


class Package(Model):
    name: str
    version: str


LockSource = Literal["uv", "pip-tools", "existing-lock", "pipfile-lock", "freeze", "none"]
LocalKind = Literal["project", "path", "git", "url"]


class LocalPackage(Model):
    """A dependency that is not on an index (the project itself, a path, a git repository or
    an archive URL): built into a wheel at capture and embedded, never looked up by name."""

    name: str
    version: str
    kind: LocalKind
    origin: str
    """Project-relative path, git URL (credentials stripped) or archive URL."""
    ref: str | None = None
    """The git ref the declaration asked for."""
    commit: str | None = None
    """The git commit that ref resolved to at capture."""
    wheel: str
    """Capsule path of the built wheel."""
    sha256: Sha256
    declared_in: str
    """The declaration file that named it."""


class Declaration(Model):
    """Which of the project's environment files were read, and how."""

    folder: str | None = None
    """binder or .binder when configuration came from that folder (root files ignored)."""
    used: list[str] = []
    """Project-relative files read for the environment."""
    ignored: list[str] = []
    """Files present but not read, each with the reason."""
    translated: dict[str, str] = {}
    """conda package name -> the PyPI requirement it was locked as (environment.yml)."""
    left_out: list[str] = []
    """conda-only packages left out (conda_only = "skip")."""


class Environment(Model):
    python_version: str
    """major.minor[.micro] the study was captured with."""
    lock_source: LockSource
    """How the lock was made."""
    requirements: str | None
    """The project file the lock was resolved from."""
    lock: str
    """Capsule path of the lock file (requirements with hashes)."""
    lock_sha256: Sha256
    packages: list[Package]
    base_image: ImageReference
    apt_packages: list[AptPackage] = []
    dockerfile: str
    """Capsule path of the generated Dockerfile."""
    variables: dict[str, str] = {}
    """Allowlisted environment variables and their values at capture."""

    @field_validator("variables")
    @classmethod
    def _variables(cls, value: dict[str, str]) -> dict[str, str]:
        for name, text in value.items():
            if not _VARIABLE.fullmatch(name) or "\0" in text:
                raise ValueError(f"environment variable {name!r} cannot be set")
        return value

    wheels: str | None = None
    """Capsule folder of the lock's vendored wheels (capture --wheels): offline replays."""
    image: str | None = None
    """Capsule path of the saved environment image (capture --image): replay needs no build."""
    image_tag: str | None = None
    """The tag the image had where it was captured (for people; replay never trusts it)."""
    image_id: str | None = Field(default=None, pattern=r"^sha256:[0-9a-f]{64}$")
    """The saved image's id (the digest of its config, which covers every layer): replay
    loads the saved image only if it is exactly this image, and runs it by this id."""
    declaration: Declaration | None = None
    """The environment files read (capsules from before it have none)."""
    local_packages: list[LocalPackage] = []
    """Wheels built at capture and installed hash-checked with no index, after the lock."""
    post_build: str | None = None
    """Capsule path of the postBuild script run once after the environment is built."""
    captured_on: Literal["local", "docker", "slurm"] = "local"
    """Where capture ran the study: on this machine, in the capsule's own image, or on a
    Slurm cluster (its tasks in a venv, or in the image with --container)."""


class ExpectedOutput(Model):
    path: str
    """Relative to the project, as the run wrote it."""
    capsule_path: str
    sha256: Sha256
    size: int = Field(ge=0)
    rule: CompareRule = CompareRule()


class RunRecord(Model):
    """What one run (one sweep point) did at capture: the expected results."""

    run: str
    point: dict[str, SweepValue] = {}
    point_id: str
    command: str
    executed: bool
    """False when captured with --no-run (outputs taken from the project as they are)."""
    exit_code: int | None = None
    duration_s: float | None = None
    """None when SOURCE_DATE_EPOCH asks for a reproducible capsule."""
    usage: ResourceUsage | None = None
    """What the run used and what ended it (docs/resources.md); like duration_s, None when
    SOURCE_DATE_EPOCH asks for a reproducible capsule (machine-dependent figures)."""
    stdout_tail: str = ""
    stderr_tail: str = ""
    outputs: list[ExpectedOutput] = []


class KernelInfo(Model):
    """The kernel a notebook ran with at capture."""

    name: str
    """Kernel name asked for (the config's, else the notebook's kernelspec, else python3)."""
    display_name: str | None = None
    language: str
    """From the notebook's kernelspec / language_info."""
    language_version: str | None = None
    """As the kernel reported it when the notebook executed at capture."""


class NotebookRecord(Model):
    """What one notebook did at capture: its outputs, cell by cell, are the expectation."""

    path: str
    """The notebook, relative to the project (its code is under data/project/)."""
    capsule_path: str
    """The expected notebook: executed at capture (or as stored, with --no-run), volatile
    things normalised; an ordinary .ipynb that Jupyter opens."""
    sha256: Sha256
    size: int = Field(ge=0)
    kernel: KernelInfo
    executed: bool
    """False with --no-run: the outputs saved in the notebook are the expectation."""
    code_cells: int = Field(ge=0)
    duration_s: float | None = None
    usage: ResourceUsage | None = None
    """What the notebook's run used; None under SOURCE_DATE_EPOCH, as duration_s."""

    @field_validator("path")
    @classmethod
    def _safe(cls, value: str) -> str:
        return safe_relative(value, "notebook path")


class JobSpec(Model):
    """One run as a cluster job: array task i runs point_ids[i]; scripts rendered in jobs/."""

    run: str
    point_ids: list[str]
    resources: Resources
    scripts: dict[str, str]
    """Scheduler flavour (slurm, pbs, sge) -> capsule path of its batch script."""


class Manifest(Model):
    """repro.json: the single source of truth of a capsule."""

    format: Literal["repro-capsule/1"] = FORMAT
    repro_version: str
    created: str
    """ISO 8601 UTC; from SOURCE_DATE_EPOCH when set."""
    metadata: Metadata
    source: SourceState
    platform: Platform
    environment: Environment
    files: list[FileEntry]
    remote_data: list[RemoteData] = []
    runs: list[Run] = []
    results: list[RunRecord] = []
    notebooks: list[NotebookSpec] = []
    notebook_results: list[NotebookRecord] = []
    jobs: list[JobSpec] = []
    """Cluster job specs, one per run (a sweep is one array job)."""
    excluded: list[str] = []
    """Project paths deliberately left out (secrets, outputs, ignores worth reporting)."""
    notes: list[str] = []

    @model_validator(mode="after")
    def _names(self) -> Self:
        # The rules repro.toml is held to: a manifest that breaks them was not written by
        # repro, and replay (selection by name, status files per run) relies on them.
        check_run_names(self.runs)
        check_notebook_names(self.notebooks)
        return self

    def canonical_json(self) -> bytes:
        """The canonical bytes: sorted keys, no whitespace, UTF-8. The capsule id hashes these.

        The file list (most of a big manifest) is written entry by entry, without a dict per
        file (`_files_json`); the rest as `model_dump` gives it. Same bytes either way
        (tested), and the plain way whenever the fast one cannot be sure."""
        files = _files_json(self.files)
        if files is None:
            return canonical_json(self.model_dump(mode="json"))
        mark = f"repro-files-{os.urandom(16).hex()}"
        rest = self.model_dump(mode="json", exclude={"files"})
        rest["files"] = mark
        head, found, tail = canonical_json(rest).partition(f'"files":"{mark}"'.encode())
        if not found or mark.encode() in tail:
            return canonical_json(self.model_dump(mode="json"))
        return b"".join((head, b'"files":', files, tail))

    @property
    def payload_size(self) -> int:
        return sum(f.size for f in self.files)


_ENTRY_FIELDS = ("link", "mode", "path", "role", "sha256", "size")
_FAST_FILES = tuple(sorted(FileEntry.model_fields)) == _ENTRY_FIELDS


def _files_json(files: list[FileEntry]) -> bytes | None:
    """`canonical_json` of the entries' model_dump, as one list, written directly (a dict
    per entry costs ~370 bytes and ~5 us); None when a field is not of the exact type this
    writes as json.dumps does (then the caller takes the plain way)."""
    if not _FAST_FILES:
        return None
    quote = json.encoder.encode_basestring  # what json.dumps(ensure_ascii=False) uses
    chunks: list[bytes] = []
    pieces: list[str] = []
    for entry in files:
        link, mode, size = entry.link, entry.mode, entry.size
        if type(mode) is not int or type(size) is not int:
            return None
        path, role, sha = entry.path, entry.role, entry.sha256
        if type(path) is not str or type(role) is not str or type(sha) is not str:
            return None
        if link is None:
            target = "null"
        elif type(link) is str:
            target = quote(link)
        else:
            return None
        pieces.append(
            f'{{"link":{target},"mode":{mode},"path":{quote(path)},"role":{quote(role)},'
            f'"sha256":{quote(sha)},"size":{size}}}'
        )
        if len(pieces) == 4096:
            chunks.append(",".join(pieces).encode())
            pieces = []
    if pieces:
        chunks.append(",".join(pieces).encode())
    return b"[" + b",".join(chunks) + b"]"


def canonical_json(data: Any) -> bytes:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
