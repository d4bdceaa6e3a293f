"""Shared fixtures: a scrubbed environment, a local wheel index, tiny projects, service checks."""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

REQUIRE_SERVICES = os.environ.get("REPRO_REQUIRE_SERVICES") == "1"
# Read before the environment is scrubbed: the locally built image CI provides.
BASE_IMAGE = os.environ.get("REPRO_BASE_IMAGE", "repro-base:bookworm-py3.11")
SCRUB_PREFIXES = ("PIP_", "UV_", "REPRO_", "ZENODO_", "SOURCE_DATE_EPOCH", "VIRTUAL_ENV")
ROOT = Path(__file__).resolve().parent.parent


def require_service(available: bool, what: str) -> None:
    """Skip when a service is missing, except in CI (REPRO_REQUIRE_SERVICES=1): fail there."""
    if available:
        return
    if REQUIRE_SERVICES:
        pytest.fail(f"required service unavailable: {what}")
    pytest.skip(f"service unavailable: {what}")


@pytest.fixture(scope="session")
def session_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One repro cache (venvs, hashes, data) and one uv cache for the whole test session."""
    return tmp_path_factory.mktemp("repro-cache")


@pytest.fixture(autouse=True)
def scrubbed_env(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, session_cache: Path
) -> Iterator[None]:
    for name in list(os.environ):
        if name.startswith(SCRUB_PREFIXES):
            monkeypatch.delenv(name)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("REPRO_CACHE_DIR", str(session_cache / "repro"))
    monkeypatch.setenv("REPRO_CONFIG_DIR", str(home / ".config" / "repro"))
    monkeypatch.setenv("REPRO_DATA_DIR", str(home / ".local" / "share" / "repro"))
    monkeypatch.setenv("UV_CACHE_DIR", str(session_cache / "uv"))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("GIT_AUTHOR_NAME", "Test")
    monkeypatch.setenv("GIT_AUTHOR_EMAIL", "test@example.org")
    monkeypatch.setenv("GIT_COMMITTER_NAME", "Test")
    monkeypatch.setenv("GIT_COMMITTER_EMAIL", "test@example.org")
    yield


def _record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def make_wheel(
    dest: Path, name: str, version: str, module_source: str, requires: list[str]
) -> Path:
    """A real, installable pure-Python wheel, written by hand (no build backend, no network)."""
    dist = f"{name}-{version}.dist-info"
    files = {
        f"{name}.py": module_source.encode(),
        f"{dist}/METADATA": (
            f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
            + "".join(f"Requires-Dist: {r}\n" for r in requires)
        ).encode(),
        f"{dist}/WHEEL": (
            b"Wheel-Version: 1.0\nGenerator: repro-tests\nRoot-Is-Purelib: true\n"
            b"Tag: py3-none-any\n"
        ),
    }
    path = dest / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as zf:
        record = []
        for arcname, data in files.items():
            zf.writestr(arcname, data)
            record.append(_record_line(arcname, data))
        record.append(f"{dist}/RECORD,,")
        zf.writestr(f"{dist}/RECORD", "\n".join(record) + "\n")
    return path


@pytest.fixture(scope="session")
def wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A local index of two tiny packages: reprotest_core, and reprotest_stats needing it."""
    dest = tmp_path_factory.mktemp("wheels")
    make_wheel(dest, "reprotest_core", "1.0.0", "def square(x):\n    return x * x\n", [])
    make_wheel(
        dest,
        "reprotest_stats",
        "2.1.0",
        "from reprotest_core import square\n\ndef mean_square(xs):\n"
        "    return sum(square(x) for x in xs) / len(xs)\n",
        ["reprotest_core>=1.0"],
    )
    return dest


@pytest.fixture
def offline_index(monkeypatch: pytest.MonkeyPatch, wheelhouse: Path) -> Path:
    """Point uv and pip(-tools) at the local wheelhouse only: hermetic resolution."""
    monkeypatch.setenv("UV_NO_INDEX", "1")
    monkeypatch.setenv("UV_FIND_LINKS", str(wheelhouse))
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(wheelhouse))
    return wheelhouse


STUDY_SCRIPT = """\
import json, os, sys
from pathlib import Path
from reprotest_stats import mean_square

seed = int(sys.argv[1]) if len(sys.argv) > 1 else 0
values = [float(v) for v in Path("data/values.csv").read_text().split()]
Path("results").mkdir(exist_ok=True)
name = f"results/metrics-{seed}.json" if len(sys.argv) > 1 else "results/metrics.json"
Path(name).write_text(json.dumps({"seed": seed, "ms": mean_square(values) + seed}))
print("done", seed)
"""

