"""Capture's results stage: fetch the remote data, stage the captured files, build where the
study runs (this interpreter, a venv from the lock, or the capsule's image), run the runs and
notebooks once, and record their outputs as the expected results."""

from __future__ import annotations

import os
import shutil
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from repro.capsule.layout import RESULTS_PREFIX
from repro.capsule.manifest import ExpectedOutput, NotebookRecord, RemoteData, RunRecord
from repro.capture.environment import EnvironmentBuild
from repro.capture.files import ProjectFile
from repro.capture.options import CaptureOptions, Observer
from repro.capture.plan import Plan
from repro.capture.secret_scan import Hit, SecretScanner, fail_on_hits, is_secret_variable
from repro.capture.snapshot import Notebook, Snapshot
from repro.config.models import CompareRule, NotebookSpec, Run, point_id, render
from repro.env.apt import check_apt_on_host
from repro.env.image import ensure_image
from repro.env.pythons import PythonInfo, python_info
from repro.env.virtualenv import build_venv
from repro.errors import CaptureRunsFailedError, ConfigError, ReproError
from repro.execution.environment import Allowlist
from repro.execution.outputs import expand, is_pattern, matches
from repro.execution.runs import (
    TAIL_LINES,
    CommandRunner,
    LocalRunner,
    PointLines,
    PointOutcome,
    describe_failure,
    execute_runs,
    stage_project,
    tail_block,
)
from repro.execution.stream import Echo
from repro.hashing import sha256_bytes, sha256_file
from repro.model_base import SweepValue
from repro.notebooks import notebook as nbk
from repro.remote_data import fetch_remote, reporting


@dataclass(frozen=True)
class Results:
    """What the study produced at capture, recorded as what replays must reproduce."""

    records: tuple[RunRecord, ...]
    notebook_records: tuple[NotebookRecord, ...]
    expectations: Mapping[str, bytes]
    """Capsule path -> content of each notebook's expectation."""
    python: PythonInfo | None
    """major.minor.micro of the interpreter the study ran with, when it is not this one."""
    remote: tuple[tuple[RemoteData, Path], ...]
    """Each remote data file and its checked local copy."""
    root: Path
    """Where the recorded outputs are: the staged run folder, or the project (--no-run)."""
    timings: Mapping[str, float]


@dataclass(frozen=True)
class _Recorded:
    records: list[RunRecord]
    notebook_records: list[NotebookRecord]
    expectations: dict[str, bytes]
    python: PythonInfo | None

    @classmethod
    def of(
        cls,
        records: list[RunRecord],
        notebooks: list[tuple[NotebookRecord, bytes]],
        python: PythonInfo | None,
    ) -> _Recorded:
        """The records, with each notebook's record and its expectation's content."""
        return cls(
            records,
            [record for record, _ in notebooks],
            {record.capsule_path: content for record, content in notebooks},
            python,
        )


def record_results(
    plan: Plan, snapshot: Snapshot, environment: EnvironmentBuild, work: Path, say: Observer
) -> Results:
    """The stage: runs in a new folder in `work`, then the recorded results, scanned for
    secrets like the project's files. Durations are left out under SOURCE_DATE_EPOCH."""
    stage = work / "stage"
    stage.mkdir()
    remote: list[tuple[RemoteData, Path]] = []
    for spec in plan.remote_data:
        say(f"fetching {spec.url}")
        remote.append(fetch_remote(spec, progress=reporting(say, spec.path)))
    t0 = time.perf_counter()
    recorded = _results(plan, snapshot, remote, environment, stage, say)
    elapsed = time.perf_counter() - t0
    root = stage if plan.options.execute else plan.project
    _scan_results(snapshot.scanner, recorded, root, plan.allowed_secrets)
    records, notebook_records = recorded.records, recorded.notebook_records
    if plan.reproducible:
        # Machine-dependent figures stay out of a reproducible capsule: durations and
        # resource usage (docs/resources.md, "Determinism").
        blank = {"duration_s": None, "usage": None}
        records = [r.model_copy(update=blank) for r in records]
        notebook_records = [r.model_copy(update=blank) for r in notebook_records]
    return Results(
        tuple(records),
        tuple(notebook_records),
        recorded.expectations,
        recorded.python,
        tuple(remote),
        root,
        {"runs": elapsed},
    )


