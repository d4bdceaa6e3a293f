"""The environment stage against real tools: local packages built into wheels (deterministic,
never confused with an index package), git dependencies pinned to a commit, postBuild and
apt.txt failures reported in one line with nothing written."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import tarfile
from pathlib import Path

import pytest

from tests.conftest import git, make_wheel, require_service, run_cli

SETUP_PY = """\
from setuptools import setup

setup(name="{name}", version="{version}", packages=["{name}"], install_requires={requires!r})
"""


def make_package(
    root: Path,
    name: str,
    version: str = "0.1.0",
    requires: list[str] | None = None,
    body: str = "WHO = 'local'\n",
) -> Path:
    (root / name).mkdir(parents=True, exist_ok=True)
    (root / name / "__init__.py").write_text(body)
    (root / "setup.py").write_text(
        SETUP_PY.format(name=name, version=version, requires=requires or [])
    )
    return root


def study(project: Path, script: str, outputs: list[str]) -> Path:
    project.mkdir(parents=True, exist_ok=True)
    (project / "verify.py").write_text(script)
    runs = json.dumps(outputs)
    (project / "repro.toml").write_text(
        f'[capsule]\ntitle = "t"\n[[runs]]\nname = "verify"\ncommand = "python verify.py"\n'
        f"outputs = {runs}\n"
    )
    return project


VERIFY_LOCAL = """\
import json, pathlib
import mystudy
pathlib.Path("results").mkdir(exist_ok=True)
pathlib.Path("results/who.json").write_text(json.dumps({"who": mystudy.WHO}))
"""


def manifest_of(capsule: Path) -> dict[str, object]:
    with tarfile.open(capsule) as tar:
        member = tar.extractfile("repro.json")
        assert member is not None
        return json.loads(member.read())  # type: ignore[no-any-return]


def member_text(capsule: Path, name: str) -> str:
    with tarfile.open(capsule) as tar:
        member = tar.extractfile(name)
        assert member is not None
        return member.read().decode()


@pytest.mark.network
def test_the_project_is_built_into_a_wheel_deterministically(tmp_path: Path) -> None:
    project = study(tmp_path / "p", VERIFY_LOCAL, ["results/who.json"])
    make_package(project, "mystudy")
    env = {"SOURCE_DATE_EPOCH": "1700000000"}
    a, b = tmp_path / "a.tgz", tmp_path / "b.tgz"
    for out in (a, b):
        result = run_cli("capture", str(project), "-o", str(out), "--no-sign", env=env)
        assert result.returncode == 0, result.stderr
    assert a.read_bytes() == b.read_bytes()
    environment = manifest_of(a)["environment"]
    assert isinstance(environment, dict)
    (package,) = environment["local_packages"]
    assert package["name"] == "mystudy" and package["kind"] == "project"
    assert package["wheel"].startswith("data/env/local-wheels/mystudy-0.1.0-")
    assert environment["declaration"]["used"] == ["setup.py"]
    replay = run_cli("replay", str(a), "--target", "local", "--json")
    assert replay.returncode == 0, replay.stderr
    assert json.loads(replay.stdout)["counts"] == {"identical": 1}


@pytest.mark.network
def test_an_index_package_of_a_local_package_s_name_is_refused(
    tmp_path: Path, wheelhouse: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """reprotest_stats (on the index) depends on reprotest_core; the project ships its own
    reprotest_core: the index one must never be installed in its place."""
    monkeypatch.setenv("UV_FIND_LINKS", str(wheelhouse))
    project = study(tmp_path / "p", "print('x')\n", [])
    (project / "requirements.txt").write_text("reprotest_stats\n./vendor/core\n")
    make_package(project / "vendor" / "core", "reprotest_core", "1.0.0")
    result = run_cli("capture", str(project), "-o", str(tmp_path / "x.tgz"), "--no-sign")
    assert result.returncode == 1
    assert "reprotest-core is a local package of this project" in result.stderr
    assert "hint:" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "x.tgz").exists()


@pytest.mark.network
def test_a_git_dependency_is_pinned_to_its_commit(tmp_path: Path) -> None:
    source = make_package(tmp_path / "helper-src", "mystudy", "1.2.0")
    git(source, "init", "-q")
    git(source, "add", "-A")
    git(source, "commit", "-qm", "v1.2")
    git(source, "tag", "v1.2")
    commit = git(source, "rev-parse", "HEAD").strip()
    (source / "mystudy" / "__init__.py").write_text("WHO = 'later'\n")
    git(source, "commit", "-qam", "later")
    project = study(tmp_path / "p", VERIFY_LOCAL, ["results/who.json"])
    (project / "requirements.txt").write_text(f"git+file://{source}@v1.2#egg=mystudy\n")
    capsule = tmp_path / "g.tgz"
    result = run_cli("capture", str(project), "-o", str(capsule), "--no-sign")
    assert result.returncode == 0, result.stderr
    (package,) = manifest_of(capsule)["environment"]["local_packages"]  # type: ignore[index]
    assert (package["kind"], package["ref"], package["commit"]) == ("git", "v1.2", commit)
    assert "mystudy" not in member_text(capsule, "data/env/requirements.lock")
    who = json.loads(member_text(capsule, "data/results/verify/_/results/who.json"))
    assert who == {"who": "local"}  # the tagged commit, not the later one


def test_an_unreachable_git_dependency_is_one_line(tmp_path: Path) -> None:
    project = study(tmp_path / "p", "print('x')\n", [])
    (project / "requirements.txt").write_text("git+https://git.invalid/lab/tool.git#egg=tool\n")
    result = run_cli("capture", str(project), "-o", str(tmp_path / "x.tgz"), "--no-sign")
    assert result.returncode == 5, result.stderr
    errors = [ln for ln in result.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "git dependency tool" in errors[0]
    assert "hint:" in result.stderr and not (tmp_path / "x.tgz").exists()


def test_a_failing_post_build_fails_the_capture(tmp_path: Path) -> None:
    project = study(tmp_path / "p", "print('x')\n", [])
    (project / "binder").mkdir()
    (project / "binder" / "postBuild").write_text("#!/bin/sh\necho preparing\nexit 3\n")
    result = run_cli("capture", str(project), "-o", str(tmp_path / "x.tgz"), "--no-sign")
    assert result.returncode == 1
    errors = [ln for ln in result.stderr.splitlines() if ln.startswith("error:")]
    assert errors == ["error: binder/postBuild failed with exit code 3: preparing"]
    assert "hint:" in result.stderr and not (tmp_path / "x.tgz").exists()


def test_post_build_runs_once_in_the_environment_and_is_part_of_its_key(tmp_path: Path) -> None:
    script = (
        "import pathlib, sys\n"
        "pathlib.Path('results').mkdir(exist_ok=True)\n"
        "pathlib.Path('results/marker.txt').write_text(\n"
        "    pathlib.Path(sys.prefix, 'marker.txt').read_text())\n"
    )
    project = study(tmp_path / "p", script, ["results/marker.txt"])
    post = project / "postBuild"  # no shebang: run with /bin/sh, as a shell would
    post.write_text(
        "python -c \"import sys, pathlib; pathlib.Path(sys.prefix, 'marker.txt').write_text('one')\"\n"
    )
    capsule = tmp_path / "one.tgz"
    assert run_cli("capture", str(project), "-o", str(capsule), "--no-sign").returncode == 0
    assert member_text(capsule, "data/results/verify/_/results/marker.txt") == "one"
    post.write_text(post.read_text().replace("'one'", "'two'"))
    second = tmp_path / "two.tgz"
    result = run_cli("capture", str(project), "-o", str(second), "--no-sign")
    assert result.returncode == 0, result.stderr
    assert member_text(second, "data/results/verify/_/results/marker.txt") == "two"
    replay = run_cli("replay", str(second), "--target", "local", "--json")
    assert replay.returncode == 0, replay.stderr


def test_apt_packages_missing_on_the_host_exit_5(tmp_path: Path) -> None:
    project = study(tmp_path / "p", "print('x')\n", [])
    (project / "apt.txt").write_text("# needed for the figures\nrepro-no-such-package\n")
    result = run_cli("capture", str(project), "-o", str(tmp_path / "x.tgz"), "--no-sign")
    assert result.returncode == 5
    assert "repro-no-such-package" in result.stderr and "--target docker" in result.stderr
    assert not (tmp_path / "x.tgz").exists()


@pytest.mark.network
def test_the_user_s_tree_is_not_written_by_the_wheel_build(tmp_path: Path) -> None:
    """setuptools writes *.egg-info and build/ into the folder it builds: never the user's."""
    project = study(tmp_path / "p", "print('x')\n", [])
    make_package(project, "mystudy")
    before = sorted(p.relative_to(project) for p in project.rglob("*"))
    subprocess.run(["git", "init", "-q", str(project)], check=True)
    result = run_cli("capture", str(project), "-o", str(tmp_path / "x.tgz"), "--no-sign")
    after = sorted(p.relative_to(project) for p in project.rglob("*") if ".git" not in p.parts)
    assert after == before, result.stderr


