"""What repro.toml says: the config models, and the sweep helpers that expand a run's grid.

`ProjectConfig` is the whole file; the manifest embeds several of these models as they were
at capture (Metadata, Run, NotebookSpec, CompareRule, Resources), so a change here can
change the capsule format: tests/unit/test_manifest_format.py says when.
"""

from __future__ import annotations

import itertools
import keyword
import math
import re
from collections import Counter
from typing import Annotated, Any, Literal, Self

from pydantic import AfterValidator, Field, field_validator, model_validator

from repro.model_base import (
    AptPackage,
    CompareMethod,
    ImageReference,
    Model,
    SchedulerName,
    Sha256,
    SlurmConstraint,
    SweepValue,
    check_data_url,
    safe_relative,
)

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
    partition: SchedulerName | None = None
    account: SchedulerName | None = None
    qos: SchedulerName | None = None
    constraint: SlurmConstraint | None = None
    array_limit: int | None = Field(default=None, ge=1)


_RUN_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
_SWEEP_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
MAX_SWEEP_POINTS = 100_000
"""Points one run may have: far beyond any cluster's array limit, and a bound on what
reading a manifest expands."""
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


class Run(Model):
    """A command that produces results, as declared in repro.toml."""

    name: str = Field(pattern=_RUN_NAME)
    command: str = Field(min_length=1)
    outputs: list[str] = []
    """Files the command writes, relative to the project: a path, a folder ending in `/`
    (every file below it) or a glob (`figures/*.pdf`, `tables/**/*.csv`); {param}
    placeholders allowed. Each file matched at capture is one expected result."""
    compare: dict[str, CompareRule] = {}
    """Per-output comparison rule (keys are entries of outputs); default exact."""
    resources: Resources = Resources()
    sweep: dict[str, list[SweepValue]] = {}
    """Parameter grid: every combination is one point; {param} is substituted."""
    timeout: float = Field(default=3600, gt=0, allow_inf_nan=False)
    """Seconds before the run is stopped and the capture fails."""
    network: bool = False
    """Whether the run needs the network (replay in containers keeps it off otherwise)."""

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        for key, values in self.sweep.items():
            if not _SWEEP_KEY.fullmatch(key):
                raise ValueError(f"sweep parameter {key!r} is not a valid name")
            if not values:
                raise ValueError(f"sweep parameter {key!r} has no values")
        if math.prod(len(v) for v in self.sweep.values()) > MAX_SWEEP_POINTS:
            raise ValueError(f"sweep of run {self.name!r} has more than {MAX_SWEEP_POINTS} points")
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
                rendered = render(out, point)
                # A folder ends in "/"; its name must still be a plain path.
                safe_relative(rendered[:-1] if rendered.endswith("/") else rendered, "output")
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
    url: Annotated[str, Field(pattern=r"^https?://"), AfterValidator(check_data_url)] | None = None
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


Resolver = Literal["auto", "uv", "pip-tools"]


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
    resolver: Resolver = "auto"
    """auto: uv, and pip's resolver (pip-compile, under the study's Python) where uv refuses
    an old release's metadata; uv or pip-tools: only that one."""
    base_image: ImageReference | None = None
    """Container base image (default python:X.Y-slim)."""
    apt: list[AptPackage] = []
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
    timeout: float = Field(default=600, gt=0, allow_inf_nan=False)
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
    allow_errors: bool = False
    """Execute every cell even when some raise (teaching notebooks that raise on purpose):
    the errors are recorded in the outputs and compared as errors at replay."""

    @field_validator("path")
    @classmethod
    def _ipynb(cls, value: str) -> str:
        safe_relative(value, "notebook path")
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
            if not re.fullmatch(_OUTPUT_KIND, key):
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
        check_run_names(self.runs)
        check_notebook_names(self.notebooks)
        return self


def check_run_names(runs: list[Run]) -> None:
    """Run names are unique and never take the notebooks' reserved prefix (repro.toml and
    the manifest are held to the same rule)."""
    counts = Counter(run.name for run in runs)
    dupes = sorted(n for n, c in counts.items() if c > 1)
    if dupes:
        raise ValueError(f"run names must be unique: {', '.join(dupes)}")
    for name in counts:
        if name.startswith(NOTEBOOK_RUN_PREFIX):
            raise ValueError(f"run name {name!r}: names starting 'notebook.' are reserved")


def check_notebook_names(notebooks: list[NotebookSpec]) -> None:
    """Each notebook runs as its own internal run: two may not share its name."""
    counts = Counter(nb.path for nb in notebooks)
    dupes = sorted(p for p, c in counts.items() if c > 1)
    if dupes:
        raise ValueError(f"notebook declared twice: {', '.join(dupes)}")
    seen: dict[str, str] = {}
    for nb in notebooks:
        other = seen.setdefault(nb.run_name, nb.path)
        if other != nb.path:
            raise ValueError(
                f"notebooks {other!r} and {nb.path!r} would both run as {nb.run_name!r}; rename one"
            )
