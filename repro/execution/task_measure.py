"""Run one command measured, for a batch task: `python -c ... --usage FILE -- ARGV...`.

The Slurm target's batch script starts each task's command through this (with the Python
and the repro that submitted it, when the node has them), so clusters without accounting
get the same figures as the local target: a cgroup of the task's own where one can be made
(with the run's memory request as its limit, as Slurm's task/cgroup enforces it), else the
job's cgroup when Slurm gave it one, else rusage plus sampling. The ResourceUsage is written
as JSON to FILE; the exit status is the command's (128+N for signal N, as a shell's).
A SIGTERM (Slurm's time limit, scancel) is passed on to the command, which is then still
measured to its end.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from repro.execution.cgroups import Cgroup, cgroup_of, enter_prefix, own_cgroup
from repro.execution.measure import supervise
from repro.resource_usage import ending_of, memory_bytes

FOREVER_S = 10.0 * 365 * 86400
"""The task's own timeout is the scheduler's time limit: none here."""


MAIN = (
    "import sys; sys.path.insert(0, sys.argv.pop(1)); "
    "from repro.execution.task_measure import main; sys.exit(main(sys.argv[1:]))"
)
"""What the batch script runs with `python -E -s -c`, the repro folder its first argument."""


def measure_variables() -> dict[str, str]:
    """What a batch task needs to measure itself with this Python and this repro."""
    import repro

    return {
        "REPRO_MEASURE_PYTHON": sys.executable,
        "REPRO_MEASURE_PATH": str(Path(repro.__file__).resolve().parent.parent),
        "REPRO_MEASURE_MAIN": MAIN,
    }


def measure_args(memory: str | None) -> str:
    """The per-run arguments (the memory request, enforced in the task's own cgroup)."""
    limit = memory_bytes(memory)
    return f"--memory-limit {limit} --memory-request {memory}" if limit else ""


def task_cgroup(memory_limit: int | None) -> Cgroup | None:
    """The Slurm job's cgroup where Slurm made one (task/cgroup: Slurm enforces the request and
    says OUT_OF_MEMORY; a task never leaves it, so the cluster's limits keep applying), else the
    task's own (limited to `memory_limit` bytes), else none."""
    mine = cgroup_of("self")
    if mine is not None and any("/job_" in str(d) for d in mine.dirs.values()):
        return mine
    own = own_cgroup()
    if own is not None and memory_limit:
        own.limit_memory(memory_limit)
    return own


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="repro-task-measure")
    parser.add_argument("--usage", type=Path, required=True)
    parser.add_argument("--memory-limit", type=int, default=None)
    parser.add_argument("--memory-request", default=None)
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else list(args.command)
    if not command:
        parser.error("no command after --")
    cgroup = task_cgroup(args.memory_limit)
    full = [*enter_prefix(cgroup), *command] if cgroup is not None and cgroup.owned else command
    # The measuring variables are the task's, not the study's.
    env = {k: v for k, v in os.environ.items() if not k.startswith("REPRO_MEASURE")}
    proc = subprocess.Popen(full, start_new_session=True, env=env)
    stopped: list[int] = []

    def forward(signum: int, _frame: object) -> None:
        stopped.append(signum)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    try:
        done = supervise(
            proc, FOREVER_S, cgroup=cgroup, memory_limit=args.memory_request, kill_grace=5
        )
    finally:
        if cgroup is not None:
            cgroup.remove()
    usage = done.usage
    if stopped and usage.ending.kind != "killed_for_memory":
        sig = signal.Signals(stopped[0]).name
        usage = usage.model_copy(
            update={
                "ending": ending_of(None, signal_number=stopped[0]).model_copy(
                    update={"words": f"stopped by {sig} from the scheduler (time limit or cancel)"}
                )
            }
        )
    tmp = args.usage.with_suffix(".tmp")
    tmp.write_text(usage.model_dump_json(), encoding="utf-8")
    tmp.replace(args.usage)
    code = done.exit_code
    if code is None:
        return 124
    return 128 - code if code < 0 else code
