"""Replays on the real one-node Slurm cluster with every task in a container runtime
(--container): Charliecloud and Podman for real, Apptainer where it is installed; the
verdicts those give are the docker target's. Also: GPU runs refused before anything is
submitted, and a task that does not see the submit host's working directory stops the
replay with one clear error."""

from __future__ import annotations

import json
import os
import shutil
import stat
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import BASE_IMAGE, docker_ready, require_service, run_cli, slurm_ready

pytestmark = pytest.mark.slow

SEEDS = [0, 1, 2, 3]
POINT = """\
import json, os, shutil, subprocess, sys
seed = int(sys.argv[1])
jq = shutil.which("jq")
assert jq, "jq (from apt.txt) is not on PATH"
square = subprocess.run([jq, "-c", ".a * .a"], input=json.dumps({"a": seed}),
                        capture_output=True, text=True, check=True).stdout
os.makedirs("out", exist_ok=True)
with open(f"out/{seed}.json", "w") as fh:
    json.dump({"seed": seed, "square": int(square), "point": os.environ["REPRO_POINT"],
               "home_is_private": not os.path.exists(os.path.join(os.environ["HOME"], ".ssh"))},
              fh, sort_keys=True)
"""


def _project(root: Path, toml_extra: str = "", script: str = POINT) -> Path:
    project = root / "sweep"
    project.mkdir()
    (project / "point.py").write_text(script)
    (project / "apt.txt").write_text("jq\n")
    (project / "repro.toml").write_text(
        '[[runs]]\nname = "sim"\ncommand = "python point.py {seed}"\n'
        'outputs = ["out/{seed}.json"]\ntimeout = 300\n'
        f"[runs.sweep]\nseed = {SEEDS}\n" + toml_extra
    )
    return project


class Cluster:
    """One capsule and one shared working directory (its image cache) for the module: the
    environment image is built once, and converted once per runtime."""

    def __init__(self, capsule: Path, shared: Path, env: dict[str, str]) -> None:
        self.capsule, self.shared, self.env = capsule, shared, env

    def replay(self, *args: str) -> tuple[int, dict[str, Any], str]:
        result = run_cli(
            "replay",
            str(self.capsule),
            "--base-image",
            BASE_IMAGE,
            "--workdir",
            str(self.shared),
            "--json",
            *args,
            env=self.env,
            timeout=900,
        )
        report = json.loads(result.stdout) if result.stdout.strip() else {}
        return result.returncode, report, result.stderr


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, session_cache: Path) -> Cluster:
    require_service(docker_ready(), f"Docker engine with image {BASE_IMAGE}")
    require_service(slurm_ready(), "a Slurm cluster (sbatch, and a node that is up)")
    require_service(shutil.which("jq") is not None, "jq on the host (the capture's local run)")
    root = tmp_path_factory.mktemp("runtimes")
    home = root / "home"
    home.mkdir()
    env = {
        "HOME": str(home),
        "REPRO_CACHE_DIR": str(session_cache / "repro"),
        "REPRO_CONFIG_DIR": str(home / ".config" / "repro"),
        "REPRO_DATA_DIR": str(home / ".local" / "share" / "repro"),
    }
    capsule = root / "sweep.tgz"
    result = run_cli("capture", str(_project(root)), "-o", str(capsule), env=env)
    assert result.returncode == 0, result.stderr
    return Cluster(capsule, root / "shared", env)


def _verdicts(report: dict[str, Any]) -> list[tuple[str, str, str]]:
    return sorted(
        (p["point_id"], o["path"], o["verdict"]) for p in report["points"] for o in p["outputs"]
    )


@pytest.fixture(scope="module")
def docker_verdicts(cluster: Cluster) -> list[tuple[str, str, str]]:
    code, report, stderr = cluster.replay("--target", "docker")
    assert code == 0, stderr
    verdicts = _verdicts(report)
    assert {v for *_, v in verdicts} == {"identical"} and len(verdicts) == len(SEEDS)
    return verdicts


def _require_runtime(binary: str, name: str) -> None:
    require_service(shutil.which(binary) is not None, f"{name} (scripts/ci/setup-runtimes.sh)")


def _scripts(cluster: Cluster) -> list[str]:
    return [
        p.read_text()
        for p in cluster.shared.glob("replay-*/capsule/data/project/.repro-jobs/*.sbatch")
    ]


