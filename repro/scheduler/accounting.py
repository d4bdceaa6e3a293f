"""Slurm accounting behind one function: what `sacct` recorded for each task of a job.

`job_accounting(job_id)` reads `sacct --parsable2` for a job (an array: one record per
task) and returns a `SacctRecord` per array task id, or None when the cluster has no
accounting (sacct: "Slurm accounting storage is disabled", slurmdbd down, sacct missing):
accounting is extra information, never a reason for a replay to fail. docs/slurm-accounting.md
says what each figure is and how Slurm measures it.
"""

from __future__ import annotations

import re
import shutil
from datetime import datetime

from repro.errors import ReproError, ServiceUnavailableError
from repro.execution.tools import Completed, run_tool
from repro.scheduler.records import SacctRecord

FIELDS = (
    "JobID",
    "State",
    "ExitCode",
    "Elapsed",
    "TotalCPU",
    "UserCPU",
    "SystemCPU",
    "MaxRSS",
    "MaxDiskRead",
    "MaxDiskWrite",
    "Submit",
    "Start",
    "End",
    "ReqMem",
    "AllocCPUS",
    "ReqTRES",
    "NodeList",
)
SACCT_TIMEOUT_S = 30
DISABLED = "accounting storage is disabled"
# States after which a task does not change any more (sacct's long names).
FINAL_STATES = frozenset(
    {
        "BOOT_FAIL",
        "CANCELLED",
        "COMPLETED",
        "DEADLINE",
        "FAILED",
        "NODE_FAIL",
        "OUT_OF_MEMORY",
        "PREEMPTED",
        "TIMEOUT",
    }
)
_WORDS = {
    "OUT_OF_MEMORY": "killed for memory (Slurm OUT_OF_MEMORY)",
    "TIMEOUT": "timed out (Slurm TIMEOUT)",
    "CANCELLED": "cancelled (Slurm CANCELLED)",
    "NODE_FAIL": "its node failed (Slurm NODE_FAIL)",
    "PREEMPTED": "preempted by another job (Slurm PREEMPTED)",
    "BOOT_FAIL": "its node did not boot (Slurm BOOT_FAIL)",
    "DEADLINE": "missed its deadline (Slurm DEADLINE)",
    # not a Slurm state: scontrol no longer knows the job (after MinJobAge)
    "PURGED": "ended without a record (Slurm purged the job)",
}
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40, "P": 1 << 50}


def words_for(state: str, exit_code: int | None, signal: int | None) -> str:
    """The ending of a task in words, from its Slurm state and exit code."""
    state = state.split()[0] if state.strip() else "UNKNOWN"
    if state in _WORDS:
        return _WORDS[state]
    if state == "COMPLETED":
        return "exit code 0"
    if state not in FINAL_STATES:
        return f"not finished (Slurm {state})"
    if signal:
        return f"killed by signal {signal} (Slurm {state})"
    if exit_code is not None:
        return f"exit code {exit_code}" + ("" if state == "FAILED" else f" (Slurm {state})")
    return f"Slurm {state}"


def _duration(text: str) -> float | None:
    """Seconds from sacct's [DD-][HH:]MM:SS[.mmm] (Elapsed, TotalCPU, ...)."""
    match = re.fullmatch(r"(?:(\d+)-)?(?:(\d+):)?(\d+):(\d+(?:\.\d+)?)", text.strip())
    if match is None:
        return None
    days, hours, minutes, seconds = match.groups()
    return int(days or 0) * 86400 + int(hours or 0) * 3600 + int(minutes) * 60 + float(seconds)


def _bytes(text: str) -> int | None:
    """Bytes from sacct's sizes: `160872K`, `0.01M`, `1.50G`, `0` (powers of 1024)."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)([KMGTP]?)", text.strip())
    if match is None:
        return None
    return round(float(match.group(1)) * _UNITS[match.group(2)])


def _memory(text: str, cpus: int | None) -> int | None:
    """ReqMem: `200M` (22.05+), or older `200Mn` per node / `200Mc` per CPU."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?[KMGTP]?)([nc]?)", text.strip())
    if match is None:
        return None
    size = _bytes(match.group(1))
    if size is not None and match.group(2) == "c":
        size *= cpus or 1
    return size


