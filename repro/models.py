"""Pydantic models for everything that crosses a boundary: repro.toml and the capsule manifest."""

from __future__ import annotations

import itertools
import json
import keyword
import re
from typing import Annotated, Any, Literal, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    field_validator,
    model_validator,
)

from repro import FORMAT

SHA256_PATTERN = r"^[0-9a-f]{64}$"
Sha256 = Annotated[str, Field(pattern=SHA256_PATTERN, description="Lower-case hex sha256.")]
SweepValue = StrictBool | StrictInt | StrictFloat | StrictStr


class Model(BaseModel):
    """Frozen, strict base: unknown keys are an error, parsed once at the edge."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)


# --- metadata ----------------------------------------------------------------------------


class Author(Model):
    name: str = Field(min_length=1)
    """'Family, Given' (the form Zenodo and DataCite expect)."""
    orcid: str | None = Field(default=None, pattern=r"^\d{4}-\d{4}-\d{4}-\d{3}[\dX]$")
    """ORCID iD without the https://orcid.org/ prefix."""
    affiliation: str | None = None


class Metadata(Model):
    title: str = "Untitled study"
    authors: list[Author] = []
    license: str | None = None
    """SPDX license identifier, e.g. CC-BY-4.0."""
    keywords: list[str] = []
    description: str | None = None
    doi: str | None = None
    """The capsule's own DOI, stamped in when it is published."""
    related_doi: str | None = None
    """DOI of the paper this capsule supplements."""


# --- runs --------------------------------------------------------------------------------


class Normalization(Model):
    """A regex replacement applied to both sides before a text comparison."""

    pattern: str
    replacement: str = ""

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"invalid regular expression {value!r}: {exc}") from exc
        return value


CompareMethod = Literal["exact", "text", "numeric", "image"]


class CompareRule(Model):
    """How replay compares one output with its expected value."""

    method: CompareMethod = "exact"
    """exact bytes; text (line endings normalised); numeric (rtol/atol); image (pixels)."""
    rtol: float | None = Field(default=None, ge=0)
    atol: float | None = Field(default=None, ge=0)
    pixel_tolerance: float | None = Field(default=None, ge=0, le=1)
    """Largest fraction of pixels allowed to differ, for images."""
    normalize: list[Normalization] = []

    @model_validator(mode="before")
    @classmethod
    def _infer_method(cls, data: Any) -> Any:
        if isinstance(data, dict) and "method" not in data:
            data = dict(data)
            if "rtol" in data or "atol" in data:
                data["method"] = "numeric"
            elif "pixel_tolerance" in data:
                data["method"] = "image"
            elif data.get("normalize"):
                data["method"] = "text"
        return data


class Resources(Model):
    """What one run (or one sweep point) needs: used by the docker and slurm targets."""

    cpus: int = Field(default=1, ge=1)
    memory: str | None = Field(default=None, pattern=r"^\d+(\.\d+)?[KMGT]?$")
    """Memory as a number with a K/M/G/T suffix, e.g. 1G."""
    gpus: int = Field(default=0, ge=0)
    walltime: str | None = Field(default=None, pattern=r"^(\d+-)?\d{1,3}:\d{2}:\d{2}$")
    """[D-]HH:MM:SS."""
    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    constraint: str | None = None
    array_limit: int | None = Field(default=None, ge=1)


_RUN_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


