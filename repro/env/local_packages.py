"""Build the dependencies that are not on an index into wheels at capture: the project itself,
path dependencies, git dependencies (resolved to a commit) and archive URLs. Their names are
never looked up on an index (a dependency-confusion hole otherwise); the wheels travel in the
capsule with their sha256 and are installed hash-checked, with no index, on every target."""

from __future__ import annotations

import email.parser
import os
import re
import shutil
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from repro.env.lock import uv_bin
from repro.env.requirements import ARCHIVE_SUFFIXES, LocalSource
from repro.errors import ConfigError, EnvironmentBuildError, NetworkError
from repro.execution.tools import run_tool
from repro.hashing import sha256_file

BUILD_TIMEOUT_S = 900
GIT_TIMEOUT_S = 300
IGNORED = shutil.ignore_patterns(".git", "__pycache__", "*.pyc", ".venv", "build", "*.egg-info")


@dataclass(frozen=True)
class BuiltWheel:
    source: LocalSource
    path: Path
    name: str
    """Canonical project name, read from the wheel's metadata."""
    version: str
    sha256: str
    requires: tuple[str, ...]
    """What it needs from an index (Requires-Dist, with the requested extras applied)."""
    commit: str | None = None


def _run(cmd: list[str], what: str, cwd: Path | None, timeout: float, env: dict[str, str]) -> str:
    proc = run_tool(cmd, what, timeout=timeout, env=env, cwd=cwd, check=False)
    if not proc.ok:
        cause = _cause(proc.stderr + "\n" + proc.stdout)
        raise EnvironmentBuildError(f"{what} failed: {cause or proc.tail(3, 400)}")
    return proc.stdout


def _cause(output: str) -> str:
    """The line that says why a build failed (`ModuleNotFoundError: No module named
    'numpy'`), rather than the build tool's closing advice."""
    lines = [ln.strip() for ln in output.splitlines() if ln.strip()]
    raised = [ln for ln in lines if re.search(r"\b\w*(Error|Exception)\b: ", ln)]
    said = [ln for ln in lines if ln.startswith("error:")]
    found = raised or said
    return found[-1][-400:] if found else ""


def _git_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_") or k.endswith("_NAME")}
    env.update(GIT_TERMINAL_PROMPT="0", GIT_ASKPASS="/bin/false", GIT_CONFIG_NOSYSTEM="1")
    return env


def _without(message: str, source: LocalSource) -> str:
    """git's own words, never the credentials of the URL it was given."""
    detail = message.split(" failed: ")[-1]
    return detail.replace(source.location, source.origin) if source.location else detail


def _checkout(source: LocalSource, dest: Path) -> str:
    """Clone a git dependency and check out its ref; the commit it resolved to."""
    ref = source.ref or "HEAD"
    if ref.startswith("-") or source.location.startswith("-"):
        # a declaration's text must never become an option of git's
        raise ConfigError(
            f"git dependency {source.name or source.origin}: {ref!r} is not a git ref",
            hint=f"fix the ref in {source.declared_in}",
        )
    env = _git_env()
    try:
        _run(
            ["git", "clone", "--quiet", "--no-checkout", "--", source.location, str(dest)],
            f"fetching git dependency {source.origin}",
            None,
            GIT_TIMEOUT_S,
            env,
        )
    except EnvironmentBuildError as exc:
        raise NetworkError(
            f"git dependency {source.name or source.origin} ({source.origin}, declared in "
            f"{source.declared_in}) cannot be fetched: {_without(exc.message, source)}",
            hint="check the URL and your access to it, or vendor the package as a path",
        ) from None
    try:
        _run(
            ["git", "-c", "advice.detachedHead=false", "checkout", "--quiet", ref],
            f"checking out {ref}",
            dest,
            GIT_TIMEOUT_S,
            env,
        )
    except EnvironmentBuildError:
        raise ConfigError(
            f"git dependency {source.name or source.origin}: ref {ref!r} does not exist in "
            f"{source.origin}",
            hint=f"fix the ref in {source.declared_in}",
        ) from None
    return _run(["git", "rev-parse", "HEAD"], "git rev-parse", dest, 60, env).strip()


def _download(source: LocalSource, dest: Path) -> Path:
    import httpx

    name = source.location.rsplit("/", 1)[-1].split("#")[0].split("?")[0] or "archive"
    target = dest / name
    try:
        with httpx.stream("GET", source.location, follow_redirects=True, timeout=120) as resp:
            resp.raise_for_status()
            with target.open("wb") as fh:
                for chunk in resp.iter_bytes():
                    fh.write(chunk)
    except httpx.HTTPError as exc:
        status = getattr(getattr(exc, "response", None), "status_code", None)
        why = f"HTTP {status}" if status else type(exc).__name__  # never the URL: credentials
        raise NetworkError(
            f"archive dependency {source.origin} (declared in {source.declared_in}) cannot be "
            f"downloaded: {why}",
            hint="check the URL, or vendor the package as a path",
        ) from None
    return target


def _metadata(wheel: Path) -> tuple[str, str, list[str]]:
    try:
        with zipfile.ZipFile(wheel) as zf:
            name = next(
                n for n in zf.namelist() if n.count("/") == 1 and n.endswith(".dist-info/METADATA")
            )
            text = zf.read(name).decode("utf-8")
    except (zipfile.BadZipFile, StopIteration, UnicodeDecodeError):
        raise EnvironmentBuildError(f"{wheel.name} is not a readable wheel") from None
    message = email.parser.Parser().parsestr(text, headersonly=True)
    return (
        canonicalize_name(message.get("Name", "")),
        message.get("Version", ""),
        list(message.get_all("Requires-Dist") or []),
    )


