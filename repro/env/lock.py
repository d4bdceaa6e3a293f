"""Lock the study's dependencies with hashes: uv or pip-tools, an existing lock, or a freeze."""

from __future__ import annotations

import functools
import os
import re
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from packaging.utils import canonicalize_name

from repro.capsule.manifest import LockSource, Package
from repro.config.models import Resolver
from repro.env.requirements import Declared

if TYPE_CHECKING:
    from repro.env.installer import Installer
from repro.errors import ResolverError
from repro.execution.tools import last_lines, run_tool
from repro.paths import scratch_prefix

RESOLVE_TIMEOUT_S = 900


@dataclass(frozen=True)
class Lock:
    text: str
    source: LockSource
    requirements: str | None
    packages: list[Package]
    notes: tuple[str, ...] = ()
    """What the record should say about how the lock was made (a resolver fallback)."""


class ResolverBackend(Protocol):
    """Turns a dependency declaration into requirements with hashes for every package, for
    the study's Python (major.minor)."""

    name: LockSource

    def compile(self, source: Path, python_version: str) -> str: ...


class MetadataRejectedError(ResolverError):
    """uv refused a release's metadata (common before 2018: `pytz (>=2011k)`)."""

    def __init__(self, message: str, package: str) -> None:
        super().__init__(message)
        self.package = package


def _run_resolver(cmd: list[str], what: str, cwd: Path) -> str:
    env = {**os.environ, "UV_PYTHON_DOWNLOADS": "never"}
    proc = run_tool(
        cmd,
        what,
        timeout=RESOLVE_TIMEOUT_S,
        env=env,
        cwd=cwd,
        error=ResolverError,
        check=False,
        not_started=lambda _: ResolverError(f"{what} could not be started"),
    )
    if not proc.ok:
        rejected = _REJECTED.search(proc.stderr)
        detail = last_lines(proc.stderr, 4) or f"exit code {proc.returncode}"
        message = f"{what} could not resolve the requirements: {detail}"
        if rejected:
            raise MetadataRejectedError(message, rejected.group(1))
        raise ResolverError(message)
    return proc.stdout


_REJECTED = re.compile(r"Metadata for `([^`]+)`.*? could not be parsed")


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
    """pip-compile, as a subprocess of the study's own Python (pip resolves for the
    interpreter it runs under): repro's interpreter when that is the version and has
    pip-tools, else a cached tool environment of that version with pip-tools in it."""

    name: LockSource = "pip-tools"

    def compile(self, source: Path, python_version: str) -> str:
        python = pip_tools_python(python_version)
        with tempfile.TemporaryDirectory(prefix=scratch_prefix("pip-compile")) as tmp:
            out = Path(tmp) / "requirements.lock"
            cmd = [
                python,
                "-m",
                "piptools",
                "compile",
                "--generate-hashes",
                "--no-header",
                "--quiet",
                "--no-emit-index-url",
                "--no-emit-find-links",
                "--output-file",
                str(out),
                str(source),
            ]
            if _piptools_strips_extras(python):
                cmd.insert(-1, "--no-strip-extras")
            _run_resolver(cmd, "pip-compile", source.parent)
            return _checked(out.read_text(encoding="utf-8"), "pip-compile")


def pip_tools_python(python_version: str) -> str:
    """An interpreter of `python_version` that has pip-tools."""
    import importlib.util

    mm = ".".join(python_version.split(".")[:2])
    if f"{sys.version_info.major}.{sys.version_info.minor}" == mm and importlib.util.find_spec(
        "piptools"
    ):
        return sys.executable
    from repro.env.installer import UvInstaller
    from repro.env.pythons import find_python
    from repro.env.virtualenv import locked
    from repro.errors import EnvironmentBuildError
    from repro.paths import cache_dir, mark_used

    root = cache_dir() / "tools" / f"pip-tools-py{mm}"
    python = root / "bin" / "python"
    with locked(root.with_suffix(".lock")):
        if (root / ".repro-complete").is_file() and python.exists():
            mark_used("tools", root.name)
            return str(python)
        try:
            interpreter = find_python(mm)
        except EnvironmentBuildError as exc:
            raise ResolverError(
                f"pip's resolver runs under the study's Python, and {exc.message[0].lower()}"
                f"{exc.message[1:]}",
                hint=exc.hint,
            ) from None
        shutil.rmtree(root, ignore_errors=True)
        try:
            installer = UvInstaller()
            installer.create(interpreter, root)
            installer.install(python, ["pip-tools"], what="installing pip-tools")
        except BaseException:
            shutil.rmtree(root, ignore_errors=True)
            raise
        (root / ".repro-complete").write_text("ok\n", encoding="utf-8")
        mark_used("tools", root.name)
    return str(python)


