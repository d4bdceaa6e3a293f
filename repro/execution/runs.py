"""Execute a study's runs (every sweep point, in parallel) through a command runner."""

from __future__ import annotations

import functools
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from repro import progress
from repro.config.models import Run, point_id, point_variables_for, render
from repro.execution.cgroups import enter_prefix, own_cgroup
from repro.execution.environment import Allowlist, run_environment, standard_path
from repro.execution.measure import supervise
from repro.execution.outputs import expand, is_pattern
from repro.execution.sandbox import NoSandbox, Sandbox, SandboxSpec, interpreter_prefix
from repro.execution.stream import Echo, FileFollower, LineSink, bound
from repro.model_base import SweepValue
from repro.paths import cache_dir, config_dir, scratch_prefix
from repro.resource_usage import ResourceUsage
from repro.scheduler.records import SacctRecord

TAIL_CHARS = 4000
KILL_GRACE_S = 5.0


@dataclass(frozen=True)
class CommandResult:
    exit_code: int | None
    """None when the command was stopped at its timeout."""
    duration_s: float
    stdout_tail: str
    stderr_tail: str
    usage: ResourceUsage | None = None
    """What the command used and what ended it (repro.execution.measure); None where it was
    not measured."""

    @property
    def timed_out(self) -> bool:
        return self.exit_code is None


@dataclass(frozen=True)
class PointOutcome:
    run: str
    point: dict[str, SweepValue]
    point_id: str
    command: str
    result: CommandResult
    outputs: list[tuple[str, Path]]
    """(project-relative output path, where the file is now), for outputs produced."""
    missing: list[str]
    """Declared outputs the command did not produce."""
    accounting: SacctRecord | None = None
    """What Slurm's accounting recorded for the task (slurm target, where sacct answers)."""

    @property
    def label(self) -> str:
        return self.run if not self.point else f"{self.run} [{self.point_id}]"


class Stoppable(Protocol):
    def stop(self) -> None: ...


@dataclass
class InFlight:
    """What is running right now, so an interrupt (Ctrl-C) or a failure can stop it all."""

    _lock: threading.Lock = field(default_factory=threading.Lock)
    _items: set[Stoppable] = field(default_factory=set)
    _closed: bool = False

    def add(self, item: Stoppable) -> None:
        """Track `item`; after stop_all, stop it at once (it started too late to be let run)."""
        with self._lock:
            closed = self._closed
            if not closed:
                self._items.add(item)
        if closed:
            item.stop()

    def discard(self, item: Stoppable) -> None:
        with self._lock:
            self._items.discard(item)

    def stop_all(self) -> None:
        with self._lock:
            self._closed = True
            items = list(self._items)
        for item in items:
            item.stop()


class CommandRunner(Protocol):
    """Runs one shell command for one sweep point: on this machine, or in a container;
    each line it writes goes to `echo` as it is written, when one is given."""

    def run(
        self,
        command: str,
        workdir: Path,
        variables: dict[str, str],
        timeout: float,
        run: Run,
        in_flight: InFlight,
        echo: LineSink | None = None,
    ) -> CommandResult: ...


def tail_of(path: Path) -> str:
    with path.open("rb") as fh:
        fh.seek(0, os.SEEK_END)
        size = fh.tell()
        fh.seek(max(0, size - TAIL_CHARS * 4))
        text = fh.read().decode("utf-8", errors="replace")
    return text[-TAIL_CHARS:]


class _Process:
    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.proc = proc

    def stop(self) -> None:
        """Stop the whole process group: a shell's children must not outlive the run."""
        for sig, grace in ((signal.SIGTERM, KILL_GRACE_S), (signal.SIGKILL, None)):
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                return
            if grace is None:
                self.proc.wait()
                return
            try:
                self.proc.wait(timeout=grace)
                return
            except subprocess.TimeoutExpired:
                continue