@pytest.mark.network
def test_an_older_python_from_runtime_txt_is_found_and_recorded(tmp_path: Path) -> None:
    """runtime.txt python-3.8: the interpreter is found (pyenv's, whose shim alone cannot
    run), the lock is resolved for it, and the manifest records the version that ran."""
    script = (
        "import json, pathlib, sys\n"
        "pathlib.Path('results').mkdir(exist_ok=True)\n"
        "pathlib.Path('results/v.json').write_text(json.dumps('%d.%d' % sys.version_info[:2]))\n"
    )
    project = study(tmp_path / "p", script, ["results/v.json"])
    (project / "runtime.txt").write_text("python-3.8\n")
    (project / "requirements.txt").write_text("six==1.16.0\n")
    capsule = tmp_path / "old.tgz"
    result = run_cli("capture", str(project), "-o", str(capsule), "--no-sign")
    require_service("Python 3.8 is not installed" not in result.stderr, "Python 3.8 (pyenv)")
    assert result.returncode == 0, result.stderr
    manifest = manifest_of(capsule)
    assert manifest["platform"]["python_version"].startswith("3.8.")  # type: ignore[index]
    assert manifest["environment"]["python_version"] == "3.8"  # type: ignore[index]
    assert json.loads(member_text(capsule, "data/results/verify/_/results/v.json")) == "3.8"
    replay = run_cli("replay", str(capsule), "--target", "local", "--json")
    assert replay.returncode == 0, replay.stderr
    assert not json.loads(replay.stdout)["environment_differences"]


