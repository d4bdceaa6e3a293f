"""The slurm target: one sbatch array per run (one task per sweep point), polled without
accounting, every task's outputs gathered from the shared working directory; where sacct
answers, its record of each task is attached to the point."""

from __future__ import annotations

import contextlib
import math
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from repro.capsule.manifest import Manifest
from repro.config.models import Run, point_id, render
from repro.engines.runtimes import RuntimeName
from repro.env.pythons import major_minor
from repro.errors import SharedFilesystemError
from repro.execution.environment import Allowlist, run_environment, standard_path
from repro.execution.runs import (
    CommandResult,
    PointOutcome,
    collect_outputs,
    remove_stale_outputs,
    tail_of,
)
from repro.execution.sandbox import NoSandbox, Sandbox, SandboxSpec, interpreter_prefix
from repro.execution.stream import Echo, FileFollower, LineSink, StreamName, bound
from repro.execution.task_measure import measure_args, measure_variables
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
from repro.replay.targets.cluster_image import ContainerPlan, plan_containers
from repro.replay.targets.gpus import runs_need_gpus
from repro.replay.targets.isolation import sandbox_for
from repro.replay.targets.local import describe, environment
from repro.resource_usage import ResourceUsage, ending_of
from repro.scheduler.accounting import FINAL_STATES, words_for
from repro.scheduler.records import SacctRecord
from repro.scheduler.scripts import NOT_SHARED_EXIT, SHARED_MARKER, STATUS_DIR, render_script
from repro.scheduler.slurm import Scheduler, Slurm, Submission, TaskState

POLL_S = 0.5
ACCOUNTING_SETTLE_S = 10.0
# Slurm states whose words say more than the exit code the batch script recorded.
ENDED_BY_SLURM = {"OUT_OF_MEMORY", "TIMEOUT", "NODE_FAIL", "PREEMPTED", "BOOT_FAIL", "DEADLINE"}
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
class Task:
    run: Run
    index: int
    point: dict[str, SweepValue]
    state: TaskState = "pending"
    exit_code: int | None = None
    duration: float = 0.0
    note: str = ""
    settle: int = 0
    accounting: SacctRecord | None = None
    slurm_state: str | None = None
    submitted_at: float | None = None


def _time_limit(run: Run) -> str:
    if run.resources.walltime:
        return run.resources.walltime
    return str(max(1, math.ceil(run.timeout / 60)))  # minutes


def _script(run: Run, project: Path, isolation: Isolation) -> Path:
    """The batch script for the run, rendered here from the manifest's run as at capture
    (never the capsule's own text: only what repro generates runs), under the sandbox or in
    the container runtime."""
    path = project / STATUS_DIR / f"{run.name}.sbatch"
    if isolation.containers is not None:
        text = render_script(
            run, run.points(), "slurm", run_lines=isolation.containers.lines(run, project)
        )
    else:
        text = render_script(run, run.points(), "slurm", wrap=isolation.wrap(run, project))
    path.write_text(text, encoding="utf-8")
    return path


def _mark_shared(project: Path) -> str:
    """Write a fresh token where every task reads it before its point runs (the check that
    the nodes share the working directory)."""
    token = secrets.token_hex(8)
    marker = project / SHARED_MARKER
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(token + "\n", encoding="utf-8")
    return token


@dataclass(frozen=True)
class Isolation:
    """How the tasks run: their environment (the allowlist) and the sandbox around them."""

    export: dict[str, str]
    sandbox: Sandbox
    venv: Path | None
    home: Path
    containers: ContainerPlan | None = None
    """--container: the runtime every task runs its point in (no venv, no sandbox)."""

    def wrap(self, run: Run, project: Path) -> list[str]:
        if self.sandbox.isolation == "none" or self.venv is None:
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


@dataclass
class Submitted:
    """Arrays submitted and not waited for: their job ids and one task per selected point."""

    tasks: dict[tuple[str, int], Task]
    job_ids: list[str]


def submit_runs(
    scheduler: Scheduler,
    runs: list[Run],
    project: Path,
    isolation: Isolation,
    select: Select,
    settings: SlurmSettings,
    say: Observer,
) -> Submitted:
    """Submit every run as an array (each after the one before it); a failure part-way
    cancels what was submitted."""
    submitted = Submitted({}, [])
    try:
        previous: str | None = None
        token = _mark_shared(project)
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
                    script=_script(run, project, isolation),
                    workdir=project,
                    indices=indices,
                    array_limit=settings.array_limit or run.resources.array_limit,
                    export={
                        **isolation.export,
                        "REPRO_PROJECT": str(project),
                        "REPRO_MEASURE_ARGS": measure_args(run.resources.memory),
                        "REPRO_SHARED_TOKEN": token,
                    },
                    partition=settings.partition or run.resources.partition,
                    account=settings.account or run.resources.account,
                    time_limit=_time_limit(run),
                    after=[previous] if previous else None,
                )
            )
            submitted.job_ids.append(job)
            previous = job
            submitted_at = time.time()
            for i in indices:
                submitted.tasks[(job, i)] = Task(run, i, points[i], submitted_at=submitted_at)
            say(f"submitted run {run.name} as Slurm job array {job} ({len(indices)} task(s))")
    except BaseException:
        _cancel(scheduler, submitted.job_ids, say)
        raise
    return submitted


