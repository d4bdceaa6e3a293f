"""Studies pinned to the Python they were written for, with pins of their era, captured and
replayed on the local and docker targets: the interpreter found (pyenv's here), the lock
resolved for it (pip's resolver where uv refuses old metadata), the image's Python the
study's (python:X.Y-slim, built by scripts/ci/setup-pythons.sh), wheels the image's own pip
accepts, an sdist-only package built offline in the image, the notebook driver on the
oldest Python, and no false environment difference."""

from __future__ import annotations

import json
import tarfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import docker_ready, require_service, run_cli

SCRIPT = """\
import json, os, sys
{imports}
os.makedirs("results", exist_ok=True)
with open("results/versions.json", "w") as fh:
    json.dump({{"python": "%d.%d" % sys.version_info[:2], {checks}}}, fh, sort_keys=True)
"""

NOTEBOOK = {
    "cells": [
        {
            "cell_type": "code",
            "execution_count": None,
            "id": "c1",
            "metadata": {},
            "outputs": [],
            "source": "import sys\nprint('%d.%d' % sys.version_info[:2])",
        }
    ],
    "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3"}},
    "nbformat": 4,
    "nbformat_minor": 5,
}


@dataclass(frozen=True)
class Era:
    python: str
    requirements: str
    imports: str
    checks: str
    notebook: bool = False
    """The oldest and the newest run a notebook too (the driver on both ends)."""
    resolved_by: str = "uv"


ERAS = [
    # 2017: pandas 0.19's metadata (`pytz (>=2011k)`) is refused by uv, so pip's resolver
    # locks it under Python 3.6; docopt 0.6.2 was only ever an sdist; the 3.6 image's venv
    # pip (18.1) accepts manylinux1 wheels only.
    Era(
        "3.6",
        "numpy==1.13.3\npandas==0.19.2\ndocopt==0.6.2\n",
        "import numpy, pandas, docopt",
        '"sum": int(pandas.Series(numpy.arange(4)).sum()), "docopt": docopt.__version__',
        notebook=True,
        resolved_by="pip-tools",
    ),
    # 2020
    Era(
        "3.8",
        "numpy==1.18.5\nsix==1.15.0\n",
        "import numpy, six",
        '"mean": float(numpy.mean([1, 2, 3, 4])), "six": six.__version__',
    ),
    # 2024
    Era(
        "3.12",
        "numpy==1.26.4\n",
        "import numpy",
        '"std": round(float(numpy.std([1.0, 2.0, 4.0])), 6)',
        notebook=True,
    ),
]


def make_study(root: Path, era: Era) -> Path:
    """A study as a repository of its time writes it: runtime.txt, requirements.txt, a
    script, maybe a notebook; the repro.toml names only the run."""
    root.mkdir(parents=True)
    (root / "runtime.txt").write_text(f"python-{era.python}\n")
    (root / "requirements.txt").write_text(era.requirements)
    (root / "analysis.py").write_text(SCRIPT.format(imports=era.imports, checks=era.checks))
    (root / "repro.toml").write_text(
        '[capsule]\ntitle = "era"\n[[runs]]\nname = "analysis"\n'
        'command = "python analysis.py"\noutputs = ["results/versions.json"]\n'
    )
    if era.notebook:
        (root / "check.ipynb").write_text(json.dumps(NOTEBOOK))
        with (root / "repro.toml").open("a") as fh:
            fh.write('[[notebooks]]\npath = "check.ipynb"\n')
    return root


def notebook_verdicts(report: dict[str, object]) -> list[str]:
    return [nb["verdict"] for nb in report["notebooks"]]  # type: ignore[attr-defined, index]


def manifest_of(capsule: Path) -> dict[str, object]:
    with tarfile.open(capsule) as tar:
        member = tar.extractfile("repro.json")
        assert member is not None
        return json.loads(member.read())  # type: ignore[no-any-return]


