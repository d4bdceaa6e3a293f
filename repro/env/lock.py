"""Lock the study's dependencies with hashes: uv or pip-tools, an existing lock, or a freeze."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from packaging.utils import canonicalize_name

from repro.errors import ConfigError, ResolverError
from repro.models import LockSource, Package, Resolver

DEPENDENCY_FILES = (
    "requirements.txt",
    "requirements.in",
    "Pipfile.lock",
    "Pipfile",
    "pyproject.toml",
    "setup.py",
)
RESOLVE_TIMEOUT_S = 900


@dataclass(frozen=True)
class Lock:
    text: str
    source: LockSource
    requirements: str | None
    packages: list[Package]


class ResolverBackend(Protocol):
    """Turns a dependency declaration into requirements with hashes for every package."""

    name: LockSource

    def compile(self, source: Path, python_version: str) -> str: ...


def _run_resolver(cmd: list[str], what: str, cwd: Path) -> str:
    env = {**os.environ, "UV_PYTHON_DOWNLOADS": "never"}
    try:
        proc = subprocess.run(
            cmd,
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=RESOLVE_TIMEOUT_S,
            env=env,
            check=False,
        )
    except FileNotFoundError:
        raise ResolverError(
            f"{what} is not installed", hint="pip install 'repro[pip-tools]' or use --resolver uv"
        ) from None
    except subprocess.TimeoutExpired:
        raise ResolverError(f"{what} did not finish within {RESOLVE_TIMEOUT_S} s") from None
    if proc.returncode != 0:
        lines = [ln.strip() for ln in proc.stderr.splitlines() if ln.strip()]
        detail = " ".join(lines[-4:]) if lines else f"exit code {proc.returncode}"
        raise ResolverError(f"{what} could not resolve the requirements: {detail}")
    return proc.stdout


def uv_bin() -> str:
    """The uv executable: the one shipped with the `uv` package, else from PATH."""
    try:
        from uv import find_uv_bin

        return str(find_uv_bin())
    except (ImportError, FileNotFoundError):
        return "uv"


class UvResolver:
    name: LockSource = "uv"

    def compile(self, source: Path, python_version: str) -> str:
        cmd = [
            uv_bin(),
            "pip",
            "compile",
            "--generate-hashes",
            "--no-header",
            "--quiet",
            "--python-version",
            python_version,
            str(source),
        ]
        return _checked(_run_resolver(cmd, "uv pip compile", source.parent), "uv")


class PipToolsResolver:
    """pip-compile, always as a subprocess (importing piptools changes the process locale)."""

    name: LockSource = "pip-tools"

    def compile(self, source: Path, python_version: str) -> str:
        with tempfile.TemporaryDirectory(prefix="repro-pip-compile-") as tmp:
            out = Path(tmp) / "requirements.lock"
            cmd = [
                sys.executable,
                "-m",
                "piptools",
                "compile",
                "--generate-hashes",
                "--no-header",
                "--quiet",
                "--no-emit-index-url",
                "--no-emit-find-links",
                "--no-strip-extras",
                "--output-file",
                str(out),
                str(source),
            ]
            _run_resolver(cmd, "pip-compile", source.parent)
            return _checked(out.read_text(encoding="utf-8"), "pip-compile")


def _checked(lock_text: str, resolver: str) -> str:
    """A lock is only a lock when every requirement carries a hash."""
    if _has_requirements(lock_text) and not is_hashed_lock(lock_text):
        unhashed = [
            ln
            for ln in _logical_lines(lock_text)
            if ln and not ln.startswith(("#", "-")) and "--hash=" not in ln
        ]
        raise ResolverError(
            f"{resolver} produced requirements without hashes: {unhashed[0].split()[0]}",
            hint="pin the package from an index that serves it (local paths and URLs cannot be "
            "hash-locked)",
        )
    return lock_text


def resolver_for(name: Resolver) -> ResolverBackend:
    return UvResolver() if name == "uv" else PipToolsResolver()


_REQ_LINE = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?==([^\s;\\]+)")


def _logical_lines(text: str) -> list[str]:
    joined = re.sub(r"\\\r?\n", " ", text)
    return [ln.split(" #")[0].strip() for ln in joined.splitlines()]


def parse_packages(lock_text: str) -> list[Package]:
    packages = []
    for line in _logical_lines(lock_text):
        match = _REQ_LINE.match(line)
        if match:
            packages.append(Package(name=canonicalize_name(match.group(1)), version=match.group(3)))
    return sorted(packages, key=lambda p: p.name)


def is_hashed_lock(text: str) -> bool:
    """Every requirement pinned with == and carrying --hash: a lock to keep as it is."""
    reqs = [ln for ln in _logical_lines(text) if ln and not ln.startswith(("#", "-"))]
    return bool(reqs) and all(_REQ_LINE.match(ln) and "--hash=" in ln for ln in reqs)


def pipfile_lock_to_requirements(path: Path) -> str:
    """Pipfile.lock's default section as requirements with hashes."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        default = data["default"]
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"Pipfile.lock is not valid: {exc}") from None
    lines = []
    for name, spec in sorted(default.items()):
        version, hashes = spec.get("version", ""), spec.get("hashes", [])
        if not version.startswith("==") or not hashes:
            raise ConfigError(
                f"Pipfile.lock entry {name} has no pinned version or no hashes",
                hint="run pipenv lock again, or declare requirements.txt instead",
            )
        markers = f" ; {spec['markers']}" if spec.get("markers") else ""
        parts = [f"{name}{version}{markers}"] + [f"    --hash={h}" for h in hashes]
        lines.append(" \\\n".join(parts))
    return "\n".join(lines) + "\n" if lines else ""


