"""Replay stage 2, prepare: the target's environment, and warnings about what it ignores."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from repro.replay.open import Opened
from repro.replay.targets import Observer, Prepared, Target
from repro.replay.targets.gpus import check_gpus


def prepare(
    target: Target, opened: Opened, workdir: Path, shared_workdir: bool, say: Observer
) -> Prepared:
    """Build (or reuse) the environment on `target`; `shared_workdir`: --workdir was given."""
    ignored = target.ignored()
    # Before anything is built or submitted: a run needing GPUs the target lacks.
    check_gpus(target.name, [*opened.selection.runs, *opened.notebook_runs])
    prepared = target.prepare(opened.manifest, opened.root, say)
    # (On slurm, every task checks that it sees the working directory this host wrote:
    # repro.replay.targets.slurm, so no warning about --workdir is needed here.)
    return replace(prepared, warnings=[*ignored, *prepared.warnings])