def _time(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text.strip())
    except ValueError:
        return None  # Unknown, None


def _exit(text: str) -> tuple[int | None, int | None]:
    match = re.fullmatch(r"(\d+):(\d+)", text.strip())
    return (int(match.group(1)), int(match.group(2))) if match else (None, None)


def _peak(values: list[int | None]) -> int | None:
    known = [v for v in values if v is not None]
    return max(known) if known else None


def parse_sacct(text: str) -> dict[int | None, SacctRecord]:
    """Records of `sacct --parsable2 --noheader --format=FIELDS` output, by array task id
    (None for a job that is not an array). Pending ranges (`123_[2-5]`) are left out."""
    allocations: dict[str, dict[str, str]] = {}
    steps: dict[str, list[dict[str, str]]] = {}
    for line in text.splitlines():
        values = line.split("|")
        if len(values) != len(FIELDS):
            continue
        row = dict(zip(FIELDS, values, strict=True))
        job, _, step = row["JobID"].partition(".")
        if not re.fullmatch(r"\d+(?:_\d+)?", job):
            continue  # a pending range, a heterogeneous job's "+" part
        if step:
            steps.setdefault(job, []).append(row)
        else:
            allocations[job] = row
    records: dict[int | None, SacctRecord] = {}
    for job, row in allocations.items():
        parts = steps.get(job, [])
        task = int(job.split("_")[1]) if "_" in job else None
        code, signal = _exit(row["ExitCode"])
        submit, start, end = _time(row["Submit"]), _time(row["Start"]), _time(row["End"])
        cpus = int(row["AllocCPUS"]) if row["AllocCPUS"].isdigit() else None
        state = row["State"].split()[0] if row["State"].strip() else "UNKNOWN"
        records[task] = SacctRecord(
            job_id=job,
            array_task_id=task,
            state=state,
            ending=words_for(state, code, signal),
            exit_code=code,
            signal=signal,
            elapsed_s=_duration(row["Elapsed"]),
            total_cpu_s=_duration(row["TotalCPU"]),
            user_cpu_s=_duration(row["UserCPU"]),
            system_cpu_s=_duration(row["SystemCPU"]),
            max_rss_bytes=_peak([_bytes(r["MaxRSS"]) for r in [row, *parts]]),
            max_disk_read_bytes=_peak([_bytes(r["MaxDiskRead"]) for r in [row, *parts]]),
            max_disk_write_bytes=_peak([_bytes(r["MaxDiskWrite"]) for r in [row, *parts]]),
            submit=submit.isoformat() if submit else None,
            start=start.isoformat() if start else None,
            end=end.isoformat() if end else None,
            queue_wait_s=(start - submit).total_seconds() if submit and start else None,
            req_mem_bytes=_memory(row["ReqMem"], cpus),
            alloc_cpus=cpus,
            req_tres=row["ReqTRES"],
            node_list=row["NodeList"],
        )
    return records


def _sacct(args: list[str]) -> Completed | None:
    """sacct's answer, or None when it cannot be asked (not installed, not answering)."""
    sacct = shutil.which("sacct")
    if sacct is None:
        return None
    try:
        return run_tool(
            [sacct, *args],
            "sacct",
            timeout=SACCT_TIMEOUT_S,
            error=ServiceUnavailableError,
            check=False,
        )
    except ReproError:
        return None


def _answered(proc: Completed | None) -> bool:
    return proc is not None and proc.ok and DISABLED not in proc.stderr + proc.stdout


def job_accounting(job_id: str) -> dict[int | None, SacctRecord] | None:
    """What sacct recorded for every task of `job_id` (by array task id), or None when there
    is no accounting to ask (disabled, sacct missing, slurmdbd not answering): never raises
    for that."""
    if not re.fullmatch(r"\d+(?:_\d+)?", job_id):
        return None
    proc = _sacct(["--parsable2", "--noheader", "-j", job_id, f"--format={','.join(FIELDS)}"])
    if proc is None or not _answered(proc):
        return None
    return parse_sacct(proc.stdout)


def accounting_enabled() -> bool:
    """Whether sacct answers on this cluster (accounting configured, slurmdbd reachable)."""
    return _answered(_sacct(["--parsable2", "--noheader", "-X", "-j", "1", "--format=JobID"]))
