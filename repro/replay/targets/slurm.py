"""The slurm target: one sbatch array per run (one task per sweep point), polled without
accounting, every task's outputs gathered from the shared working directory."""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass
from pathlib import Path

from repro.capsule.manifest import Manifest
from repro.config.models import Run, point_id, render
from repro.env.pythons import major_minor
from repro.execution.environment import run_environment, standard_path
from repro.execution.runs import (
    CommandResult,
    PointOutcome,
    collect_outputs,
    remove_stale_outputs,
    tail_of,
)
from repro.execution.sandbox import Sandbox, SandboxSpec, interpreter_prefix
from repro.execution.stream import Echo, FileFollower, LineSink, StreamName, bound
from repro.model_base import SweepValue
from repro.paths import cache_dir, config_dir
from repro.replay.targets.base import (
    Observer,
    OnPoint,
    Prepared,
    Select,
    SlurmSettings,
    TargetName,
    TargetOptions,
    allowlist,
    study_variables,
)
from repro.replay.targets.isolation import sandbox_for
from repro.replay.targets.local import describe, environment
from repro.scheduler.scripts import STATUS_DIR, render_script
from repro.scheduler.slurm import Scheduler, Slurm, Submission, TaskState

POLL_S = 0.5
FOLLOW_POLL_S = 0.25
"""How often the tasks' log files are read for the live view."""
GRACE_POLLS = 20
# States in which a task that left no status file is over for good.
FINAL = {
    "COMPLETED",
    "FAILED",
    "CANCELLED",
    "TIMEOUT",
    "NODE_FAIL",
    "OUT_OF_MEMORY",
    "PREEMPTED",
    "BOOT_FAIL",
    "DEADLINE",
    "PURGED",
}


@dataclass
class _Task:
    run: Run
    index: int
    point: dict[str, SweepValue]
    state: TaskState = "pending"
    exit_code: int | None = None
    duration: float = 0.0
    note: str = ""
    settle: int = 0


def _time_limit(run: Run) -> str:
    if run.resources.walltime:
        return run.resources.walltime
    return str(max(1, math.ceil(run.timeout / 60)))  # minutes


def _script(run: Run, project: Path, wrap: list[str]) -> Path:
    """The batch script for the run, rendered here from the manifest's run as at capture
    (never the capsule's own text: only what repro generates runs), under `wrap`."""
    path = project / STATUS_DIR / f"{run.name}.sbatch"
    path.write_text(render_script(run, run.points(), "slurm", wrap=wrap), encoding="utf-8")
    return path


@dataclass(frozen=True)
class _Isolation:
    """How the tasks run: their environment (the allowlist) and the sandbox around them."""

    export: dict[str, str]
    sandbox: Sandbox
    venv: Path
    home: Path

    def wrap(self, run: Run, project: Path) -> list[str]:
        if self.sandbox.isolation == "none":
            return []
        shown = [self.venv]
        prefix = interpreter_prefix(self.venv)
        if prefix is not None:
            shown.append(prefix)
        spec = SandboxSpec(
            project,
            self.home,
            tuple(shown),
            (Path.home(), cache_dir(), config_dir()),
            run.network,
        )
        return self.sandbox.wrap([], spec)


def replay_on_slurm(
    scheduler: Scheduler,
    manifest: Manifest,
    runs: list[Run],
    root: Path,
    project: Path,
    isolation: _Isolation,
    select: Select,
    settings: SlurmSettings,
    say: Observer,
    echo: Echo | None = None,
) -> list[PointOutcome]:
    """Submit every run as an array (each after the one before it), wait, gather; each
    task's output goes to `echo` as its log files grow."""
    tasks: dict[tuple[str, int], _Task] = {}
    job_ids: list[str] = []
    try:
        previous: str | None = None
        for run in runs:
            points = run.points()
            indices = [i for i, p in enumerate(points) if select(run, p)]
            if not indices:
                continue
            status = project / STATUS_DIR / run.name
            status.mkdir(parents=True, exist_ok=True)
            for i in indices:
                (status / f"{i}.status").unlink(missing_ok=True)
            remove_stale_outputs(run, [points[i] for i in indices], project)
            job = scheduler.submit_array(
                Submission(
                    script=_script(run, project, isolation.wrap(run, project)),
                    workdir=project,
                    indices=indices,
                    array_limit=settings.array_limit or run.resources.array_limit,
                    export={**isolation.export, "REPRO_PROJECT": str(project)},
                    partition=settings.partition or run.resources.partition,
                    account=settings.account or run.resources.account,
                    time_limit=_time_limit(run),
                    after=[previous] if previous else None,
                )
            )
            job_ids.append(job)
            previous = job
            for i in indices:
                tasks[(job, i)] = _Task(run, i, points[i])
            say(f"submitted run {run.name} as Slurm job array {job} ({len(indices)} task(s))")
        with _following(tasks, project, echo):
            _wait(scheduler, tasks, job_ids, project, say)
    except BaseException:
        scheduler.cancel(job_ids)
        if job_ids:
            say(f"cancelled Slurm job(s) {', '.join(job_ids)}")
        raise
    return [_outcome(t, project) for t in tasks.values()]


