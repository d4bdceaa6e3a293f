"""Detached slurm replays on this machine's cluster: `replay --detach` submits and keeps a
record in repro's state folder; `status` polls it; `collect` waits, gathers and judges, in
any later process (the submitting one may be long gone).

A record is one small JSON file per replay (`STATE/replays/ID.json`, written atomically).
Replays sent to a cluster over SSH keep the same record here, with `remote` set
(repro.replay.remote).
"""

from __future__ import annotations

import re
import secrets
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from pydantic import Field, ValidationError

from repro.atomic import write_atomically
from repro.capsule.layout import created_timestamp
from repro.capsule.manifest import Platform
from repro.config.models import Run, point_id
from repro.errors import ReproError, UsageError
from repro.execution.runs import PointOutcome, collect_outputs
from repro.machine import fingerprint
from repro.model_base import Model
from repro.paths import scratch_prefix, state_dir
from repro.replay.environment import differences
from repro.replay.judge import judge
from repro.replay.open import Opened, open_for_replay, parse_points
from repro.replay.pipeline import ReplayOptions
from repro.replay.prepare import prepare
from repro.replay.record import note_in_history
from repro.replay.report import build_report, write_html
from repro.replay.targets import Observer, Prepared
from repro.replay.targets.slurm import (
    POLL_S,
    SlurmTarget,
    Task,
    attach_accounting,
    outcome_of,
    poll_tasks,
)
from repro.report.detached import (
    DetachedReplay,
    PointState,
    PreparedInfo,
    ReplayList,
    ReplayStatus,
    TaskStatus,
    tally,
)
from repro.report.replay import ReplayReport
from repro.scheduler.scripts import STATUS_DIR
from repro.scheduler.slurm import Slurm
from repro.verify import Policy

ID_PATTERN = r"^r[0-9]{8}-[0-9a-f]{6}$"


class ReplayNotFoundError(ReproError):
    default_hint = "list the detached replays: repro status"


class ReplayNotFinishedError(ReproError):
    default_hint = "wait, or see where it is: repro status ID"


class RemoteRef(Model):
    """The far side of a replay sent over SSH."""

    id: str
    """The replay's id there."""
    repro: str
    """The repro executable there."""
    capsule: str
    workdir: str
    project: str
    record: str


class ReplayRecord(Model):
    """What a later `status`/`collect` needs of a detached replay."""

    id: str = Field(pattern=ID_PATTERN)
    started: float
    capsule: str
    """The capsule file here (absolute): collect verifies it again and judges against it."""
    capsule_id: str
    host: str | None = None
    """The --host value (a cluster name or user@host)."""
    remote: RemoteRef | None = None
    workdir: str
    """Where it runs (on the cluster when remote is set)."""
    project: str
    runs: list[str] = Field(default_factory=list)
    points: list[str] = Field(default_factory=list)
    require_signed: bool = False
    require_trusted: bool = False
    offline: bool = False
    keep: bool = False
    """Keep the working directory after collect (--keep or --workdir)."""
    jobs: list[str]
    tasks: list[TaskStatus]
    prepared: PreparedInfo
    platform: Platform
    warnings: list[str] = Field(default_factory=list)

    def policy(self) -> Policy:
        return Policy(self.require_signed, self.require_trusted)

    def detached(self, record_path: Path) -> DetachedReplay:
        return DetachedReplay(
            id=self.id,
            host=self.host,
            capsule=self.capsule,
            capsule_id=self.capsule_id,
            jobs=self.jobs,
            points=len(self.tasks),
            workdir=self.workdir,
            project=self.project,
            record=str(record_path),
            tasks=self.tasks,
            prepared=self.prepared,
            platform=self.platform,
            warnings=self.warnings,
        )


def replays_dir() -> Path:
    path = state_dir() / "replays"
    path.mkdir(parents=True, exist_ok=True)
    return path


def new_id() -> str:
    return f"r{time.strftime('%Y%m%d', time.gmtime())}-{secrets.token_hex(3)}"


def record_path(replay_id: str) -> Path:
    if not re.fullmatch(ID_PATTERN, replay_id):
        raise ReplayNotFoundError(f"{replay_id!r} is not a replay id (like r20260101-ab12cd)")
    return replays_dir() / f"{replay_id}.json"


def save(record: ReplayRecord) -> Path:
    path = record_path(record.id)
    write_atomically(path, record.model_dump_json(indent=2).encode(), "replay record")
    return path


def load(replay_id: str) -> ReplayRecord:
    path = record_path(replay_id)
    if not path.is_file():
        raise ReplayNotFoundError(f"no detached replay {replay_id} here ({replays_dir()})")
    try:
        return ReplayRecord.model_validate_json(path.read_bytes())
    except ValidationError:
        raise ReplayNotFoundError(
            f"the record of replay {replay_id} is damaged: {path}",
            hint=f"remove it ({path}) and cancel its jobs with scancel",
        ) from None


