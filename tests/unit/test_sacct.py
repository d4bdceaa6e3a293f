"""Parsing sacct's records: real output captured on the test cluster with accounting
(tests/assets/sacct/, from scripts/ci/setup-slurm-accounting.sh's cluster)."""

from __future__ import annotations

from pathlib import Path

import pytest

from repro.scheduler.accounting import _bytes, _duration, _memory, parse_sacct, words_for

ASSETS = Path(__file__).resolve().parents[1] / "assets" / "sacct"


def records(name: str) -> dict[int | None, object]:
    return dict(parse_sacct((ASSETS / name).read_text()))


def test_an_array_gives_one_record_per_task_with_its_steps_peaks() -> None:
    # Task 0 held 150 MB for 2 s; 1 exited 3; 2 allocated 400 MB under --mem=200M; 3 was
    # cancelled (scancel) while it slept.
    tasks = parse_sacct((ASSETS / "array-5.txt").read_text())
    assert sorted(k for k in tasks if k is not None) == [0, 1, 2, 3]
    ok, failed, oom, cancelled = (tasks[i] for i in range(4))
    assert ok.job_id == "5_0" and ok.state == "COMPLETED" and ok.ending == "exit code 0"
    assert ok.max_rss_bytes == 160872 * 1024  # from the .batch step: "160872K"
    assert ok.elapsed_s == 5.0 and ok.total_cpu_s == pytest.approx(1.076)
    assert ok.user_cpu_s == pytest.approx(0.203) and ok.system_cpu_s == pytest.approx(0.873)
    assert ok.req_mem_bytes == 200 << 20 and ok.alloc_cpus == 1 and ok.node_list == "vm"
    assert ok.submit == "2026-12-01T14:28:47" and ok.queue_wait_s == 1.0
    assert ok.max_disk_read_bytes == round(0.01 * (1 << 20))
    assert failed.state == "FAILED" and failed.exit_code == 3 and failed.ending == "exit code 3"
    assert oom.state == "OUT_OF_MEMORY"
    assert oom.ending == "killed for memory (Slurm OUT_OF_MEMORY)"
    assert oom.max_rss_bytes is not None and oom.max_rss_bytes > 150 << 20
    # "CANCELLED by 0" on the allocation's line: the state is its first word
    assert cancelled.state == "CANCELLED" and cancelled.ending == "cancelled (Slurm CANCELLED)"
    assert cancelled.queue_wait_s == 6.0  # it waited for a free CPU


def test_a_timed_out_job_is_said_in_words_and_is_not_an_array() -> None:
    (key, job), *rest = parse_sacct((ASSETS / "timeout-6.txt").read_text()).items()
    assert key is None and not rest and job.array_task_id is None
    assert job.state == "TIMEOUT" and job.ending == "timed out (Slurm TIMEOUT)"
    assert job.elapsed_s == 70.0 and job.end == "2026-12-01T14:30:03"
    assert job.req_mem_bytes == 1 << 30


def test_pending_ranges_are_left_out_and_a_running_task_has_no_end() -> None:
    tasks = parse_sacct((ASSETS / "pending-10.txt").read_text())
    assert list(tasks) == [0]  # "10_[1-5%1]" is still one pending record, not a task
    running = tasks[0]
    assert running.state == "RUNNING" and running.end is None
    assert running.ending == "not finished (Slurm RUNNING)"
    assert running.max_rss_bytes is None  # empty fields while it runs


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("00:00:05", 5),
        ("00:01.076", 1.076),
        ("1-02:03:04", 93784),  # [DD-]HH:MM:SS, the format sacct documents for long jobs
        ("12:34", 754),
        ("Unknown", None),
        ("", None),
    ],
)
def test_durations(text: str, seconds: float | None) -> None:
    assert _duration(text) == (pytest.approx(seconds) if seconds is not None else None)


@pytest.mark.parametrize(
    ("text", "size"),
    [("160872K", 160872 * 1024), ("0", 0), ("0.00M", 0), ("1.50G", 3 << 29), ("", None)],
)
def test_sizes_are_powers_of_1024(text: str, size: int | None) -> None:
    assert _bytes(text) == size


def test_memory_requests_per_cpu_count_every_cpu() -> None:
    # Slurm before 22.05 wrote ReqMem with n (per node) or c (per CPU) appended.
    assert _memory("200M", 4) == 200 << 20
    assert _memory("2Gn", 4) == 2 << 30
    assert _memory("512Mc", 4) == 2 << 30


def test_words_for_exit_codes_and_signals() -> None:
    assert words_for("FAILED", 3, 0) == "exit code 3"
    assert words_for("FAILED", 0, 9) == "killed by signal 9 (Slurm FAILED)"
    assert words_for("NODE_FAIL", None, None) == "its node failed (Slurm NODE_FAIL)"
    assert words_for("PENDING", None, None) == "not finished (Slurm PENDING)"