def _cancel(scheduler: Scheduler, job_ids: list[str], say: Observer) -> None:
    scheduler.cancel(job_ids)
    if job_ids:
        say(f"cancelled Slurm job(s) {', '.join(job_ids)}")


def replay_on_slurm(
    scheduler: Scheduler,
    manifest: Manifest,
    runs: list[Run],
    root: Path,
    project: Path,
    isolation: Isolation,
    select: Select,
    settings: SlurmSettings,
    say: Observer,
    echo: Echo | None = None,
) -> list[PointOutcome]:
    """Submit every run as an array (each after the one before it), wait, gather; each
    task's output goes to `echo` as its log files grow."""
    return run_arrays(scheduler, runs, project, isolation, select, settings, say, echo)


def run_arrays(
    scheduler: Scheduler,
    runs: list[Run],
    project: Path,
    isolation: Isolation,
    select: Select,
    settings: SlurmSettings,
    say: Observer,
    echo: Echo | None = None,
) -> list[PointOutcome]:
    """Submit, wait for every task (cancelling the jobs on any error or Ctrl-C) and gather
    each point's outcome from `project`, the working directory the nodes share: what a
    replay and a capture on the cluster both do."""
    submitted = submit_runs(scheduler, runs, project, isolation, select, settings, say)
    try:
        with _following(submitted.tasks, project, echo):
            _wait(scheduler, submitted.tasks, submitted.job_ids, project, say)
    except BaseException:
        _cancel(scheduler, submitted.job_ids, say)
        raise
    attach_accounting(scheduler, submitted.tasks, submitted.job_ids, say)
    return [outcome_of(t, project) for t in submitted.tasks.values()]


def poll_tasks(
    scheduler: Scheduler, tasks: dict[tuple[str, int], Task], job_ids: list[str], project: Path
) -> dict[str, int]:
    """Update every unfinished task from its status file, squeue and scontrol, once; the
    number of tasks per state."""
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
                if exit_code == NOT_SHARED_EXIT:
                    raise SharedFilesystemError(
                        f"a Slurm task (job {key[0]}, task {key[1]}) does not see the "
                        f"working directory {project}: the nodes must share it",
                        hint="replay with --workdir on a filesystem every node mounts "
                        "(a home or project folder, not /tmp)",
                    )
                task.state = "failed"
                task.exit_code = exit_code if state == "FAILED" else None
                task.note = words_for(state, exit_code, None)
                task.slurm_state = state
    return {
        s: sum(1 for t in tasks.values() if t.state == s)
        for s in ("pending", "running", "done", "failed")
    }


def _wait(
    scheduler: Scheduler,
    tasks: dict[tuple[str, int], Task],
    job_ids: list[str],
    project: Path,
    say: Observer,
) -> None:
    last = ""
    while True:
        counts = poll_tasks(scheduler, tasks, job_ids, project)
        line = ", ".join(f"{n} {s}" for s, n in counts.items())
        if line != last:
            say(f"tasks: {line}")
            last = line
        if counts["done"] + counts["failed"] == len(tasks):
            return
        time.sleep(POLL_S)


def attach_accounting(
    scheduler: Scheduler,
    tasks: dict[tuple[str, int], Task],
    job_ids: list[str],
    say: Observer,
    settle_s: float = ACCOUNTING_SETTLE_S,
) -> None:
    """Give each task what sacct recorded of it, and take the way it ended from Slurm's
    state where that says more than the exit code (OUT_OF_MEMORY, TIMEOUT): the batch
    script survives a step killed for memory and records only the killed command's 137.
    Slurm sends a finished task's record to slurmdbd a moment after it ends: ask again for
    up to `settle_s` until every task's record is final. No accounting: nothing to add."""
    for job in job_ids:
        wanted = {i for (j, i) in tasks if j == job}
        deadline = time.monotonic() + settle_s
        while True:
            records = scheduler.accounting(job)
            if records is None:
                return  # a cluster without accounting: the tasks' own figures only
            final = {i for i, r in records.items() if i in wanted and r.state in FINAL_STATES}
            if final == wanted or time.monotonic() >= deadline:
                break
            time.sleep(POLL_S)
        for index in wanted:
            record = records.get(index)
            if record is None:
                continue
            task = tasks[(job, index)]
            task.accounting = record
            if record.state in ENDED_BY_SLURM:
                task.note = record.ending
                task.slurm_state = record.state
                if record.state == "TIMEOUT":
                    task.exit_code = None
    if any(t.accounting for t in tasks.values()):
        say(f"read Slurm accounting (sacct) for job(s) {', '.join(job_ids)}")


