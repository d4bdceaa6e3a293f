"""`repro replay`: verify a capsule, rebuild its environment, re-run it, compare every result."""

from __future__ import annotations

import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from repro.capsule.layout import PROJECT_PREFIX, created_timestamp
from repro.compare import compare_output
from repro.errors import CapsuleIntegrityError, UsageError
from repro.execution.runs import PointOutcome
from repro.machine import fingerprint
from repro.models import (
    CompareRule,
    DataSpec,
    ExpectedOutput,
    Manifest,
    NotebookReplay,
    NotebookSpec,
    OutputVerdict,
    PointReplay,
    PointStatus,
    ReplayReport,
    Run,
    RunRecord,
    SweepValue,
    format_value,
    render,
)
from repro.remote_data import fetch_remote
from repro.replay.environment import differences
from repro.replay.targets import Observer, SlurmSettings, TargetName, TargetOptions, make_target
from repro.verify import Policy, open_capsule

PASSING = {"identical", "within_tolerance", "not_verified"}
"""Verdicts that do not stop a replay from counting as reproduced (outputs and notebooks)."""


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

    def target_options(self) -> TargetOptions:
        return TargetOptions(self.jobs, self.base_image, self.offline, self.slurm)


def parse_points(filters: list[str]) -> dict[str, str]:
    wanted: dict[str, str] = {}
    for item in filters:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--point {item!r} is not KEY=VALUE", hint="e.g. --point seed=3")
        wanted[key.strip()] = value.strip()
    return wanted


def select_runs(manifest: Manifest, names: list[str], points: dict[str, str]) -> list[Run]:
    """The runs to replay: --run names runs (or notebooks, by path); --point keeps the runs
    that sweep over the parameter, plus those named."""
    known = [r.name for r in manifest.runs] + [nb.path for nb in manifest.notebooks]
    what = "run or notebook" if manifest.notebooks else "run"
    for name in names:
        if name not in known:
            raise UsageError(
                f"no {what} named {name!r} in this capsule",
                hint=f"{what.replace(' or ', 's and ')}s: {', '.join(known) or '(none)'}",
            )
    runs = [r for r in manifest.runs if not names or r.name in names]
    if points:
        swept = [r for r in runs if set(points) <= set(r.sweep)]
        if not swept:
            raise UsageError(f"no selected run sweeps over {', '.join(sorted(points))}")
        # Runs that do not sweep over the parameter only run when named explicitly.
        runs = [r for r in runs if r in swept or r.name in names]
    return runs


def select_notebooks(
    manifest: Manifest, names: list[str], points: dict[str, str]
) -> list[NotebookSpec]:
    """Notebooks replay unless --run names others only, or --point selects sweep points."""
    recorded = {r.path for r in manifest.notebook_results}
    chosen = [nb for nb in manifest.notebooks if nb.path in recorded]
    if names:
        return [nb for nb in chosen if nb.path in names]
    return [] if points else chosen


def _matches(point: dict[str, SweepValue], wanted: dict[str, str]) -> bool:
    return all(k not in point or format_value(point[k]) == v for k, v in wanted.items())


def _fetch_remote_data(manifest: Manifest, project: Path, offline: bool, say: Observer) -> None:
    for ref in manifest.remote_data:
        say(f"fetching {ref.url}")
        spec = DataSpec(path=ref.path, url=ref.url, sha256=ref.sha256)
        _, cached = fetch_remote(spec, offline=offline)
        target = project / ref.path
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.parent.resolve().is_relative_to(project.resolve()):
            raise CapsuleIntegrityError(f"remote data path leads out of the project: {ref.path}")
        shutil.copyfile(cached, target, follow_symlinks=False)