@dataclass(frozen=True)
class LocalRunner:
    """Commands run with /bin/sh on this machine, with a venv's bin folder first on PATH, the
    allowlisted environment (repro.execution.environment) and a fresh private HOME, inside
    `sandbox` (NoSandbox: as they are)."""

    bin_dir: Path
    venv_root: Path | None
    allowlist: Allowlist = field(default_factory=Allowlist)
    sandbox: Sandbox = field(default_factory=NoSandbox)
    measure: bool = True
    """Give each command a cgroup of its own where one can be made (else rusage+sampling)."""

    def environment(self, variables: Mapping[str, str], home: Path) -> dict[str, str]:
        own = {"PYTHONNOUSERSITE": "1"}
        if self.venv_root is not None:
            own["VIRTUAL_ENV"] = str(self.venv_root)
        return run_environment(
            self.allowlist,
            home=str(home),
            path=self._path,
            variables={**own, **variables},
        )

    @functools.cached_property
    def _path(self) -> str:
        return standard_path(str(self.bin_dir))

    def sandbox_spec(self, workdir: Path, home: Path, run: Run) -> SandboxSpec:
        """What a sandboxed point may use: its work tree and HOME, the venv read-only."""
        shown, hidden = self._shown_hidden
        return SandboxSpec(workdir, home, shown, hidden, run.network)

    @functools.cached_property
    def _shown_hidden(self) -> tuple[tuple[Path, ...], tuple[Path, ...]]:
        """The folders every point is shown read-only and those hidden: the same for every
        point, so worked out once (pyvenv.cfg read once, not once per point)."""
        shown: list[Path] = [self.bin_dir]
        if self.venv_root is not None:
            shown.append(self.venv_root)
            prefix = interpreter_prefix(self.venv_root)
            if prefix is not None:
                shown.append(prefix)
        return tuple(shown), (Path.home(), cache_dir(), config_dir())

    def run(
        self,
        command: str,
        workdir: Path,
        variables: dict[str, str],
        timeout: float,
        run: Run,
        in_flight: InFlight,
        echo: LineSink | None = None,
    ) -> CommandResult:
        with tempfile.TemporaryDirectory(prefix=scratch_prefix("run")) as scratch:
            out_path, err_path = Path(scratch) / "stdout", Path(scratch) / "stderr"
            home = Path(scratch) / "home"
            home.mkdir()
            argv = ["/bin/sh", "-c", command]
            if self.sandbox.isolation != "none":
                argv = self.sandbox.wrap(argv, self.sandbox_spec(workdir, home, run))
            # A cgroup of its own where one can be made (measured exactly), else rusage and
            # sampling: docs/resources.md.
            cgroup = own_cgroup() if self.measure else None
            if cgroup is not None:
                argv = [*enter_prefix(cgroup), *argv]
            # Read from the wait loop below (no thread per point): docs/terminal.md.
            follower = (
                FileFollower({"stdout": out_path, "stderr": err_path}, echo)
                if echo is not None
                else None
            )
            try:
                with out_path.open("wb") as out, err_path.open("wb") as err:
                    start = time.monotonic()
                    proc = subprocess.Popen(
                        argv,
                        cwd=workdir,
                        env=self.environment(variables, home),
                        stdin=subprocess.DEVNULL,
                        stdout=out,
                        stderr=err,
                        start_new_session=True,
                    )
                    handle = _Process(proc)
                    in_flight.add(handle)
                    try:
                        done = supervise(
                            proc,
                            timeout,
                            cgroup=cgroup,
                            kill_grace=KILL_GRACE_S,
                            memory_limit=run.resources.memory,
                            started=start,
                            tick=follower.poll if follower is not None else None,
                        )
                    except BaseException:
                        handle.stop()
                        raise
                    finally:
                        in_flight.discard(handle)
                    duration = time.monotonic() - start
            finally:
                if follower is not None:
                    follower.finish()  # its files closed on Ctrl-C too
                if cgroup is not None:
                    # In the background: a sandbox's last process may still be leaving it.
                    cgroup.remove_later()
            return CommandResult(
                done.exit_code, duration, tail_of(out_path), tail_of(err_path), done.usage
            )


