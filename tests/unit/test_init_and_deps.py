"""repro init's detection and the dependency declarations capture understands."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from repro.config import load_config
from repro.config.models import EnvironmentSpec
from repro.env.declarations import declared_environment, plan_environment
from repro.env.lock import Lock, is_hashed_lock, lock_declared, parse_packages
from repro.env.pipfile import read_pipfile_lock
from repro.errors import ConfigError, ConfigExistsError
from repro.init import InitOptions, init_project
from tests.conftest import run_cli


def lock_dependencies(project: Path, requirements: str, python: str, resolver: str) -> Lock:
    """The lock capture makes from one declaration file (no local packages)."""
    spec = EnvironmentSpec(requirements=requirements)
    plan = plan_environment(project, spec)
    declared = declared_environment(project, plan, "error")
    return lock_declared(declared, [], set(), python, "uv", requirements)


HASHED = (
    "numpy==2.0.0 \\\n    --hash=sha256:" + "a" * 64 + "\n"
    "six==1.16.0 --hash=sha256:" + "b" * 64 + "  # via x\n"
)


def test_init_detects_what_the_project_has(tmp_path: Path) -> None:
    (tmp_path / "requirements.txt").write_text("numpy\n")
    (tmp_path / "setup.py").write_text("")
    (tmp_path / "runtime.txt").write_text("python-3.11\n")
    (tmp_path / "apt.txt").write_text("libgomp1\n# comment\n")
    (tmp_path / "data").mkdir()
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "notebooks" / "fig.ipynb").write_text("{}")
    (tmp_path / "notebooks" / "draft.ipynb").write_text("{}")
    (tmp_path / ".reproignore").write_text("draft.ipynb\n")  # capture would leave it out
    (tmp_path / "analyse.py").write_text("")
    result = init_project(InitOptions(tmp_path))
    target, found = result.config, result.detected
    text = target.read_text()
    assert found.requirements == "requirements.txt"
    assert 'requirements = "requirements.txt"' in text
    assert "install_project = true   # setup.py: the project is installed" in text
    assert 'python = "3.11"' in text and 'apt = ["libgomp1"]' in text
    assert '[[data]]\npath = "data"' in text
    assert '[[notebooks]]\npath = "notebooks/fig.ipynb"' in text and "draft" not in text
    assert '# command = "python analyse.py"' in text
    config, _ = load_config(tmp_path)  # what init writes, capture reads
    assert config.environment.python == "3.11" and config.data[0].path == "data"
    assert [nb.path for nb in config.notebooks] == ["notebooks/fig.ipynb"]


def test_init_never_overwrites(tmp_path: Path) -> None:
    (tmp_path / "repro.toml").write_text("# mine\n")
    with pytest.raises(ConfigExistsError):
        init_project(InitOptions(tmp_path))
    assert (tmp_path / "repro.toml").read_text() == "# mine\n"
    result = run_cli("init", str(tmp_path))
    assert result.returncode == 1
    assert "already exists" in result.stderr and "hint:" in result.stderr
    assert "Traceback" not in result.stderr


def test_init_on_an_empty_project_still_parses(tmp_path: Path) -> None:
    init_project(InitOptions(tmp_path))
    config, _ = load_config(tmp_path)
    assert config.runs == []


@pytest.mark.parametrize(
    ("files", "expected", "project_file"),
    [
        ({"requirements.txt": "x"}, "requirements.txt", None),
        ({"requirements.in": "x"}, "requirements.in", None),
        ({"Pipfile": "[packages]\n"}, "Pipfile", None),
        ({"pyproject.toml": '[project]\nname="a"\ndependencies=["x"]\n'}, "pyproject.toml", None),
        ({"pyproject.toml": '[project]\nname="a"\n'}, None, None),
        (
            {"pyproject.toml": '[project]\nname="a"\n[build-system]\nrequires=["setuptools"]\n'},
            None,
            "pyproject.toml",
        ),
        ({"setup.py": ""}, None, "setup.py"),
        ({}, None, None),
    ],
)
def test_detect_requirements(
    tmp_path: Path, files: dict[str, str], expected: str | None, project_file: str | None
) -> None:
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    plan = plan_environment(tmp_path, EnvironmentSpec())
    assert (plan.dependency_file, plan.project_file) == (expected, project_file)


def test_hashed_lock_is_kept_as_is(tmp_path: Path) -> None:
    assert is_hashed_lock(HASHED)
    assert not is_hashed_lock("numpy==2.0.0\n")
    assert not is_hashed_lock("numpy>=2 --hash=sha256:" + "a" * 64 + "\n")
    (tmp_path / "requirements.txt").write_text(HASHED)
    lock = lock_dependencies(tmp_path, "requirements.txt", "3.11", "uv")
    assert lock.source == "existing-lock" and lock.text == HASHED
    assert [(p.name, p.version) for p in lock.packages] == [("numpy", "2.0.0"), ("six", "1.16.0")]


def test_empty_requirements_file_gives_an_empty_lock(tmp_path: Path) -> None:
    (tmp_path / "requirements.txt").write_text("# nothing yet\n")
    lock = lock_dependencies(tmp_path, "requirements.txt", "3.11", "uv")
    assert lock.source == "none" and lock.packages == []


def test_pipfile_lock_becomes_requirements_with_hashes(tmp_path: Path) -> None:
    path = tmp_path / "Pipfile.lock"
    path.write_text(
        json.dumps(
            {
                "default": {
                    "requests": {
                        "version": "==2.31.0",
                        "hashes": ["sha256:" + "c" * 64],
                        "markers": "python_version >= '3.7'",
                    },
                }
            }
        )
    )
    text = read_pipfile_lock(path, tmp_path).locked
    assert text is not None and is_hashed_lock(text)
    assert parse_packages(text)[0].version == "2.31.0"
    path.write_text(json.dumps({"default": {"x": {"version": "*", "hashes": []}}}))
    with pytest.raises(ConfigError, match="no pinned version"):
        read_pipfile_lock(path, tmp_path)


def test_missing_requirements_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"requirements file not found: nope\.txt"):
        lock_dependencies(tmp_path, "nope.txt", "3.11", "uv")