def target_environment(python: str) -> dict[str, str]:
    """Marker variables of a Linux target running the study's Python (major.minor)."""
    env = {k: str(v) for k, v in default_environment().items()}
    env.update(python_version=python, python_full_version=f"{python}.0")
    return env


def index_requirements(requires: list[str], extras: tuple[str, ...], python: str) -> list[str]:
    """Requires-Dist lines as the resolver needs them: extras the declaration asked for are
    applied; other markers stay for the resolver, evaluated for the study's Python."""
    env = target_environment(python)
    out = []
    for line in requires:
        try:
            req = Requirement(line)
        except InvalidRequirement:
            continue
        if req.marker is None:
            out.append(str(req))
            continue
        if "extra" not in str(req.marker):
            out.append(str(req))
            continue
        if any(req.marker.evaluate({**env, "extra": e}) for e in extras):
            req.marker = None
            out.append(str(req))
    return out


def build_wheels(
    sources: list[LocalSource],
    staged_project: Path,
    project: Path,
    workdir: Path,
    python: str,
    interpreter: str,
    epoch: int,
    say: Callable[[str], None] | None = None,
) -> list[BuiltWheel]:
    """Each local source built into a wheel under `workdir/wheels` (deterministic under
    SOURCE_DATE_EPOCH). Sources inside the project are built from `staged_project`, a copy
    of exactly the captured files, never from the user's tree (builds write into it)."""
    out_dir = workdir / "wheels"
    out_dir.mkdir(parents=True, exist_ok=True)
    built: list[BuiltWheel] = []
    env = {
        **os.environ,
        "SOURCE_DATE_EPOCH": str(max(epoch, 315532800)),  # zip cannot hold times before 1980
        "UV_PYTHON_DOWNLOADS": "never",
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    for i, source in enumerate(_unique([s for s in sources if _applies(s, python)])):
        src_root = workdir / f"src-{i}"
        commit = None
        if source.kind == "git":
            commit = _checkout(source, src_root)
            src = (src_root / (source.subdirectory or "")).resolve()
            if not src.is_relative_to(src_root.resolve()):
                raise ConfigError(
                    f"{source.declared_in}: subdirectory {source.subdirectory!r} of git "
                    f"dependency {source.origin} leads out of its repository",
                    hint="name a folder inside the repository",
                )
        elif source.kind == "url":
            src_root.mkdir()
            src = _download(source, src_root)
        else:
            location = Path(source.location)
            if location.resolve().is_relative_to(project.resolve()):
                rel = location.resolve().relative_to(project.resolve())
                location = staged_project / rel
            if location.is_file() and location.name.endswith(ARCHIVE_SUFFIXES):
                src_root.mkdir()  # a wheel or sdist the project ships
                src = src_root / location.name
                shutil.copyfile(location, src)
            elif location.is_dir():
                shutil.copytree(location, src_root, symlinks=True, ignore=IGNORED)
                src = src_root
            else:
                raise ConfigError(
                    f"{source.declared_in}: local dependency {source.origin} is not a folder "
                    "or an archive among the captured files",
                    hint="fix the path, or stop ignoring that folder",
                )
        if say:
            say(f"building {source.name or source.origin} into a wheel")
        if src.is_file() and src.suffix == ".whl":
            wheel = out_dir / src.name
            shutil.copyfile(src, wheel)
        else:
            wheel = _build(source, src, out_dir, interpreter, env)
        name, version, requires = _metadata(wheel)
        if source.name and canonicalize_name(source.name) != name:
            raise ConfigError(
                f"{source.declared_in} names {source.origin} {source.name!r}, but it builds "
                f"the package {name!r}",
                hint="use the package's real name in the declaration",
            )
        sha, _ = sha256_file(wheel)
        built.append(
            BuiltWheel(
                source,
                wheel,
                name,
                version,
                sha,
                tuple(index_requirements(requires, source.extras, python)),
                commit,
            )
        )
    names = [b.name for b in built]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ConfigError(f"local package {dupes[0]} is declared twice, from different places")
    return built


def _build(
    source: LocalSource, src: Path, out_dir: Path, interpreter: str, env: dict[str, str]
) -> Path:
    before = set(out_dir.glob("*.whl"))
    what = f"building {source.name or source.origin} ({source.declared_in}) into a wheel"
    _run(
        [
            uv_bin(),
            "build",
            "--wheel",  # not --quiet: it hides the backend's traceback, the failure's cause
            "--python",
            interpreter,
            "--out-dir",
            str(out_dir),
            str(src),
        ],
        what,
        None,
        BUILD_TIMEOUT_S,
        env,
    )
    new = sorted(set(out_dir.glob("*.whl")) - before)
    if len(new) != 1:
        raise EnvironmentBuildError(f"{what} produced {len(new)} wheels, expected one")
    return new[0]


def _applies(source: LocalSource, python: str) -> bool:
    """Its marker, if any, holds on the Linux targets for the study's Python."""
    if not source.marker:
        return True
    from packaging.markers import InvalidMarker, Marker

    try:
        marker = Marker(source.marker)
    except InvalidMarker:
        raise ConfigError(
            f"{source.declared_in}: {source.origin}: not a valid marker: {source.marker}",
            hint="write it as in PEP 508, e.g. sys_platform == 'linux'",
        ) from None
    return marker.evaluate(target_environment(python))


def _unique(sources: list[LocalSource]) -> list[LocalSource]:
    seen: set[tuple[str, str, str | None, str | None]] = set()
    out = []
    for s in sources:
        key = (s.kind, s.location, s.ref, s.subdirectory)
        if key not in seen:
            seen.add(key)
            out.append(s)
    return out
