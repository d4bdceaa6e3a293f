"""Replay stage 2, prepare: the target's environment, and warnings about what it ignores."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from repro.replay.open import Opened
from repro.replay.targets import Observer, Prepared, Target


def prepare(
    target: Target, opened: Opened, workdir: Path, shared_workdir: bool, say: Observer
) -> Prepared:
    """Build (or reuse) the environment on `target`; `shared_workdir`: --workdir was given."""
    ignored = target.ignored()
    prepared = target.prepare(opened.manifest, opened.root, say)
    warnings = [*ignored, *prepared.warnings]
    if target.name == "slurm" and not shared_workdir:
        warnings.append(
            f"working directory {workdir} is local to this machine: on a "
            "multi-node cluster pass --workdir SHARED_DIR"
        )
    return replace(prepared, warnings=warnings)