@pytest.mark.network
@pytest.mark.slow
@pytest.mark.parametrize("era", ERAS, ids=[e.python for e in ERAS])
def test_a_study_of_its_era_captures_and_replays_on_local_and_docker(
    tmp_path: Path, era: Era
) -> None:
    project = make_study(tmp_path / "study", era)
    capsule = tmp_path / "study.tgz"
    result = run_cli("capture", str(project), "-o", str(capsule), "--no-sign")
    require_service(
        f"Python {era.python} is not installed" not in result.stderr, f"Python {era.python}"
    )
    assert result.returncode == 0, result.stderr
    manifest = manifest_of(capsule)
    env, platform = manifest["environment"], manifest["platform"]
    assert env["python_version"] == era.python  # type: ignore[index]
    assert env["lock_source"] == era.resolved_by  # type: ignore[index]
    assert platform["python_version"].startswith(era.python + ".")  # type: ignore[index]
    abi = "cp" + era.python.replace(".", "") + ("m" if era.python in ("3.6", "3.7") else "")
    assert platform["python_abi"] == abi  # type: ignore[index]
    assert env["base_image"] == f"python:{era.python}-slim"  # type: ignore[index]
    if era.resolved_by == "pip-tools":
        assert "resolved with pip's resolver" in result.stderr + result.stdout

    local = run_cli("replay", str(capsule), "--target", "local", "--json")
    assert local.returncode == 0, local.stderr
    report = json.loads(local.stdout)
    assert report["environment_differences"] == [], report["environment_differences"]
    assert report["counts"].get("identical", 0) >= 1
    assert notebook_verdicts(report) == (["identical"] if era.notebook else [])

    require_service(docker_ready(), "Docker engine")
    docker = run_cli("replay", str(capsule), "--target", "docker", "--json")
    require_service(
        f"python:{era.python}-slim" not in docker.stderr or docker.returncode != 5,
        f"base image python:{era.python}-slim (scripts/ci/setup-pythons.sh)",
    )
    assert docker.returncode == 0, docker.stderr
    report = json.loads(docker.stdout)
    assert report["counts"].get("identical", 0) >= 1, report
    assert notebook_verdicts(report) == (["identical"] if era.notebook else [])
    assert "python" not in {d["what"] for d in report["environment_differences"]}


@pytest.mark.network
def test_uv_refusing_old_metadata_with_resolver_uv_says_how_to_fall_back(tmp_path: Path) -> None:
    project = make_study(tmp_path / "study", ERAS[0])
    result = run_cli(
        "capture", str(project), "-o", str(tmp_path / "x.tgz"), "--no-sign", "--resolver", "uv"
    )
    assert result.returncode == 1, result.stderr
    assert "could not be parsed" in result.stderr
    assert "--resolver pip-tools" in result.stderr
    assert not (tmp_path / "x.tgz").exists()


