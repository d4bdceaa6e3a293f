"""The rules behind every-Python support: which versions a study may ask for, what an
interpreter's ABI tag is, which wheel platforms an image's pip accepts, what an sdist builds
with, and how image references split for a pull."""

from __future__ import annotations

import io
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from repro.engines.docker_engine import _split_ref
from repro.env.installer import pip_error
from repro.env.pythons import abi_tag, check_version, find_python, parse_info, python_info
from repro.env.wheels import LEGACY_BUILD_REQUIRES, WheelTarget, build_requires, platform_tags
from repro.errors import ConfigError, EnvironmentBuildError, UsageError


@pytest.mark.parametrize(
    ("asked", "expected"),
    [("3.6", "3.6"), ("3.10.4", "3.10"), (" 3.12 ", "3.12"), ("3.13", "3.13")],
)
def test_versions_a_study_may_ask_for(asked: str, expected: str) -> None:
    assert check_version(asked, "runtime.txt") == expected


@pytest.mark.parametrize("asked", ["2.7", "3.5", "4.0", "3", "3.9x", "three"])
def test_versions_repro_cannot_build_are_refused_naming_who_asked(asked: str) -> None:
    with pytest.raises(ConfigError) as exc:
        check_version(asked, "Pipfile [requires]")
    assert exc.value.message.startswith("Pipfile [requires]")
    assert exc.value.hint
    with pytest.raises(UsageError):
        check_version(asked, "--python", usage=True)


@pytest.mark.parametrize(
    ("implementation", "soabi", "tag"),
    [
        ("CPython", "cpython-36m-x86_64-linux-gnu", "cp36m"),
        ("CPython", "cpython-311-x86_64-linux-gnu", "cp311"),
        ("CPython", "cpython-313t-x86_64-linux-gnu", "cp313t"),
        ("PyPy", "pypy39-pp73-x86_64-linux-gnu", "pypy39"),
        ("CPython", "", None),
    ],
)
def test_abi_tags_are_the_wheel_tags_of_the_interpreter(
    implementation: str, soabi: str, tag: str | None
) -> None:
    assert abi_tag(implementation, soabi) == tag


def test_this_interpreter_describes_itself() -> None:
    info = python_info(sys.executable)
    assert info is not None
    assert info.version.startswith(f"{sys.version_info.major}.{sys.version_info.minor}.")
    assert info.abi == f"cp{sys.version_info.major}{sys.version_info.minor}"
    assert parse_info("garbage") is None


def test_a_python_that_is_nowhere_and_may_not_be_downloaded_is_one_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("UV_PYTHON_DOWNLOADS", "never")
    with pytest.raises(EnvironmentBuildError) as exc:
        find_python("3.98")
    assert "Python 3.98 is not installed" in exc.value.message
    assert "UV_PYTHON_DOWNLOADS" in exc.value.message
    assert "uv python install 3.98" in exc.value.hint


def test_an_old_pip_gets_only_the_manylinux_tags_it_knows() -> None:
    """pip 18.1 (Python 3.6's ensurepip) knows manylinux1 only; 19.0 adds 2010, 19.3 adds
    2014, 20.3 the manylinux_2_X tags."""
    glibc = (2, 36)
    assert platform_tags(glibc, "x86_64", (18, 1)) == ["manylinux1_x86_64", "linux_x86_64"]
    assert "manylinux2010_x86_64" in platform_tags(glibc, "x86_64", (19, 0))
    assert "manylinux2014_x86_64" not in platform_tags(glibc, "x86_64", (19, 0))
    new = platform_tags(glibc, "x86_64", (23, 0))
    assert new[0] == "manylinux_2_36_x86_64"
    assert new.index("manylinux_2_17_x86_64") < new.index("manylinux2014_x86_64")
    assert "manylinux_2_37_x86_64" not in new  # newer than the image's glibc
    assert new[-1] == "linux_x86_64"


def test_an_image_without_glibc_gets_musllinux_or_pure_wheels_only() -> None:
    assert platform_tags(None, "aarch64", (23, 0))[:1] == ["musllinux_1_2_aarch64"]
    assert platform_tags(None, "x86_64", (20, 0)) == ["linux_x86_64"]


def test_a_wheel_target_names_python_abi_and_platforms_for_pip() -> None:
    target = WheelTarget("3.6.15", ("cp36m", "abi3", "none"), ("manylinux1_x86_64",))
    args = target.pip_args()
    assert args[:2] == ["--python-version", "3.6.15"]
    assert args[args.index("--abi") : args.index("--abi") + 2] == ["--abi", "cp36m"]
    assert "--platform" in args and "--implementation" in args
    assert WheelTarget("3.10").pip_args() == ["--python-version", "3.10"]
    assert target.key != WheelTarget("3.6.15", ("cp36m",), ("manylinux1_x86_64",)).key