def _verdicts(
    run: Run, outcome: PointOutcome, record: RunRecord | None, root: Path, project: Path
) -> list[OutputVerdict]:
    expected: dict[str, ExpectedOutput] = {o.path: o for o in record.outputs} if record else {}
    verdicts = []
    for template in run.outputs:
        rel = render(template, outcome.point)
        exp = expected.get(rel)
        actual = project / rel
        inside = actual.resolve().is_relative_to(project.resolve())
        verdict = compare_output(
            rel,
            root / exp.capsule_path if exp else None,
            # Never an output that leads out of the project (a link the run made to a file
            # of this machine): it would be read, and shown, as if the run had written it.
            actual if inside and actual.is_file() else None,
            exp.rule if exp else run.compare.get(template) or CompareRule(),
        )
        if exp is not None and verdict.expected_sha256 != exp.sha256:
            # Runs execute inside the unpacked capsule; what they are compared with must be
            # exactly what was verified before they ran (the comparison hashed it anyway).
            raise CapsuleIntegrityError(f"expected result changed during the replay: {rel}")
        verdicts.append(verdict)
    return verdicts


def replay(opts: ReplayOptions, observe: Observer | None = None) -> ReplayReport:
    """Replay a capsule file; the report says, output by output, whether it reproduced."""
    say = observe or (lambda _m: None)
    started = time.time()
    t0 = time.perf_counter()
    wanted_points = parse_points(opts.points)
    if opts.workdir is not None:
        if opts.workdir.exists() and not opts.workdir.is_dir():
            raise UsageError(f"--workdir is not a folder: {opts.workdir}")
        opts.workdir.mkdir(parents=True, exist_ok=True)
        workdir = Path(tempfile.mkdtemp(prefix="replay-", dir=opts.workdir))
    else:
        workdir = Path(tempfile.mkdtemp(prefix="repro-replay-"))
    keep = opts.keep or opts.workdir is not None
    try:
        say(f"verifying {opts.capsule.name}")
        verified = open_capsule(opts.capsule, workdir / "capsule", policy=opts.policy)
        capsule = verified.capsule
        manifest = capsule.manifest
        root = workdir / "capsule"
        warnings = []
        if verified.signature.state != "trusted":
            warnings.append(
                f"capsule is {verified.signature.describe()}: "
                "its author is not confirmed (see: repro keys trust)"
            )
        runs = select_runs(manifest, opts.runs, wanted_points)
        notebooks = select_notebooks(manifest, opts.runs, wanted_points)
        project = root / PROJECT_PREFIX.rstrip("/")
        project.mkdir(parents=True, exist_ok=True)
        _fetch_remote_data(manifest, project, opts.offline, say)
        notebook_runs = _notebook_runs(manifest, notebooks, project)

        target = make_target(opts.target, opts.target_options(), say)
        warnings += target.ignored()
        try:
            prepared = target.prepare(manifest, root, say)
            warnings += prepared.warnings
            n_points = sum(1 for r in runs for p in r.points() if _matches(p, wanted_points))
            if n_points == 0 and not notebooks:
                raise UsageError(
                    "no run point matches the selection",
                    hint="see the points: repro inspect CAPSULE",
                )
            say(
                f"replaying {len(runs)} run(s), {n_points} point(s)"
                + (f", {len(notebooks)} notebook(s)" if notebooks else "")
                + f" on {target.name}"
            )
            outcomes = target.execute(
                runs + notebook_runs,
                project,
                lambda _run, point: _matches(point, wanted_points),
                lambda o: say(
                    f"ran {o.label} in {o.result.duration_s:.1f} s"
                    + ("" if o.result.exit_code == 0 else f" [exit {o.result.exit_code}]")
                ),
            )
        finally:
            target.close()
        if target.name == "slurm" and opts.workdir is None:
            warnings.append(
                f"working directory {workdir} is local to this machine: on a "
                "multi-node cluster pass --workdir SHARED_DIR"
            )
        records = {(r.run, r.point_id): r for r in manifest.results}
        by_name = {r.name: r for r in runs}
        points = []
        notebook_replays = _notebook_verdicts(
            manifest, notebooks, [o for o in outcomes if o.run not in by_name], root, project
        )
        for o in outcomes:
            if o.run not in by_name:
                continue
            record = records.get((o.run, o.point_id))
            status: PointStatus = (
                "timed_out" if o.result.timed_out else "ok" if o.result.exit_code == 0 else "failed"
            )
            points.append(
                PointReplay(
                    run=o.run,
                    point=o.point,
                    point_id=o.point_id,
                    command=o.command,
                    status=status,
                    exit_code=o.result.exit_code,
                    duration_s=round(o.result.duration_s, 3),
                    captured_duration_s=record.duration_s if record else None,
                    stderr_tail=o.result.stderr_tail if status != "ok" else "",
                    outputs=_verdicts(by_name[o.run], o, record, root, project),
                )
            )
        counts: dict[str, int] = {}
        for p in points:
            for v in p.outputs:
                counts[v.verdict] = counts.get(v.verdict, 0) + 1
        if counts.get("not_verified"):
            warnings.append(f"{counts['not_verified']} output(s) had no recorded expectation")
        unchecked = sum(
            1 for nb in notebook_replays for c in nb.cells if c.verdict == "not_verified"
        )
        if unchecked:
            warnings.append(
                f"{unchecked} notebook cell(s) had no recorded outputs (not run before capture)"
            )
        report = ReplayReport(
            capsule=str(opts.capsule),
            capsule_id=capsule.capsule_id,
            title=manifest.metadata.title,
            signature=verified.signature.describe(),
            target=target.name,
            reproduced=all(v.verdict in PASSING for p in points for v in p.outputs)
            and all(p.status == "ok" for p in points)
            and all(nb.verdict in PASSING for nb in notebook_replays),
            counts=counts,
            points=points,
            notebooks=notebook_replays,
            environment_differences=differences(
                manifest, fingerprint(), prepared.python_version, prepared.installed
            ),
            warnings=warnings,
            workdir=str(workdir) if keep else None,
            started=created_timestamp(int(started)),
            duration_s=round(time.perf_counter() - t0, 3),
        )
        if opts.report_html is not None:
            from repro.report.page import write_html_report

            write_html_report(report, root, project, opts.report_html)
        return report
    finally:
        if not keep:
            shutil.rmtree(workdir, ignore_errors=True)


