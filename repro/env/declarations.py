"""Find a project's environment declarations the way repo2docker does, and decide what the
environment is: one path shared by `init` and `capture`.

repo2docker's rules (its "configuration files" documentation and buildpacks): a `binder/` or
`.binder/` folder, when present, is the only place configuration is read from; among the
dependency files environment.yml wins over Pipfile.lock, which wins over Pipfile, which wins
over requirements.txt; the project itself (setup.py, or pyproject.toml with a [project]
table) is installed only when configuration comes from the root; runtime.txt, apt.txt and
postBuild sit beside the dependency file.
"""

from __future__ import annotations

import re
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from repro.config.models import EnvironmentSpec
from repro.env.conda import read_environment_yml
from repro.env.pipfile import read_pipfile, read_pipfile_lock
from repro.env.pythons import check_version
from repro.env.requirements import (
    Declared,
    LocalSource,
    check_requirements,
    read_requirements_text,
    read_requirements_txt,
    read_text,
)
from repro.errors import ConfigError
from repro.model_base import APT_PACKAGE, NAME_MAX

CONFIG_FOLDERS = ("binder", ".binder")
# Dependency files, the first present wins (requirements.in is pip-tools', not repo2docker's).
DEPENDENCY_ORDER = (
    "environment.yml",
    "Pipfile.lock",
    "Pipfile",
    "requirements.txt",
    "requirements.in",
    # Not repo2docker's (it reads only .yml), but what the author meant: read when nothing
    # else declares the environment, with a note.
    "environment.yaml",
)
PROJECT_FILES = ("pyproject.toml", "setup.py")
KNOWN_FILES = (*DEPENDENCY_ORDER, *PROJECT_FILES, "runtime.txt", "apt.txt", "postBuild")


@dataclass(frozen=True)
class PythonChoice:
    version: str
    """major.minor."""
    source: str
    """Where it came from: a file, [environment] python, or 'this interpreter'."""


@dataclass(frozen=True)
class EnvironmentPlan:
    """What the environment is made of, before anything is resolved or built."""

    folder: str | None
    """binder or .binder when configuration comes from there."""
    dependency_file: str | None
    """Project-relative declaration file that is read (None: none, or only packages)."""
    project_file: str | None
    """setup.py or pyproject.toml of the project itself, when it is installed."""
    python: PythonChoice
    apt: list[str]
    apt_file: str | None
    post_build: str | None
    """Project-relative postBuild script."""
    packages: list[str]
    """[environment] packages."""
    used: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    """'FILE (reason)' for each declaration present but not read."""
    notes: list[str] = field(default_factory=list)


def config_folder(project: Path) -> str | None:
    found = [name for name in CONFIG_FOLDERS if (project / name).is_dir()]
    if len(found) > 1:
        raise ConfigError(
            "the project has both binder/ and .binder/ folders; repo2docker reads only one",
            hint="merge them into one folder",
        )
    return found[0] if found else None


def parse_runtime(text: str, where: str) -> str | None:
    """runtime.txt: python-3.10, python-3.10.4, python3.10 or 3.10 -> '3.10' (one rule)."""
    value = text.strip().splitlines()[0].strip() if text.strip() else ""
    if not value:
        return None
    if value.lower().startswith("r-"):
        raise ConfigError(
            f"{where} asks for R ({value}): repro replays Python studies",
            hint="remove runtime.txt, or write python-3.X in it",
        )
    match = re.fullmatch(r"(?:python)?[-\s]?(\d+)\.(\d+)(?:\.\d+)?", value, flags=re.IGNORECASE)
    if not match:
        raise ConfigError(
            f"{where}: cannot read a Python version from {value!r}",
            hint="write it as python-3.11",
        )
    return f"{match.group(1)}.{match.group(2)}"


def read_apt(path: Path, where: str) -> list[str]:
    """apt.txt: one Debian package a line; blank lines and # comments ignored."""
    try:
        lines = read_text(path).splitlines()
    except UnicodeDecodeError:
        raise ConfigError(f"{where} is not UTF-8 text", hint="save it as UTF-8") from None
    packages = []
    for lineno, line in enumerate(lines, 1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        for name in text.split():
            if len(name) > NAME_MAX or not APT_PACKAGE.fullmatch(name):
                raise ConfigError(
                    f"{where}:{lineno}: {name!r} is not a Debian package name",
                    hint="write one package name a line, e.g. libgsl-dev",
                )
            packages.append(name)
    return packages


def _pyproject(path: Path) -> dict[str, object] | None:
    if not path.is_file():
        return None
    try:
        return tomllib.loads(read_text(path))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"pyproject.toml is not valid TOML: {exc}", hint="fix the file") from None
    except UnicodeDecodeError:
        raise ConfigError("pyproject.toml is not UTF-8 text", hint="save it as UTF-8") from None