class Run(Model):
    """A command that produces results, as declared in repro.toml."""

    name: str = Field(pattern=_RUN_NAME)
    command: str = Field(min_length=1)
    outputs: list[str] = []
    """Paths the command writes, relative to the project; {param} placeholders allowed."""
    compare: dict[str, CompareRule] = {}
    """Per-output comparison rule (keys are entries of outputs); default exact."""
    resources: Resources = Resources()
    sweep: dict[str, list[SweepValue]] = {}
    """Parameter grid: every combination is one point; {param} is substituted."""
    timeout: float = Field(default=3600, gt=0)
    """Seconds before the run is stopped and the capture fails."""
    network: bool = False
    """Whether the run needs the network (replay in containers keeps it off otherwise)."""

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        for key, values in self.sweep.items():
            if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", key):
                raise ValueError(f"sweep parameter {key!r} is not a valid name")
            if not values:
                raise ValueError(f"sweep parameter {key!r} has no values")
        used = set(_PLACEHOLDER.findall(self.command))
        for out in self.outputs:
            used |= set(_PLACEHOLDER.findall(out))
            if out.startswith("/") or ".." in out.split("/"):
                raise ValueError(f"output {out!r} must be a relative path inside the project")
        unknown = {name for name in used if name not in self.sweep}
        # Placeholders must name a sweep parameter; other braces (awk, shell) are left alone
        # in commands, but an output path with an unknown placeholder is certainly a typo.
        for out in self.outputs:
            bad = set(_PLACEHOLDER.findall(out)) & unknown
            if bad:
                raise ValueError(
                    f"output {out!r} uses {sorted(bad)} which is not a sweep parameter"
                )
        for key in self.compare:
            if key not in self.outputs:
                raise ValueError(f"compare rule for {key!r}, which is not one of the run's outputs")
        for point in self.points():
            for out in self.outputs:
                _safe_relative(render(out, point), "output")
        if len(self.points()) > 1:
            for out in self.outputs:
                if not set(_PLACEHOLDER.findall(out)) & set(self.sweep):
                    raise ValueError(
                        f"output {out!r} is the same for every sweep point; "
                        f"put a parameter in it, e.g. {{{next(iter(self.sweep))}}}"
                    )
        return self

    def points(self) -> list[dict[str, SweepValue]]:
        """Every point of the sweep grid, in declaration order ([{}] without a sweep)."""
        keys = list(self.sweep)
        return [
            dict(zip(keys, combo, strict=True)) for combo in itertools.product(*self.sweep.values())
        ]


def format_value(value: SweepValue) -> str:
    """How a sweep value is written into commands, paths and point ids."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def render(template: str, point: dict[str, SweepValue]) -> str:
    """Substitute {param} placeholders that name sweep parameters; leave other braces alone."""

    def sub(match: re.Match[str]) -> str:
        key = match.group(1)
        return format_value(point[key]) if key in point else match.group(0)

    return _PLACEHOLDER.sub(sub, template)


def point_variables_for(point: dict[str, SweepValue]) -> dict[str, str]:
    """What a run sees of its sweep point: REPRO_POINT and REPRO_PARAM_<NAME>."""
    variables = {"REPRO_POINT": point_id(point)}
    for key, value in point.items():
        variables[f"REPRO_PARAM_{key.upper()}"] = format_value(value)
    return variables


def point_id(point: dict[str, SweepValue]) -> str:
    """A stable, path-safe name for a sweep point: 'seed=3,alpha=0.1', or '_' for no sweep."""
    if not point:
        return "_"
    text = ",".join(f"{k}={format_value(v)}" for k, v in point.items())
    return re.sub(r"[^A-Za-z0-9_.,=+-]", "_", text)


# --- configuration (repro.toml) ----------------------------------------------------------


class DataSpec(Model):
    """Data used by the study: a local path (embedded) or a remote URL with its sha256."""

    path: str
    """Local: file or folder in the project. Remote: where the file is placed in the project."""
    url: str | None = Field(default=None, pattern=r"^https?://")
    sha256: Sha256 | None = None

    @model_validator(mode="after")
    def _remote_needs_checksum(self) -> Self:
        if self.url and not self.sha256:
            raise ValueError(f"remote data {self.url} needs its sha256")
        if self.sha256 and not self.url:
            raise ValueError(f"data {self.path}: sha256 is only for remote data (give url too)")
        if self.path.startswith("/") or ".." in self.path.split("/"):
            raise ValueError(f"data path {self.path!r} must be relative and inside the project")
        return self


Resolver = Literal["uv", "pip-tools"]


class EnvironmentSpec(Model):
    requirements: str | None = None
    """Dependency declaration: requirements.txt/.in, environment.yml, Pipfile[.lock],
    pyproject.toml or setup.py (default: found as repo2docker finds it, binder/ first)."""
    packages: list[str] = []
    """Requirements declared here (PEP 508, e.g. "numpy>=1.24"), added to the declaration's."""
    install_project: bool | None = None
    """Build the project itself (setup.py / pyproject.toml [project]) into a wheel and install
    it (default: when repo2docker would, i.e. no binder/ folder and such a file at the root)."""
    conda_only: Literal["error", "skip"] = "error"
    """A conda package of environment.yml with no PyPI equivalent: fail, or leave it out with
    a note in the capsule."""
    python: str | None = Field(default=None, pattern=r"^\d+\.\d+(\.\d+)?$")
    """Python version the study needs (default: environment.yml, Pipfile, runtime.txt, else
    this interpreter)."""
    resolver: Resolver = "uv"
    base_image: str | None = None
    """Container base image (default python:X.Y-slim)."""
    apt: list[str] = []
    """Debian packages the container needs (default: apt.txt)."""
    variables: list[str] = []
    """Environment variables recorded and passed to runs (an allowlist, never wholesale)."""


