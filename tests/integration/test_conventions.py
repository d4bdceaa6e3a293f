"""Environments as real projects declare them (repo2docker's conventions), end to end.

Every project under tests/projects/ proves its own environment (its run imports what its
declaration files name, asserts versions and behaviour, and writes results/verify.json).
Each is captured once per session (shared by the local, Docker and Slurm replays, across
xdist workers), then: the manifest records which files were used and ignored, what was
translated and built; `repro verify` passes; replays on every target reproduce every
output identically. Every project under tests/projects/bad/ fails capture with one error
line naming the file, a hint, and no capsule.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from repro.capsule.reader import read_capsule
from tests.conftest import require_service, run_cli
from tests.projects.helpers import (
    GIT_TAG,
    bad_expectation,
    bad_projects,
    git_dependency_url,
    good_projects,
    prepare_project,
    tag_commit,
)

GOOD = good_projects()
BAD = bad_projects()
SLURM_PROJECTS = ["postbuild", "pipfile-path", "conda-env"]
NEVER = "repro-test-should-never-be-installed"


@dataclass(frozen=True)
class Expect:
    """What a project's capsule must record about its environment."""

    used: tuple[str, ...] = ()
    """Files that must be in declaration.used."""
    not_used: tuple[str, ...] = ()
    """Files that must not be in declaration.used."""
    ignored: tuple[str, ...] = ()
    """Files that must head an entry of declaration.ignored ('FILE (reason)')."""
    folder: str | None = None
    translated: dict[str, str] = field(default_factory=dict)
    """conda spec -> the PyPI name it must be locked as."""
    left_out: tuple[str, ...] = ()
    local: tuple[tuple[str, str], ...] = ()
    """(kind, name) of every local package, in any order."""
    in_lock: tuple[str, ...] = ()
    not_in_lock: tuple[str, ...] = ()
    lock_source: str | None = None
    apt: tuple[str, ...] = ()
    post_build: bool = False
    python: str = "3.11"


EXPECT: dict[str, Expect] = {
    "requirements-root": Expect(
        used=("requirements.txt", "requirements-base.txt"),
        in_lock=("tabulate", "six"),
        not_in_lock=("colorama",),
    ),
    "requirements-hashed": Expect(
        used=("requirements.txt",), in_lock=("six", "toolz"), lock_source="existing-lock"
    ),
    "requirements-editable-dot": Expect(
        used=("requirements.txt",),
        local=(("project", "greeter"),),
        in_lock=("click", "colorama"),
        not_in_lock=("greeter",),
    ),
    "binder-folder": Expect(
        folder="binder",
        used=("binder/requirements.txt",),
        not_used=("requirements.txt", "setup.py"),
        ignored=("requirements.txt",),
        in_lock=("toolz",),
        not_in_lock=(NEVER, "wordstream"),
    ),
    "dot-binder": Expect(
        folder=".binder",
        used=(".binder/requirements.txt", ".binder/runtime.txt"),
        not_used=("runtime.txt", "apt.txt"),
        ignored=("runtime.txt", "apt.txt"),
        in_lock=("attrs",),
    ),
    "pipfile-dev": Expect(
        used=("Pipfile",), in_lock=("urllib3", "pysocks", "click", "more-itertools")
    ),
    "pipfile-lock": Expect(
        used=("Pipfile.lock",),
        not_used=("Pipfile",),
        ignored=("Pipfile",),
        in_lock=("six", "attrs", "toolz"),
        lock_source="pipfile-lock",
    ),
    "pipfile-path": Expect(
        used=("Pipfile",),
        local=(("path", "tabulate"),),
        in_lock=("six",),
        not_in_lock=("tabulate",),  # dependency confusion: PyPI has a tabulate 0.9.0 too
    ),
    "pipfile-git": Expect(
        used=("Pipfile",),
        local=(("git", "reprogitdemo"),),
        in_lock=("idna",),
        not_in_lock=("reprogitdemo",),
    ),
    "setup-py-project": Expect(
        used=("setup.py",),
        local=(("project", "tidecal"),),
        in_lock=("python-dateutil",),
        not_in_lock=("tidecal",),
    ),
    "pyproject-project": Expect(
        used=("pyproject.toml",),
        local=(("project", "versionscan"),),
        in_lock=("packaging", "more-itertools"),
        not_in_lock=("versionscan", "pytest"),
    ),
    "pyproject-deps-only": Expect(
        used=("pyproject.toml",), in_lock=("toolz", "pyyaml"), not_in_lock=("station-summaries",)
    ),
    "conda-env": Expect(
        used=("environment.yml",),
        translated={"pyyaml": "pyyaml", "toolz=0.12": "toolz"},
        in_lock=("six", "pyyaml", "toolz", "tabulate"),
    ),
    "conda-rename": Expect(
        used=("environment.yml",),
        translated={"msgpack-python>=1.0": "msgpack"},
        in_lock=("msgpack", "python-dateutil"),
        not_in_lock=("msgpack-python",),
    ),
    "conda-only-skip": Expect(
        used=("environment.yml",),
        left_out=("cudatoolkit", "ffmpeg", "r-base"),
        in_lock=("six", "toolz"),
        not_in_lock=("cudatoolkit", "ffmpeg", "r-base"),
    ),
    "postbuild": Expect(used=("requirements.txt", "postBuild"), in_lock=("idna",), post_build=True),
    "apt-txt": Expect(used=("requirements.txt", "apt.txt"), in_lock=("colorama",), apt=("jq",)),
    "no-declaration-packages": Expect(in_lock=("tabulate",)),
    "mixed-precedence": Expect(
        used=("environment.yml",),
        not_used=("Pipfile", "requirements.txt"),
        ignored=("Pipfile", "requirements.txt"),
        in_lock=("more-itertools", "attrs"),
        not_in_lock=(NEVER,),
    ),
}


