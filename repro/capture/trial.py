"""`repro init --try`: run proposed runs once, in the environment capture would build, from a
scratch copy of the project, and see which files each one wrote.

The trial is capture's own stages up to the runs (plan from the proposed config, snapshot,
environment: the same declarations, lock and cached venv), so what it finds is what the
capture that follows will do. Nothing is written into the project.
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pathspec

from repro.capture import environment as env_stage
from repro.capture.files import BUILTIN_IGNORES
from repro.capture.options import CaptureOptions, Observer
from repro.capture.plan import plan_capture
from repro.capture.results import build_runner, capture_allowlist, stage_inputs, study_variables
from repro.capture.snapshot import take_snapshot
from repro.config.models import ProjectConfig
from repro.execution.runs import execute_runs
from repro.hashing import sha256_file
from repro.paths import scratch_prefix

# Files a run leaves behind that are never results (on top of capture's built-in ignores).
CACHE_PATTERNS = (
    *BUILTIN_IGNORES,
    "*.egg-info/",
    ".cache/",
    ".ipython/",
    ".jupyter/",
    ".local/",
    ".config/matplotlib/",
    "nohup.out",
)
# Timestamps coarser than this (FAT, some network file systems) cannot tell a rewrite from
# the copy made just before the run: such files are compared by content.
COARSE_MTIME_NS = 2_000_000_000


@dataclass(frozen=True)
class TriedRun:
    """One run of the trial: how it ended and what it wrote."""

    name: str
    command: str
    exit_code: int | None
    """None when it was stopped at its timeout."""
    duration_s: float
    stdout_tail: str
    stderr_tail: str
    written: tuple[str, ...]
    """Project-relative files it created or modified (caches left out), sorted."""
    removed: tuple[str, ...]
    """Project files it deleted."""

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


@dataclass(frozen=True)
class Trial:
    runs: tuple[TriedRun, ...]
    """In order; a failed run is the last (the runs after it were not tried)."""
    python: str | None
    """major.minor.micro of the interpreter the runs used."""
    packages: int
    """Packages in the lock the environment was built from."""
    notes: tuple[str, ...]
    seconds: float

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.runs)


Stat = tuple[int, int]  # (size, mtime_ns)


def files_under(root: Path) -> dict[str, Stat]:
    """Every regular file under root (relative posix path -> size and mtime), caches left
    out."""
    spec = pathspec.GitIgnoreSpec.from_lines(CACHE_PATTERNS)
    found: dict[str, Stat] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = Path(dirpath).relative_to(root)
        dirnames[:] = sorted(
            d for d in dirnames if not spec.match_file((rel_dir / d).as_posix() + "/")
        )
        for name in filenames:
            rel = (rel_dir / name).as_posix()
            if spec.match_file(rel):
                continue
            st = (Path(dirpath) / name).lstat()
            if not stat.S_ISREG(st.st_mode):
                continue  # links are the project's; a run's results are files
            found[rel] = (st.st_size, st.st_mtime_ns)
    return found


def written_files(
    root: Path, before: dict[str, Stat], after: dict[str, Stat], digests: dict[str, str]
) -> list[str]:
    """Files created, or modified (size or mtime changed; by content when the timestamps
    cannot tell), between two listings of root. `digests` holds the content hashes taken
    before the run of the files whose timestamps cannot tell."""
    written = []
    for rel, now in after.items():
        old = before.get(rel)
        if (
            old is None
            or old != now
            or (rel in digests and sha256_file(root / rel)[0] != digests[rel])
        ):
            written.append(rel)
    return sorted(written)


def _ambiguous(root: Path, listing: dict[str, Stat], now_ns: int) -> dict[str, str]:
    return {
        rel: sha256_file(root / rel)[0]
        for rel, (_, mtime) in listing.items()
        if now_ns - mtime < COARSE_MTIME_NS
    }


def try_runs(project: Path, config: ProjectConfig, say: Observer) -> Trial:
    """Build the environment `config` declares, as capture would, and run each of its runs
    once from a scratch copy of the project's captured files, in order, stopping at the
    first that fails."""
    t0 = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix=scratch_prefix("init-try")))
    try:
        # The capsule path is never written; it only has to lie outside the project.
        opts = CaptureOptions(project=project, output=work / "trial.capsule.tgz", sign=False)
        plan = plan_capture(opts, config=config)
        snapshot = take_snapshot(plan, say)
        environment = env_stage.prepare(plan, snapshot, work, say)
        runner, python = build_runner(opts, environment, say, capture_allowlist(plan, say))
        stage = work / "stage"
        stage.mkdir()
        say("copying the project into a scratch folder")
        stage_inputs(snapshot.listing.files, [], stage, to_container=False)
        tried: list[TriedRun] = []
        before = files_under(stage)
        for run in plan.config.runs:
            say(f"trying run {run.name}: {run.command}")
            digests = _ambiguous(stage, before, time.time_ns())
            (outcome,) = execute_runs([run], stage, runner, variables=study_variables(plan.epoch))
            after = files_under(stage)
            result = outcome.result
            tried.append(
                TriedRun(
                    name=run.name,
                    command=outcome.command,
                    exit_code=result.exit_code,
                    duration_s=round(result.duration_s, 3),
                    stdout_tail=result.stdout_tail,
                    stderr_tail=result.stderr_tail,
                    written=tuple(written_files(stage, before, after, digests)),
                    removed=tuple(sorted(set(before) - set(after))),
                )
            )
            before = after
            if not tried[-1].ok:
                break
        notes = (*plan.notes, *environment.locked.notes)
        return Trial(
            tuple(tried),
            python.version if python else None,
            len(environment.locked.lock.packages),
            tuple(notes),
            time.perf_counter() - t0,
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