def _notebook_runs(manifest: Manifest, notebooks: list[NotebookSpec], project: Path) -> list[Run]:
    """Each notebook as an internal run, as at capture; the driver goes into the project
    before the target is prepared (docker hands the project to the container's user)."""
    if not notebooks:
        return []
    from repro.notebooks.notebook import install_driver, notebook_run

    install_driver(project)
    records = {r.path: r for r in manifest.notebook_results}
    return [
        notebook_run(nb, records[nb.path].kernel, records[nb.path].code_cells) for nb in notebooks
    ]


def _notebook_verdicts(
    manifest: Manifest,
    notebooks: list[NotebookSpec],
    outcomes: list[PointOutcome],
    root: Path,
    project: Path,
) -> list[NotebookReplay]:
    if not notebooks:
        return []
    from repro.hashing import sha256_file
    from repro.notebooks.compare import compare_notebook
    from repro.notebooks.notebook import executed_path

    records = {r.path: r for r in manifest.notebook_results}
    by_run = {o.run: o for o in outcomes}
    replays = []
    for nb in notebooks:
        record = records[nb.path]
        expected = root / record.capsule_path
        # The notebook ran inside the unpacked capsule: what it is compared with must be
        # exactly what was verified before it ran.
        if not expected.is_file() or sha256_file(expected)[0] != record.sha256:
            raise CapsuleIntegrityError(
                f"expected notebook changed during the replay: {record.capsule_path}"
            )
        rel = executed_path(nb)
        replays.append(compare_notebook(nb, record, expected, project, rel, by_run[nb.run_name]))
    return replays
