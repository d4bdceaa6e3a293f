"""The replay attestation's contract: an in-toto Statement v1 with repro's replay predicate.

The predicate type is `https://repro.dev/attestation/replay/v1` (docs/attestations.md says
field by field what it holds and how it may change: additive fields keep v1, anything else
is a v2). These models are parsed once at the edge, so a statement of another type, or one
with a field this version does not know, is refused rather than half-read.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from repro.capsule.manifest import Platform
from repro.compare.verdict import OutputVerdict
from repro.config.models import CompareRule
from repro.model_base import Model, Sha256, SweepValue
from repro.report.replay import CellVerdict, EnvironmentDifference, NotebookVerdict, PointStatus

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://repro.dev/attestation/replay/v1"
PAYLOAD_TYPE = "application/vnd.in-toto+json"
"""DSSE payloadType of an in-toto statement (in-toto attestation framework, envelope.md)."""
MANIFEST_SUBJECT = "repro.json"
"""The subject naming the capsule id (the sha256 of its canonical manifest)."""

Overall = Literal["reproduced", "not_reproduced"]


class Digest(Model):
    sha256: Sha256


class Subject(Model):
    """An in-toto ResourceDescriptor: a name and its digest."""

    name: str
    digest: Digest


class AttestedCapsule(Model):
    """The capsule that was replayed."""

    id: Sha256
    """sha256 of its canonical repro.json: what its signature covers."""
    archive_sha256: Sha256
    """sha256 of the .tgz file that was replayed."""
    file_name: str
    title: str
    doi: str | None = None
    """The DOI stamped into the capsule (a version DOI), when it was published."""
    signature: str
    """How the capsule's own signature checked out on the replaying machine."""


class AttestedOutput(Model):
    """One output's verdict and the rule it was judged by."""

    rule: CompareRule | None = None
    """The comparison rule recorded at capture; None for a file with no expectation."""
    result: OutputVerdict
    """The verdict, the method used and the deviation found."""


class AttestedPoint(Model):
    run: str
    point: dict[str, SweepValue] = {}
    point_id: str
    status: PointStatus
    exit_code: int | None
    outputs: list[AttestedOutput] = []


class AttestedNotebook(Model):
    path: str
    verdict: NotebookVerdict
    status: PointStatus
    cells: list[CellVerdict] = []


class PointResources(Model):
    """What one run point or notebook used, as far as the replay measured it."""

    what: str
    """RUN/POINT_ID, or the notebook's path."""
    duration_s: float
    captured_duration_s: float | None = None


class Resources(Model):
    """The resource figures the replay report had (today: wall-clock durations)."""

    duration_s: float
    """The whole replay, from opening the capsule to the verdicts."""
    runs: list[PointResources] = []


class Replayer(Model):
    """Where and with what the replay ran."""

    target: Literal["local", "docker", "slurm"]
    platform: Platform
    repro_version: str


class ReplayPredicate(Model):
    """`https://repro.dev/attestation/replay/v1`: what one replay of a capsule found."""

    capsule: AttestedCapsule
    verdict: Overall
    verified: int = Field(ge=0)
    """Outputs and notebooks compared with a recorded expectation and found the same."""
    counts: dict[str, int]
    """Number of outputs per verdict."""
    points: list[AttestedPoint]
    notebooks: list[AttestedNotebook] = []
    replayer: Replayer
    environment_differences: list[EnvironmentDifference] = []
    resources: Resources
    started: str
    """UTC, RFC 3339 (seconds)."""
    finished: str
    warnings: list[str] = []


class Statement(Model):
    """An in-toto Statement v1 carrying a replay predicate."""

    type_: Literal["https://in-toto.io/Statement/v1"] = Field(alias="_type")
    subject: list[Subject] = Field(min_length=1)
    predicateType: Literal["https://repro.dev/attestation/replay/v1"]
    predicate: ReplayPredicate

    def digest_of(self, name: str) -> str | None:
        return next((s.digest.sha256 for s in self.subject if s.name == name), None)

    @property
    def capsule_id(self) -> str:
        return self.digest_of(MANIFEST_SUBJECT) or self.predicate.capsule.id

    @property
    def reproduced(self) -> bool:
        return self.predicate.verdict == "reproduced"