def forget(replay_id: str) -> None:
    record_path(replay_id).unlink(missing_ok=True)


def list_replays() -> ReplayList:
    found = []
    for path in sorted(replays_dir().glob("r*.json")):
        try:
            found.append(ReplayRecord.model_validate_json(path.read_bytes()).detached(path))
        except (ValidationError, OSError):
            continue
    return ReplayList(replays=found)


def prepared_info(prepared: Prepared) -> PreparedInfo:
    return PreparedInfo(
        python_version=prepared.python_version,
        installed=prepared.installed,
        warnings=prepared.warnings,
        python_abi=prepared.python_abi,
        isolation=prepared.isolation,
    )


def prepared_of(info: PreparedInfo) -> Prepared:
    return Prepared(
        info.python_version, info.installed, info.warnings, info.python_abi, info.isolation
    )


def _workdir(parent: Path | None, replay_id: str) -> Path:
    if parent is None:
        path = replays_dir() / replay_id
        path.mkdir()
        return path
    parent = parent.absolute()
    if parent.exists() and not parent.is_dir():
        raise UsageError(f"--workdir is not a folder: {parent}")
    parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix="replay-", dir=parent))


def submit(opts: ReplayOptions, say: Observer) -> tuple[ReplayRecord, Path]:
    """Verify, unpack, prepare and submit on this machine's Slurm, without waiting; the
    record (saved) and its path."""
    if opts.attest is not None:
        raise UsageError(
            "--attest is not available with --detach yet", hint="replay without --detach"
        )
    started = time.time()
    replay_id = new_id()
    workdir = _workdir(opts.workdir, replay_id)
    job_ids: list[str] = []
    scheduler = None
    try:
        opened = open_for_replay(
            opts.capsule.absolute(),
            workdir,
            opts.policy,
            opts.runs,
            parse_points(opts.points),
            opts.offline,
            say,
        )
        selection = opened.selection
        if selection.point_count() == 0 and not selection.notebooks:
            raise UsageError(
                "no run point matches the selection", hint="see the points: repro inspect CAPSULE"
            )
        target = SlurmTarget(replace(opts.target_options(), trusted=opened.trusted))
        prepared = prepare(target, opened, workdir, True, say)
        scheduler = Slurm()
        submitted = target.submit(
            selection.runs + opened.notebook_runs, opened.project, selection.selects
        )
        job_ids = submitted.job_ids
        record = ReplayRecord(
            id=replay_id,
            started=started,
            capsule=str(opts.capsule.absolute()),
            capsule_id=opened.capsule_id,
            workdir=str(workdir),
            project=str(opened.project),
            runs=opts.runs,
            points=opts.points,
            require_signed=opts.policy.require_signed,
            require_trusted=opts.policy.require_trusted,
            offline=opts.offline,
            keep=opts.keep or opts.workdir is not None,
            jobs=job_ids,
            tasks=[_task_status(job, t) for (job, _i), t in submitted.tasks.items()],
            prepared=prepared_info(prepared),
            platform=fingerprint(),
            warnings=[*opened.warnings, *prepared.warnings],
        )
        path = save(record)
    except BaseException:
        if scheduler is not None and job_ids:
            scheduler.cancel(job_ids)
        shutil.rmtree(workdir, ignore_errors=True)
        raise
    say(f"submitted replay {replay_id}: Slurm job(s) {', '.join(job_ids)}")
    return record, path


def _state(task: Task) -> PointState:
    state = task.state
    if state == "pending" or state == "unknown":
        return "queued"
    return state


def _task_status(job: str, task: Task, files: list[str] | None = None) -> TaskStatus:
    return TaskStatus(
        run=task.run.name,
        index=task.index,
        point_id=point_id(task.point),
        job=job,
        state=_state(task),
        exit_code=task.exit_code,
        duration_s=round(task.duration, 3),
        note=task.note,
        files=files or [],
    )


def overall(tasks: list[TaskStatus]) -> tuple[PointState, dict[str, int]]:
    counts = {
        s: sum(1 for t in tasks if t.state == s) for s in ("queued", "running", "done", "failed")
    }
    if counts["done"] + counts["failed"] == len(tasks):
        return ("done" if counts["failed"] == 0 else "failed"), counts
    if counts["running"] or counts["done"] or counts["failed"]:
        return "running", counts
    return "queued", counts


def _runs_of(root: Path, project: Path) -> dict[str, Run]:
    """The runs of the capsule unpacked at `root` (and its notebooks as runs), by name."""
    from repro.capsule.reader import parse_manifest
    from repro.notebooks.notebook import notebook_run

    manifest = parse_manifest((root / "repro.json").read_bytes())
    runs = {r.name: r for r in manifest.runs}
    for record in manifest.notebook_results:
        spec = next((nb for nb in manifest.notebooks if nb.path == record.path), None)
        if spec is not None:
            run = notebook_run(spec, record.kernel, record.code_cells)
            runs[run.name] = run
    return runs


