"""`repro capture --target slurm` on the real (one-node) Slurm cluster: the expected results
come from array tasks, and replay here and on the cluster reproduces them."""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from repro.capsule.manifest import Manifest
from tests.conftest import BASE_IMAGE, docker_ready, require_service, run_cli
from tests.waiting import LineReader, wait_until

POINT = (
    "import json, os, sys\n"
    "seed = int(sys.argv[1])\n"
    "os.makedirs('out', exist_ok=True)\n"
    "json.dump({'seed': seed, 'square': seed * seed}, open(f'out/{seed}.json', 'w'))\n"
    "print(f'point {seed} in task', os.environ.get('SLURM_ARRAY_TASK_ID'), flush=True)\n"
)


def study(tmp_path: Path, script: str = POINT) -> Path:
    project = tmp_path / "sweep"
    project.mkdir()
    (project / "point.py").write_text(script)
    (project / "repro.toml").write_text(
        '[[runs]]\nname = "sim"\ncommand = "python point.py {seed}"\n'
        'outputs = ["out/{seed}.json"]\ntimeout = 300\n[runs.sweep]\nseed = [0, 1, 2]\n'
    )
    return project


def capture_on_slurm(project: Path, out: Path, shared: Path, *extra: str) -> str:
    """Capture on the cluster; its stderr (what was submitted)."""
    result = run_cli(
        "capture", str(project), "-o", str(out), "--target", "slurm", "--workdir", str(shared),
        *extra,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert re.search(r"submitted run sim as Slurm job array \d+ \(3 task", result.stderr)
    return result.stderr


def test_a_sweep_captured_on_slurm_replays_here_and_on_slurm(tmp_path: Path, slurm: None) -> None:
    shared = tmp_path / "shared"
    capsule = tmp_path / "s.tgz"
    capture_on_slurm(study(tmp_path), capsule, shared)
    # only the venv is kept in the shared folder; the capture's scratch folder is gone
    assert sorted(p.name for p in shared.iterdir()) == ["venvs"]
    with tarfile.open(capsule) as tar:
        member = tar.extractfile("repro.json")
        assert member is not None
        manifest = Manifest.model_validate_json(member.read())
    assert manifest.environment.captured_on == "slurm"
    records = sorted(manifest.results, key=lambda r: r.point_id)
    assert [r.point_id for r in records] == ["seed=0", "seed=1", "seed=2"]
    for i, record in enumerate(records):
        # each point ran as its own array task, recorded as a local capture records it
        assert record.exit_code == 0 and record.executed
        assert record.stdout_tail == f"point {i} in task {i}\n"
        assert record.duration_s is not None and record.duration_s > 0
        assert record.usage is not None and record.usage.peak_rss_bytes
        assert [o.path for o in record.outputs] == [f"out/{i}.json"]
    for target in (["--target", "local"], ["--target", "slurm", "--workdir", str(shared)]):
        result = run_cli("replay", str(capsule), *target, "--json")
        assert result.returncode == 0, result.stderr
        report = json.loads(result.stdout)
        assert report["counts"] == {"identical": 3}, target


def test_a_failing_point_gives_captures_error_listing(tmp_path: Path, slurm: None) -> None:
    failing = POINT.replace("print(", "if seed == 1:\n    sys.exit('bad seed 1')\nprint(")
    out = tmp_path / "s.tgz"
    result = run_cli(
        "capture", str(study(tmp_path, failing)), "-o", str(out), "--target", "slurm",
        "--workdir", str(tmp_path / "shared"),
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    assert "error: 1 of 3 run point(s) and notebook(s) failed at capture" in result.stderr
    assert "run sim [seed=1] failed with exit code 1" in result.stderr
    assert "      bad seed 1\n" in result.stderr
    assert not out.exists()


def test_ctrl_c_cancels_the_capture_jobs(tmp_path: Path, slurm: None) -> None:
    slow = POINT + "import time\ntime.sleep(120)\n"
    with subprocess.Popen(
        [
            sys.executable,
            "-m",
            "repro",
            "capture",
            str(study(tmp_path, slow)),
            "-o",
            str(tmp_path / "s.tgz"),
            "--target",
            "slurm",
            "--workdir",
            str(tmp_path / "shared"),
        ],
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:
        assert proc.stderr is not None
        stderr = LineReader(proc.stderr)
        try:
            job = stderr.wait_for(r"Slurm job array (\d+)", timeout=120).group(1)
            stderr.wait_for("running", timeout=120)
            proc.send_signal(signal.SIGINT)
            rest = stderr.rest(timeout=60)
            proc.wait(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=30)
    assert proc.returncode == 130
    assert f"cancelled Slurm job(s) {job}" in rest
    wait_until(
        lambda: job not in subprocess.run(
            ["squeue", "-h", "-o", "%A", "-j", job], capture_output=True, text=True, check=False
        ).stdout,
        timeout=30,
        what=f"Slurm job {job} to leave the queue after Ctrl-C",
        every=0.5,
    )  # fmt: skip
    assert not (tmp_path / "s.tgz").exists()


def test_missing_sbatch_is_exit_5_before_any_work(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    result = run_cli(
        "capture", str(study(tmp_path)), "-o", str(tmp_path / "s.tgz"), "--target", "slurm",
        "--workdir", str(shared), env={"PATH": str(tmp_path / "nothing")},
    )  # fmt: skip
    assert result.returncode == 5, result.stderr
    assert "sbatch not found" in result.stderr
    assert "repro capture --target local" in result.stderr
    assert not shared.exists()  # nothing staged, nothing built


@pytest.mark.parametrize("flag", [["--partition", "debug"], ["--container", "charliecloud"]])
def test_cluster_flags_need_the_slurm_target(tmp_path: Path, flag: list[str]) -> None:
    result = run_cli("capture", str(study(tmp_path)), "-o", str(tmp_path / "s.tgz"), *flag)
    assert result.returncode == 2
    assert f"{flag[0]} applies only to the slurm target" in result.stderr


JQ_POINT = (
    "import json, os, shutil, subprocess, sys\n"
    "seed = int(sys.argv[1])\n"
    "jq = shutil.which('jq')\n"
    "assert jq, 'jq (from apt.txt) is not on PATH'\n"
    "square = subprocess.run([jq, '-c', '.a * .a'], input=json.dumps({'a': seed}),\n"
    "                        capture_output=True, text=True, check=True).stdout\n"
    "os.makedirs('out', exist_ok=True)\n"
    "json.dump({'seed': seed, 'square': int(square)}, open(f'out/{seed}.json', 'w'))\n"
)


@pytest.mark.slow
def test_a_sweep_captured_in_charliecloud_on_slurm_replays_in_docker_and_on_slurm(
    tmp_path: Path, slurm: None
) -> None:
    """The environment needs an apt package: captured in the capsule's image under
    Charliecloud on the cluster, the results are the docker target's and the runtime's."""
    require_service(docker_ready(), f"Docker engine with image {BASE_IMAGE}")
    require_service(shutil.which("ch-run") is not None, "Charliecloud (setup-runtimes.sh)")
    project = study(tmp_path, JQ_POINT)
    (project / "apt.txt").write_text("jq\n")
    shared = tmp_path / "shared"
    image = ["--base-image", BASE_IMAGE]
    capsule = tmp_path / "s.tgz"
    capture_on_slurm(project, capsule, shared, "--container", "charliecloud", *image)
    assert (shared / "runtime-images").is_dir()
    with tarfile.open(capsule) as tar:
        member = tar.extractfile("repro.json")
        assert member is not None
        manifest = Manifest.model_validate_json(member.read())
    assert manifest.environment.captured_on == "slurm"
    assert all(r.exit_code == 0 and len(r.outputs) == 1 for r in manifest.results)
    for target in (
        ["--target", "docker"],
        ["--target", "slurm", "--container", "charliecloud", "--workdir", str(shared)],
    ):
        result = run_cli("replay", str(capsule), *image, *target, "--json")
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout)["counts"] == {"identical": 3}, target


@pytest.mark.network
@pytest.mark.slow
def test_a_notebook_and_a_sweep_captured_on_slurm_replay_identical(
    tmp_path: Path, pypi: None, slurm: None
) -> None:
    """Notebooks run as one more array after the runs (as on replay): their expectation is
    made on the cluster, and a local replay reproduces every cell."""
    from tests.integration.test_notebooks import STEADY, make_project

    project = make_project(tmp_path / "study", STEADY)
    (project / "point.py").write_text(POINT)
    with (project / "repro.toml").open("a") as fh:
        fh.write(
            '\n[[runs]]\nname = "sim"\ncommand = "python point.py {seed}"\n'
            'outputs = ["out/{seed}.json"]\n[runs.sweep]\nseed = [0, 1, 2]\n'
        )
    capsule = tmp_path / "nb.tgz"
    stderr = capture_on_slurm(project, capsule, tmp_path / "shared")
    # the notebook is one more array, after the run's
    assert re.search(r"submitted run notebook\.\S+ as Slurm job array \d+ \(1 task", stderr)
    result = run_cli("replay", str(capsule), "--target", "local", "--json", timeout=900)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["counts"] == {"identical": 3}
    [nb] = report["notebooks"]
    assert {c["verdict"] for c in nb["cells"]} == {"identical"}
