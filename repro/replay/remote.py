"""`repro replay --target slurm --host H`: the same replay, driven from a laptop over SSH.

The capsule is uploaded (resumable, sha256-checked there), the same repro is installed there
when missing (repro.remote.install), and that repro verifies, unpacks, prepares and submits
it as a detached replay on the cluster's Slurm. This side keeps its own record, polls
`repro status` there, fetches every finished point's outputs and logs, and judges them here
against the capsule it has, so the report is the one a replay on the cluster itself gives.
Ctrl-C or SIGTERM cancels the jobs there (scancel over SSH) and removes what was made there.
"""

from __future__ import annotations

import contextlib
import json
import posixpath
import secrets
import shlex
import shutil
import tempfile
import time
from pathlib import Path

from pydantic import ValidationError

from repro.errors import (
    ExitCode,
    ReproError,
    ServiceUnavailableError,
    UsageError,
)
from repro.execution.runs import remove_stale_outputs
from repro.paths import scratch_prefix
from repro.remote.clusters import resolve_host
from repro.remote.host import HostSpec, HostUnreachableError, RemoteCommandError, RemoteHost
from repro.remote.install import ensure_repro
from repro.remote.transfer import download, upload
from repro.replay.detached import (
    RemoteRef,
    ReplayRecord,
    forget,
    judged_report,
    new_id,
    reopen,
    save,
    wait,
)
from repro.replay.pipeline import ReplayOptions
from repro.replay.targets import Observer
from repro.replay.targets.slurm import Task, outcome_of
from repro.report.detached import DetachedReplay, ReplayList, ReplayStatus
from repro.report.replay import ReplayReport
from repro.scheduler.slurm import TaskState

REMOTE_POLL_S = 2.0
"""Between two `repro status` there (each one an SSH round trip and a Python start)."""


class NoSlurmOnHostError(ServiceUnavailableError):
    default_hint = "submit to the cluster's login node (the one with sbatch), or check its PATH"


class RemoteReproError(ReproError):
    """repro on the far side failed with exit 1; the subclasses carry its other codes."""


class RemoteUsageError(RemoteReproError):
    exit_code = ExitCode.USAGE


class RemoteCapsuleError(RemoteReproError):
    exit_code = ExitCode.INVALID_CAPSULE


class RemoteServiceError(RemoteReproError):
    exit_code = ExitCode.SERVICE_UNAVAILABLE


_BY_CODE: dict[int, type[RemoteReproError]] = {
    ExitCode.USAGE: RemoteUsageError,
    ExitCode.INVALID_CAPSULE: RemoteCapsuleError,
    ExitCode.SERVICE_UNAVAILABLE: RemoteServiceError,
}


def _connect(host_value: str) -> tuple[HostSpec, RemoteHost]:
    spec = resolve_host(host_value)
    return spec, RemoteHost(spec)


def _repro_json(
    host: RemoteHost,
    argv: list[str],
    what: str,
    timeout: float = 3600,
    say: Observer | None = None,
    pidfile: str | None = None,
) -> bytes:
    """Run repro there with --json (its progress lines to `say`); its own failures become
    the same error here. `pidfile`: where the far process writes its pid (to interrupt it)."""
    relay = None
    if say is not None:
        label = host.spec.label

        def relay(line: str) -> None:
            if line.startswith("· "):  # its progress; its warnings come back in the JSON
                say(f"{label}: {line[2:]}")

    command = shlex.join(argv)
    if pidfile is not None:
        command = f"echo $$ > {shlex.quote(pidfile)} && exec {command}"
    answer = host.run(command, timeout=timeout, check=False, what=what, on_stderr=relay)
    out = answer.stdout.strip()
    try:
        payload = json.loads(out) if out else None
    except json.JSONDecodeError:
        payload = None
    if isinstance(payload, dict) and payload.get("ok") is False:
        cls = _BY_CODE.get(int(payload.get("exit_code", 1)), RemoteReproError)
        raise cls(f"on {host.spec.label}: {payload.get('error', '')}", hint=payload.get("hint"))
    if not answer.ok and answer.returncode not in (ExitCode.OK, ExitCode.NOT_REPRODUCED):
        raise host.command_failed(answer, what)
    return out


def _remote_args(opts: ReplayOptions, spec: HostSpec) -> list[str]:
    args: list[str] = []
    for name in opts.runs:
        args += ["--run", name]
    for point in opts.points:
        args += ["--point", point]
    settings = opts.slurm
    partition = settings.partition or spec.partition
    account = settings.account or spec.account
    if partition:
        args += ["--partition", partition]
    if account:
        args += ["--account", account]
    if settings.array_limit:
        args += ["--array-limit", str(settings.array_limit)]
    for name in opts.pass_env:
        args += ["--pass-env", name]
    for flag, on in (
        ("--no-sandbox", opts.no_sandbox),
        ("--offline", opts.offline),
        ("--require-signed", opts.policy.require_signed),
        ("--require-trusted", opts.policy.require_trusted),
    ):
        if on:
            args.append(flag)
    return args