def _scan_results(
    scanner: SecretScanner, recorded: _Recorded, root: Path, allowed: frozenset[str]
) -> None:
    """Outputs and the stdout/stderr tails recorded from runs travel in the capsule too,
    and so do the notebooks' expectations."""
    hits: list[Hit] = []
    for record in recorded.records:
        label = f"{record.run} [{record.point_id}]"
        for stream, text in (("stdout", record.stdout_tail), ("stderr", record.stderr_tail)):
            hits += scanner.scan_bytes(text.encode(), f"{stream} of run {label}")
        for out in record.outputs:
            if out.path not in allowed:
                hits += scanner.scan_file(root / out.path, out.path)
    fail_on_hits(hits)
    fail_on_hits(
        [
            hit
            for record in recorded.notebook_records
            if record.path not in allowed
            for hit in scanner.scan_bytes(
                recorded.expectations[record.capsule_path], f"outputs of notebook {record.path}"
            )
        ]
    )


def _results(
    plan: Plan,
    snapshot: Snapshot,
    remote: list[tuple[RemoteData, Path]],
    environment: EnvironmentBuild,
    stage: Path,
    say: Observer,
) -> _Recorded:
    """The runs' expected results, the notebooks' records and their expectation files.

    Every run and notebook is executed even when one fails (a later run may need an
    earlier one's outputs: it then fails too, and says after what); every failure is then
    reported at once, in one CaptureRunsFailedError.
    """
    config, opts, notebooks = plan.config, plan.options, list(snapshot.notebooks)
    if not config.runs and not notebooks:
        return _Recorded([], [], {}, None)
    if not opts.execute:
        unexecuted = [_notebook_record(nb, nb.node, None) for nb in notebooks]
        return _Recorded.of(_unexecuted_records(config.runs, plan.project), unexecuted, None)
    allowed = capture_allowlist(plan, say)
    variables = study_variables(plan.epoch)
    n_points = sum(len(r.points()) for r in config.runs)
    if opts.target == "slurm":
        return _on_slurm(plan, snapshot, remote, environment, stage, allowed, say)
    runner, python = build_runner(opts, environment, say, allowed)
    say("staging the captured files")
    stage_inputs(snapshot.listing.files, remote, stage, to_container=opts.target == "docker")
    if config.runs:
        say(f"running {len(config.runs)} run(s), {n_points} point(s)")
    lines = PointLines(say)  # a large sweep in one line, its failed points each
    outcomes = execute_runs(
        config.runs,
        stage,
        runner,
        jobs=opts.jobs,
        on_point=lines,
        variables=variables,
        echo=opts.echo,
    )
    lines.flush()
    runs_by_name = {r.name: r for r in config.runs}
    failures = _run_failures(runs_by_name, outcomes)
    executed, notebook_failures = _execute_notebooks(
        notebooks, stage, runner, say, variables, opts.echo
    )
    failures += notebook_failures
    if failures:
        raise _failed(failures, n_points + len(notebooks), environment)
    records = [_record(runs_by_name[o.run], o) for o in outcomes]
    return _Recorded.of(records, executed, python)


