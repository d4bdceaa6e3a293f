"""What one run used (CPU, memory, I/O, processes, GPU) and what ended it: the models every
target's measurement returns, and requested-vs-used efficiency (docs/resources.md)."""

from __future__ import annotations

import re
import signal
from collections.abc import Sequence
from typing import Any, Literal

from pydantic import Field

from repro.model_base import Model

Method = Literal["cgroup-v2", "cgroup-v1", "docker-cgroup", "rusage+sampling", "sampling"]
"""How the figures were obtained: from a cgroup the run had to itself (its own for local and
Slurm tasks, the container's for docker), else from wait4's rusage of the process tree plus
sampling it with psutil, or (a process repro did not start) sampling alone."""

EndingKind = Literal["exited", "signal", "killed_for_memory", "timed_out", "not_started"]


class Ending(Model):
    """What ended a run, in words and as data."""

    kind: EndingKind
    exit_code: int | None = None
    """The exit code (for a signal, the shell's 128+N when the shell reported it)."""
    signal: str | None = None
    """The signal's name (SIGKILL) when a signal ended the run."""
    words: str
    """One line a person reads: "exited with code 0", "killed for memory (the limit 300M)"."""


def signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def ending_of(
    exit_code: int | None,
    *,
    signal_number: int | None = None,
    timed_out_after: float | None = None,
    oom_killed: bool = False,
    memory_limit: str | None = None,
    scheduler_state: str | None = None,
) -> Ending:
    """The words for how a run ended. A memory kill wins over the signal it was done with;
    a timeout over the SIGTERM that stopped it. `scheduler_state`: Slurm's JobState."""
    limit = f" (the limit {memory_limit})" if memory_limit else ""
    if oom_killed or scheduler_state == "OUT_OF_MEMORY":
        by = "Slurm says OUT_OF_MEMORY" if scheduler_state == "OUT_OF_MEMORY" else "cgroup OOM"
        return Ending(
            kind="killed_for_memory",
            exit_code=exit_code,
            signal="SIGKILL",
            words=f"killed for memory{limit}: it used all the memory it may ({by})",
        )
    if timed_out_after is not None or scheduler_state in ("TIMEOUT", "DEADLINE"):
        if scheduler_state in ("TIMEOUT", "DEADLINE"):
            words = f"timed out: Slurm stopped it at its time limit ({scheduler_state})"
        else:
            words = f"timed out after {timed_out_after:g} s: repro stopped it"
        return Ending(kind="timed_out", exit_code=exit_code, words=words)
    if signal_number is not None:
        name = signal_name(signal_number)
        return Ending(kind="signal", signal=name, words=f"killed by {name}")
    if exit_code is None:
        return Ending(kind="not_started", words="it did not run to an exit status")
    if exit_code > 128 and exit_code - 128 < 65:
        name = signal_name(exit_code - 128)
        return Ending(
            kind="signal",
            exit_code=exit_code,
            signal=name,
            words=f"exited with code {exit_code}: its command was killed by {name}",
        )
    words = "exited with code 0" if exit_code == 0 else f"failed with exit code {exit_code}"
    return Ending(kind="exited", exit_code=exit_code, words=words)


class ResourceUsage(Model):
    """What one run (one sweep point, one notebook) used, measured across its process tree."""

    method: Method
    wall_s: float = Field(ge=0)
    cpu_user_s: float = Field(ge=0)
    cpu_system_s: float = Field(ge=0)
    cores_mean: float = Field(ge=0)
    """CPU time (user + system) / wall time."""
    cores_peak: float = Field(ge=0)
    """The most cores in use over one sampling interval."""
    peak_rss_bytes: int = Field(ge=0)
    """Peak resident memory of the whole process tree (the largest sum over samples, and at
    least the largest single process's own peak)."""
    memory_peak_bytes: int | None = None
    """The cgroup's peak, which is what a memory limit counts (includes page cache); None
    without a cgroup."""
    read_bytes: int = Field(ge=0)
    """Bytes read from storage (not the page cache)."""
    written_bytes: int = Field(ge=0)
    """Bytes written towards storage (pages dirtied; tmpfs writes are not counted)."""
    read_chars: int = Field(default=0, ge=0)
    """Bytes passed to read()-like calls, cached or not."""
    written_chars: int = Field(default=0, ge=0)
    """Bytes passed to write()-like calls, tmpfs included."""
    processes: int = Field(ge=0)
    """Processes seen in the run's tree (the run's own included)."""
    gpu_util_peak: float | None = None
    """Peak GPU utilisation in percent (nvidia-smi, the whole device); None without a GPU."""
    gpu_mem_peak_bytes: int | None = None
    samples: int = Field(default=0, ge=0)
    started_at: float | None = None
    """When the command started (Unix time, this machine's clock): the report's timeline."""
    queue_wait_s: float | None = None
    """Slurm: from the array's submission to the task's start."""
    ending: Ending
    accounting: dict[str, Any] | None = None
    """The scheduler's own accounting of the task (sacct), when it answers."""

    @property
    def cpu_s(self) -> float:
        return self.cpu_user_s + self.cpu_system_s


def with_accounting(usage: ResourceUsage, accounting: dict[str, Any] | None) -> ResourceUsage:
    """`usage` with the scheduler's own figures for the task (sacct's fields, as parsed by
    repro.scheduler.accounting) beside the measured ones; the measured ones stay as they are."""
    return usage if accounting is None else usage.model_copy(update={"accounting": accounting})