def _far_workdir(spec: HostSpec, home: str) -> str:
    chosen = spec.workdir or "~/repro-replays"
    if chosen == "~" or chosen.startswith("~/"):
        chosen = home + chosen[1:]
    if not chosen.startswith("/"):
        raise UsageError(f"the workdir of {spec.label} must be absolute or start with ~/")
    return chosen


def submit(opts: ReplayOptions, host_value: str, say: Observer) -> tuple[ReplayRecord, RemoteHost]:
    """Upload, install repro there when needed, submit there detached; the record (saved
    here) and the open connection."""
    if opts.attest is not None:
        raise UsageError("--attest is not available with --host yet", hint="replay without --host")
    if opts.workdir is not None:
        raise UsageError(
            "--workdir names a folder here; on a cluster set its workdir in config.toml",
            hint="[clusters.NAME] workdir = '/scratch/me/repro' in ~/.config/repro/config.toml",
        )
    started = time.time()
    spec, host = _connect(host_value)
    capsule = opts.capsule.absolute()
    try:
        home = host.home()  # reachable, logged in
        if not host.has("sbatch"):
            raise NoSlurmOnHostError(f"sbatch not found on {spec.label}: no Slurm there")
        exe = ensure_repro(host, spec.python, say)
        say(f"copying {capsule.name} to {spec.label}")
        sent = upload(host, capsule, f"{home}/.cache/repro/capsules", say=say)
        # A folder of this submission's own: an interrupted submission finds what it made.
        token = f"{time.strftime('%Y%m%d', time.gmtime())}-{secrets.token_hex(4)}"
        workdir = f"{_far_workdir(spec, home)}/{token}"
        argv = [exe, "replay", sent.remote_path, "--target", "slurm", "--detach", "--json"]
        argv += ["--workdir", workdir, *_remote_args(opts, spec)]
        say(f"submitting on {spec.label}")
        pidfile = f"{home}/.cache/repro/submit-{token}.pid"
        try:
            out = _repro_json(host, argv, "submitting the replay", say=say, pidfile=pidfile)
        except BaseException:
            _interrupt_far(host, pidfile, exe, workdir, say)
            raise
        host.run(f"rm -f {shlex.quote(pidfile)}", check=False)
        try:
            far = DetachedReplay.model_validate_json(out)
        except ValidationError:
            raise RemoteCommandError(
                f"repro on {spec.label} answered something else than a submitted replay"
            ) from None
        record = ReplayRecord(
            id=new_id(),
            started=started,
            capsule=str(capsule),
            capsule_id=far.capsule_id,
            host=host_value,
            remote=RemoteRef(
                id=far.id,
                repro=exe,
                capsule=sent.remote_path,
                workdir=far.workdir,
                project=far.project,
                record=far.record,
            ),
            workdir=far.workdir,
            project=far.project,
            runs=opts.runs,
            points=opts.points,
            require_signed=opts.policy.require_signed,
            require_trusted=opts.policy.require_trusted,
            offline=opts.offline,
            keep=opts.keep,
            jobs=far.jobs,
            tasks=far.tasks,
            prepared=far.prepared,
            platform=far.platform,
            warnings=far.warnings,
        )
        try:
            save(record)
        except BaseException:
            _cancel_far(host, record, say)
            raise
    except BaseException:
        host.close()
        raise
    say(f"submitted replay {record.id} on {spec.label}: Slurm job(s) {', '.join(far.jobs)}")
    return record, host


def _interrupt_far(host: RemoteHost, pidfile: str, exe: str, workdir: str, say: Observer) -> None:
    """Ctrl-C for the repro submitting there (its own cleanup cancels what it submitted);
    then whatever it had already submitted into `workdir` (this submission's own folder) is
    cancelled and removed too."""
    q = shlex.quote(pidfile)
    script = (
        f'pid=$(cat {q} 2>/dev/null) && [ -n "$pid" ] && kill -INT "$pid" 2>/dev/null && '
        f'for i in $(seq 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done; '
        f"rm -f {q}"
    )
    with contextlib.suppress(ReproError):  # unreachable now: nothing more to do from here
        host.run(script, check=False, timeout=60, what="interrupting the submission")
        answer = host.run(shlex.join([exe, "status", "--json"]), check=False, timeout=120)
        try:
            listed = ReplayList.model_validate_json(answer.stdout)
        except ValidationError:
            listed = ReplayList(replays=[])
        for far in listed.replays:
            if far.workdir.startswith(workdir + "/"):
                jobs = " ".join(shlex.quote(j) for j in far.jobs)
                host.run(f"scancel {jobs}; rm -f -- {shlex.quote(far.record)}", check=False)
                say(f"cancelled Slurm job(s) {', '.join(far.jobs)} on {host.spec.label}")
        host.run(f"rm -rf -- {shlex.quote(workdir)}", check=False)