STUDY_TOML = """\
[capsule]
title = "Tiny study"
authors = [{ name = "Doe, Jane", orcid = "0000-0002-1825-0097", affiliation = "Test U" }]
license = "CC-BY-4.0"
keywords = ["test"]

[environment]
requirements = "requirements.txt"

[[data]]
path = "data"

[[runs]]
name = "analyse"
command = "python study.py"
outputs = ["results/metrics.json"]
timeout = 120
[runs.compare]
"results/metrics.json" = { rtol = 1e-9 }
[runs.resources]
cpus = 1
memory = "1G"
walltime = "00:10:00"

[[runs]]
name = "sweep"
command = "python study.py {seed}"
outputs = ["results/metrics-{seed}.json"]
[runs.sweep]
seed = [0, 1, 2]
"""


@pytest.fixture
def tiny_study(tmp_path: Path) -> Path:
    """A real small study: code, a data folder, requirements from the local wheelhouse."""
    project = tmp_path / "study"
    (project / "data").mkdir(parents=True)
    (project / "data" / "values.csv").write_text("1 2 3 4\n")
    (project / "study.py").write_text(STUDY_SCRIPT)
    (project / "requirements.txt").write_text("reprotest_stats\n")
    (project / "repro.toml").write_text(STUDY_TOML)
    return project


def git(project: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=project, check=True, capture_output=True, text=True
    ).stdout.strip()


def run_cli(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    """The real console entry point, in a subprocess, as a user runs it."""
    return subprocess.run(
        [sys.executable, "-m", "repro", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        check=False,
    )


@pytest.fixture
def sample_papers() -> Path:
    return ROOT / "sample_papers"


def copy_project(src: Path, dest: Path) -> Path:
    shutil.copytree(src, dest, ignore=shutil.ignore_patterns("results", "__pycache__"))
    return dest


_PYPI: bool | None = None


def pypi_reachable() -> bool:
    """Whether PyPI answers (through this machine's proxy), checked once per session."""
    global _PYPI
    if _PYPI is None:
        import httpx

        try:
            _PYPI = httpx.get("https://pypi.org/simple/six/", timeout=15).status_code == 200
        except httpx.HTTPError:
            _PYPI = False
    return _PYPI


@pytest.fixture
def pypi() -> None:
    require_service(pypi_reachable(), "PyPI (https://pypi.org)")


_DOCKER: bool | None = None


def docker_ready() -> bool:
    """A Docker engine answers and has the base image (scripts/ci/setup-docker.sh)."""
    global _DOCKER
    if _DOCKER is None:
        try:
            import docker

            client = docker.from_env(timeout=5)
            client.images.get(BASE_IMAGE)
            _DOCKER = True
        except Exception:  # any failure means: no usable engine here
            _DOCKER = False
    return _DOCKER


@pytest.fixture
def docker_engine() -> str:
    """The base image to build environments on; skips (fails in CI) without an engine."""
    require_service(docker_ready(), f"Docker engine with image {BASE_IMAGE}")
    return BASE_IMAGE


def slurm_ready() -> bool:
    import shutil
    import subprocess

    if shutil.which("sbatch") is None:
        return False
    try:  # sinfo waits on a slurmctld that does not answer: that is "unavailable" too
        proc = subprocess.run(
            ["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, check=False, timeout=30
        )
    except subprocess.TimeoutExpired:
        return False
    return proc.returncode == 0 and any(
        s.strip() in {"idle", "mixed", "allocated", "completing"} for s in proc.stdout.split()
    )


@pytest.fixture
def slurm() -> None:
    require_service(slurm_ready(), "a Slurm cluster (sbatch, and a node that is up)")


ACCOUNTING_CONF = Path("/etc/slurm-acct/slurm.conf")
"""The cluster with accounting that scripts/ci/setup-slurm-accounting.sh keeps beside the
one without (docs/slurm-accounting.md)."""


@pytest.fixture
def slurm_accounting(monkeypatch: pytest.MonkeyPatch) -> Path:
    """SLURM_CONF set to the cluster with accounting; skips (fails in CI) without it."""
    from repro.scheduler.accounting import accounting_enabled

    ready = ACCOUNTING_CONF.is_file()
    if ready:
        monkeypatch.setenv("SLURM_CONF", str(ACCOUNTING_CONF))
        ready = slurm_ready() and accounting_enabled()
    require_service(ready, f"a Slurm cluster with accounting (slurmdbd), {ACCOUNTING_CONF}")
    return ACCOUNTING_CONF