def test_every_project_is_covered() -> None:
    assert len(GOOD) >= 16 and len(BAD) >= 8
    assert set(EXPECT) == set(GOOD)


# --- one capsule per project, shared by every test (and every xdist worker) ----------------


@dataclass
class Captured:
    name: str
    project: Path
    capsule: Path
    returncode: int
    stdout: str
    stderr: str
    seconds: float

    def require(self) -> Captured:
        if self.returncode != 0:
            pytest.fail(
                f"capture of {self.name} failed (exit {self.returncode}):\n{self.stderr[-4000:]}",
                pytrace=False,
            )
        return self


class Captures:
    """Captures each project once: under a lock in a folder every xdist worker shares, so a
    project's local, docker and slurm tests reuse one capsule wherever they run."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self.seen: dict[str, Captured] = {}

    def get(self, name: str) -> Captured:
        if name not in self.seen:
            self.seen[name] = self._capture_once(name)
        return self.seen[name].require()

    def _capture_once(self, name: str) -> Captured:
        folder = self.root / name
        with (self.root / f"{name}.lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            done = folder / "captured.json"
            if not done.is_file():
                if folder.exists():
                    shutil.rmtree(folder)
                folder.mkdir()
                project = prepare_project(name, folder / name)
                capsule = folder / f"{name}.capsule.tgz"
                t0 = time.monotonic()
                proc = run_cli("capture", str(project), "-o", str(capsule), "--json", timeout=900)
                record = {
                    "project": str(project),
                    "capsule": str(capsule),
                    "returncode": proc.returncode,
                    "stdout": proc.stdout,
                    "stderr": proc.stderr,
                    "seconds": time.monotonic() - t0,
                }
                done.write_text(json.dumps(record))
            record = json.loads(done.read_text())
        return Captured(
            name,
            Path(record["project"]),
            Path(record["capsule"]),
            record["returncode"],
            record["stdout"],
            record["stderr"],
            record["seconds"],
        )


@pytest.fixture(scope="module")
def captures(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Captures]:
    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    yield Captures(shared / "conventions")


def manifest_of(capsule: Path) -> dict[str, Any]:
    inspected = run_cli("inspect", str(capsule), "--json")
    assert inspected.returncode == 0, inspected.stderr
    return json.loads(inspected.stdout)["manifest"]


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def lock_names(lock_text: str) -> set[str]:
    """Project names the lock pins (its requirement lines, not options or hashes)."""
    names = set()
    for line in lock_text.splitlines():
        match = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)\s*(\[[^\]]*\])?\s*(==|@|===)", line)
        if match:
            names.add(normalise(match.group(1)))
    return names


def every_verdict(report: dict[str, Any]) -> list[tuple[str, str, str]]:
    return [
        (p["point_id"], o["path"], o["verdict"]) for p in report["points"] for o in p["outputs"]
    ]


def assert_identical(report: dict[str, Any], target: str) -> None:
    verdicts = every_verdict(report)
    assert report["target"] == target
    assert verdicts, "the replay compared nothing"
    assert report["reproduced"], json.dumps(report["points"], indent=1)[:4000]
    assert {v for *_, v in verdicts} == {"identical"}, json.dumps(report["points"])[:4000]


# --- good projects --------------------------------------------------------------------------


@pytest.mark.network
@pytest.mark.parametrize("name", GOOD)
def test_capture_records_the_declaration(
    name: str, captures: Captures, tmp_path: Path, pypi: None
) -> None:
    if name == "apt-txt":
        require_service(shutil.which("jq") is not None, "jq on the host (apt-txt's local run)")
    c = captures.get(name)
    summary = json.loads(c.stdout)
    assert summary["ok"] and all(r["executed"] for r in summary["results"])
    expect = EXPECT[name]
    env = manifest_of(c.capsule)["environment"]
    decl = env["declaration"]
    assert decl is not None, "the capsule does not record its declaration"
    assert decl["folder"] == expect.folder
    for rel in expect.used:
        assert rel in decl["used"], (rel, decl)
    for rel in expect.not_used:
        assert rel not in decl["used"], (rel, decl)
    for rel in expect.ignored:
        assert any(i == rel or i.startswith(f"{rel} ") for i in decl["ignored"]), (rel, decl)
    for spec, pypi_name in expect.translated.items():
        assert spec in decl["translated"], (spec, decl["translated"])
        assert normalise(decl["translated"][spec]).startswith(pypi_name), decl["translated"]
    assert sorted(decl["left_out"]) == sorted(expect.left_out)
    assert env["python_version"].startswith(expect.python + ".") or env["python_version"] == (
        expect.python
    )
    if expect.lock_source:
        assert env["lock_source"] == expect.lock_source
    assert sorted(env["apt_packages"]) == sorted(expect.apt)
    assert bool(env["post_build"]) == expect.post_build

    capsule = read_capsule(c.capsule, tmp_path / "unpacked")
    assert capsule.root is not None
    lock_text = (capsule.root / env["lock"]).read_text(encoding="utf-8")
    locked = lock_names(lock_text)
    packages = {normalise(p["name"]) for p in env["packages"]}
    for pkg in expect.in_lock:
        assert normalise(pkg) in locked, (pkg, sorted(locked))
    for pkg in expect.not_in_lock:
        assert normalise(pkg) not in locked, (pkg, lock_text)
        assert normalise(pkg) not in packages, (pkg, sorted(packages))
        assert not re.search(rf"(?im)^\s*{re.escape(pkg)}\b", lock_text), lock_text

    local = env["local_packages"]
    assert sorted((p["kind"], normalise(p["name"])) for p in local) == sorted(
        (k, normalise(n)) for k, n in expect.local
    ), local
    for pkg in local:
        wheel = capsule.root / pkg["wheel"]
        assert wheel.is_file() and wheel.name.endswith(".whl"), pkg
        assert hashlib.sha256(wheel.read_bytes()).hexdigest() == pkg["sha256"], pkg
        assert pkg["declared_in"] in decl["used"], pkg


@pytest.mark.network
def test_the_git_dependency_is_recorded_at_its_tag(captures: Captures, pypi: None) -> None:
    c = captures.get("pipfile-git")
    (pkg,) = manifest_of(c.capsule)["environment"]["local_packages"]
    url = git_dependency_url(c.project)
    assert pkg["kind"] == "git" and pkg["version"] == "1.0.0"
    assert pkg["ref"] == GIT_TAG and pkg["commit"] == tag_commit(url, GIT_TAG)
    assert pkg["origin"].rstrip("/").endswith("reprogitdemo")


@pytest.mark.network
def test_the_local_package_named_like_a_pypi_project_is_never_looked_up(
    captures: Captures, tmp_path: Path, pypi: None
) -> None:
    """Dependency confusion: the vendored `tabulate` must come from the project, not PyPI."""
    c = captures.get("pipfile-path")
    env = manifest_of(c.capsule)["environment"]
    capsule = read_capsule(c.capsule, tmp_path / "unpacked")
    assert capsule.root is not None
    lock = (capsule.root / "data/env/requirements.lock").read_text(encoding="utf-8")
    assert "tabulate" not in lock.lower(), lock
    (pkg,) = env["local_packages"]
    assert pkg["name"] == "tabulate" and pkg["kind"] == "path"
    assert pkg["origin"] == "vendor/tabulate" and pkg["version"] == "0.9.0"


@pytest.mark.network
@pytest.mark.parametrize("name", GOOD)
def test_the_capsule_verifies(name: str, captures: Captures, pypi: None) -> None:
    c = captures.get(name)
    verified = run_cli("verify", str(c.capsule), "--json")
    assert verified.returncode == 0, verified.stderr
    assert json.loads(verified.stdout)["capsule_id"] == json.loads(c.stdout)["capsule_id"]


@pytest.mark.network
@pytest.mark.parametrize("name", GOOD)
def test_local_replay_reproduces(name: str, captures: Captures, pypi: None) -> None:
    c = captures.get(name)
    replayed = run_cli("replay", str(c.capsule), "--target", "local", "--json", timeout=900)
    assert replayed.returncode == 0, replayed.stderr[-4000:]
    assert_identical(json.loads(replayed.stdout), "local")


@pytest.mark.network
@pytest.mark.parametrize("name", GOOD)
def test_docker_replay_reproduces(
    name: str, captures: Captures, pypi: None, docker_engine: str
) -> None:
    c = captures.get(name)
    replayed = run_cli(
        "replay",
        str(c.capsule),
        "--target",
        "docker",
        "--base-image",
        docker_engine,
        "--json",
        timeout=900,
    )
    assert replayed.returncode == 0, replayed.stderr[-4000:]
    assert_identical(json.loads(replayed.stdout), "docker")


@pytest.mark.network
@pytest.mark.parametrize("name", SLURM_PROJECTS)
def test_slurm_replay_reproduces(
    name: str, captures: Captures, tmp_path: Path, pypi: None, slurm: None
) -> None:
    c = captures.get(name)
    replayed = run_cli(
        "replay",
        str(c.capsule),
        "--target",
        "slurm",
        "--workdir",
        str(tmp_path / "shared"),
        "--json",
        timeout=900,
    )
    assert replayed.returncode == 0, replayed.stderr[-4000:]
    assert_identical(json.loads(replayed.stdout), "slurm")


# --- bad projects ---------------------------------------------------------------------------


NEEDS_PYPI = {"postbuild-fails"}  # resolves its requirements before postBuild fails


@pytest.mark.parametrize("name", BAD)
def test_bad_project_fails_capture_with_one_error_and_a_hint(
    name: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    if name in NEEDS_PYPI:
        request.getfixturevalue("pypi")
    expect = bad_expectation(name)
    project = prepare_project(name, tmp_path / name, bad=True)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    result = run_cli("capture", str(project), "-o", str(out_dir / f"{name}.capsule.tgz"))
    assert result.returncode in expect["exit_codes"], (result.returncode, result.stderr)
    lines = result.stderr.splitlines()
    errors = [line for line in lines if line.startswith("error:")]
    hints = [line for line in lines if line.startswith("hint:")]
    assert len(errors) == 1 and len(hints) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for word in expect["mentions"]:
        assert word in errors[0], (word, errors[0])
    assert list(out_dir.iterdir()) == [], "a capsule (or a temporary file) was written"
    assert not list(tmp_path.rglob("*.capsule.tgz"))