def _is_package(project: Path, name: str) -> bool:
    """setup.py, or pyproject.toml with a [build-system] and metadata to build from:
    [project] (repo2docker's test), [tool.poetry] (poetry-core builds it just as `pip
    install .` would) or a setup.cfg beside it."""
    if name == "setup.py":
        return (project / name).is_file()
    data = _pyproject(project / name) or {}
    tool = data.get("tool")
    poetry = isinstance(tool, dict) and isinstance(tool.get("poetry"), dict)
    metadata = "project" in data or poetry or (project / "setup.cfg").is_file()
    return "build-system" in data and metadata


def _dependencies_only(project: Path) -> bool:
    """pyproject.toml that lists [project] dependencies but cannot be built (no
    [build-system]): its dependencies are the declaration, the project is not installed."""
    data = _pyproject(project / "pyproject.toml") or {}
    table = data.get("project")
    return (
        isinstance(table, dict) and bool(table.get("dependencies")) and "build-system" not in data
    )


def _read_text(path: Path, where: str) -> str:
    try:
        return read_text(path)
    except UnicodeDecodeError:
        raise ConfigError(f"{where} is not UTF-8 text", hint="save it as UTF-8") from None


def plan_environment(project: Path, spec: EnvironmentSpec) -> EnvironmentPlan:
    """Which files make the environment, and the Python it needs (nothing resolved yet)."""
    folder = config_folder(project)
    where = project / folder if folder else project
    prefix = f"{folder}/" if folder else ""
    used: list[str] = []
    ignored: list[str] = []
    notes: list[str] = []

    present = [name for name in DEPENDENCY_ORDER if (where / name).is_file()]
    if spec.requirements is not None:
        dependency_file: str | None = spec.requirements
        if not (project / spec.requirements).is_file():
            raise ConfigError(
                f"requirements file not found: {spec.requirements}",
                hint="fix [environment] requirements in repro.toml or --requirements",
            )
        ignored += [
            f"{prefix}{n} ([environment] requirements chooses {spec.requirements})"
            for n in present
            if f"{prefix}{n}" != spec.requirements
        ]
    elif present:
        dependency_file = prefix + present[0]
        ignored += [f"{prefix}{n} ({dependency_file} takes precedence)" for n in present[1:]]
    else:
        dependency_file = None
    if dependency_file:
        used.append(dependency_file)
        if dependency_file.endswith("environment.yaml"):
            notes.append(
                f"{dependency_file} read as environment.yml (repo2docker reads only the .yml "
                "name: rename it for Binder)"
            )
    if folder:
        ignored += [
            f"{n} (configuration is read from {folder}/ only)"
            for n in KNOWN_FILES
            if (project / n).is_file() and n not in ("setup.py", "pyproject.toml")
        ]

    # repo2docker installs the project itself only with its Python buildpack (requirements
    # files or nothing; never with environment.yml or a Pipfile) and only from the root.
    python_buildpack = dependency_file is None or Path(dependency_file).name.startswith(
        "requirements"
    )
    project_file = None
    candidates = [n for n in PROJECT_FILES if _is_package(project, n)]
    install = spec.install_project
    if install is None:
        install = bool(candidates) and folder is None and python_buildpack
        if candidates and not install:
            why = f"configuration comes from {folder}/" if folder else f"{dependency_file} is used"
            notes.append(
                f"the project's own {candidates[0]} is not installed ({why}, as repo2docker "
                "does); set [environment] install_project = true to install it"
            )
    if install:
        if not candidates:
            raise ConfigError(
                "[environment] install_project is true, but the project has no setup.py or "
                "pyproject.toml with [project] and [build-system] tables",
                hint="add one, or remove install_project",
            )
        project_file = candidates[0]
        used.append(project_file)
    elif dependency_file is None and folder is None and _dependencies_only(project):
        dependency_file = "pyproject.toml"
        used.append("pyproject.toml")
    elif folder is None and (project / "pyproject.toml").is_file() and not candidates:
        ignored.append("pyproject.toml (neither a buildable package nor [project] dependencies)")

    runtime_path = where / "runtime.txt"
    runtime = None
    if runtime_path.is_file():
        runtime = parse_runtime(
            _read_text(runtime_path, prefix + "runtime.txt"), prefix + "runtime.txt"
        )
        used.append(prefix + "runtime.txt")
    apt_file = None
    apt = list(spec.apt)
    if not apt and (where / "apt.txt").is_file():
        apt_file = prefix + "apt.txt"
        apt = read_apt(where / "apt.txt", apt_file)
        used.append(apt_file)
    post_build = None
    if (where / "postBuild").is_file():
        post_build = prefix + "postBuild"
        used.append(post_build)
    packages = list(spec.packages)
    check_requirements(packages, "[environment] packages")

    declared_python = _declared_python(project, dependency_file)
    python = _choose_python(spec, declared_python, runtime, prefix)
    return EnvironmentPlan(
        folder=folder,
        dependency_file=dependency_file,
        project_file=project_file,
        python=python,
        apt=apt,
        apt_file=apt_file,
        post_build=post_build,
        packages=packages,
        used=used,
        ignored=ignored,
        notes=notes,
    )


