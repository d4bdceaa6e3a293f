"""Render batch scripts (Slurm, and PBS/Torque and SGE for reading or submitting by hand)
from a run's resources and sweep: one array job per run, one task per sweep point."""

from __future__ import annotations

import re
import shlex
from collections.abc import Sequence
from typing import Literal

from repro.config.models import Resources, Run, point_variables_for, render
from repro.model_base import SweepValue

Flavour = Literal["slurm", "pbs", "sge"]
STATUS_DIR = ".repro-jobs"
"""Per-task status and logs, relative to the project directory the tasks run in."""
SHARED_MARKER = f"{STATUS_DIR}/shared-check"
"""Written by the submitting host with a fresh token (REPRO_SHARED_TOKEN); a task that does
not read the same token there is on a node that does not share the working directory."""
NOT_SHARED_EXIT = 96
"""The exit status of a task that cannot see the submitting host's working directory."""


def _memory_mb(memory: str | None) -> int | None:
    if not memory:
        return None
    match = re.fullmatch(r"(\d+(?:\.\d+)?)([KMGT]?)", memory)
    if match is None:
        return None
    factor = {"": 1 / (1 << 20), "K": 1 / 1024, "M": 1, "G": 1024, "T": 1 << 20}[match.group(2)]
    return max(1, int(float(match.group(1)) * factor))


def _directive(value: str) -> str:
    """A value on a #SBATCH / #PBS / #$ line: one word, as the models' patterns guarantee
    (sbatch reads these lines itself, with no shell quoting, so nothing can be quoted)."""
    if not re.fullmatch(r"[^\s\"'#\\]+", value):
        raise ValueError(f"not a scheduler directive value: {value!r}")
    return value


def _case(points: list[dict[str, SweepValue]], run: Run) -> list[str]:
    lines = ['case "$task" in']
    for index, point in enumerate(points):
        exports = " ".join(f"{k}={shlex.quote(v)}" for k, v in point_variables_for(point).items())
        command = shlex.quote(render(run.command, point))
        lines.append(f"  {index}) export {exports}; command={command} ;;")
    lines.append('  *) echo "repro: no sweep point for task $task" >&2; exit 2 ;;')
    lines.append("esac")
    return lines


def _measured_lines(status: str, prefix: str) -> list[str]:
    return [
        'if [ -n "${REPRO_MEASURE_PYTHON:-}" ] && [ -x "$REPRO_MEASURE_PYTHON" ]; then',
        '  "$REPRO_MEASURE_PYTHON" -E -s -c "$REPRO_MEASURE_MAIN" "$REPRO_MEASURE_PATH" '
        f"--usage {status}/$task.usage.json ${{REPRO_MEASURE_ARGS:-}} -- "
        f'{prefix}/bin/sh -c "$command"',
        "else",
        f'  {prefix}/bin/sh -c "$command"',
        "fi",
        "code=$?",
    ]


def _body(
    run: Run,
    points: list[dict[str, SweepValue]],
    task_var: str,
    wrap: Sequence[str],
    run_lines: Sequence[str] | None,
) -> list[str]:
    status = shlex.quote(f"{STATUS_DIR}/{run.name}")
    # A replay's sandbox (bubblewrap), rendered by the replaying machine; none by hand.
    prefix = shlex.join(wrap) + " " if wrap else ""
    # Replays measure the task (repro.execution.task_measure) where the node runs the
    # submitter's Python and repro; by hand, or where it does not, the command runs as is. A
    # container runtime's own lines run unmeasured (its figures: sacct, where it answers).
    measured = run_lines is None
    not_shared = (
        '  echo "repro: $(hostname) does not see the working directory of the submitting '
        f'host (${{REPRO_PROJECT:-$PWD}}): it must be on a shared filesystem" >&2; '
        f"exit {NOT_SHARED_EXIT}"
    )
    return [
        "set -u",
        "# Replays set REPRO_PROJECT and REPRO_VENV; by hand, submit from the project folder",
        "# with its environment active.",
        f'cd "${{REPRO_PROJECT:-$PWD}}" 2>/dev/null || {{ {not_shared.strip()}; }}',
        "# The submitting host wrote this token just before submitting: a node that reads",
        "# another one (or none) does not share the working directory.",
        "# (read, a builtin: no process is started for it)",
        'seen=""; if [ -n "${REPRO_SHARED_TOKEN:-}" ]; then '
        f"read -r seen 2>/dev/null < {SHARED_MARKER}; fi",
        'if [ -n "${REPRO_SHARED_TOKEN:-}" ] && [ "$seen" != "$REPRO_SHARED_TOKEN" ]; then',
        not_shared,
        "fi",
        'if [ -n "${REPRO_VENV:-}" ]; then',
        "  unset PYTHONPATH PYTHONHOME PYTHONSTARTUP PYTHONUSERBASE CONDA_PREFIX",
        '  export VIRTUAL_ENV="$REPRO_VENV" PATH="$REPRO_VENV/bin:$PATH" PYTHONNOUSERSITE=1',
        "  # the node must run the environment's Python as the capsule's version",
        '  if [ -n "${REPRO_PYTHON:-}" ] && ! "$REPRO_VENV/bin/python" -c '
        "\"import sys; sys.exit('%d.%d' % sys.version_info[:2] != '$REPRO_PYTHON')\"; then",
        "    echo \"repro: the environment's Python on $(hostname) is not Python $REPRO_PYTHON"
        ' (or does not run there)" >&2',
        "    exit 97",
        "  fi",
        "fi",
        f"task=${{{task_var}:-0}}",
        *_case(points, run),
        f"mkdir -p {status}",
        "start=$(date +%s.%N)",
        *(_measured_lines(status, prefix) if measured else run_lines or []),
        "# The status file is the record: it outlives the scheduler's memory of the job.",
        f'printf "%s %s %s\\n" "$code" "$start" "$(date +%s.%N)" > {status}/$task.status.tmp && '
        f"mv {status}/$task.status.tmp {status}/$task.status",
        'exit "$code"',
        "",
    ]