class CaptureSettings(Model):
    ignore: list[str] = []
    """Extra ignore patterns (gitignore syntax), on top of .reproignore."""
    allow_secrets: list[str] = []
    """Paths (relative to the project) allowed to hold what looks like a secret."""
    max_file_size: int = Field(default=2 << 30, gt=0)
    """Largest file embedded, in bytes (default 2 GiB: bigger data belongs in a data
    repository, declared as remote data with its URL and sha256)."""


_OUTPUT_KIND = r"^(stream|[a-z]+/[A-Za-z0-9.+-]+)$"
NOTEBOOK_RUN_PREFIX = "notebook."
"""Notebooks execute as internal runs named notebook.<path>; user runs may not use it."""


class NotebookSpec(Model):
    """A Jupyter notebook re-executed and compared cell by cell ([[notebooks]])."""

    path: str
    """The .ipynb file, relative to the project."""
    timeout: float = Field(default=600, gt=0)
    """Seconds one cell may run (nbclient's timeout); the whole notebook gets this times its
    number of code cells, plus two minutes to start the kernel."""
    kernel: str | None = None
    """Kernel name; default the notebook's own. Python kernels always run the interpreter of
    the captured environment; another kernel must be provided by a package of the lock."""
    parameters: dict[str, SweepValue] = {}
    """Injected as a cell after the one tagged "parameters" (papermill's convention), or first."""
    compare: dict[str, CompareRule] = {}
    """Per output kind: a MIME type (text/plain, application/json, image/png, ...) or
    "stream". Defaults: numbers in text/plain and streams exact, JSON numerically exact,
    images pixel-exact, other types as text."""
    resources: Resources = Resources()
    network: bool = False

    @field_validator("path")
    @classmethod
    def _ipynb(cls, value: str) -> str:
        _safe_relative(value, "notebook path")
        if not value.endswith(".ipynb"):
            raise ValueError(f"notebook {value!r} must be an .ipynb file")
        return value

    @field_validator("parameters")
    @classmethod
    def _names(cls, value: dict[str, SweepValue]) -> dict[str, SweepValue]:
        for key in value:
            if not key.isidentifier() or keyword.iskeyword(key):
                raise ValueError(f"parameter {key!r} is not a valid Python variable name")
        return value

    @field_validator("compare")
    @classmethod
    def _kinds(cls, value: dict[str, CompareRule]) -> dict[str, CompareRule]:
        for key in value:
            if not re.match(_OUTPUT_KIND, key):
                raise ValueError(
                    f"compare key {key!r} is not a MIME type (e.g. text/plain) or 'stream'"
                )
        return value

    @property
    def run_name(self) -> str:
        return NOTEBOOK_RUN_PREFIX + re.sub(r"[^A-Za-z0-9_.-]", "_", self.path)


