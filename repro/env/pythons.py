"""The study's Python: which versions repro builds environments for, finding an interpreter
that really runs as the asked version (installing one through uv when it may), and what an
interpreter is (implementation, version, ABI)."""

from __future__ import annotations

import functools
import os
import re
import shutil
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from repro.errors import ConfigError, EnvironmentBuildError, UsageError
from repro.execution.tools import last_lines, probe

OLDEST = (3, 6)
"""The oldest Python the installer (uv) creates environments for."""

DOWNLOAD_TIMEOUT_S = 600
_REQUEST = re.compile(r"(\d+)\.(\d+)(?:\.(\d+))?")


def major_minor(version: str) -> str:
    return ".".join(version.split(".")[:2])


def check_version(version: str, where: str, *, usage: bool = False) -> str:
    """A Python version a study may ask for ("3.8", "3.8.10") as major.minor: one repro can
    build an environment for. `where` names who asked; `usage` makes it a usage error."""
    error = UsageError if usage else ConfigError
    match = _REQUEST.fullmatch(version.strip())
    if not match:
        raise error(
            f"{where}: {version!r} is not a Python version",
            hint="write it as major.minor, e.g. 3.10",
        )
    wanted = (int(match.group(1)), int(match.group(2)))
    if wanted < OLDEST or wanted[0] != 3:
        oldest = ".".join(map(str, OLDEST))
        raise error(
            f"{where} asks for Python {wanted[0]}.{wanted[1]}: repro builds environments "
            f"for Python {oldest} and newer",
            hint=f"port the study to Python 3 (3.{OLDEST[1]} at least) and set that version",
        )
    return f"{wanted[0]}.{wanted[1]}"


@dataclass(frozen=True)
class PythonInfo:
    """What an interpreter is, as the capsule records it."""

    implementation: str
    version: str
    abi: str | None
    """The interpreter's ABI tag, e.g. cp311 or cp36m (None when it does not say)."""


_INFO = (
    "import platform, sys, sysconfig\n"
    "soabi = sysconfig.get_config_var('SOABI') or ''\n"
    "print(platform.python_implementation())\n"
    "print(platform.python_version())\n"
    "print(soabi)\n"
)


def info_command(python: str = "python") -> list[str]:
    """The command that prints what `python` is (for a container or a job to run)."""
    return [python, "-c", _INFO]


def parse_info(text: str) -> PythonInfo | None:
    lines = [ln.strip() for ln in text.strip().splitlines()]
    if len(lines) < 2 or not re.fullmatch(r"\d+\.\d+\.\d+\S*", lines[1]):
        return None
    return PythonInfo(lines[0], lines[1], abi_tag(lines[0], lines[2] if len(lines) > 2 else ""))


def abi_tag(implementation: str, soabi: str) -> str | None:
    """cpython-36m-x86_64-linux-gnu -> cp36m; cpython-311-... -> cp311 (the wheel tag)."""
    match = re.match(r"cpython-(\d+)(\w*?)(?:-|$)", soabi)
    if implementation == "CPython" and match:
        return f"cp{match.group(1)}{match.group(2)}"
    return soabi.split("-")[0] or None


def python_info(python: str | Path) -> PythonInfo | None:
    """What an interpreter is (None when it cannot be run)."""
    proc = probe(info_command(str(python)), timeout=60)
    return parse_info(proc.stdout) if proc is not None and proc.ok else None


def find_python(version: str, *, download: bool = True) -> str:
    """An interpreter that really runs as major.minor `version`: this one when it matches,
    else one on PATH, in pyenv's versions or known to uv; else, when `download` and uv's
    managed downloads are not switched off (UV_PYTHON_DOWNLOADS=never), one uv installs.
    A pyenv shim that exists but cannot run is passed over, not trusted."""
    mm = major_minor(version)
    if f"{sys.version_info.major}.{sys.version_info.minor}" == mm:
        return sys.executable
    found = _installed_python(mm)
    if found:
        return found
    why = "downloads are off (--offline)" if not download else ""
    if download and os.environ.get("UV_PYTHON_DOWNLOADS", "").lower() in ("never", "manual"):
        why = "UV_PYTHON_DOWNLOADS forbids downloading it"
    elif download:
        why = _uv_install(mm)
        _installed_python.cache_clear()
        found = _installed_python(mm)
        if found:
            return found
    raise EnvironmentBuildError(
        f"Python {mm} is not installed on this machine" + (f" ({why})" if why else ""),
        hint=f"install it (uv python install {mm}, or pyenv install {mm}), or replay in "
        "a container: --target docker",
    )


def _uv_install(mm: str) -> str:
    """Ask uv to install a managed Python; '' on success, else why not (one line)."""
    from repro.env.lock import uv_bin

    proc = probe([uv_bin(), "python", "install", mm], timeout=DOWNLOAD_TIMEOUT_S)
    if proc is None:
        return "uv could not be run to download it"
    if proc.ok:
        return ""
    detail = last_lines(proc.stderr, 1).removeprefix("error: ").strip()
    return f"uv could not download it: {detail[:160]}" if detail else "uv could not download it"


@functools.cache
def _installed_python(mm: str) -> str | None:
    for candidate in _python_candidates(mm):
        answer = probe(
            [candidate, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"], timeout=20
        )
        if answer is not None and answer.ok and answer.stdout.strip() == mm:
            return candidate
    return None


def _python_candidates(mm: str) -> Iterator[str]:
    on_path = shutil.which(f"python{mm}")
    if on_path:
        yield on_path
    roots = [os.environ.get("PYENV_ROOT"), str(Path.home() / ".pyenv")]
    for root in dict.fromkeys(r for r in roots if r):
        versions = Path(root) / "versions"
        if not versions.is_dir():
            continue
        # the newest micro release first: 3.10.13 before 3.10.2
        matching = [v for v in versions.iterdir() if v.name.startswith(f"{mm}.")]
        for version in sorted(matching, key=_micro, reverse=True):
            yield str(version / "bin" / f"python{mm}")
    for prefix in ("/usr/local/bin", "/usr/bin"):
        yield f"{prefix}/python{mm}"
    from repro.env.lock import uv_bin

    # uv's own managed installs (uv python install), and what else uv knows of
    env = {**os.environ, "UV_PYTHON_DOWNLOADS": "never"}
    answer = probe([uv_bin(), "python", "find", mm], timeout=30, env=env)
    if answer is not None and answer.ok and answer.stdout.strip():
        yield answer.stdout.strip()


def _micro(version: Path) -> int:
    tail = version.name.split(".")[2:3]
    return int(tail[0]) if tail and tail[0].isdigit() else -1
