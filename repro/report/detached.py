"""Detached cluster replays as seen from outside: what `repro replay --detach` submitted and
what `repro status` finds (--json outputs; schemas/replay-detached.schema.json and
schemas/status.schema.json)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from repro.capsule.manifest import Package, Platform
from repro.model_base import Model

PointState = Literal["queued", "running", "done", "failed"]
STATES: tuple[PointState, ...] = ("queued", "running", "done", "failed")


def tally(counts: dict[str, int]) -> str:
    """'1 queued, 2 running, 0 done, 0 failed', always in that order."""
    return ", ".join(f"{counts.get(s, 0)} {s}" for s in STATES)


class TaskStatus(Model):
    """One sweep point of a detached replay: one Slurm array task."""

    run: str
    index: int = Field(ge=0)
    """The task's index in its run's sweep (its array index)."""
    point_id: str
    job: str
    """The Slurm job id of the run's array."""
    state: PointState = "queued"
    exit_code: int | None = None
    duration_s: float = 0.0
    note: str = ""
    """What Slurm said of a task that ended without writing its status (TIMEOUT...)."""
    files: list[str] = Field(default_factory=list)
    """Once finished: its outputs and logs, relative to the replay's project folder."""


class PreparedInfo(Model):
    """The environment the tasks run in, as the submitting side prepared it."""

    python_version: str
    installed: list[Package] | None = None
    warnings: list[str] = Field(default_factory=list)
    python_abi: str | None = None
    isolation: Literal["docker", "bubblewrap", "none"] = "none"


class DetachedReplay(Model):
    """`repro replay --detach --json`: the replay submitted, to be followed with
    `repro status ID` and gathered with `repro collect ID`."""

    ok: Literal[True] = True
    id: str
    """The replay id for `repro status` and `repro collect`."""
    host: str | None = None
    """The cluster (--host) it was submitted to; none: this machine's Slurm."""
    capsule: str
    capsule_id: str
    target: Literal["slurm"] = "slurm"
    jobs: list[str]
    """Slurm job ids, one array per run."""
    points: int
    workdir: str
    """Where it runs (on the cluster for --host)."""
    project: str
    record: str
    """The state record kept for it (on the cluster for --host)."""
    tasks: list[TaskStatus]
    prepared: PreparedInfo
    platform: Platform
    """The submitting machine (the cluster's login node for --host)."""
    warnings: list[str] = Field(default_factory=list)


class ReplayStatus(Model):
    """`repro status ID --json`: every point's state, now."""

    id: str
    host: str | None = None
    capsule: str
    state: PointState
    """done: every point ended well; failed: every point ended, one or more badly; running:
    one or more running; queued: none started yet."""
    counts: dict[str, int]
    """Points per state."""
    jobs: list[str]
    tasks: list[TaskStatus]


class ReplayList(Model):
    """`repro status --json` without an id: the detached replays not collected yet."""

    replays: list[DetachedReplay]
