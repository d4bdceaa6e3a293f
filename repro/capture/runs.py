"""Execute a study's runs (every sweep point, in parallel) and record their results."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

from repro.errors import OutputMissingError, RunFailedError, RunTimeoutError
from repro.models import Run, SweepValue, format_value, point_id, render

TAIL_CHARS = 4000
KILL_GRACE_S = 5.0
# Variables that would make the run see another environment than the one recorded.
SCRUBBED = (
    "PYTHONPATH",
    "PYTHONHOME",
    "PYTHONSTARTUP",
    "PYTHONUSERBASE",
    "VIRTUAL_ENV",
    "CONDA_PREFIX",
    "PIP_REQUIRE_VIRTUALENV",
)


@dataclass(frozen=True)
class PointOutcome:
    run: str
    point: dict[str, SweepValue]
    point_id: str
    command: str
    exit_code: int
    duration_s: float
    stdout_tail: str
    stderr_tail: str
    outputs: list[tuple[str, Path]]
    """(project-relative output path, where the file is now)."""


@dataclass(frozen=True)
class RunEnvironment:
    """Where runs find their interpreter: a venv's bin folder (or this interpreter's)."""

    bin_dir: Path
    venv_root: Path | None


def _tail(path: Path) -> str:
    with path.open("rb") as fh:
        fh.seek(0, os.SEEK_END)
        size = fh.tell()
        fh.seek(max(0, size - TAIL_CHARS * 4))
        text = fh.read().decode("utf-8", errors="replace")
    return text[-TAIL_CHARS:]


def run_environment(env: RunEnvironment, point: dict[str, SweepValue]) -> dict[str, str]:
    variables = {k: v for k, v in os.environ.items() if k not in SCRUBBED}
    variables["PATH"] = f"{env.bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"
    variables["PYTHONNOUSERSITE"] = "1"
    if env.venv_root is not None:
        variables["VIRTUAL_ENV"] = str(env.venv_root)
    variables["REPRO_POINT"] = point_id(point)
    for key, value in point.items():
        variables[f"REPRO_PARAM_{key.upper()}"] = format_value(value)
    return variables


class _LiveProcesses:
    """Processes of runs in flight, so an interrupt (Ctrl-C) or a failure can stop them all."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._procs: set[subprocess.Popen[bytes]] = set()

    def add(self, proc: subprocess.Popen[bytes]) -> None:
        with self._lock:
            self._procs.add(proc)

    def discard(self, proc: subprocess.Popen[bytes]) -> None:
        with self._lock:
            self._procs.discard(proc)

    def kill_all(self) -> None:
        with self._lock:
            procs = list(self._procs)
        for proc in procs:
            _kill(proc)


def _kill(proc: subprocess.Popen[bytes]) -> None:
    """Stop the whole process group: a shell's children must not outlive the run."""
    for sig, grace in ((signal.SIGTERM, KILL_GRACE_S), (signal.SIGKILL, None)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        if grace is None:
            proc.wait()
            return
        try:
            proc.wait(timeout=grace)
            return
        except subprocess.TimeoutExpired:
            continue


def execute_point(
    run: Run,
    point: dict[str, SweepValue],
    workdir: Path,
    env: RunEnvironment,
    live: _LiveProcesses | None = None,
) -> PointOutcome:
    """Run one point's command in workdir; fail with its stderr tail, or a missing output."""
    command = render(run.command, point)
    pid = point_id(point)
    label = run.name if not point else f"{run.name} [{pid}]"
    with tempfile.TemporaryDirectory(prefix="repro-run-") as logs:
        out_path, err_path = Path(logs) / "stdout", Path(logs) / "stderr"
        with out_path.open("wb") as out, err_path.open("wb") as err:
            start = time.monotonic()
            proc = subprocess.Popen(
                ["/bin/sh", "-c", command],
                cwd=workdir,
                env=run_environment(env, point),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                start_new_session=True,
            )
            if live is not None:
                live.add(proc)
            try:
                code = proc.wait(timeout=run.timeout)
            except subprocess.TimeoutExpired:
                _kill(proc)
                raise RunTimeoutError(
                    f"run {label} timed out after {run.timeout:g} s: {_last_line(_tail(err_path))}"
                ) from None
            except BaseException:
                _kill(proc)
                raise
            finally:
                if live is not None:
                    live.discard(proc)
            duration = time.monotonic() - start
        stdout_tail, stderr_tail = _tail(out_path), _tail(err_path)
    if code != 0:
        raise RunFailedError(
            f"run {label} failed with exit code {code}: {_last_line(stderr_tail)}",
        )
    outputs = []
    for template in run.outputs:
        rel = render(template, point)
        produced = workdir / rel
        if not produced.is_file():
            raise OutputMissingError(f"run {label} did not produce its output {rel}")
        outputs.append((rel, produced))
    return PointOutcome(
        run.name, point, pid, command, code, duration, stdout_tail, stderr_tail, outputs
    )


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return lines[-1] if lines else "(no output on stderr)"


def execute_runs(
    runs: list[Run],
    workdir: Path,
    env: RunEnvironment,
    *,
    jobs: int = 1,
    on_point: Callable[[PointOutcome], None] | None = None,
) -> list[PointOutcome]:
    """Every run in order (a later run may read an earlier one's outputs); within a run,
    every sweep point, `jobs` at a time. The first failure cancels what has not started."""
    outcomes: list[PointOutcome] = []
    for run in runs:
        for template in run.outputs:
            for point in run.points():
                stale = workdir / render(template, point)
                if stale.is_file() or stale.is_symlink():
                    stale.unlink()
        outcomes += _run_points(run, workdir, env, jobs, on_point)
    return outcomes


def _run_points(
    run: Run,
    workdir: Path,
    env: RunEnvironment,
    jobs: int,
    on_point: Callable[[PointOutcome], None] | None,
) -> list[PointOutcome]:
    live = _LiveProcesses()
    pool = ThreadPoolExecutor(max_workers=max(1, jobs), thread_name_prefix=f"run-{run.name}")
    futures = [pool.submit(execute_point, run, p, workdir, env, live) for p in run.points()]
    try:
        wait(futures, return_when=FIRST_EXCEPTION)
        failed = next((f for f in futures if f.done() and f.exception() is not None), None)
        if failed is not None:
            raise failed.exception()  # type: ignore[misc]
    except BaseException:
        # A failed point or Ctrl-C: nothing new starts, and what runs is stopped now.
        for future in futures:
            future.cancel()
        live.kill_all()
        pool.shutdown(wait=True)
        raise
    pool.shutdown(wait=True)
    outcomes = []
    for future in futures:
        outcome = future.result()
        outcomes.append(outcome)
        if on_point:
            on_point(outcome)
    return outcomes


def stage_project(files: list[tuple[str, Path, str | None]], stage: Path) -> None:
    """Copy the captured files into a fresh working folder (links kept as links)."""
    for rel, src, link in files:
        target = stage / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if link is not None:
            target.symlink_to(link)
        else:
            shutil.copy2(src, target)