def execute_point(
    run: Run,
    point: dict[str, SweepValue],
    workdir: Path,
    runner: CommandRunner,
    in_flight: InFlight,
    variables: Mapping[str, str] | None = None,
    echo: Echo | None = None,
) -> PointOutcome:
    """Run one point's command in workdir and see which declared outputs it produced;
    `variables` (SOURCE_DATE_EPOCH) are given to every point, under its own; its output
    lines go to `echo` as they come, labelled with the point (`seed=3`)."""
    command = render(run.command, point)
    # Unbuffered: a Python study's lines reach the files (and the echo) as it prints them.
    env = {"PYTHONUNBUFFERED": "1", **(variables or {}), **point_variables_for(point)}
    sink = bound(echo, point_id(point) if point else "")
    result = runner.run(command, workdir, env, run.timeout, run, in_flight, sink)
    outputs, missing = collect_outputs(run, point, workdir)
    return PointOutcome(run.name, point, point_id(point), command, result, outputs, missing)


def collect_outputs(
    run: Run, point: dict[str, SweepValue], workdir: Path
) -> tuple[list[tuple[str, Path]], list[str]]:
    """The point's outputs that exist (with their paths; each file matched by a folder or
    glob entry is one), and the entries that named nothing (a path, or a pattern that
    matched no file)."""
    outputs: list[tuple[str, Path]] = []
    missing: list[str] = []
    seen: set[str] = set()
    for template in run.outputs:
        rel = render(template, point)
        if is_pattern(rel):
            found = expand(rel, workdir)
            if not found:
                missing.append(rel)
            for match in found:
                if match not in seen:
                    seen.add(match)
                    outputs.append((match, workdir / match))
            continue
        produced = workdir / rel
        if produced.is_file():
            if rel not in seen:
                seen.add(rel)
                outputs.append((rel, produced))
        else:
            missing.append(rel)
    return outputs, missing


FOLD_POINTS = 20
"""A run with more points than this is said in one line when it ends (PointLines)."""


class PointLines:
    """What capture and replay say as points end (an `on_point`): `ran RUN [point] in 0.1 s`
    per point for a run of up to FOLD_POINTS points; for a larger sweep, only the points
    that did not exit 0 and then one line for the run (`ran 1000 points of tiny: every one
    exited 0; median 0.02 s, longest 0.1 s`). Points come run by run; call `flush` after the
    last one."""

    def __init__(self, say: Callable[[str], None]) -> None:
        self.say = say
        self._run: str | None = None
        self._pending: list[PointOutcome] = []

    def __call__(self, outcome: PointOutcome) -> None:
        if outcome.run != self._run:
            self.flush()
            self._run = outcome.run
        self._pending.append(outcome)

    def flush(self) -> None:
        pending, self._pending = self._pending, []
        if len(pending) <= FOLD_POINTS:
            for o in pending:
                self.say(_ran(o))
            return
        failed = [o for o in pending if o.result.exit_code != 0]
        for o in failed:
            self.say(_ran(o))
        times = sorted(o.result.duration_s for o in pending)
        ended = (
            "every one exited 0"
            if not failed
            else f"{len(pending) - len(failed)} exited 0, {len(failed)} did not"
        )
        self.say(
            f"ran {len(pending)} points of {pending[0].run}: {ended}; "
            f"median {times[len(times) // 2]:.2f} s, longest {times[-1]:.2f} s"
        )


def _ran(o: PointOutcome) -> str:
    code = o.result.exit_code
    return f"ran {o.label} in {o.result.duration_s:.1f} s" + (
        "" if code == 0 else f" [exit {code}]"
    )


def remove_stale_outputs(run: Run, points: list[dict[str, SweepValue]], workdir: Path) -> None:
    """A file left from before must not pass for an output the command did not write."""
    for template in run.outputs:
        for point in points:
            rel = render(template, point)
            for stale_rel in expand(rel, workdir) if is_pattern(rel) else [rel]:
                stale = workdir / stale_rel
                if stale.is_file() or stale.is_symlink():
                    stale.unlink()


TAIL_LINES = 6
"""Lines of stdout a failure shows."""
STDERR_TAIL_LINES = 15
"""Lines of stderr a failure shows (a Python traceback fits)."""


