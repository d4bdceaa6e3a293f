"""Build a virtual environment from a hashed lock, cached by lock digest and Python version."""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from repro.env.lock import uv_bin
from repro.errors import EnvironmentBuildError, NetworkError
from repro.hashing import sha256_bytes
from repro.paths import cache_dir

MARKER = ".repro-complete"
BUILD_TIMEOUT_S = 1800


@dataclass(frozen=True)
class VirtualEnv:
    root: Path
    python: Path
    reused: bool

    @property
    def bin_dir(self) -> Path:
        return self.python.parent


def env_key(lock_text: str, python_version: str) -> str:
    mm = ".".join(python_version.split(".")[:2])
    return f"{sha256_bytes(lock_text.encode())[:20]}-py{mm}"


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def find_python(python_version: str) -> str:
    """An interpreter for major.minor: this one when it matches, else one uv can find."""
    mm = ".".join(python_version.split(".")[:2])
    if f"{sys.version_info.major}.{sys.version_info.minor}" == mm:
        return sys.executable
    found = shutil.which(f"python{mm}")
    if found:
        return found
    raise EnvironmentBuildError(
        f"Python {mm} is not installed on this machine",
        hint=f"install Python {mm}, or set [environment] python to a version you have",
    )


def _run(cmd: list[str], what: str) -> None:
    env = {**os.environ, "UV_PYTHON_DOWNLOADS": "never"}
    for name in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME"):
        env.pop(name, None)
    try:
        proc = subprocess.run(
            cmd, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S, env=env, check=False
        )
    except subprocess.TimeoutExpired:
        raise EnvironmentBuildError(f"{what} did not finish within {BUILD_TIMEOUT_S} s") from None
    if proc.returncode != 0:
        lines = [ln.strip() for ln in (proc.stderr or proc.stdout).splitlines() if ln.strip()]
        raise EnvironmentBuildError(f"{what} failed: {' '.join(lines[-4:])}")


def build_venv(
    lock_text: str,
    python_version: str,
    *,
    use_uv: bool = True,
    wheels: Path | None = None,
    offline: bool = False,
    cache_root: Path | None = None,
) -> VirtualEnv:
    """A venv with exactly the lock's packages, hash-checked; reused when already built.

    Built in place under the cache (venvs are not relocatable) behind a file lock; a marker
    written last tells a complete build from an interrupted one, which is wiped and redone.
    `wheels`: a folder of the lock's wheels to install from with no index (vendored in the
    capsule); `offline`: never touch the network (needs `wheels` or a cached venv);
    `cache_root`: where venvs live instead of the user cache (a folder cluster nodes see).
    """
    root = (cache_root or cache_dir() / "venvs") / env_key(lock_text, python_version)
    python = root / "bin" / "python"
    with _locked(root.with_suffix(".lock")):
        if (root / MARKER).is_file() and python.exists():
            return VirtualEnv(root, python, reused=True)
        if root.exists():
            shutil.rmtree(root)
        has_packages = any(
            ln.strip() and not ln.lstrip().startswith("#") for ln in lock_text.splitlines()
        )
        if offline and has_packages and wheels is None:
            raise NetworkError(
                "the environment is not cached and the capsule vendors no wheels: "
                "--offline cannot build it",
                hint="replay once with the network, or capture with --wheels",
            )
        index = ["--no-index", "--find-links", str(wheels)] if wheels is not None else []
        interpreter = find_python(python_version)
        lock_file = root.parent / f"{root.name}.requirements.txt"
        lock_file.write_text(lock_text, encoding="utf-8")
        try:
            if use_uv:
                _run([uv_bin(), "venv", "--quiet", "--python", interpreter, str(root)], "uv venv")
                if has_packages:
                    _run(
                        [
                            uv_bin(),
                            "pip",
                            "sync",
                            "--quiet",
                            "--require-hashes",
                            *index,
                            *(["--offline"] if offline else []),
                            "--python",
                            str(python),
                            str(lock_file),
                        ],
                        "installing the lock (uv pip sync)",
                    )
            else:
                _run([interpreter, "-m", "venv", str(root)], "python -m venv")
                if has_packages:
                    _run(
                        [
                            str(python),
                            "-m",
                            "pip",
                            "install",
                            "--quiet",
                            "--require-hashes",
                            "--no-deps",
                            *index,
                            "-r",
                            str(lock_file),
                        ],
                        "installing the lock (pip)",
                    )
        except BaseException:
            shutil.rmtree(root, ignore_errors=True)
            raise
        finally:
            lock_file.unlink(missing_ok=True)
        (root / MARKER).write_text(lock_text, encoding="utf-8")
        return VirtualEnv(root, python, reused=False)