def _on_slurm(
    plan: Plan,
    snapshot: Snapshot,
    remote: list[tuple[RemoteData, Path]],
    environment: EnvironmentBuild,
    stage: Path,
    allowed: Allowlist,
    say: Observer,
) -> _Recorded:
    """--target slurm: the runs, then the notebooks (each one more array, as on replay),
    executed on the cluster from a stage the nodes share; recorded as a local capture's."""
    from repro.capture.on_slurm import run_on_slurm

    config, opts, notebooks = plan.config, plan.options, list(snapshot.notebooks)
    say("staging the captured files")
    stage_inputs(snapshot.listing.files, remote, stage, to_container=False)
    n_points = sum(len(r.points()) for r in config.runs)
    notebook_runs = []
    if notebooks:
        nbk.install_driver(stage)
        notebook_runs = [nbk.notebook_run(nb.spec, nb.kernel, nb.code_cells) for nb in notebooks]
    say(
        f"running {len(config.runs)} run(s), {n_points} point(s)"
        + (f", {len(notebooks)} notebook(s)" if notebooks else "")
        + " on Slurm"
    )
    outcomes, python = run_on_slurm(
        opts,
        config.runs + notebook_runs,
        environment,
        stage,
        study_variables(plan.epoch),
        allowed,
        say,
        opts.echo,
    )
    runs_by_name = {r.name: r for r in config.runs}
    run_outcomes = [o for o in outcomes if o.run in runs_by_name]
    failures = _run_failures(runs_by_name, run_outcomes)
    executed, notebook_failures = _notebook_results(
        notebooks, [o for o in outcomes if o.run not in runs_by_name], stage
    )
    failures += notebook_failures
    if failures:
        raise _failed(failures, n_points + len(notebooks), environment)
    return _Recorded.of([_record(runs_by_name[o.run], o) for o in run_outcomes], executed, python)


def study_variables(epoch: int) -> dict[str, str]:
    """What every run and notebook sees at capture (and, from the manifest, at replay): the
    capsule's SOURCE_DATE_EPOCH, so tools that honour it write no wall-clock time."""
    return {"SOURCE_DATE_EPOCH": str(epoch)}


def _run_failures(runs: Mapping[str, Run], outcomes: list[PointOutcome]) -> list[str]:
    """One block per failed point; a failure after an earlier run's says so (runs execute in
    order and may read what an earlier one wrote)."""
    failures: list[str] = []
    failed_runs: list[str] = []
    for outcome in outcomes:
        block = describe_failure(outcome, runs[outcome.run].timeout)
        if block is None:
            continue
        earlier = [name for name in failed_runs if name != outcome.run]
        if earlier:
            block += (
                f"\n  (it ran after {', '.join(earlier)} failed: if it reads their outputs, "
                "fix those first)"
            )
        failures.append(block)
        if outcome.run not in failed_runs:
            failed_runs.append(outcome.run)
    return failures


_MISSING_MODULE = ("ModuleNotFoundError", "No module named")
EMPTY_LOCK_NOTE = (
    "note: no dependency declaration was found, so the lock is empty and only the standard "
    "library is installed: declare what the study imports (requirements.txt, or "
    "[environment] packages = [...] in repro.toml)"
)


def _failed(failures: list[str], total: int, environment: EnvironmentBuild) -> ReproError:
    """Every failure in one error; with an empty lock, the note beside a missing module (or
    after the list when no failure names one)."""
    if environment.locked.lock.source == "none":
        noted = [
            f"{block}\n  {EMPTY_LOCK_NOTE}" if any(m in block for m in _MISSING_MODULE) else block
            for block in failures
        ]
        if noted == failures:
            noted.append(EMPTY_LOCK_NOTE)
        details = noted
    else:
        details = failures
    n = len(failures)
    return CaptureRunsFailedError(
        f"{n} of {total} run point(s) and notebook(s) failed at capture; nothing was written",
        details=details,
    )


def stage_inputs(
    files: list[ProjectFile],
    remote: list[tuple[RemoteData, Path]],
    stage: Path,
    *,
    to_container: bool,
) -> None:
    """The captured files and the remote data, copied where the study runs."""
    stage_project([(f.rel, f.path, f.link_target) for f in files], stage)
    for data, cached in remote:
        target = stage / data.path
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(cached, target)
    if to_container:
        from repro.execution.container import give_to_container_user

        give_to_container_user(stage)


def recorded_variables(names: list[str]) -> dict[str, str]:
    """Only allowlisted variables, never one whose name says it is a secret, and never one
    whose value holds one (`DATABASE_URL=postgres://u:PASSWORD@host/db`, a bearer header)."""
    for name in names:
        if is_secret_variable(name):
            raise ConfigError(
                f"[environment] variables: {name} looks like a secret and is never recorded",
                hint="remove it from the list; pass secrets to runs at replay time instead",
            )
    recorded = {k: os.environ[k] for k in names if k in os.environ}
    scanner = SecretScanner(environ={})
    for name, value in recorded.items():
        hits = scanner.scan_bytes(f"{name}={value}".encode("utf-8", "surrogateescape"), name)
        if hits:
            raise ConfigError(
                f"[environment] variables: the value of {name} holds a secret "
                f"({hits[0].kind} {hits[0].masked}) and is never recorded",
                hint="remove it from the list, or set it without the credentials; pass "
                "secrets to runs at replay time instead",
            )
    return recorded