@pytest.mark.network
def test_capture_in_the_image_when_the_host_lacks_an_apt_package(
    tmp_path: Path, docker_engine: str
) -> None:
    """apt.txt names a tool this machine lacks: the local capture says so (exit 5), and
    `capture --target docker` runs the study in the capsule's own image, whose expected
    results a docker replay then reproduces."""
    script = (
        "import json, pathlib, subprocess\n"
        "out = subprocess.run(['figlet', '-w', '60', 'repro'], capture_output=True, text=True)\n"
        "pathlib.Path('results').mkdir(exist_ok=True)\n"
        "pathlib.Path('results/banner.json').write_text(json.dumps(out.stdout.splitlines()))\n"
    )
    project = study(tmp_path / "p", script, ["results/banner.json"])
    (project / "apt.txt").write_text("# the banner\nfiglet\n")
    require_service(
        subprocess.run(["dpkg", "-s", "figlet"], capture_output=True, check=False).returncode != 0,
        "a host without figlet (the test needs an apt package the host lacks)",
    )
    local = run_cli("capture", str(project), "-o", str(tmp_path / "l.tgz"), "--no-sign")
    assert local.returncode == 5 and "figlet" in local.stderr, local.stderr
    capsule = tmp_path / "d.tgz"
    base = ["--base-image", docker_engine]
    result = run_cli(
        "capture", str(project), "-o", str(capsule), "--no-sign", "--target", "docker", *base
    )
    assert result.returncode == 0, result.stderr
    manifest = manifest_of(capsule)
    assert manifest["environment"]["captured_on"] == "docker"  # type: ignore[index]
    assert manifest["environment"]["apt_packages"] == ["figlet"]  # type: ignore[index]
    banner = json.loads(member_text(capsule, "data/results/verify/_/results/banner.json"))
    assert len(banner) >= 4 and any("_" in line for line in banner)  # figlet really ran
    replay = run_cli("replay", str(capsule), "--target", "docker", "--json", *base)
    assert replay.returncode == 0, replay.stderr
    assert json.loads(replay.stdout)["counts"] == {"identical": 1}
    refused = run_cli("replay", str(capsule), "--target", "local")
    assert refused.returncode == 5 and "--target docker" in refused.stderr