def _logs(task: Task, project: Path) -> tuple[Path, Path]:
    """Where a task's stdout and stderr are written (on the shared filesystem)."""
    logs = project / STATUS_DIR / task.run.name
    return logs / f"{task.index}.out", logs / f"{task.index}.err"


def _following(
    tasks: dict[tuple[str, int], Task], project: Path, echo: Echo | None
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


def outcome_of(task: Task, project: Path) -> PointOutcome:
    out, err = _logs(task, project)
    stderr = tail_of(err) if err.is_file() else ""
    if task.note:
        stderr = f"{stderr}\n[{task.note}]".strip()
    outputs, missing = collect_outputs(task.run, task.point, project)
    usage = _usage(task, out.with_name(f"{task.index}.usage.json"))
    if usage is not None and usage.ending.kind == "killed_for_memory":
        stderr = f"{stderr}\n[{usage.ending.words}]".strip()
    return PointOutcome(
        task.run.name,
        task.point,
        point_id(task.point),
        render(task.run.command, task.point),
        CommandResult(
            task.exit_code,
            task.duration,
            tail_of(out) if out.is_file() else "",
            stderr,
            usage,
        ),
        outputs,
        missing,
        accounting=task.accounting,
    )


def _usage(task: Task, path: Path) -> ResourceUsage | None:
    """What the task measured of itself (None when its node could not run the measurer, or
    it was killed before writing it); what Slurm says ended it wins over the task's words.

    Hook for Slurm accounting: where sacct answers, its figures for the task go beside these
    with repro.resource_usage.with_accounting (ResourceUsage.accounting)."""
    usage: ResourceUsage | None = None
    if path.is_file():
        try:
            usage = ResourceUsage.model_validate_json(path.read_text(encoding="utf-8"))
        except ValueError:
            usage = None  # the task's own file, half written or not ours: not a figure
    if usage is not None and usage.started_at is not None and task.submitted_at is not None:
        wait = round(max(0.0, usage.started_at - task.submitted_at), 3)
        usage = usage.model_copy(update={"queue_wait_s": wait})
    if task.slurm_state in ("TIMEOUT", "OUT_OF_MEMORY", "DEADLINE"):
        ending = ending_of(
            task.exit_code,
            scheduler_state=task.slurm_state,
            memory_limit=task.run.resources.memory,
        )
        if usage is None:
            return None
        usage = usage.model_copy(update={"ending": ending})
    return usage


class SlurmTarget:
    """Every run an sbatch array; the environment is built once, in the working directory the
    compute nodes see."""

    def __init__(self, options: TargetOptions) -> None:
        self.options = options
        self._ready: tuple[Scheduler, Manifest, Path, Isolation, Observer] | None = None

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
        container = self.options.slurm.container
        if self.options.base_image is not None and container is None:
            warnings.append(
                "--base-image is ignored on the slurm target: without --container, tasks run "
                "in a virtual environment built from the lock, not in an image"
            )
        if self.options.no_sandbox and container is not None:
            warnings.append(
                f"--no-sandbox is ignored with --container {container}: the runs are always "
                "isolated in their containers"
            )
        return warnings

    def prepare(self, manifest: Manifest, root: Path, say: Observer) -> Prepared:
        scheduler = Slurm()  # exit 5 before any work when Slurm is not there
        if self.options.slurm.container is not None:
            return self._prepare_containers(
                self.options.slurm.container, scheduler, manifest, root, say
            )
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
                **measure_variables(),
            },
        )
        self._ready = (scheduler, manifest, root, Isolation(export, sandbox, venv.root, home), say)
        return describe(venv, [*warnings, *allowed.missing(), *env_warnings], sandbox.isolation)

    def _prepare_containers(
        self,
        name: RuntimeName,
        scheduler: Scheduler,
        manifest: Manifest,
        root: Path,
        say: Observer,
    ) -> Prepared:
        plan, prepared = plan_containers(
            name, manifest, root, self.options, runs_need_gpus(manifest.runs) > 0, say
        )
        say(f"isolation: {name} containers")
        home = root.parent / "home"
        home.mkdir(exist_ok=True)
        # The batch shell's own environment: enough to find the runtime; what the point
        # sees is only what the runtime is given explicitly (plan.environment).
        export = run_environment(Allowlist(), home=str(home), path=standard_path(), variables={})
        self._ready = (
            scheduler,
            manifest,
            root,
            Isolation(export, NoSandbox(), None, home, plan),
            say,
        )
        return prepared

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

    def submit(self, runs: list[Run], project: Path, select: Select) -> Submitted:
        """Submit every selected point without waiting (a detached replay)."""
        if self._ready is None:
            raise RuntimeError("submit before prepare")
        scheduler, _manifest, _root, isolation, say = self._ready
        return submit_runs(scheduler, runs, project, isolation, select, self.options.slurm, say)

    def close(self) -> None:
        """Nothing to release: replay_on_slurm cancels its jobs when it does not finish."""
