"""Slurm behind the scheduler interface: sbatch arrays, squeue/scontrol status, scancel.

No accounting is assumed (sacct is often unavailable): running and pending tasks come from
squeue, finished ones from the status files the batch script writes, and scontrol fills in
what a task that died before writing one (timeout, cancel) was. Where sacct answers, its
records are read once the array is over (repro.scheduler.accounting).
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

from repro.errors import ReproError, ServiceUnavailableError
from repro.execution.tools import Completed, run_tool
from repro.scheduler.accounting import job_accounting
from repro.scheduler.records import SacctRecord

SBATCH_ENV = ("SLURM_CONF",)
"""What sbatch itself needs of repro's environment to find the cluster (also seen by jobs)."""
TaskState = Literal["pending", "running", "done", "failed", "unknown"]
SLURM_HINT = "install the Slurm client (sbatch, squeue, scancel) or replay with --target local"


class SchedulerError(ReproError):
    default_hint = "check the partition, account and resources the run asks for"


@dataclass(frozen=True)
class Submission:
    script: Path
    workdir: Path
    indices: list[int]
    array_limit: int | None
    export: dict[str, str]
    partition: str | None = None
    account: str | None = None
    time_limit: str | None = None
    after: list[str] | None = None
    """Job ids this array must wait for (the runs before it)."""


class Scheduler(Protocol):
    """Submit array jobs, see their tasks, cancel them."""

    def submit_array(self, submission: Submission) -> str: ...

    def queued(self, job_ids: list[str]) -> dict[tuple[str, int], TaskState]: ...

    def final_state(self, job_id: str, index: int) -> tuple[str, int | None]: ...

    def cancel(self, job_ids: list[str]) -> None: ...

    def accounting(self, job_id: str) -> dict[int | None, SacctRecord] | None: ...


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise ServiceUnavailableError(
            f"{name} not found: Slurm is not available here", hint=SLURM_HINT
        )
    return path


def _run(cmd: list[str], timeout: float = 60, env: dict[str, str] | None = None) -> Completed:
    """A Slurm client's answer, any exit code; one that hangs is a controller not answering."""
    name = Path(cmd[0]).name
    return run_tool(
        cmd,
        name,
        timeout=timeout,
        env=env,
        error=functools.partial(ServiceUnavailableError, hint=SLURM_HINT),
        check=False,
        timed_out=lambda limit: ServiceUnavailableError(
            f"{name} did not answer within {limit:g} s", hint=SLURM_HINT
        ),
    )


def array_spec(indices: list[int], limit: int | None) -> str:
    """sbatch --array value for these task indices, e.g. '0-11%4' or '1,4,7'."""
    if indices == list(range(indices[0], indices[-1] + 1)) and len(indices) > 1:
        spec = f"{indices[0]}-{indices[-1]}"
    else:
        spec = ",".join(str(i) for i in indices)
    return spec + (f"%{limit}" if limit else "")


class Slurm:
    """The real implementation, through the Slurm command-line tools."""

    def __init__(self) -> None:
        self.sbatch = _tool("sbatch")
        self.squeue = _tool("squeue")
        self.scontrol = _tool("scontrol")
        self.scancel = _tool("scancel")

    def submit_array(self, submission: Submission) -> str:
        s = submission
        # The job gets exactly sbatch's own environment (--export=ALL), and sbatch gets only
        # the submission's variables (the run's allowlisted environment), never repro's: the
        # batch script inherits nothing of the submitter. --export=NONE or a list of names
        # would load the user's login environment on the node instead (--get-user-env is
        # implied: HOME, a pyenv PATH, whatever ~/.profile exports) and cost 1-2 s a job
        # (measured on the test cluster, docs/security.md).
        env = {**{k: os.environ[k] for k in SBATCH_ENV if k in os.environ}, **s.export}
        cmd = [
            self.sbatch,
            "--parsable",
            f"--array={array_spec(s.indices, s.array_limit)}",
            f"--chdir={s.workdir}",
            "--export=ALL",
        ]
        if s.partition:
            cmd.append(f"--partition={s.partition}")
        if s.account:
            cmd.append(f"--account={s.account}")
        if s.time_limit:
            cmd.append(f"--time={s.time_limit}")
        if s.after:
            cmd.append(f"--dependency=afterany:{':'.join(s.after)}")
        cmd.append(str(s.script))
        proc = _run(cmd, env=env)
        if not proc.ok:
            detail = " ".join(proc.stderr.split())[-300:] or f"exit code {proc.returncode}"
            raise SchedulerError(f"sbatch refused the job: {detail}")
        return proc.stdout.strip().split(";")[0]

    def queued(self, job_ids: list[str]) -> dict[tuple[str, int], TaskState]:
        """Tasks Slurm still holds (pending, running, completing); finished ones are absent."""
        if not job_ids:
            return {}
        proc = self._retried([self.squeue, "-h", "-r", "-j", ",".join(job_ids), "-o", "%i %T"])
        states: dict[tuple[str, int], TaskState] = {}
        for line in proc.stdout.splitlines():
            match = re.match(r"^(\d+)_(\d+)\s+(\S+)", line.strip())
            if not match:
                continue
            raw = match.group(3)
            state: TaskState = (
                "pending" if raw in ("PENDING", "CONFIGURING", "REQUEUED") else "running"
            )
            states[(match.group(1), int(match.group(2)))] = state
        return states

    def final_state(self, job_id: str, index: int) -> tuple[str, int | None]:
        """(JobState, exit code) of a finished task from scontrol, when Slurm remembers it."""
        proc = _run([self.scontrol, "show", "job", "-o", f"{job_id}_{index}"])
        if not proc.ok:
            # Purged after MinJobAge; any other failure is not an answer about the task.
            gone = "Invalid job id" in proc.stderr
            return ("PURGED" if gone else "UNKNOWN"), None
        text = proc.stdout
        state = re.search(r"JobState=(\S+)", text)
        code = re.search(r"ExitCode=(\d+):(\d+)", text)
        exit_code = int(code.group(1)) if code else None
        return (state.group(1) if state else "PURGED"), exit_code

    def _retried(self, cmd: list[str], attempts: int = 5) -> Completed:
        """A controller that hiccups must not make every task look finished."""
        for attempt in range(attempts):
            proc = _run(cmd)
            if proc.ok:
                return proc
            time.sleep(min(2**attempt, 8))
        detail = " ".join(proc.stderr.split())[-200:]
        raise ServiceUnavailableError(
            f"{Path(cmd[0]).name} keeps failing: {detail}", hint="check slurmctld (scontrol ping)"
        )

    def cancel(self, job_ids: list[str]) -> None:
        if job_ids:
            _run([self.scancel, *job_ids])

    def accounting(self, job_id: str) -> dict[int | None, SacctRecord] | None:
        """sacct's records of the job's tasks; None on a cluster without accounting."""
        return job_accounting(job_id)