def _capsule_for(tmp_path: Path, python: str, *, run: bool = False) -> Path:
    """A capsule of a study with no dependencies, pinned to `python`; its run (writing
    out.txt) executed at capture when `run`."""
    project = tmp_path / "p"
    project.mkdir()
    (project / "run.py").write_text("import sys\nopen('out.txt', 'w').write(sys.version[:3])\n")
    capsule = tmp_path / f"py{python}.tgz"
    result = run_cli(
        "capture", str(project), "-o", str(capsule), "--no-sign", *([] if run else ["--no-run"]),
        "--python", python, "--run", "python run.py", "--output", "out.txt",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return capsule


def test_a_replay_never_switches_to_another_python(tmp_path: Path) -> None:
    """A capsule of a Python this machine lacks (and may not download) is one error naming
    the version and how to get it, not a replay with another interpreter."""
    capsule = _capsule_for(tmp_path, "3.99")
    result = run_cli(
        "replay", str(capsule), "--target", "local", env={"UV_PYTHON_DOWNLOADS": "never"}
    )
    assert result.returncode == 1, result.stderr
    lines = [ln for ln in result.stderr.splitlines() if ln.startswith(("error:", "hint:"))]
    assert lines[0].startswith("error: Python 3.99 is not installed"), result.stderr
    assert "uv python install 3.99" in lines[1]


@pytest.mark.parametrize(
    ("flag", "message"),
    [
        ("3.9x", "'3.9x' is not a Python version"),
        ("2.7", "repro builds environments for Python 3.6 and newer"),
        ("3.5", "repro builds environments for Python 3.6 and newer"),
    ],
)
def test_a_python_flag_that_is_not_a_buildable_version_is_a_usage_error(
    tmp_path: Path, flag: str, message: str
) -> None:
    (tmp_path / "p").mkdir()
    result = run_cli(
        "capture", str(tmp_path / "p"), "-o", str(tmp_path / "x.tgz"), "--python", flag,
        "--run", "true", "--no-run",
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert message in result.stderr and "hint:" in result.stderr
    assert not (tmp_path / "x.tgz").exists()


def test_a_base_image_of_another_python_is_refused_before_the_build(tmp_path: Path) -> None:
    require_service(docker_ready(), "Docker engine")
    capsule = _capsule_for(tmp_path, "3.6")
    result = run_cli(
        "replay", str(capsule), "--target", "docker", "--base-image", "python:3.8-slim"
    )
    require_service("cannot pull" not in result.stderr, "base image python:3.8-slim")
    assert result.returncode == 1, result.stderr
    assert "runs Python 3.8, but the study is Python 3.6" in result.stderr
    assert "--base-image python:3.6-slim" in result.stderr


def test_a_base_image_that_cannot_be_pulled_exits_5_naming_it(tmp_path: Path) -> None:
    """Nothing listens on the registry's port: the pull fails, and says so in one line."""
    require_service(docker_ready(), "Docker engine")
    capsule = _capsule_for(tmp_path, "3.11")
    image = "127.0.0.1:9/repro-test/nothing:1"
    result = run_cli("replay", str(capsule), "--target", "docker", "--base-image", image)
    assert result.returncode == 5, result.stderr
    error = next(ln for ln in result.stderr.splitlines() if ln.startswith("error:"))
    assert f"cannot pull base image {image}" in error


def test_a_missing_base_image_is_pulled_with_progress_and_used(tmp_path: Path) -> None:
    """The base image is not in the engine: replay pulls it (from a registry on 127.0.0.1
    serving python:3.6-slim under another name) with progress lines, then builds on it."""
    import subprocess

    from tests.registry import serve_image

    require_service(docker_ready(), "Docker engine")
    present = subprocess.run(
        ["docker", "image", "inspect", "python:3.6-slim"], capture_output=True, check=False
    )
    require_service(present.returncode == 0, "base image python:3.6-slim")
    capsule = _capsule_for(tmp_path, "3.6", run=True)
    (tmp_path / "registry").mkdir()
    with serve_image("python:3.6-slim", tmp_path / "registry", "lab/python", "3.6-slim") as ref:
        try:
            result = run_cli("replay", str(capsule), "--target", "docker", "--base-image", ref)
            pulled = subprocess.run(
                ["docker", "image", "inspect", ref], capture_output=True, check=False
            )
        finally:
            subprocess.run(["docker", "image", "rm", "-f", ref], capture_output=True, check=False)
    assert f"pulling base image {ref}" in result.stderr
    assert pulled.returncode == 0
    assert result.returncode == 0, result.stderr
    assert "reproduced (1 identical)" in result.stdout + result.stderr


def test_a_study_of_another_python_replays_on_slurm(tmp_path: Path, slurm: None) -> None:
    """The environment is built on the submit host, in the shared working folder, for the
    capsule's Python (3.8 here, not repro's), and every task runs with it."""
    era = next(e for e in ERAS if e.python == "3.8")
    project = make_study(tmp_path / "study", era)
    capsule = tmp_path / "study.tgz"
    result = run_cli("capture", str(project), "-o", str(capsule), "--no-sign")
    require_service("Python 3.8 is not installed" not in result.stderr, "Python 3.8")
    assert result.returncode == 0, result.stderr
    replay = run_cli(
        "replay", str(capsule), "--target", "slurm", "--workdir", str(tmp_path / "shared"),
        "--json", timeout=600,
    )  # fmt: skip
    assert replay.returncode == 0, replay.stderr
    report = json.loads(replay.stdout)
    assert report["target"] == "slurm" and report["counts"] == {"identical": 1}
    assert report["environment_differences"] == [], report["environment_differences"]