@functools.cache
def _piptools_strips_extras(python: str) -> bool:
    """pip-tools 7 takes --no-strip-extras (and warns without it); pip-tools 6 does not."""
    from repro.execution.tools import probe

    answer = probe(
        [python, "-c", "import piptools, importlib.metadata as m; print(m.version('pip-tools'))"],
        timeout=60,
    )
    major = (answer.stdout.strip().split(".")[0] if answer and answer.ok else "") or "0"
    return major.isdigit() and int(major) >= 7


def compile_lock(
    source: Path, python_version: str, resolver: Resolver
) -> tuple[str, LockSource, list[str]]:
    """A hashed lock of `source` for the study's Python: uv, falling back to pip's resolver
    when uv refuses an old release's metadata (unless `resolver` forces one). Returns the
    text, the resolver that made it and notes for the record."""
    if resolver == "pip-tools":
        return PipToolsResolver().compile(source, python_version), "pip-tools", []
    try:
        return UvResolver().compile(source, python_version), "uv", []
    except MetadataRejectedError as exc:
        if resolver == "uv":
            raise ResolverError(
                exc.message,
                hint="resolve with pip's resolver instead: --resolver pip-tools",
            ) from None
        text = PipToolsResolver().compile(source, python_version)
        note = (
            f"uv could not read the metadata of {exc.package} (an old release): resolved with "
            f"pip's resolver (pip-compile) under Python {python_version} instead"
        )
        return text, "pip-tools", [note]


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


_REQ_LINE = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?==([^\s;\\]+)")


def _logical_lines(text: str) -> list[str]:
    joined = re.sub(r"\\\r?\n", " ", text)
    return [ln.split(" #")[0].strip() for ln in joined.splitlines()]


_WHEEL_REF = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)\s*@\s*file://\S*/([^/\s]+\.whl)$")


def parse_packages(lock_text: str) -> list[Package]:
    """`name==version` lines (a lock, a freeze), and `name @ file:///.../x.whl` lines (how a
    freeze lists a wheel installed from a file, such as a local package: the version is the
    wheel file name's)."""
    packages = []
    for line in _logical_lines(lock_text):
        match = _REQ_LINE.match(line)
        if match:
            packages.append(Package(name=canonicalize_name(match.group(1)), version=match.group(3)))
            continue
        wheel = _WHEEL_REF.match(line)
        if wheel and wheel.group(2).count("-") >= 4:
            version = wheel.group(2).split("-")[1]
            packages.append(Package(name=canonicalize_name(wheel.group(1)), version=version))
    return sorted(packages, key=lambda p: p.name)


def hash_counts(lock_text: str) -> dict[str, int]:
    """Each pinned requirement's canonical name -> how many --hash values the lock gives it
    (one per wheel or sdist it accepts)."""
    counts: dict[str, int] = {}
    for line in _logical_lines(lock_text):
        match = _REQ_LINE.match(line)
        if match:
            counts[canonicalize_name(match.group(1))] = line.count("--hash=")
    return counts


def is_hashed_lock(text: str) -> bool:
    """Every requirement pinned with == and carrying --hash: a lock to keep as it is."""
    reqs = [ln for ln in _logical_lines(text) if ln and not ln.startswith(("#", "-"))]
    return bool(reqs) and all(_REQ_LINE.match(ln) and "--hash=" in ln for ln in reqs)


def lock_declared(
    declared: Declared,
    local_requires: list[str],
    local_names: set[str],
    python_version: str,
    resolver: Resolver,
    requirements: str | None,
) -> Lock:
    """A hashed lock of everything the declaration wants from an index: its requirements plus
    what the local packages need. An existing lock (Pipfile.lock, a hashed requirements file)
    is kept as it is, with only what it lacks added. Local packages never reach the resolver."""
    wanted = [r for r in local_requires if canonicalize_name(_req_name(r)) not in local_names]
    if declared.locked is not None:
        source: LockSource = (
            "pipfile-lock" if (requirements or "").endswith("Pipfile.lock") else "existing-lock"
        )
        lock = Lock(declared.locked, source, requirements, parse_packages(declared.locked))
        extra = [r for r in declared.requirements if not r.startswith("-c ") and "--hash=" not in r]
        if not declared.locked.strip():
            lock = Lock("", "none", requirements, [])
        lock, _ = with_packages(lock, tuple(extra + wanted), python_version, resolver, "install")
        return _checked_local(lock, local_names)
    lines = [r for r in declared.requirements if canonicalize_name(_req_name(r)) not in local_names]
    if not any(not ln.startswith("-c ") for ln in lines + wanted):
        return Lock("", "none", requirements, [])
    with tempfile.TemporaryDirectory(prefix=scratch_prefix("lock")) as tmp:
        req_in = Path(tmp) / "requirements.in"
        body = "\n".join([*declared.options, *lines, *wanted]) + "\n"
        req_in.write_text(body, encoding="utf-8")
        text, made_by, notes = compile_lock(req_in, python_version, resolver)
    lock = Lock(text, made_by, requirements, parse_packages(text), tuple(notes))
    return _checked_local(lock, local_names)