def capture_allowlist(plan: Plan, say: Observer) -> Allowlist:
    """What of this environment the runs see at capture, as at replay: the declared
    `[environment] variables` (the values recorded) and --pass-env names (each one missing
    here is a warning)."""
    allowed = Allowlist(
        recorded_variables(plan.config.environment.variables), plan.options.pass_env
    )
    for warning in allowed.missing():
        say(f"warning: {warning}")
    return allowed


def build_runner(
    opts: CaptureOptions, environment: EnvironmentBuild, say: Observer, allowlist: Allowlist
) -> tuple[CommandRunner, PythonInfo | None]:
    """Where capture runs the study: this interpreter (--freeze), the capsule's own image
    (--target docker), or a venv built from the lock (the default); and the interpreter the
    runs use when it is not this one. Runs get the allowlisted environment everywhere; on
    this machine they are not sandboxed (the project is the user's own code,
    docs/security.md)."""
    if opts.freeze:
        runner = LocalRunner(
            Path(sys.executable).parent,
            Path(sys.prefix) if sys.prefix != sys.base_prefix else None,
            allowlist,
        )
        return runner, None
    if opts.target == "docker":
        from repro.engines.docker_engine import DockerEngine
        from repro.execution.container import DockerRunner, image_python

        engine = DockerEngine()
        image = ensure_image(engine, environment.image_spec(), offline=False, say=say)
        return DockerRunner(engine, image, allowlist), image_python(engine, image)
    check_apt_on_host(environment.apt, "the study (apt.txt)")
    say("building the environment from the lock")
    venv = build_venv(
        environment.locked.lock.text,
        environment.python,
        local_wheels=environment.locked.local_wheels,
        post_build=environment.post_build,
    )
    if venv.note:
        say(venv.note)
    return LocalRunner(venv.bin_dir, venv.root, allowlist), python_info(venv.python)


def _execute_notebooks(
    notebooks: list[Notebook],
    stage: Path,
    runner: CommandRunner,
    say: Observer,
    variables: Mapping[str, str],
    echo: Echo | None = None,
) -> tuple[list[tuple[NotebookRecord, bytes]], list[str]]:
    """Run each notebook once in the captured environment; its outputs become the record.
    Every notebook runs: the failures come back as blocks, with the notebooks that ran."""
    if not notebooks:
        return [], []
    nbk.install_driver(stage)
    runs = [nbk.notebook_run(nb.spec, nb.kernel, nb.code_cells) for nb in notebooks]
    say(f"executing {len(runs)} notebook(s)")
    outcomes = execute_runs(
        runs,
        stage,
        runner,
        on_point=lambda o: say(
            f"executed {o.run} in {o.result.duration_s:.1f} s"
            + ("" if o.result.exit_code == 0 else " [failed]")
        ),
        variables=variables,
        echo=echo,
    )
    return _notebook_results(notebooks, outcomes, stage)


def _notebook_results(
    notebooks: list[Notebook], outcomes: list[PointOutcome], stage: Path
) -> tuple[list[tuple[NotebookRecord, bytes]], list[str]]:
    """Each executed notebook's record and expectation, or the block saying how it failed."""
    executed, failures = [], []
    for nb, outcome in zip(notebooks, outcomes, strict=True):
        produced = stage / nbk.executed_path(nb.spec)
        node, failure = _executed_notebook(nb.spec, outcome, produced)
        if failure is not None:
            failures.append(failure)
        elif node is not None:
            record, content = _notebook_record(nb, node, outcome.result.duration_s)
            executed.append((record.model_copy(update={"usage": outcome.result.usage}), content))
    return executed, failures