def _sdist(tmp_path: Path, name: str, files: dict[str, str]) -> Path:
    path = tmp_path / name
    if name.endswith(".zip"):
        with zipfile.ZipFile(path, "w") as zf:
            for member, text in files.items():
                zf.writestr(member, text)
        return path
    with tarfile.open(path, "w:gz") as tar:
        for member, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(member)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_an_sdist_builds_with_what_its_pyproject_names(tmp_path: Path) -> None:
    flit = _sdist(
        tmp_path,
        "a-1.0.tar.gz",
        {
            "a-1.0/pyproject.toml": '[build-system]\nrequires = ["flit_core>=3.2,<4"]\n',
            "a-1.0/tests/pyproject.toml": '[build-system]\nrequires = ["nothing"]\n',
        },
    )
    assert build_requires(flit) == ["flit_core>=3.2,<4"]
    legacy = _sdist(tmp_path, "b-0.6.2.tar.gz", {"b-0.6.2/setup.py": "setup()"})
    assert build_requires(legacy) == list(LEGACY_BUILD_REQUIRES)
    zipped = _sdist(
        tmp_path,
        "c-2.0.zip",
        {"c-2.0/pyproject.toml": '[build-system]\nrequires = ["hatchling"]\n'},
    )
    assert build_requires(zipped) == ["hatchling"]
    broken = _sdist(tmp_path, "d-1.tar.gz", {"d-1/pyproject.toml": "[build-system\n"})
    assert build_requires(broken) == list(LEGACY_BUILD_REQUIRES)
    (tmp_path / "e-1.tar.gz").write_bytes(b"not an archive")
    assert build_requires(tmp_path / "e-1.tar.gz") == list(LEGACY_BUILD_REQUIRES)


def test_pip_errors_are_short_and_skip_the_versions_it_passed_over() -> None:
    stderr = (
        "ERROR: Ignored the following versions that require a different python version: "
        + "; ".join(f"{i}.0 Requires-Python >=3.7" for i in range(500))
        + "\nERROR: Could not find a version that satisfies the requirement x==1 (from "
        "versions: 0.1)\nERROR: No matching distribution found for x==1\n"
    )
    text = pip_error(stderr)
    assert "Ignored" not in text and "No matching distribution found for x==1" in text
    assert len(text) <= 300


@pytest.mark.parametrize(
    ("ref", "split"),
    [
        ("python:3.6-slim", ("python", "3.6-slim")),
        ("python", ("python", "latest")),
        ("127.0.0.1:5000/lab/base:2", ("127.0.0.1:5000/lab/base", "2")),
        ("127.0.0.1:5000/lab/base", ("127.0.0.1:5000/lab/base", "latest")),
        ("python@sha256:" + "a" * 64, ("python@sha256:" + "a" * 64, None)),
    ],
)
def test_image_references_split_into_repository_and_tag(
    ref: str, split: tuple[str, str | None]
) -> None:
    assert _split_ref(ref) == split


def test_a_batch_task_refuses_a_node_whose_python_is_not_the_capsule_s(tmp_path: Path) -> None:
    """The job checks the interpreter it gets: a venv whose python is another version (or
    does not run on the node) stops the task with exit 97 and says why."""
    import os
    import subprocess

    from repro.config.models import Run
    from repro.scheduler.scripts import render_script

    script = tmp_path / "job.sh"
    script.write_text(render_script(Run(name="a", command="echo ran"), [{}]))
    venv = tmp_path / "venv" / "bin"
    venv.mkdir(parents=True)
    (venv / "python").symlink_to(sys.executable)
    running = f"{sys.version_info.major}.{sys.version_info.minor}"
    base = {"PATH": os.environ["PATH"], "REPRO_PROJECT": str(tmp_path)}
    base["REPRO_VENV"] = str(venv.parent)

    def task(python: str) -> subprocess.CompletedProcess[str]:
        env = {**base, "REPRO_PYTHON": python}
        return subprocess.run(
            ["bash", str(script)], env=env, capture_output=True, text=True, check=False
        )

    same = task(running)
    assert same.returncode == 0 and same.stdout.strip() == "ran", same.stderr
    other = task("3.6")
    assert other.returncode == 97 and "ran" not in other.stdout
    assert "is not Python 3.6" in other.stderr
    (venv / "python").unlink()
    (venv / "python").symlink_to("/nonexistent/python3.6")
    gone = task("3.6")
    assert gone.returncode == 97, gone.stderr


def test_a_replay_compares_the_abi_when_both_sides_record_it() -> None:
    from types import SimpleNamespace

    from repro.machine import fingerprint
    from repro.replay.environment import differences

    here = fingerprint()
    assert here.python_abi == f"cp{sys.version_info.major}{sys.version_info.minor}"
    env = SimpleNamespace(packages=[], local_packages=[])
    same = SimpleNamespace(platform=here, environment=env)
    assert differences(same, here, here.python_version, None, here.python_abi) == []  # type: ignore[arg-type]
    debug = differences(same, here, here.python_version, None, here.python_abi + "d")  # type: ignore[arg-type, operator]
    assert [(d.what, d.replayed) for d in debug] == [("python abi", f"{here.python_abi}d")]
    old = SimpleNamespace(platform=here.model_copy(update={"python_abi": None}), environment=env)
    assert differences(old, here, here.python_version, None, "cp36m") == []  # type: ignore[arg-type]