def pipfile_to_requirements(path: Path) -> str:
    import tomllib

    try:
        packages = tomllib.loads(path.read_text(encoding="utf-8")).get("packages", {})
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"Pipfile is not valid TOML: {exc}") from None
    lines = []
    for name, spec in packages.items():
        version = spec if isinstance(spec, str) else spec.get("version", "*")
        lines.append(name if version == "*" else f"{name}{version}")
    return "\n".join(lines) + "\n"


def detect_requirements(project: Path) -> str | None:
    """The first dependency declaration the project has, by convention order."""
    for name in DEPENDENCY_FILES:
        path = project / name
        if not path.is_file():
            continue
        if name == "pyproject.toml":
            import tomllib

            try:
                data = tomllib.loads(path.read_text(encoding="utf-8"))
            except tomllib.TOMLDecodeError:
                continue
            if not data.get("project", {}).get("dependencies"):
                continue
        return name
    return None


def lock_dependencies(
    project: Path,
    requirements: str | None,
    python_version: str,
    resolver: Resolver,
) -> Lock:
    """Resolve the project's declaration into a hashed lock (empty when there is none)."""
    if requirements is None:
        return Lock(text="", source="none", requirements=None, packages=[])
    path = project / requirements
    if not path.is_file():
        raise ConfigError(
            f"requirements file not found: {requirements}",
            hint="fix [environment] requirements in repro.toml or --requirements",
        )
    text: str
    source: LockSource
    if path.name == "Pipfile.lock":
        text, source = pipfile_lock_to_requirements(path), "pipfile-lock"
    elif path.name == "Pipfile":
        with tempfile.TemporaryDirectory(prefix="repro-pipfile-") as tmp:
            req_in = Path(tmp) / "requirements.in"
            req_in.write_text(pipfile_to_requirements(path), encoding="utf-8")
            backend = resolver_for(resolver)
            text, source = backend.compile(req_in, python_version), backend.name
    elif path.suffix in {".txt", ".in", ".lock"} and is_hashed_lock(_read(path)):
        text, source = _read(path), "existing-lock"
    elif path.suffix in {".txt", ".in", ".lock"} and not _has_requirements(_read(path)):
        text, source = "", "none"
    else:
        backend = resolver_for(resolver)
        text, source = backend.compile(path, python_version), backend.name
    return Lock(text=text, source=source, requirements=requirements, packages=parse_packages(text))