@pytest.mark.parametrize(("runtime", "binary"), [("charliecloud", "ch-run"), ("podman", "podman")])
def test_a_sweep_needing_an_apt_package_replays_in_the_runtime_as_on_docker(
    cluster: Cluster, docker_verdicts: list[tuple[str, str, str]], runtime: str, binary: str
) -> None:
    _require_runtime(binary, runtime)
    before = set(_scripts(cluster))
    code, report, stderr = cluster.replay("--target", "slurm", "--container", runtime)
    assert code == 0, stderr
    assert report["target"] == "slurm" and report["isolation"] == runtime
    assert _verdicts(report) == docker_verdicts
    assert "submitted run sim as Slurm job array" in stderr
    (script,) = set(_scripts(cluster)) - before
    assert f"{binary} " in script
    assert ("--network none" if runtime == "podman" else "unshare --net") in script
    # The conversion is kept in the shared working directory, by image id, and reused.
    again_code, again, again_err = cluster.replay(
        "--target", "slurm", "--container", runtime, "--point", "seed=1"
    )
    assert again_code == 0, again_err
    assert f"reusing the {runtime} image" in again_err and "converting" not in again_err
    assert _verdicts(again) == [v for v in docker_verdicts if v[0] == "seed=1"]


def test_apptainer_replays_where_it_is_installed(
    cluster: Cluster, docker_verdicts: list[tuple[str, str, str]]
) -> None:
    if shutil.which("apptainer") is None:
        # Not a CI service: Debian 12 has no Apptainer package. Its command lines are
        # checked exactly in tests/unit/test_runtimes.py.
        pytest.skip("apptainer is not installed here (not packaged in Debian 12)")
    code, report, stderr = cluster.replay("--target", "slurm", "--container", "apptainer")
    assert code == 0, stderr
    assert report["isolation"] == "apptainer" and _verdicts(report) == docker_verdicts


def test_a_task_that_does_not_see_the_working_directory_stops_the_replay(
    cluster: Cluster, tmp_path: Path
) -> None:
    # A node that does not share the working directory reads no marker, or another one:
    # sbatch, through this shim, hands the tasks a token the submit host did not write.
    real = shutil.which("sbatch")
    assert real is not None
    shim = tmp_path / "bin" / "sbatch"
    shim.parent.mkdir()
    shim.write_text(f'#!/bin/sh\nREPRO_SHARED_TOKEN=another-node exec {real} "$@"\n')
    shim.chmod(shim.stat().st_mode | stat.S_IXUSR)
    result = run_cli(
        "replay",
        str(cluster.capsule),
        "--target",
        "slurm",
        "--no-sandbox",
        "--point",
        "seed=0",
        env={**cluster.env, "PATH": f"{shim.parent}{os.pathsep}{os.environ['PATH']}"},
        timeout=600,
    )
    assert result.returncode == 5, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "does not see the working directory" in errors[0]
    assert "hint: replay with --workdir on a filesystem every node mounts" in result.stderr


@pytest.fixture(scope="module")
def gpu_capsule(tmp_path_factory: pytest.TempPathFactory, session_cache: Path) -> Path:
    root = tmp_path_factory.mktemp("gpu")
    project = root / "cuda"
    project.mkdir()
    (project / "check.py").write_text(
        "import glob, json, os\nos.makedirs('out', exist_ok=True)\n"
        "json.dump({'nvidia_devices': bool(glob.glob('/dev/nvidia[0-9]*'))}, "
        "open('out/cuda.json', 'w'))\n"
    )
    (project / "repro.toml").write_text(
        '[[runs]]\nname = "cuda"\ncommand = "python check.py"\noutputs = ["out/cuda.json"]\n'
        "[runs.resources]\ngpus = 1\n"
    )
    capsule = root / "cuda.tgz"
    home = root / "home"
    home.mkdir()
    env = {"HOME": str(home), "REPRO_CACHE_DIR": str(session_cache / "repro")}
    result = run_cli("capture", str(project), "-o", str(capsule), env=env)
    assert result.returncode == 0, result.stderr
    return capsule


@pytest.mark.skipif(shutil.which("nvidia-smi") is not None, reason="this machine has a GPU")
@pytest.mark.parametrize(
    "args",
    [
        ["--target", "docker"],
        ["--target", "slurm", "--container", "charliecloud"],
        ["--target", "local"],
    ],
)
def test_a_gpu_run_is_refused_before_anything_is_built_or_submitted(
    gpu_capsule: Path, args: list[str], tmp_path: Path
) -> None:
    if "slurm" in args:
        require_service(slurm_ready(), "a Slurm cluster (sbatch, and a node that is up)")
    result = run_cli("replay", str(gpu_capsule), *args, "--base-image", BASE_IMAGE, timeout=120)
    assert result.returncode == 5, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "run cuda needs 1 GPU(s)" in errors[0], result.stderr
    assert "hint:" in result.stderr
    for work in ("building image", "submitted", "converting", "replaying"):
        assert work not in result.stderr


def test_a_gpu_run_sees_the_gpu_in_its_container(gpu_capsule: Path) -> None:
    if shutil.which("nvidia-smi") is None:
        pytest.skip("no NVIDIA GPU on this machine (nvidia-smi is not installed)")
    require_service(docker_ready(), f"Docker engine with image {BASE_IMAGE}")
    result = run_cli(
        "replay", str(gpu_capsule), "--target", "docker", "--base-image", BASE_IMAGE, "--json"
    )
    report = json.loads(result.stdout)
    assert report["points"][0]["status"] == "ok", result.stderr