def test_credentials_of_a_git_url_never_reach_the_error_or_the_capsule(tmp_path: Path) -> None:
    project = study(tmp_path / "p", "print('x')\n", [])
    token = "hunter2-not-a-pattern"  # noqa: S105 - a fake credential, the point of the test
    (project / "requirements.txt").write_text(
        f"git+https://someone:{token}@git.invalid/lab/tool.git#egg=tool\n"
    )
    # the file itself would carry the credential into the capsule: the scan stops it first
    scanned = run_cli("capture", str(project), "-o", str(tmp_path / "x.tgz"), "--no-sign")
    assert scanned.returncode == 1 and "password in a URL" in scanned.stderr, scanned.stderr
    assert token not in scanned.stderr and token not in scanned.stdout
    # allowed through the scan, the git fetch fails, and says so without the credential
    result = run_cli(
        "capture", str(project), "-o", str(tmp_path / "x.tgz"), "--no-sign",
        "--allow-secret", "requirements.txt",
    )  # fmt: skip
    assert result.returncode == 5, result.stderr  # fetched, and failed, as the git dependency
    assert "git dependency tool (https://git.invalid/lab/tool.git" in result.stderr
    assert token not in result.stderr and token not in result.stdout
    assert not (tmp_path / "x.tgz").exists()


@pytest.mark.network
def test_a_project_setup_py_that_no_longer_builds_is_left_out_with_a_note(
    tmp_path: Path,
) -> None:
    """repo2docker would `pip install .` it and fail; a research repository whose setup.py
    rotted still runs from its root: the capture goes on and says so."""
    script = (
        "import json, pathlib, analysis\n"
        "pathlib.Path('results').mkdir(exist_ok=True)\n"
        "pathlib.Path('results/x.json').write_text(json.dumps(analysis.VALUE))\n"
    )
    project = study(tmp_path / "p", script, ["results/x.json"])
    (project / "analysis.py").write_text("VALUE = 42\n")
    (project / "setup.py").write_text("import numpy.distutils_gone  # rotted\n")
    capsule = tmp_path / "x.tgz"
    result = run_cli("capture", str(project), "-o", str(capsule), "--no-sign", "--json")
    assert result.returncode == 0, result.stderr
    manifest = manifest_of(capsule)
    assert manifest["environment"]["local_packages"] == []  # type: ignore[index]
    assert any("setup.py could not be built" in n for n in manifest["notes"])  # type: ignore[union-attr]
    strict = study(tmp_path / "strict", script, ["results/x.json"])
    for name in ("analysis.py", "setup.py"):
        (strict / name).write_text((project / name).read_text())
    with (strict / "repro.toml").open("a") as fh:
        fh.write("[environment]\ninstall_project = true\n")
    refused = run_cli("capture", str(strict), "-o", str(tmp_path / "s.tgz"), "--no-sign")
    assert refused.returncode == 1 and "into a wheel" in refused.stderr


def test_post_build_pip_installs_into_the_study_s_environment_not_the_host_s(
    tmp_path: Path,
) -> None:
    """Binder postBuild scripts `pip install` things: that pip must be the venv's (repo2docker
    environments have one), never the interpreter running repro."""
    wheel_dir = tmp_path / "wheels"
    wheel_dir.mkdir()
    make_wheel(wheel_dir, "reprotest_postbuilt", "1.0.0", "WHO = 'postBuild'\n", [])
    script = (
        "import json, pathlib, reprotest_postbuilt\n"
        "pathlib.Path('results').mkdir(exist_ok=True)\n"
        "pathlib.Path('results/x.json').write_text(json.dumps(reprotest_postbuilt.WHO))\n"
    )
    project = study(tmp_path / "p", script, ["results/x.json"])
    (project / "postBuild").write_text(
        f"#!/bin/bash\nset -e\npip install --no-index --find-links {wheel_dir} reprotest_postbuilt\n"
    )
    result = run_cli("capture", str(project), "-o", str(tmp_path / "x.tgz"), "--no-sign")
    assert result.returncode == 0, result.stderr
    importlib.invalidate_caches()
    assert importlib.util.find_spec("reprotest_postbuilt") is None  # not in repro's Python