def _wait(
    scheduler: Scheduler,
    tasks: dict[tuple[str, int], _Task],
    job_ids: list[str],
    project: Path,
    say: Observer,
) -> None:
    last = ""
    while True:
        queued = scheduler.queued(job_ids)
        for key, task in tasks.items():
            if task.state in ("done", "failed"):
                continue
            status = project / STATUS_DIR / task.run.name / f"{task.index}.status"
            if status.is_file():
                code, start, end = [*status.read_text().split(), "0", "0"][:3]
                task.exit_code = int(code)
                task.duration = max(0.0, float(end) - float(start))
                task.state = "done" if task.exit_code == 0 else "failed"
            elif key in queued:
                task.state = queued[key]
            else:
                state, exit_code = scheduler.final_state(*key)
                if state == "COMPLETED" and task.settle < GRACE_POLLS:
                    task.settle += 1  # a shared filesystem may show the status file late
                elif state in FINAL and not status.is_file():
                    task.state = "failed"
                    task.exit_code = exit_code if state == "FAILED" else None
                    task.note = f"Slurm says {state}"
        counts = {
            s: sum(1 for t in tasks.values() if t.state == s)
            for s in ("pending", "running", "done", "failed")
        }
        line = ", ".join(f"{n} {s}" for s, n in counts.items())
        if line != last:
            say(f"tasks: {line}")
            last = line
        if counts["done"] + counts["failed"] == len(tasks):
            return
        time.sleep(POLL_S)


def _logs(task: _Task, project: Path) -> tuple[Path, Path]:
    """Where a task's stdout and stderr are written (on the shared filesystem)."""
    logs = project / STATUS_DIR / task.run.name
    return logs / f"{task.index}.out", logs / f"{task.index}.err"


def _following(
    tasks: dict[tuple[str, int], _Task], project: Path, echo: Echo | None
) -> contextlib.AbstractContextManager[object]:
    """While the tasks run, their log files followed into `echo` (labelled by point)."""
    if echo is None:
        return contextlib.nullcontext()
    sources: list[tuple[StreamName, Path, LineSink]] = []
    for task in tasks.values():
        sink = bound(echo, point_id(task.point) if task.point else "")
        if sink is not None:
            out, err = _logs(task, project)
            sources += [("stdout", out, sink), ("stderr", err, sink)]
    return FileFollower(None, sources=sources, poll_s=FOLLOW_POLL_S)


def _outcome(task: _Task, project: Path) -> PointOutcome:
    out, err = _logs(task, project)
    stderr = tail_of(err) if err.is_file() else ""
    if task.note:
        stderr = f"{stderr}\n[{task.note}]".strip()
    outputs, missing = collect_outputs(task.run, task.point, project)
    return PointOutcome(
        task.run.name,
        task.point,
        point_id(task.point),
        render(task.run.command, task.point),
        CommandResult(task.exit_code, task.duration, tail_of(out) if out.is_file() else "", stderr),
        outputs,
        missing,
    )


class SlurmTarget:
    """Every run an sbatch array; the environment is built once, in the working directory the
    compute nodes see."""

    def __init__(self, options: TargetOptions) -> None:
        self.options = options
        self._ready: tuple[Scheduler, Manifest, Path, _Isolation, Observer] | None = None

    @property
    def name(self) -> TargetName:
        return "slurm"

    def ignored(self) -> list[str]:
        warnings = []
        if self.options.jobs > 1:
            warnings.append(
                f"-j {self.options.jobs} is ignored on the slurm target: the scheduler decides "
                "how many tasks run at once (limit them with --array-limit)"
            )
        if self.options.base_image is not None:
            warnings.append(
                "--base-image is ignored on the slurm target: tasks run in a virtual "
                "environment built from the lock, not in an image"
            )
        return warnings

    def prepare(self, manifest: Manifest, root: Path, say: Observer) -> Prepared:
        scheduler = Slurm()  # exit 5 before any work when Slurm is not there
        # The sandbox is probed here, on the submitting machine: the nodes need the same
        # bubblewrap (one node here; a cluster without it: --no-sandbox, docs/security.md).
        sandbox, warnings = sandbox_for(self.name, self.options)
        say(f"isolation: {sandbox.isolation}")
        allowed = allowlist(manifest, self.options)
        venv, env_warnings = environment(
            manifest,
            root,
            self.options.offline,
            say,
            cache_root=root.parent / "venvs",
            sandbox=sandbox,
        )
        home = root.parent / "home"
        home.mkdir(exist_ok=True)
        export = run_environment(
            allowed,
            home=str(home),
            path=standard_path(str(venv.bin_dir)),
            variables={
                **study_variables(manifest),
                # as on the other targets: output reaches the log files (and the live view)
                # as it is printed
                "PYTHONUNBUFFERED": "1",
                "REPRO_VENV": str(venv.root),
                # the task checks that its node runs the environment's Python as this version
                "REPRO_PYTHON": major_minor(manifest.environment.python_version),
            },
        )
        self._ready = (scheduler, manifest, root, _Isolation(export, sandbox, venv.root, home), say)
        return describe(venv, [*warnings, *allowed.missing(), *env_warnings], sandbox.isolation)

    def execute(
        self, runs: list[Run], project: Path, select: Select, on_point: OnPoint
    ) -> list[PointOutcome]:
        if self._ready is None:
            raise RuntimeError("execute before prepare")
        scheduler, manifest, root, isolation, say = self._ready
        outcomes = replay_on_slurm(
            scheduler,
            manifest,
            runs,
            root,
            project,
            isolation,
            select,
            self.options.slurm,
            say,
            self.options.echo,
        )
        for outcome in outcomes:
            on_point(outcome)
        return outcomes

    def close(self) -> None:
        """Nothing to release: replay_on_slurm cancels its jobs when it does not finish."""