def _executed_notebook(
    spec: NotebookSpec, outcome: PointOutcome, produced: Path
) -> tuple[Any, str | None]:
    """The executed notebook, or a block saying which cell raised and how."""
    result = outcome.result
    node = nbk.read_executed(produced)
    if result.timed_out:
        return None, (
            f"notebook {spec.path} did not finish within {spec.timeout:g} s per cell "
            "(raise its [[notebooks]] timeout)"
        )
    if result.exit_code == 124:
        return None, (
            f"notebook {spec.path}: {nbk.driver_message(result.stderr_tail)} "
            "(raise its [[notebooks]] timeout)"
        )
    if result.exit_code != 0 or node is None:
        summary = nbk.error_summary(node) if node is not None else None
        if summary:
            head, *trace = summary.splitlines()
            lines = [f"notebook {spec.path}: {head}"]
            lines += [f"    {ln}" for ln in [ln for ln in trace if ln.strip()][-TAIL_LINES:]]
            return None, "\n".join(lines)
        return None, "\n".join(
            [
                f"notebook {spec.path}: {nbk.driver_message(result.stderr_tail)}",
                *tail_block("stderr", result.stderr_tail),
            ]
        )
    return node, None


def _notebook_record(
    nb: Notebook, node: Any, duration: float | None
) -> tuple[NotebookRecord, bytes]:
    content = nbk.expectation_bytes(node)
    language_info = node.metadata.get("language_info", {})
    kernel = nb.kernel.model_copy(
        update={"language_version": language_info.get("version") or nb.kernel.language_version}
    )
    record = NotebookRecord(
        path=nb.spec.path,
        capsule_path=f"{RESULTS_PREFIX}{nb.spec.run_name}/{nb.spec.path}",
        sha256=sha256_bytes(content),
        size=len(content),
        kernel=kernel,
        executed=duration is not None,
        code_cells=nb.code_cells,
        duration_s=None if duration is None else round(duration, 3),
    )
    return record, content


def _record(run: Run, outcome: PointOutcome) -> RunRecord:
    outputs = [
        _expected(run, template_of(run, outcome.point, rel), outcome.point_id, rel, produced)
        for rel, produced in outcome.outputs
    ]
    return RunRecord(
        run=run.name,
        point=outcome.point,
        point_id=outcome.point_id,
        command=outcome.command,
        executed=True,
        exit_code=outcome.result.exit_code,
        duration_s=round(outcome.result.duration_s, 3),
        usage=outcome.result.usage,
        stdout_tail=outcome.result.stdout_tail,
        stderr_tail=outcome.result.stderr_tail,
        outputs=outputs,
    )


def template_of(run: Run, point: dict[str, SweepValue], rel: str) -> str:
    """The output entry (path, folder or glob) that names the file `rel`: its rule applies."""
    return next(t for t in run.outputs if matches(render(t, point), rel))


def _expected(run: Run, template: str, pid: str, rel: str, produced: Path) -> ExpectedOutput:
    """An output as the expected result of its run point, with the run's rule for it."""
    sha, size = sha256_file(produced)
    return ExpectedOutput(
        path=rel,
        capsule_path=f"{RESULTS_PREFIX}{run.name}/{pid}/{rel}",
        sha256=sha,
        size=size,
        rule=run.compare.get(template) or CompareRule(),
    )


def _unexecuted_records(runs: list[Run], project: Path) -> list[RunRecord]:
    """--no-run: outputs already in the project become the expectation, when present."""
    records = []
    for run in runs:
        for point in run.points():
            pid = point_id(point)
            outputs: list[ExpectedOutput] = []
            seen: set[str] = set()
            for template in run.outputs:
                rendered = render(template, point)
                names = expand(rendered, project) if is_pattern(rendered) else [rendered]
                for rel in names:
                    path = project / rel
                    if rel not in seen and path.is_file() and not path.is_symlink():
                        seen.add(rel)
                        outputs.append(_expected(run, template, pid, rel, path))
            records.append(
                RunRecord(
                    run=run.name,
                    point=point,
                    point_id=pid,
                    command=render(run.command, point),
                    executed=False,
                    outputs=outputs,
                )
            )
    return records