def describe_failure(outcome: PointOutcome, timeout: float) -> str | None:
    """Capture's rule: a point that failed, timed out or left out a declared output, in a
    few lines (what happened, then the tails of stderr and stdout); None when it did not."""
    r = outcome.result
    if r.timed_out:
        head = f"run {outcome.label} timed out after {timeout:g} s"
    elif r.exit_code != 0:
        head = f"run {outcome.label} failed with exit code {r.exit_code}"
    elif outcome.missing:
        what = outcome.missing[0]
        verb = "matched no file" if is_pattern(what) else "was not produced"
        more = f" (and {len(outcome.missing) - 1} more)" if len(outcome.missing) > 1 else ""
        return f"run {outcome.label}: its output {what} {verb}{more}"
    else:
        return None
    return "\n".join(
        [
            head,
            *tail_block("stderr", r.stderr_tail, STDERR_TAIL_LINES),
            *tail_block("stdout", r.stdout_tail),
        ]
    )


def tail_block(stream: str, text: str, lines: int = TAIL_LINES) -> list[str]:
    """'  stderr: (last N lines)' and those lines, indented; nothing when the stream is empty."""
    kept = [ln.rstrip() for ln in text.splitlines() if ln.strip()][-lines:]
    if not kept:
        return [f"  {stream}: (empty)"]
    return [f"  {stream} (last {len(kept)} line(s)):", *(f"    {ln}" for ln in kept)]


def execute_runs(
    runs: list[Run],
    workdir: Path,
    runner: CommandRunner,
    *,
    jobs: int = 1,
    select: Callable[[Run, dict[str, SweepValue]], bool] | None = None,
    on_point: Callable[[PointOutcome], None] | None = None,
    variables: Mapping[str, str] | None = None,
    echo: Echo | None = None,
) -> list[PointOutcome]:
    """Every run in order (a later run may read an earlier one's outputs); within a run,
    every (selected) sweep point, `jobs` at a time. A failing point stops nothing: every
    point runs and failures are in the outcomes (capture reports them all at once, replay
    judges them). `variables` are set for every point (SOURCE_DATE_EPOCH); `echo` gets
    every point's output lines as they are written.
    """
    outcomes: list[PointOutcome] = []
    for run in runs:
        points = [p for p in run.points() if select is None or select(run, p)]
        remove_stale_outputs(run, points, workdir)
        outcomes += _run_points(run, points, workdir, runner, jobs, on_point, variables or {}, echo)
    return outcomes


def _run_points(
    run: Run,
    points: list[dict[str, SweepValue]],
    workdir: Path,
    runner: CommandRunner,
    jobs: int,
    on_point: Callable[[PointOutcome], None] | None,
    variables: Mapping[str, str],
    echo: Echo | None = None,
) -> list[PointOutcome]:
    in_flight = InFlight()
    # A count with a rate and an ETA while a sweep runs (drawn by the CLI; docs/terminal.md).
    with progress.meter(f"running {run.name}", total=len(points), unit="points") as meter:

        def one(point: dict[str, SweepValue]) -> PointOutcome:
            outcome = execute_point(run, point, workdir, runner, in_flight, variables, echo)
            meter.advance()
            return outcome

        outcomes = _gather(run, points, one, jobs, in_flight)
    for outcome in outcomes:
        if on_point:
            on_point(outcome)
    return outcomes


def _gather(
    run: Run,
    points: list[dict[str, SweepValue]],
    one: Callable[[dict[str, SweepValue]], PointOutcome],
    jobs: int,
    in_flight: InFlight,
) -> list[PointOutcome]:
    pool = ThreadPoolExecutor(max_workers=max(1, jobs), thread_name_prefix=f"run-{run.name}")
    futures: list[Future[PointOutcome]] = [pool.submit(one, p) for p in points]
    try:
        wait(futures, return_when=FIRST_EXCEPTION)
        failed = next((f for f in futures if f.done() and f.exception() is not None), None)
        if failed is not None:
            raise failed.exception()  # type: ignore[misc]
    except BaseException:
        # Ctrl-C (or a bug): nothing new starts, what runs is stopped now.
        for future in futures:
            future.cancel()
        in_flight.stop_all()
        pool.shutdown(wait=True)
        raise
    pool.shutdown(wait=True)
    return [future.result() for future in futures]


def stage_project(files: list[tuple[str, Path, str | None]], stage: Path) -> None:
    """Copy the captured files into a fresh working folder (links kept as links)."""
    for rel, src, link in files:
        target = stage / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if link is not None:
            target.symlink_to(link)
        else:
            shutil.copy2(src, target)