class ProjectConfig(Model):
    """repro.toml, or [tool.repro] in pyproject.toml."""

    capsule: Metadata = Metadata()
    environment: EnvironmentSpec = EnvironmentSpec()
    data: list[DataSpec] = []
    runs: list[Run] = []
    notebooks: list[NotebookSpec] = []
    capture: CaptureSettings = CaptureSettings()

    @model_validator(mode="after")
    def _unique_runs(self) -> Self:
        names = [run.name for run in self.runs]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"run names must be unique: {', '.join(dupes)}")
        for name in names:
            if name.startswith(NOTEBOOK_RUN_PREFIX):
                raise ValueError(f"run name {name!r}: names starting 'notebook.' are reserved")
        check_notebook_names(self.notebooks)
        return self


def check_notebook_names(notebooks: list[NotebookSpec]) -> None:
    """Each notebook runs as its own internal run: two may not share its name."""
    paths = [nb.path for nb in notebooks]
    dupes = sorted({p for p in paths if paths.count(p) > 1})
    if dupes:
        raise ValueError(f"notebook declared twice: {', '.join(dupes)}")
    seen: dict[str, str] = {}
    for nb in notebooks:
        other = seen.setdefault(nb.run_name, nb.path)
        if other != nb.path:
            raise ValueError(
                f"notebooks {other!r} and {nb.path!r} would both run as {nb.run_name!r}; rename one"
            )


# --- the manifest (repro.json) -----------------------------------------------------------


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


def _safe_relative(path: str, what: str) -> str:
    parts = path.split("/")
    if not path or path.startswith("/") or "\\" in path or any(p in ("", ".", "..") for p in parts):
        raise ValueError(f"{what} {path!r} must be a plain relative path inside the project")
    return path


class RemoteData(Model):
    """Data fetched by URL at replay, checked against its sha256; not embedded."""

    url: str
    sha256: Sha256
    size: int = Field(ge=0)
    path: str
    """Where it is placed, relative to the project."""

    @field_validator("path")
    @classmethod
    def _safe(cls, value: str) -> str:
        return _safe_relative(value, "remote data path")


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
    base_image: str
    apt_packages: list[str] = []
    dockerfile: str
    """Capsule path of the generated Dockerfile."""
    variables: dict[str, str] = {}
    """Allowlisted environment variables and their values at capture."""
    wheels: str | None = None
    """Capsule folder of the lock's vendored wheels (capture --wheels): offline replays."""
    image: str | None = None
    """Capsule path of the saved environment image (capture --image): replay needs no build."""
    image_tag: str | None = None
    declaration: Declaration | None = None
    """The environment files read (capsules from before it have none)."""
    local_packages: list[LocalPackage] = []
    """Wheels built at capture and installed hash-checked with no index, after the lock."""
    post_build: str | None = None
    """Capsule path of the postBuild script run once after the environment is built."""
    captured_on: Literal["local", "docker"] = "local"
    """Where capture ran the study: on this machine or in the capsule's own image."""


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

    @field_validator("path")
    @classmethod
    def _safe(cls, value: str) -> str:
        return _safe_relative(value, "notebook path")


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
    def _notebook_names(self) -> Self:
        check_notebook_names(self.notebooks)
        return self

    def canonical_json(self) -> bytes:
        """The canonical bytes: sorted keys, no whitespace, UTF-8. The capsule id hashes these."""
        return canonical_json(self.model_dump(mode="json"))

    @property
    def payload_size(self) -> int:
        return sum(f.size for f in self.files)


def canonical_json(data: Any) -> bytes:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


# --- replay results ----------------------------------------------------------------------


Verdict = Literal["identical", "within_tolerance", "different", "missing", "not_verified"]
"""identical bytes (or equal after the rule's normalisation); within the rule's tolerance;
different; expected but not produced; produced but no expectation was recorded."""