def render_script(
    run: Run,
    points: list[dict[str, SweepValue]],
    flavour: Flavour = "slurm",
    resources: Resources | None = None,
    wrap: Sequence[str] = (),
    run_lines: Sequence[str] | None = None,
) -> str:
    """The batch script for `run` over `points` (array task i runs points[i]); `wrap`: the
    command each task's run is started under (a sandbox, ending with `--`); `run_lines`:
    instead, the shell lines that run `"$command"` and set `$code` (a container runtime's,
    repro.engines.runtimes)."""
    res = resources or run.resources
    last = len(points) - 1
    status = f"{STATUS_DIR}/{run.name}"
    head = ["#!/bin/bash", f"# Generated by repro: run {run.name!r}, {len(points)} point(s)."]
    if flavour == "slurm":
        limit = f"%{res.array_limit}" if res.array_limit else ""
        head += [
            f"#SBATCH --job-name=repro-{run.name}",
            f"#SBATCH --array=0-{last}{limit}",
            "#SBATCH --ntasks=1",
            f"#SBATCH --cpus-per-task={res.cpus}",
            f"#SBATCH --output={status}/%a.out",
            f"#SBATCH --error={status}/%a.err",
        ]
        if (mb := _memory_mb(res.memory)) is not None:
            head.append(f"#SBATCH --mem={mb}M")
        if res.walltime:
            head.append(f"#SBATCH --time={res.walltime}")
        if res.gpus:
            head.append(f"#SBATCH --gres=gpu:{res.gpus}")
        for key in ("partition", "account", "qos", "constraint"):
            value = getattr(res, key)
            if value:
                head.append(f"#SBATCH --{key}={_directive(value)}")
        task_var = "SLURM_ARRAY_TASK_ID"
    elif flavour == "pbs":
        head += [
            f"#PBS -N repro-{run.name}",
            f"#PBS -J 0-{last}" if last else "",
            f"#PBS -l select=1:ncpus={res.cpus}"
            + (f":mem={_memory_mb(res.memory)}mb" if res.memory else "")
            + (f":ngpus={res.gpus}" if res.gpus else ""),
        ]
        if res.walltime:
            head.append(f"#PBS -l walltime={res.walltime}")
        if res.partition:
            head.append(f"#PBS -q {_directive(res.partition)}")
        if res.account:
            head.append(f"#PBS -A {_directive(res.account)}")
        head.append('cd "${PBS_O_WORKDIR:-$PWD}"')
        task_var = "PBS_ARRAY_INDEX"
    else:
        head += [
            f"#$ -N repro-{run.name}",
            "#$ -cwd",
            f"#$ -t 1-{last + 1}",
            f"#$ -pe smp {res.cpus}",
        ]
        if res.memory:
            head.append(f"#$ -l h_vmem={_memory_mb(res.memory)}M")
        if res.walltime:
            head.append(f"#$ -l h_rt={res.walltime}")
        if res.partition:
            head.append(f"#$ -q {_directive(res.partition)}")
        # SGE numbers array tasks from 1.
        head.append("SGE_TASK_ID=$(( ${SGE_TASK_ID:-1} - 1 ))")
        task_var = "SGE_TASK_ID"
    return "\n".join(
        [line for line in head if line] + _body(run, points, task_var, wrap, run_lines)
    )