def _tasks(record: ReplayRecord, runs: dict[str, Run]) -> dict[tuple[str, int], Task]:
    tasks = {}
    for t in record.tasks:
        run = runs[t.run]
        tasks[(t.job, t.index)] = Task(run, t.index, run.points()[t.index])
    return tasks


def _files(task: Task, project: Path) -> list[str]:
    outputs, _missing = collect_outputs(task.run, task.point, project)
    logs = [f"{STATUS_DIR}/{task.run.name}/{task.index}.{ext}" for ext in ("out", "err", "status")]
    return [rel for rel, _ in outputs] + [p for p in logs if (project / p).is_file()]


def poll(record: ReplayRecord) -> tuple[ReplayStatus, dict[tuple[str, int], Task]]:
    """Every point's state now (finished ones with their files), from this machine's Slurm."""
    project = Path(record.project)
    root = Path(record.workdir) / "capsule"
    if not root.is_dir():
        raise ReplayNotFoundError(f"the working directory of replay {record.id} is gone: {root}")
    tasks = _tasks(record, _runs_of(root, project))
    poll_tasks(Slurm(), tasks, record.jobs, project)
    statuses = []
    for (job, _index), task in tasks.items():
        finished = task.state in ("done", "failed")
        statuses.append(_task_status(job, task, _files(task, project) if finished else None))
    state, counts = overall(statuses)
    return (
        ReplayStatus(
            id=record.id,
            host=record.host,
            capsule=record.capsule,
            state=state,
            counts=counts,
            jobs=record.jobs,
            tasks=statuses,
        ),
        tasks,
    )


def wait(
    check: Callable[[], ReplayStatus], say: Observer, interval: float = POLL_S
) -> ReplayStatus:
    last = ""
    while True:
        status = check()
        line = tally(status.counts)
        if line != last:
            say(f"points: {line}")
            last = line
        if status.state in ("done", "failed"):
            return status
        time.sleep(interval)


def reopen(record: ReplayRecord, scratch: Path, say: Observer) -> Opened:
    """The capsule verified again here (collect judges against what this machine checks)."""
    capsule = Path(record.capsule)
    if not capsule.is_file():
        raise ReplayNotFoundError(
            f"the capsule of replay {record.id} is gone: {capsule}",
            hint="put the capsule back at that path, then: repro collect ID",
        )
    return open_for_replay(
        capsule,
        scratch,
        record.policy(),
        record.runs,
        parse_points(record.points),
        record.offline,
        say,
    )


def judged_report(
    record: ReplayRecord,
    opened: Opened,
    outcomes: list[PointOutcome],
    report_html: Path | None,
    kept: Path | None,
) -> ReplayReport:
    """The normal replay report of a detached replay (its platform: where it was prepared)."""
    prepared = prepared_of(record.prepared)
    judged = judge(opened.manifest, opened.selection, outcomes, opened.root, opened.project)
    elapsed = time.time() - record.started
    report = build_report(
        Path(record.capsule),
        opened,
        "slurm",
        replace(prepared, warnings=[w for w in record.warnings if w not in opened.warnings]),
        judged,
        kept,
        record.started,
        time.perf_counter() - elapsed,
    )
    report = report.model_copy(
        update={
            "started": created_timestamp(int(record.started)),
            "environment_differences": differences(
                opened.manifest,
                record.platform,
                prepared.python_version,
                prepared.installed,
                prepared.python_abi,
            ),
        }
    )
    if report_html is not None:
        write_html(report, opened, report_html)
    return note_in_history(
        report,
        record.platform,
        doi=None,
        concept_doi=None,
        report_html=report_html,
        stamped_doi=opened.manifest.metadata.doi,
    )


def collect(
    record: ReplayRecord, say: Observer, report_html: Path | None = None, block: bool = True
) -> ReplayReport:
    """Wait for every point (or refuse when `block` is off and some still run), judge, and
    remove the working directory (unless kept) and the record."""
    if not block:
        status, _tasks_now = poll(record)
        if status.state not in ("done", "failed"):
            raise ReplayNotFinishedError(
                f"replay {record.id} is not finished: " + tally(status.counts)
            )
    final: dict[tuple[str, int], Task] = {}

    def check() -> ReplayStatus:
        status, tasks = poll(record)
        final.clear()
        final.update(tasks)
        return status

    wait(check, say)
    scratch = Path(tempfile.mkdtemp(prefix=scratch_prefix("collect")))
    try:
        opened = reopen(record, scratch, say)
        project = Path(record.project)
        opened = replace(opened, project=project)
        attach_accounting(Slurm(), final, record.jobs, say)
        outcomes = [outcome_of(t, project) for t in final.values()]
        report = judged_report(
            record, opened, outcomes, report_html, Path(record.workdir) if record.keep else None
        )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    if not record.keep:
        shutil.rmtree(record.workdir, ignore_errors=True)
    forget(record.id)
    return report


def status(record: ReplayRecord) -> ReplayStatus:
    return poll(record)[0]