class Difference(Model):
    """One place where a replayed output differs from the expected one."""

    where: str
    """JSON path ($.metrics.auc), table cell (row 3, column 'b'), array index, line, pixels."""
    expected: str | None = None
    actual: str | None = None
    abs_deviation: float | None = None
    rel_deviation: float | None = None


class OutputVerdict(Model):
    path: str
    """Relative to the project, as the run wrote it."""
    verdict: Verdict
    method: CompareMethod
    detail: str
    """One line for people: what was compared and the largest deviation or first difference."""
    max_abs_deviation: float | None = None
    max_rel_deviation: float | None = None
    differing_fraction: float | None = None
    """For images: fraction of pixels that differ; for tables/arrays: fraction of values."""
    differences: list[Difference] = []
    """The first differences found (a bounded sample, in order)."""
    expected_sha256: str | None = None
    actual_sha256: str | None = None


PointStatus = Literal["ok", "failed", "timed_out"]


class PointReplay(Model):
    """One replayed run point and the verdict on each of its outputs."""

    run: str
    point: dict[str, SweepValue] = {}
    point_id: str
    command: str
    status: PointStatus
    exit_code: int | None
    duration_s: float
    captured_duration_s: float | None = None
    stderr_tail: str = ""
    outputs: list[OutputVerdict] = []


class CellVerdict(Model):
    """One notebook cell: its outputs compared with the ones recorded at capture."""

    index: int = Field(ge=1)
    """Position in the notebook as stored, counting every cell from 1."""
    cell_id: str | None = None
    verdict: Verdict
    detail: str
    outputs: list[OutputVerdict] = []
    """Per output (path is 'output N: KIND') where both sides had it."""


NotebookVerdict = Literal["identical", "within_tolerance", "different", "failed", "not_verified"]
"""The worst of the cells' verdicts ("missing" counts as different), or failed: the notebook
raised an error, timed out or its kernel died during the replay."""


class NotebookReplay(Model):
    """One replayed notebook and the verdict on each of its code cells."""

    path: str
    verdict: NotebookVerdict
    detail: str
    status: PointStatus
    exit_code: int | None
    duration_s: float
    captured_duration_s: float | None = None
    executed_path: str | None
    """The executed notebook, relative to the replayed project (kept with --keep/--workdir)."""
    expected_path: str
    """The expected notebook inside the capsule."""
    error: str | None = None
    """When the replay raised: the exception and the last lines of its traceback."""
    cells: list[CellVerdict] = []


class EnvironmentDifference(Model):
    what: str
    """python, platform, cpu, package NAME, ..."""
    captured: str | None
    replayed: str | None


class ReplayReport(Model):
    """What `repro replay` found, result by result (the --json output)."""

    capsule: str
    capsule_id: str
    title: str
    signature: str
    """How the capsule's signature checked out, in words."""
    target: Literal["local", "docker", "slurm"]
    reproduced: bool
    """Every compared output and notebook cell identical or within tolerance (exit 0), else
    exit 3."""
    counts: dict[str, int]
    """Number of outputs (of runs) per verdict."""
    points: list[PointReplay]
    notebooks: list[NotebookReplay] = []
    environment_differences: list[EnvironmentDifference] = []
    warnings: list[str] = []
    workdir: str | None = None
    """Where the replay ran, when it was kept."""
    started: str
    duration_s: float


DiffKind = Literal["code", "data", "dependency", "run", "result", "environment", "metadata"]


class DiffEntry(Model):
    kind: DiffKind
    name: str
    change: Literal["added", "removed", "changed"]
    before: str | None = None
    after: str | None = None
    detail: str | None = None


class CapsuleDiff(Model):
    """What `repro diff A B` found (the --json output)."""

    a: str
    b: str
    a_id: str
    b_id: str
    identical: bool
    entries: list[DiffEntry]