_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def memory_bytes(memory: str | None) -> int | None:
    """A Resources.memory value (300M, 1.5G) in bytes; a bare number is bytes."""
    if not memory:
        return None
    match = re.fullmatch(r"(\d+(?:\.\d+)?)([KMGT]?)", memory)
    return int(float(match.group(1)) * _UNITS[match.group(2)]) if match else None


def walltime_s(walltime: str | None) -> float | None:
    """[D-]HH:MM:SS in seconds."""
    if not walltime:
        return None
    days, _, rest = walltime.rpartition("-")
    h, m, s = (int(x) for x in rest.split(":"))
    return (int(days) if days else 0) * 86400 + h * 3600 + m * 60 + s


class Efficiency(Model):
    """Used as a share of what the run requests (its `resources`)."""

    cpu: float | None = None
    """CPU time / (cpus x wall time)."""
    memory: float | None = None
    """Peak memory / requested memory (None when none is requested)."""
    walltime: float | None = None
    """Wall time / requested walltime (or the timeout)."""


def efficiency(
    usage: ResourceUsage, cpus: int, memory: str | None, walltime: float | None
) -> Efficiency:
    mem = memory_bytes(memory)
    peak = max(usage.peak_rss_bytes, usage.memory_peak_bytes or 0)
    return Efficiency(
        cpu=round(usage.cpu_s / (cpus * usage.wall_s), 3) if usage.wall_s > 0 else None,
        memory=round(peak / mem, 3) if mem else None,
        walltime=round(usage.wall_s / walltime, 3) if walltime else None,
    )


LOW_USE = 0.25
NEAR_LIMIT = 0.9


def efficiency_warnings(label: str, usage: ResourceUsage, eff: Efficiency, cpus: int) -> list[str]:
    """Replay's warnings: a run that used under a quarter of what it requests (CPUs when it
    asks for more than one, memory when it asks for some), or came within 10 % of a limit."""
    out: list[str] = []
    if eff.cpu is not None and cpus > 1 and eff.cpu < LOW_USE:
        out.append(
            f"run {label} used {usage.cpu_s / usage.wall_s:.1f} of the {cpus} cores it requests "
            f"({eff.cpu:.0%} CPU efficiency): request fewer cpus"
        )
    if eff.memory is not None:
        if eff.memory < LOW_USE:
            out.append(
                f"run {label} used {human_bytes(usage.peak_rss_bytes)} of the memory it "
                f"requests ({eff.memory:.0%}): request less memory"
            )
        elif eff.memory >= NEAR_LIMIT:
            out.append(
                f"run {label} came within 10 % of its memory limit ({eff.memory:.0%} used): "
                "request more memory"
            )
    if eff.walltime is not None and eff.walltime >= NEAR_LIMIT:
        out.append(
            f"run {label} came within 10 % of its time limit ({eff.walltime:.0%} used): "
            "raise its walltime or timeout"
        )
    return out


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1000:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def summary(usage: ResourceUsage | None) -> str:
    """'2.1 GB peak, 3.9 cores' (or 'not measured')."""
    if usage is None:
        return "not measured"
    if usage.samples == 0 and usage.method == "sampling":
        return f"ended before it could be sampled ({usage.wall_s:.2f} s)"
    return f"{human_bytes(usage.peak_rss_bytes)} peak, {usage.cores_mean:.1f} cores"


def detail(usage: ResourceUsage) -> str:
    """Every figure in one line, for `repro inspect` and the replay's table."""
    if usage.samples == 0 and usage.method == "sampling":
        return f"{summary(usage)}; {usage.ending.words}"
    parts = [
        f"{usage.wall_s:.2f} s",
        f"CPU {usage.cpu_s:.2f} s ({usage.cores_mean:.1f} cores, peak {usage.cores_peak:.1f})",
        f"{human_bytes(usage.peak_rss_bytes)} peak",
        f"read {human_bytes(usage.read_bytes)}, wrote {human_bytes(usage.written_bytes)}",
        f"{usage.processes} process{'es' if usage.processes != 1 else ''}",
    ]
    if usage.gpu_util_peak is not None:
        parts.append(
            f"GPU {usage.gpu_util_peak:.0f} % peak, {human_bytes(usage.gpu_mem_peak_bytes or 0)}"
        )
    return f"{', '.join(parts)} [{usage.method}]; {usage.ending.words}"


def sweep_summary(
    captured: Sequence[ResourceUsage | None], replayed: Sequence[ResourceUsage | None]
) -> str:
    """A sweep's points in one line: 'captured: median 1.7 MB peak, 0.1 cores, largest 1.8 MB,
    0.3 cores; replayed: ...' (each side over the points measured on it)."""

    def side(usages: Sequence[ResourceUsage | None]) -> str:
        measured = [u for u in usages if u is not None]
        if not measured:
            return "not measured"
        peaks = sorted(u.peak_rss_bytes for u in measured)
        cores = sorted(u.cores_mean for u in measured)
        mid = len(measured) // 2
        return (
            f"median {human_bytes(peaks[mid])} peak, {cores[mid]:.1f} cores, "
            f"largest {human_bytes(peaks[-1])}, {cores[-1]:.1f} cores"
        )

    return f"captured: {side(captured)}; replayed: {side(replayed)}"


def side_by_side(captured: ResourceUsage | None, replayed: ResourceUsage | None) -> str:
    """'captured: 2.1 GB peak, 3.9 cores; replayed: 2.3 GB peak, 1.0 cores'."""
    return f"captured: {summary(captured)}; replayed: {summary(replayed)}"
