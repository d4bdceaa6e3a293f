"""The Python installer behind one small interface: venv creation, hash-checked sync of a
lock, hash-checked install of local wheels with no index, freeze, and wheel downloads for a
target Python. One real implementation (uv, pip for downloads); tests run it for real."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from repro.errors import EnvironmentBuildError, ResolverError
from repro.execution.tools import last_lines, run_tool
from repro.hashing import sha256_file

if TYPE_CHECKING:
    from repro.env.wheels import WheelTarget

TIMEOUT_S = 1800
FREEZE_TIMEOUT_S = 120
# Variables that would point the installer at another environment than the one it builds.
_SCRUB = ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "CONDA_PREFIX")


@dataclass(frozen=True)
class LocalWheel:
    """A wheel built at capture (the project, a path or git dependency) and its sha256."""

    path: Path
    sha256: str


class Installer(Protocol):
    """What building an environment needs from a Python installer."""

    def create(self, interpreter: str, root: Path) -> None: ...

    def sync(
        self, python: Path, lock_file: Path, *, find_links: Path | None, offline: bool
    ) -> None: ...

    def install_local(self, python: Path, wheels: Sequence[LocalWheel]) -> None: ...

    def install(self, python: Path, requirements: Sequence[str], *, what: str) -> None:
        """Tools repro itself needs into an environment of its own (never the study's
        packages, which only come from a hashed lock)."""
        ...

    def freeze(self, python: str) -> str:
        """`name==version` lines of what an interpreter has installed (editables left out)."""
        ...

    def download(self, lock_file: Path, dest: Path, *, target: WheelTarget | None) -> None:
        """Every distribution of a hashed lock into `dest`, checked against the lock's
        hashes: the wheel for `target` (None: this interpreter and platform) where there is
        one, else the sdist."""
        ...

    def download_build_requirements(
        self, requirements: Sequence[str], dest: Path, *, target: WheelTarget | None
    ) -> None:
        """Wheels (with their dependencies) of what building the sdists needs, for
        `target`, into `dest`: the image builds them with no index."""
        ...


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _SCRUB}
    env["UV_PYTHON_DOWNLOADS"] = "never"
    # uv hardlinks installed files to its cache by default: an edit in one cached venv would
    # then edit the cache and every venv built from it, rebuilds included (issue 16). Copies
    # keep each venv its own, so the check of its files before reuse means something.
    env["UV_LINK_MODE"] = "copy"
    return env


def check_wheels(wheels: Sequence[LocalWheel]) -> None:
    """Every local wheel is exactly the one the capsule recorded."""
    for wheel in wheels:
        actual, _ = sha256_file(wheel.path)
        if actual != wheel.sha256:
            from repro.errors import CapsuleIntegrityError

            raise CapsuleIntegrityError(f"local wheel changed: {wheel.path.name}")


class UvInstaller:
    """uv: fast venvs and hash-checked installs."""

    def __init__(self, uv: str | None = None) -> None:
        from repro.env.lock import uv_bin

        self.uv = uv or uv_bin()

    def create(self, interpreter: str, root: Path) -> None:
        run_tool(
            [self.uv, "venv", "--quiet", "--python", interpreter, str(root)],
            "uv venv",
            timeout=TIMEOUT_S,
            env=_env(),
        )

    def sync(
        self, python: Path, lock_file: Path, *, find_links: Path | None, offline: bool
    ) -> None:
        index = ["--no-index", "--find-links", str(find_links)] if find_links else []
        run_tool(
            [
                self.uv,
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
            timeout=TIMEOUT_S,
            env=_env(),
        )

    def install_local(self, python: Path, wheels: Sequence[LocalWheel]) -> None:
        """Local wheels after the lock: no index, no dependency resolution (the lock has
        them), each checked against its recorded sha256 first."""
        if not wheels:
            return
        check_wheels(wheels)
        run_tool(
            [
                self.uv,
                "pip",
                "install",
                "--quiet",
                "--no-index",
                "--no-deps",
                "--offline",
                "--python",
                str(python),
                *[str(w.path) for w in wheels],
            ],
            "installing the project's own wheels",
            timeout=TIMEOUT_S,
            env=_env(),
        )

    def install(self, python: Path, requirements: Sequence[str], *, what: str) -> None:
        run_tool(
            [self.uv, "pip", "install", "--quiet", "--python", str(python), *requirements],
            what,
            timeout=TIMEOUT_S,
            env=_env(),
        )

    def freeze(self, python: str) -> str:
        return run_tool(
            [self.uv, "pip", "freeze", "--python", python, "--exclude-editable"],
            "listing installed packages (uv pip freeze)",
            timeout=FREEZE_TIMEOUT_S,
            error=ResolverError,
        ).stdout

    def download(self, lock_file: Path, dest: Path, *, target: WheelTarget | None) -> None:
        # uv has no `pip download`: pip does it. With --no-deps, pip may take an sdist for a
        # target Python and platform; the wheel is preferred wherever one fits.
        self._pip_download(
            ["--no-deps", "--require-hashes", "-r", str(lock_file)],
            dest,
            target,
            "the lock's wheels",
        )

    def download_build_requirements(
        self, requirements: Sequence[str], dest: Path, *, target: WheelTarget | None
    ) -> None:
        self._pip_download(
            ["--only-binary=:all:", *requirements], dest, target, "what the sdists build with"
        )

    def _pip_download(
        self, args: list[str], dest: Path, target: WheelTarget | None, what: str
    ) -> None:
        env = {k: v for k, v in os.environ.items() if k != "PIP_REQUIRE_VIRTUALENV"}
        proc = run_tool(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--quiet",
                "--disable-pip-version-check",
                *(target.pip_args() if target else []),
                "--dest",
                str(dest),
                *args,
            ],
            f"downloading {what}",
            timeout=TIMEOUT_S,
            env=env,
            check=False,
        )
        if not proc.ok:
            for_python = f" for Python {target.python_version}" if target else ""
            raise EnvironmentBuildError(
                f"downloading {what}{for_python} failed: {pip_error(proc.stderr)}",
                hint="check the network; a package with neither a wheel for this platform nor "
                "an sdist cannot be installed",
            )


def pip_error(stderr: str, limit: int = 300) -> str:
    """pip's own error lines, without its list of the versions it passed over (which
    can run to thousands of characters), shortened to `limit`."""
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    errors = [
        ln.removeprefix("ERROR: ")
        for ln in lines
        if ln.startswith("ERROR: ") and "Ignored the following versions" not in ln
    ]
    text = "; ".join(errors[-2:]) if errors else last_lines(stderr, 2)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def local_lock(wheels: Sequence[tuple[str, str]], folder: str) -> str:
    """A pip requirements file installing (filename, sha256) wheels from `folder`, hash-checked
    (the Dockerfile's local-wheels step)."""
    return "".join(f"{folder}/{name} --hash=sha256:{sha}\n" for name, sha in wheels)
