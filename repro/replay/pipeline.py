"""`repro replay`: verify a capsule, rebuild its environment, re-run it, compare every result.

The stages, each its own module: open (verify, unpack, select), prepare (the target's
environment), execute, judge (verdicts), report.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from repro.errors import UsageError
from repro.execution.stream import Echo
from repro.machine import fingerprint
from repro.paths import scratch_prefix
from repro.replay.execute import execute
from repro.replay.judge import judge
from repro.replay.open import open_for_replay, parse_points
from repro.replay.prepare import prepare
from repro.replay.record import AttestRequest, attest, note_in_history
from repro.replay.report import build_report, write_html
from repro.replay.targets import (
    Observer,
    SlurmSettings,
    TargetName,
    TargetOptions,
    make_target,
)
from repro.report.replay import ReplayReport
from repro.verify import Policy


@dataclass(frozen=True)
class ReplayOptions:
    capsule: Path
    target: TargetName | None = None
    """None: docker when an engine answers, else local."""
    runs: list[str] = field(default_factory=list)
    points: list[str] = field(default_factory=list)
    """k=v filters (--point seed=3)."""
    workdir: Path | None = None
    keep: bool = False
    jobs: int = 1
    policy: Policy = field(default_factory=Policy)
    base_image: str | None = None
    offline: bool = False
    report_html: Path | None = None
    slurm: SlurmSettings = field(default_factory=SlurmSettings)
    pass_env: tuple[str, ...] = ()
    """Variables of this environment the runs get too (--pass-env NAME)."""
    no_sandbox: bool = False
    confirm: Callable[[str], bool] | None = None
    """Asks the user yes/no on a terminal (run unsandboxed?); None: nobody to ask."""
    attest: AttestRequest | None = None
    """Sign the replay's verdicts into an attestation (--attest)."""
    doi: str | None = None
    """The version DOI the capsule was fetched from, when replayed by DOI."""
    concept_doi: str | None = None
    """The concept DOI given, when one was resolved to `doi`."""
    record_history: bool = True
    """Append the replay to the history ledger (repro history)."""
    echo: Echo | None = None
    """Gets each run's output lines as they are written (the CLI's live view); None: quiet."""

    def target_options(self) -> TargetOptions:
        return TargetOptions(
            self.jobs,
            self.base_image,
            self.offline,
            self.slurm,
            pass_env=self.pass_env,
            no_sandbox=self.no_sandbox,
            confirm=self.confirm,
            echo=self.echo,
        )


def replay(opts: ReplayOptions, observe: Observer | None = None) -> ReplayReport:
    """Replay a capsule file; the report says, output by output, whether it reproduced."""
    say = observe or (lambda _m: None)
    started, t0 = time.time(), time.perf_counter()
    wanted_points = parse_points(opts.points)
    keep = opts.keep or opts.workdir is not None
    workdir = _make_workdir(opts.workdir, keep)
    try:
        opened = open_for_replay(
            opts.capsule, workdir, opts.policy, opts.runs, wanted_points, opts.offline, say
        )
        options = replace(opts.target_options(), trusted=opened.trusted)
        target = make_target(opts.target, options, say)
        try:
            prepared = prepare(target, opened, workdir, opts.workdir is not None, say)
            outcomes = execute(target, opened, say)
        finally:
            target.close()
        judged = judge(opened.manifest, opened.selection, outcomes, opened.root, opened.project)
        report = build_report(
            opts.capsule,
            opened,
            target.name,
            prepared,
            judged,
            workdir if keep else None,
            started,
            t0,
        )
        report = report.model_copy(update={"doi": opts.doi, "concept_doi": opts.concept_doi})
        platform = fingerprint()
        attestation = None
        if opts.attest is not None:
            report, attestation = attest(report, opened, opts.capsule, opts.attest, platform)
        if opts.report_html is not None:
            write_html(report, opened, opts.report_html, attestation)
        if opts.record_history:
            report = note_in_history(
                report,
                platform,
                doi=opts.doi,
                concept_doi=opts.concept_doi,
                report_html=opts.report_html,
                stamped_doi=opened.manifest.metadata.doi,
            )
        return report
    finally:
        if not keep:
            shutil.rmtree(workdir, ignore_errors=True)


def _make_workdir(parent: Path | None, keep: bool) -> Path:
    """A fresh working directory: inside --workdir when given, else in the temp folder (named
    for this process, so a later repro sweeps it if this one is killed; unless --keep)."""
    if parent is None:
        return Path(tempfile.mkdtemp(prefix="repro-replay-" if keep else scratch_prefix("replay")))
    # Absolute: targets hand it on (a relative path given to Docker is a volume name).
    parent = parent.absolute()
    if parent.exists() and not parent.is_dir():
        raise UsageError(f"--workdir is not a folder: {parent}")
    parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix="replay-", dir=parent))