def freeze_lock(python_version: str, python: str = sys.executable) -> tuple[Lock, list[str]]:
    """Lock exactly what this interpreter has installed (hashes from the index).

    Returns the lock and notes for the record: distributions that could not be locked
    (editable or local installs have no index hashes) and anything the resolver added.
    """
    proc = subprocess.run(
        [uv_bin(), "pip", "freeze", "--python", python, "--exclude-editable"],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise ResolverError(f"cannot list installed packages: {proc.stderr.strip()[-300:]}")
    pinned, skipped = [], []
    for line in proc.stdout.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if _REQ_LINE.match(line):
            pinned.append(line)
        else:
            skipped.append(f"not locked (no index hashes): {line}")
    if not pinned:
        return Lock("", "freeze", None, []), skipped
    with tempfile.TemporaryDirectory(prefix="repro-freeze-") as tmp:
        req_in = Path(tmp) / "requirements.in"
        req_in.write_text("\n".join(pinned) + "\n", encoding="utf-8")
        # Every installed version is pinned, so resolving (with dependencies: uv's --no-deps
        # leaves local wheels unhashed) can only confirm the installed set.
        text = UvResolver().compile(req_in, python_version)
    packages = parse_packages(text)
    frozen = {canonicalize_name(_REQ_LINE.match(p).group(1)) for p in pinned}  # type: ignore[union-attr]
    extra = sorted(p.name for p in packages if p.name not in frozen)
    if extra:
        skipped.append(f"resolver added packages that are not installed: {', '.join(extra)}")
    return Lock(text, "freeze", None, packages), skipped


_INDEX_OPTIONS = ("--index-url", "--extra-index-url", "--find-links", "-i ", "-f ", "--no-index")


def with_packages(
    lock: Lock, wanted: tuple[str, ...], python_version: str, resolver: Resolver
) -> tuple[Lock, list[str]]:
    """The lock with `wanted` added when missing: every locked version stays pinned and the
    resolver adds the new packages and what they need (with hashes). Notes say what changed."""
    have = {p.name for p in lock.packages}
    missing = [name for name in wanted if canonicalize_name(name) not in have]
    if not missing:
        return lock, []
    pins = []
    for line in _logical_lines(lock.text):
        match = _REQ_LINE.match(line)
        if line.startswith(_INDEX_OPTIONS):
            pins.append(line)  # where the lock's packages come from must still be searched
        elif match:
            marker = line.split(";", 1)[1].split("--hash")[0].strip() if ";" in line else ""
            pin = f"{match.group(1)}{match.group(2) or ''}=={match.group(3)}"
            pins.append(f"{pin} ; {marker}" if marker else pin)
    with tempfile.TemporaryDirectory(prefix="repro-kernel-") as tmp:
        req_in = Path(tmp) / "requirements.in"
        req_in.write_text("\n".join([*pins, *missing]) + "\n", encoding="utf-8")
        backend = resolver_for(resolver)
        try:
            text = backend.compile(req_in, python_version)
        except ResolverError as exc:
            raise ResolverError(
                f"cannot add {', '.join(missing)} to the lock for the notebooks: {exc.message}",
                hint=f"add a version of {', '.join(missing)} compatible with your pins to "
                "your requirements",
            ) from None
    packages = parse_packages(text)
    added = sorted({p.name for p in packages} - have)
    others = len(added) - len(missing)
    note = f"added to the lock to execute notebooks: {', '.join(missing)}" + (
        f" and {others} package(s) they need" if others > 0 else ""
    )
    source: LockSource = backend.name if lock.source == "none" else lock.source
    return Lock(text, source, lock.requirements, packages), [note]


def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def _has_requirements(text: str) -> bool:
    return any(ln and not ln.startswith("#") for ln in _logical_lines(text))
