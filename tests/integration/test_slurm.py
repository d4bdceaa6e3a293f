"""Replay on a real (one-node) Slurm cluster: arrays, failures, cancellation, selection."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
from pathlib import Path

from tests.conftest import run_cli
from tests.waiting import LineReader, wait_until

SWEEP = list(range(12))


def sweep_study(tmp_path: Path, script: str, extra: str = "") -> Path:
    project = tmp_path / "sweep"
    project.mkdir()
    (project / "point.py").write_text(script)
    (project / "repro.toml").write_text(
        '[[runs]]\nname = "sim"\ncommand = "python point.py {seed}"\n'
        'outputs = ["out/{seed}.json"]\ntimeout = 300\n'
        f"[runs.sweep]\nseed = {SWEEP}\n" + extra
    )
    return project


POINT = (
    "import json, os, sys\n"
    "seed = int(sys.argv[1])\n"
    "os.makedirs('out', exist_ok=True)\n"
    "json.dump({'seed': seed, 'square': seed * seed}, open(f'out/{seed}.json', 'w'))\n"
    "print(f'point {seed} done', flush=True)\n"
)


def capture(project: Path, out: Path) -> Path:
    result = run_cli("capture", str(project), "-o", str(out), "-j", "2")
    assert result.returncode == 0, result.stderr
    return out


def test_a_sweep_replays_as_one_array_and_every_point_is_compared(
    tmp_path: Path, slurm: None
) -> None:
    capsule = capture(sweep_study(tmp_path, POINT), tmp_path / "s.tgz")
    result = run_cli(
        "replay",
        str(capsule),
        "--target",
        "slurm",
        "--workdir",
        str(tmp_path / "shared"),
        "--json",
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["target"] == "slurm" and report["counts"] == {"identical": 12}
    # this cluster has no accounting (sacct: "accounting storage is disabled"): no record,
    # and no error either (tests/integration/test_slurm_accounting.py has the other case)
    assert all(p["accounting"] is None for p in report["points"])
    assert sorted(p["point_id"] for p in report["points"]) == sorted(f"seed={s}" for s in SWEEP)
    submissions = re.findall(
        r"submitted run sim as Slurm job array (\d+) \((\d+) task", result.stderr
    )
    assert len(submissions) == 1 and submissions[0][1] == "12"  # one sbatch for 12 points
    # Each task's output was followed from its log file, labelled by its point.
    for seed in SWEEP:
        assert f"  [seed={seed}] point {seed} done\n" in result.stderr


def test_a_failing_point_is_reported_and_the_others_verified(tmp_path: Path, slurm: None) -> None:
    marker = tmp_path / "capture-phase"
    marker.write_text("1")
    script = POINT.replace(
        "os.makedirs",
        f"if seed == 5 and not os.path.exists({str(marker)!r}):\n"
        "    sys.exit('point 5 lost its calibration file')\nos.makedirs",
    )
    capsule = capture(sweep_study(tmp_path, script), tmp_path / "s.tgz")
    marker.unlink()
    result = run_cli("replay", str(capsule), "--target", "slurm", "--json", timeout=600)
    assert result.returncode == 3, result.stderr
    report = json.loads(result.stdout)
    by_point = {p["point_id"]: p for p in report["points"]}
    failed = by_point["seed=5"]
    assert failed["status"] == "failed" and failed["exit_code"] == 1
    assert "point 5 lost its calibration file" in failed["stderr_tail"]
    assert failed["outputs"][0]["verdict"] == "missing"
    others = [p for pid, p in by_point.items() if pid != "seed=5"]
    assert len(others) == 11
    assert all(p["status"] == "ok" and p["outputs"][0]["verdict"] == "identical" for p in others)


def test_point_selection_submits_only_that_task(tmp_path: Path, slurm: None) -> None:
    capsule = capture(sweep_study(tmp_path, POINT), tmp_path / "s.tgz")
    result = run_cli(
        "replay", str(capsule), "--target", "slurm", "--point", "seed=7", "--json", timeout=600
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert [p["point_id"] for p in report["points"]] == ["seed=7"]


def _queued(job: str) -> list[str]:
    proc = subprocess.run(
        ["squeue", "-h", "-j", job, "-o", "%i"],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    return proc.stdout.split()


def test_ctrl_c_cancels_the_submitted_jobs(tmp_path: Path, slurm: None) -> None:
    slow = POINT + "import time\nif os.environ.get('REPRO_PROJECT'):\n    time.sleep(120)\n"
    capsule = capture(sweep_study(tmp_path, slow), tmp_path / "s.tgz")
    with subprocess.Popen(
        [sys.executable, "-m", "repro", "replay", str(capsule), "--target", "slurm"],
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:
        try:
            job, rest = _interrupt_once_running(proc)
        finally:
            if proc.poll() is None:  # failed mid-way: let repro cancel its jobs, then stop it
                proc.send_signal(signal.SIGINT)
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=30)
    assert proc.returncode == 130
    assert f"cancelled Slurm job(s) {job}" in rest
    wait_until(
        lambda: not _queued(job),
        timeout=30,
        what=f"Slurm job {job} to leave the queue after Ctrl-C",
        every=0.5,
    )


def _interrupt_once_running(proc: subprocess.Popen[str]) -> tuple[str, str]:
    assert proc.stderr is not None
    stderr = LineReader(proc.stderr)
    job = stderr.wait_for(r"Slurm job array (\d+)", timeout=120).group(1)
    stderr.wait_for("running", timeout=120)
    proc.send_signal(signal.SIGINT)
    rest = stderr.rest(timeout=60)
    proc.wait(timeout=60)
    return job, rest


def test_missing_sbatch_is_exit_5(tmp_path: Path) -> None:
    capsule = capture(sweep_study(tmp_path, POINT), tmp_path / "s.tgz")
    result = run_cli("replay", str(capsule), "--target", "slurm", env={"PATH": str(tmp_path)})
    assert result.returncode == 5
    assert "sbatch not found" in result.stderr and "--target local" in result.stderr