def _declared_python(project: Path, dependency_file: str | None) -> tuple[str, str] | None:
    """The Python a dependency file pins (environment.yml python=, Pipfile [requires])."""
    if dependency_file is None:
        return None
    name = Path(dependency_file).name
    if name not in ("environment.yml", "Pipfile", "Pipfile.lock") and not name.endswith(
        (".yml", ".yaml")
    ):
        return None
    declared = read_declaration(project, dependency_file, "skip")
    return (declared.python, dependency_file) if declared.python else None


def _choose_python(
    spec: EnvironmentSpec,
    declared: tuple[str, str] | None,
    runtime: str | None,
    prefix: str,
) -> PythonChoice:
    if declared and runtime and declared[0] != runtime and spec.python is None:
        raise ConfigError(
            f"conflicting Python versions: {declared[1]} asks for {declared[0]}, "
            f"{prefix}runtime.txt for {runtime}",
            hint="make them agree, or choose one with [environment] python",
        )
    if spec.python:
        return PythonChoice(
            check_version(spec.python, "[environment] python"), "[environment] python"
        )
    if declared:
        return PythonChoice(check_version(declared[0], declared[1]), declared[1])
    if runtime:
        where = f"{prefix}runtime.txt"
        return PythonChoice(check_version(runtime, where), where)
    return PythonChoice(f"{sys.version_info.major}.{sys.version_info.minor}", "this interpreter")


def read_declaration(project: Path, rel: str, conda_only: str = "error") -> Declared:
    """Read one dependency file by its kind (name)."""
    path = project / rel
    name = path.name
    if name.endswith((".yml", ".yaml")):
        return read_environment_yml(path, project, "skip" if conda_only == "skip" else "error")
    if name == "Pipfile.lock":
        return read_pipfile_lock(path, project)
    if name == "Pipfile":
        return read_pipfile(path, project)
    if name == "pyproject.toml" and not _is_package(path.parent, name):
        return _pyproject_dependencies(path, project, rel)
    if name in PROJECT_FILES:
        source = LocalSource("project", str(path.parent.resolve()), ".", rel)
        return Declared(local=(source,), files=(rel,))
    return read_requirements_txt(path, project)


def _pyproject_dependencies(path: Path, project: Path, rel: str) -> Declared:
    data = _pyproject(path) or {}
    table = data.get("project")
    deps = table.get("dependencies", []) if isinstance(table, dict) else []
    if not isinstance(deps, list) or not all(isinstance(d, str) for d in deps):
        raise ConfigError(f"{rel}: [project] dependencies must be a list of strings")
    text = "\n".join(deps) + "\n"
    read = read_requirements_text(text, f"{rel} [project] dependencies", path.parent, project)
    return Declared(read.requirements, read.options, None, read.local, files=(rel,))


def declared_environment(project: Path, plan: EnvironmentPlan, conda_only: str) -> Declared:
    """Everything the plan's files ask for, merged: the dependency file, the project itself,
    and [environment] packages."""
    declared = (
        read_declaration(project, plan.dependency_file, conda_only)
        if plan.dependency_file
        else Declared()
    )
    local = list(declared.local)
    if plan.project_file and not any(s.kind == "project" for s in local):
        local.insert(0, LocalSource("project", str(project.resolve()), ".", plan.project_file))
    return Declared(
        requirements=declared.requirements + tuple(plan.packages),
        options=declared.options,
        locked=declared.locked,
        local=tuple(local),
        python=declared.python,
        files=declared.files,
        translated=declared.translated,
        left_out=declared.left_out,
        notes=declared.notes,
    )


def describe(project: Path, plan: EnvironmentPlan) -> list[str]:
    """Lines for init and capture: which folder and files were used, which were ignored."""
    lines = []
    if plan.folder:
        lines.append(f"configuration read from {plan.folder}/ (root files ignored)")
    used = ", ".join(plan.used) or "no environment file"
    lines.append(f"environment from: {used}; Python {plan.python.version} ({plan.python.source})")
    lines += [f"ignored: {item}" for item in plan.ignored]
    return lines
