"""The replay report: what `repro replay` found, point by point and cell by cell (--json).

Built by repro.replay, rendered by repro.report.terminal and repro.report.page; its schema
is schemas/replay-report.schema.json. Per-output verdicts come from repro.compare.verdict.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from repro.compare.verdict import OutputVerdict, Verdict
from repro.model_base import Model, SweepValue
from repro.resource_usage import Efficiency, ResourceUsage
from repro.scheduler.records import SacctRecord

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
    usage: ResourceUsage | None = None
    """What the point used at this replay, and what ended it (docs/resources.md)."""
    captured_usage: ResourceUsage | None = None
    """What it used at capture (None for a capsule made under SOURCE_DATE_EPOCH)."""
    efficiency: Efficiency | None = None
    """Used as a share of the run's declared resources (at this replay)."""
    stderr_tail: str = ""
    outputs: list[OutputVerdict] = []
    accounting: SacctRecord | None = None
    """What Slurm's accounting (sacct) recorded for the point's array task: slurm target on a
    cluster with accounting only (docs/slurm-accounting.md)."""


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
    usage: ResourceUsage | None = None
    captured_usage: ResourceUsage | None = None
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
    isolation: Literal["docker", "bubblewrap", "none", "apptainer", "charliecloud", "podman"] = (
        "none"
    )
    """How the runs were isolated from the replaying machine: in containers (docker), in a
    bubblewrap sandbox (host read-only, private home and /tmp, no network unless declared),
    or not at all (none: only the environment allowlist). Every target gives runs the
    allowlisted environment."""
    reproduced: bool
    """Every point ran, every compared output and notebook identical or within tolerance,
    and at least one was compared (exit 0); else exit 3. A replay that verified nothing
    (only runs without outputs, a --no-run capsule) is not reproduced."""
    verified: int = 0
    """Outputs and notebooks compared with a recorded expectation and found the same."""
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
    doi: str | None = None
    """The Zenodo version DOI the capsule was fetched from (a concept DOI is resolved to its
    latest version first), when replayed by DOI."""
    concept_doi: str | None = None
    """The concept DOI given, when one was resolved to `doi`."""
    attestation: str | None = None
    """The signed attestation written (--attest)."""