def _cleanup_far(far: RemoteRef) -> str:
    """The shell command removing a replay's folder (and its submission's folder, then
    empty) and its record there."""
    parent = shlex.quote(posixpath.dirname(far.workdir))
    return (
        f"rm -rf -- {shlex.quote(far.workdir)}; rmdir -- {parent} 2>/dev/null; "
        f"rm -f -- {shlex.quote(far.record)}"
    )


def _remote(record: ReplayRecord) -> RemoteRef:
    if record.remote is None:
        raise RuntimeError("not a replay sent over SSH")
    return record.remote


def status(record: ReplayRecord, host: RemoteHost, attempts: int = 4) -> ReplayStatus:
    """The replay's state there; a connection that drops for a moment (a laptop on wifi) is
    tried again a few times before it counts."""
    far = _remote(record)
    argv = [far.repro, "status", far.id, "--json"]
    for attempt in range(attempts):
        try:
            out = _repro_json(host, argv, "repro status", 300)
            break
        except HostUnreachableError:
            if attempt == attempts - 1:
                raise
            time.sleep(2**attempt)
    try:
        got = ReplayStatus.model_validate_json(out)
    except ValidationError:
        raise RemoteCommandError(f"repro status on {host.spec.label} answered nonsense") from None
    return got.model_copy(update={"id": record.id, "host": record.host, "capsule": record.capsule})


def _cancel_far(host: RemoteHost, record: ReplayRecord, say: Observer) -> None:
    """scancel the jobs there and remove the replay's folder and record there."""
    far = _remote(record)
    jobs = " ".join(shlex.quote(j) for j in record.jobs)
    cleanup = _cleanup_far(far)
    try:
        host.run(f"scancel {jobs}; {cleanup}", check=False, timeout=60, what="scancel")
        say(f"cancelled Slurm job(s) {', '.join(record.jobs)} on {host.spec.label}")
    except ReproError as exc:
        say(f"could not cancel the jobs on {host.spec.label}: {exc.message}")


def cancel(record: ReplayRecord, host: RemoteHost, say: Observer) -> None:
    _cancel_far(host, record, say)
    forget(record.id)


def collect(
    record: ReplayRecord,
    host: RemoteHost,
    say: Observer,
    report_html: Path | None = None,
) -> ReplayReport:
    """Wait there, fetch the outputs, judge here; then remove the replay there."""
    final = wait(lambda: status(record, host), say, REMOTE_POLL_S)
    far = _remote(record)
    # Kept (--keep): a folder the sweep of dead processes' scratch leaves alone.
    prefix = "repro-collect-" if record.keep else scratch_prefix("collect")
    scratch = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        opened = reopen(record, scratch, say)
        runs = {r.name: r for r in opened.selection.runs + opened.notebook_runs}
        tasks = []
        for t in final.tasks:
            run = runs.get(t.run)
            if run is None:
                raise RemoteCommandError(f"{host.spec.label} reports an unknown run {t.run!r}")
            point = run.points()[t.index]
            remove_stale_outputs(run, [point], opened.project)
            state: TaskState = "done" if t.state == "done" else "failed"
            tasks.append(Task(run, t.index, point, state, t.exit_code, t.duration_s, t.note))
        files = sorted({f for t in final.tasks for f in t.files})
        say(f"fetching {len(files)} file(s) from {host.spec.label}")
        download(host, far.project, files, opened.project)
        outcomes = [outcome_of(t, opened.project) for t in tasks]
        kept = scratch if record.keep else None
        report = judged_report(record, opened, outcomes, report_html, kept)
    finally:
        if not record.keep:
            shutil.rmtree(scratch, ignore_errors=True)
    if not record.keep:
        host.run(_cleanup_far(far), check=False, what="cleaning up")
    forget(record.id)
    return report


def connect(record: ReplayRecord) -> RemoteHost:
    if record.host is None:
        raise RuntimeError("not a replay sent over SSH")
    return _connect(record.host)[1]


def replay(opts: ReplayOptions, host_value: str, say: Observer) -> ReplayReport:
    """Submit there, wait, collect; Ctrl-C/SIGTERM cancels there and cleans up."""
    record, host = submit(opts, host_value, say)
    try:
        try:
            return collect(record, host, say, opts.report_html)
        except BaseException:
            cancel(record, host, say)
            raise
    finally:
        host.close()
