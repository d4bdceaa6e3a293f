"""What Slurm's accounting (sacct) recorded for one task: the model the replay report embeds.

Parsed by repro.scheduler.accounting; kept apart so the report's model depends on nothing
but the base.
"""

from __future__ import annotations

from pydantic import Field

from repro.model_base import Model


class SacctRecord(Model):
    """What Slurm's accounting recorded for one task: the allocation's line, with the
    peaks of its steps (`.batch`, `.extern`, `srun` steps)."""

    job_id: str
    """As sacct shows it: `123_4` for array task 4 of job 123, `123` for a plain job."""
    array_task_id: int | None
    state: str
    """The state's first word: COMPLETED, FAILED, OUT_OF_MEMORY, TIMEOUT, CANCELLED, ..."""
    ending: str
    """How the task ended, in words ("exit code 3", "killed for memory (Slurm OUT_OF_MEMORY)")."""
    exit_code: int | None
    signal: int | None
    """The signal that ended the batch script (ExitCode `code:signal`), 0 when none."""
    elapsed_s: float | None
    total_cpu_s: float | None
    """User plus system CPU time of every step (sacct TotalCPU)."""
    user_cpu_s: float | None
    system_cpu_s: float | None
    max_rss_bytes: int | None = Field(default=None, ge=0)
    """The largest peak resident memory of any step, sampled by jobacct_gather."""
    max_disk_read_bytes: int | None = Field(default=None, ge=0)
    max_disk_write_bytes: int | None = Field(default=None, ge=0)
    submit: str | None
    """ISO 8601 local time of the cluster, as sacct prints it; None when Unknown."""
    start: str | None
    end: str | None
    queue_wait_s: float | None
    """Start minus Submit: how long the task waited in the queue."""
    req_mem_bytes: int | None = Field(default=None, ge=0)
    """Memory requested for the task (per node; a per-CPU request times AllocCPUS)."""
    alloc_cpus: int | None
    req_tres: str
    node_list: str
