"""Slurm accounting (sacct) on a real cluster with slurmdbd and MariaDB, and its absence on
the cluster without accounting: figures are added where sacct answers, nothing breaks where
it does not (scripts/ci/setup-slurm-accounting.sh, docs/slurm-accounting.md)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from repro.scheduler.accounting import FINAL_STATES, accounting_enabled, job_accounting
from repro.scheduler.records import SacctRecord
from tests.conftest import run_cli
from tests.waiting import wait_until

HOLD = (
    "import sys, time\n"
    "block = bytearray(int(sys.argv[1]) << 20)\n"
    "block[::4096] = b'x' * len(block[::4096])  # touch every page: resident, not reserved\n"
    "time.sleep(1)\n"
)


def _finished(job: str, tasks: int) -> dict[int | None, SacctRecord] | None:
    records = job_accounting(job)
    if records is None or len(records) < tasks:
        return None
    return records if all(r.state in FINAL_STATES for r in records.values()) else None


def test_a_real_array_is_read_back_from_accounting(tmp_path: Path, slurm_accounting: Path) -> None:
    (tmp_path / "hold.py").write_text(HOLD)
    tmp_path.chmod(0o755)
    job = subprocess.run(
        [
            "sbatch",
            "--parsable",
            "--array=0-1",
            "--mem=200M",
            f"--chdir={tmp_path}",
            f"--output={tmp_path}/%a.out",
            "--wrap",
            f'if [ "$SLURM_ARRAY_TASK_ID" = 0 ]; then {sys.executable} hold.py 120; else exit 3; fi',
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout.strip()
    try:
        records = wait_until(
            lambda: _finished(job, 2), timeout=120, what=f"sacct records of {job}", every=0.3
        )
    finally:
        subprocess.run(["scancel", job], check=False, timeout=30)
    ok, failed = records[0], records[1]
    assert ok.job_id == f"{job}_0" and ok.state == "COMPLETED" and ok.exit_code == 0
    assert ok.max_rss_bytes is not None and ok.max_rss_bytes >= 120 << 20
    assert ok.elapsed_s is not None and ok.elapsed_s >= 1
    assert ok.queue_wait_s is not None and ok.queue_wait_s >= 0
    assert ok.req_mem_bytes == 200 << 20 and ok.alloc_cpus == 1 and ok.node_list
    assert failed.state == "FAILED" and failed.ending == "exit code 3"


def test_a_cluster_without_accounting_gives_none_not_an_error(
    monkeypatch: pytest.MonkeyPatch, slurm: None
) -> None:
    monkeypatch.delenv("SLURM_CONF", raising=False)  # the shared cluster: accounting_storage/none
    disabled = subprocess.run(["sacct", "-j", "1"], capture_output=True, text=True, timeout=30)
    assert "accounting storage is disabled" in disabled.stdout + disabled.stderr
    assert not accounting_enabled()
    assert job_accounting("1") is None


STUDY = (
    "import os, sys\n"
    "seed = int(sys.argv[1])\n"
    "os.makedirs('out', exist_ok=True)\n"
    "if seed == 1 and os.environ.get('REPRO_PROJECT'):  # on Slurm only: 300 MB under --mem\n"
    "    block = bytearray(300 << 20)\n"
    "    block[::4096] = b'x' * len(block[::4096])\n"
    "open(f'out/{seed}.txt', 'w').write(str(seed * seed))\n"
)


@pytest.mark.slow
def test_a_point_over_its_memory_is_reported_as_killed_for_memory(
    tmp_path: Path, slurm_accounting: Path
) -> None:
    project = tmp_path / "study"
    project.mkdir()
    (project / "point.py").write_text(STUDY)
    (project / "repro.toml").write_text(
        '[[runs]]\nname = "sim"\ncommand = "python point.py {seed}"\n'
        'outputs = ["out/{seed}.txt"]\ntimeout = 300\n'
        '[runs.sweep]\nseed = [0, 1]\n[runs.resources]\nmemory = "150M"\n'
    )
    capsule = tmp_path / "s.tgz"
    done = run_cli("capture", str(project), "-o", str(capsule))
    assert done.returncode == 0, done.stderr
    result = run_cli("replay", str(capsule), "--target", "slurm", "--json", timeout=600)
    assert result.returncode == 3, result.stderr
    points = {p["point_id"]: p for p in json.loads(result.stdout)["points"]}
    ok, killed = points["seed=0"], points["seed=1"]
    assert ok["status"] == "ok" and ok["accounting"]["state"] == "COMPLETED"
    assert ok["accounting"]["req_mem_bytes"] == 150 << 20
    assert killed["status"] == "failed"
    assert killed["accounting"]["state"] == "OUT_OF_MEMORY"
    assert "killed for memory (Slurm OUT_OF_MEMORY)" in killed["stderr_tail"]
    assert "read Slurm accounting (sacct)" in result.stderr
