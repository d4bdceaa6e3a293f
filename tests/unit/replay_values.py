"""Small in-memory capsule values for the replay stage tests (no capsule file, no engine)."""

from __future__ import annotations

import hashlib
from pathlib import Path

from repro.capsule.manifest import (
    Environment,
    ExpectedOutput,
    KernelInfo,
    Manifest,
    NotebookRecord,
    Platform,
    RunRecord,
    SourceState,
)
from repro.config.models import CompareRule, Metadata, NotebookSpec, Run, point_id, render
from repro.execution.runs import CommandResult, PointOutcome
from repro.model_base import SweepValue

PLATFORM = Platform(
    system="Linux",
    release="6",
    distribution="Debian 12",
    machine="x86_64",
    python_implementation="CPython",
    python_version="3.11.7",
    cpu_model=None,
    cpu_count=2,
    memory_bytes=None,
)
ENVIRONMENT = Environment(
    python_version="3.11.7",
    lock_source="none",
    requirements=None,
    lock="data/env/requirements.lock",
    lock_sha256="0" * 64,
    packages=[],
    base_image="python:3.11-slim",
    dockerfile="data/env/Dockerfile",
)


def manifest(
    runs: list[Run] | None = None,
    results: list[RunRecord] | None = None,
    notebooks: list[NotebookSpec] | None = None,
    notebook_results: list[NotebookRecord] | None = None,
) -> Manifest:
    return Manifest(
        repro_version="0",
        created="2024-01-01T00:00:00Z",
        metadata=Metadata(),
        source=SourceState(kind="directory"),
        platform=PLATFORM,
        environment=ENVIRONMENT,
        files=[],
        runs=runs or [],
        results=results or [],
        notebooks=notebooks or [],
        notebook_results=notebook_results or [],
    )


def notebook_record(path: str) -> NotebookRecord:
    return NotebookRecord(
        path=path,
        capsule_path=f"data/results/{path}",
        sha256="0" * 64,
        size=1,
        kernel=KernelInfo(name="python3", language="python"),
        executed=True,
        code_cells=1,
    )


def expected(root: Path, rel: str, content: str, rule: CompareRule | None = None) -> ExpectedOutput:
    """An expected output written into the unpacked capsule at `root`, as capture records it."""
    capsule_path = f"data/results/{rel}"
    (root / capsule_path).parent.mkdir(parents=True, exist_ok=True)
    (root / capsule_path).write_text(content, encoding="utf-8")
    return ExpectedOutput(
        path=rel,
        sha256=hashlib.sha256(content.encode()).hexdigest(),
        capsule_path=capsule_path,
        size=len(content.encode()),
        rule=rule or CompareRule(),
    )


def record(run: Run, point: dict[str, SweepValue], outputs: list[ExpectedOutput]) -> RunRecord:
    return RunRecord(
        run=run.name,
        point=point,
        point_id=point_id(point),
        command=render(run.command, point),
        executed=True,
        exit_code=0,
        duration_s=1.5,
        outputs=outputs,
    )


def outcome(
    run: Run,
    point: dict[str, SweepValue] | None = None,
    exit_code: int | None = 0,
    stderr: str = "",
) -> PointOutcome:
    """What a target reports for a point (which files it produced is judged from disk)."""
    point = point or {}
    return PointOutcome(
        run.name,
        point,
        point_id(point),
        render(run.command, point),
        CommandResult(exit_code, 0.25, "", stderr),
        [],
        [],
    )