def _req_name(line: str) -> str:
    match = re.match(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)", line)
    return match.group(1) if match else line


def _checked_local(lock: Lock, local_names: set[str]) -> Lock:
    """A local package's name must never come from an index (dependency confusion)."""
    clash = sorted(p.name for p in lock.packages if p.name in local_names)
    if clash:
        raise ResolverError(
            f"{clash[0]} is a local package of this project, but the resolver locked a "
            "package of that name from an index (another requirement depends on it)",
            hint="rename the local package, or drop the requirement that pulls the index one",
        )
    return lock


def freeze_lock(
    python_version: str, python: str = sys.executable, installer: Installer | None = None
) -> tuple[Lock, list[str]]:
    """Lock exactly what this interpreter has installed (hashes from the index).

    Returns the lock and notes for the record: distributions that could not be locked
    (editable or local installs have no index hashes) and anything the resolver added.
    """
    from repro.env.installer import UvInstaller

    frozen_text = (installer or UvInstaller()).freeze(python)
    pinned, skipped = [], []
    for line in frozen_text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if _REQ_LINE.match(line):
            pinned.append(line)
        else:
            skipped.append(f"not locked (no index hashes): {line}")
    if not pinned:
        return Lock("", "freeze", None, []), skipped
    with tempfile.TemporaryDirectory(prefix=scratch_prefix("freeze")) as tmp:
        req_in = Path(tmp) / "requirements.in"
        req_in.write_text("\n".join(pinned) + "\n", encoding="utf-8")
        # Every installed version is pinned, so resolving (with dependencies: uv's --no-deps
        # leaves local wheels unhashed) can only confirm the installed set.
        text, _, notes = compile_lock(req_in, python_version, "auto")
    skipped += notes
    packages = parse_packages(text)
    frozen = {canonicalize_name(_REQ_LINE.match(p).group(1)) for p in pinned}  # type: ignore[union-attr]
    extra = sorted(p.name for p in packages if p.name not in frozen)
    if extra:
        skipped.append(f"resolver added packages that are not installed: {', '.join(extra)}")
    return Lock(text, "freeze", None, packages), skipped


_INDEX_OPTIONS = ("--index-url", "--extra-index-url", "--find-links", "-i ", "-f ", "--no-index")


def with_packages(
    lock: Lock,
    wanted: tuple[str, ...],
    python_version: str,
    resolver: Resolver,
    purpose: str = "execute notebooks",
) -> tuple[Lock, list[str]]:
    """The lock with `wanted` (requirements) added when missing: every locked version stays
    pinned and the resolver adds the new packages and what they need (with hashes). Notes say
    what changed."""
    have = {p.name for p in lock.packages}
    missing = [spec for spec in wanted if canonicalize_name(_req_name(spec)) not in have]
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
    with tempfile.TemporaryDirectory(prefix=scratch_prefix("kernel")) as tmp:
        req_in = Path(tmp) / "requirements.in"
        req_in.write_text("\n".join([*pins, *missing]) + "\n", encoding="utf-8")
        try:
            text, made_by, notes = compile_lock(req_in, python_version, resolver)
        except ResolverError as exc:
            raise ResolverError(
                f"cannot add {', '.join(missing)} to the lock to {purpose}: {exc.message}",
                hint=f"add a version of {', '.join(missing)} compatible with your pins to "
                "your requirements",
            ) from None
    packages = parse_packages(text)
    added = sorted({p.name for p in packages} - have)
    others = len(added) - len(missing)
    note = f"added to the lock to {purpose}: {', '.join(missing)}" + (
        f" and {others} package(s) they need" if others > 0 else ""
    )
    source: LockSource = made_by if lock.source == "none" else lock.source
    return Lock(text, source, lock.requirements, packages, lock.notes), [*notes, note]


def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def _has_requirements(text: str) -> bool:
    return any(ln and not ln.startswith("#") for ln in _logical_lines(text))
