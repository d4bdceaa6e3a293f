"""Build a virtual environment from a hashed lock (plus the project's own wheels and its
postBuild), cached by what it is built from and the Python version."""

from __future__ import annotations

import fcntl
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from repro.env.file_record import check_tree, record_tree
from repro.env.installer import Installer, LocalWheel, UvInstaller
from repro.env.pythons import find_python
from repro.errors import EnvironmentBuildError, NetworkError
from repro.execution.environment import Allowlist, run_environment, standard_path
from repro.execution.sandbox import Sandbox, SandboxSpec, interpreter_prefix
from repro.execution.tools import probe, run_tool
from repro.hashing import sha256_bytes
from repro.paths import cache_dir, config_dir, mark_used, scratch_prefix

MARKER = ".repro-complete"
RECORD_SUFFIX = ".files.json"
"""Beside each cached venv (outside it): the record of its files, checked before reuse."""
BUILD_TIMEOUT_S = 1800
POST_BUILD_TIMEOUT_S = 1800


@dataclass(frozen=True)
class VirtualEnv:
    root: Path
    python: Path
    reused: bool
    note: str | None = None
    """Why a cached environment was not reused (it changed since it was built)."""

    @property
    def bin_dir(self) -> Path:
        return self.python.parent


@dataclass(frozen=True)
class PostBuild:
    """repo2docker's postBuild: a script run once after the environment is installed, from
    a scratch copy of the project (what it writes into the project is not kept)."""

    script: str
    """Project-relative path of the script (e.g. binder/postBuild)."""
    project: Path
    """A folder holding the project's files, copied for the script to run in."""
    digest: str
    """sha256 over the script and the project's files: a change rebuilds the environment."""


def env_key(
    lock_text: str,
    python_version: str,
    local_wheels: Sequence[LocalWheel] = (),
    post_build: PostBuild | None = None,
) -> str:
    mm = ".".join(python_version.split(".")[:2])
    material = lock_text
    if local_wheels or post_build:
        material += "\0" + "\0".join(sorted(w.sha256 for w in local_wheels))
        material += "\0" + (post_build.digest if post_build else "")
    return f"{sha256_bytes(material.encode())[:20]}-py{mm}"


@contextmanager
def locked(path: Path) -> Iterator[None]:
    """An exclusive file lock for the duration of the block (cache builds)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def run_post_build(
    post_build: PostBuild,
    venv_root: Path,
    python: Path,
    allowlist: Allowlist | None = None,
    sandbox: Sandbox | None = None,
) -> None:
    """Run postBuild once, as repo2docker does: from the project's root (a scratch copy),
    made executable, its shebang choosing the interpreter (sh without one), with the
    environment's bin first on PATH, the allowlisted environment and a private HOME, in
    `sandbox` when given (a replay: the script is the capsule's; it may write only the venv
    and its scratch copy, with the network, as repo2docker's postBuild installs things).
    A failure fails the build, naming the script."""
    with tempfile.TemporaryDirectory(prefix=scratch_prefix("postbuild")) as tmp:
        work = Path(tmp) / "project"
        shutil.copytree(post_build.project, work, symlinks=True)
        script = work / post_build.script
        if not script.is_file():
            raise EnvironmentBuildError(f"{post_build.script} is missing from the project")
        # Written on Windows: repo2docker converts CRLF line endings, or the shebang fails.
        script.write_bytes(script.read_bytes().replace(b"\r\n", b"\n"))
        script.chmod(0o755)
        head = script.read_bytes()[:2]
        cmd = [str(script)] if head == b"#!" else ["/bin/sh", str(script)]
        home = Path(tmp) / "home"
        home.mkdir()
        # The capsule's script gets what its runs get (the allowlist, a private HOME), as
        # in a Docker build: none of the user's tokens or keys.
        env = run_environment(
            allowlist or Allowlist(),
            home=str(home),
            path=standard_path(str(python.parent)),
            variables={
                "VIRTUAL_ENV": str(venv_root),
                "PYTHONNOUSERSITE": "1",
                # a pip from outside the venv (further down PATH) refuses to install anything
                "PIP_REQUIRE_VIRTUALENV": "1",
            },
        )
        if sandbox is not None:
            shown = [p for p in [interpreter_prefix(venv_root)] if p is not None]
            spec = SandboxSpec(
                work,
                home,
                tuple(shown),
                (Path.home(), cache_dir(), config_dir()),
                network=True,
                writable=(venv_root,),
            )
            cmd = sandbox.wrap(cmd, spec)
        proc = run_tool(
            cmd,
            post_build.script,
            timeout=POST_BUILD_TIMEOUT_S,
            env=env,
            cwd=work,
            check=False,
            not_started=lambda exc: EnvironmentBuildError(
                f"{post_build.script} cannot be run: {exc.strerror}",
                hint="start it with a shebang line such as #!/bin/bash",
            ),
        )
        if not proc.ok:
            raise EnvironmentBuildError(
                f"{post_build.script} failed with exit code {proc.returncode}: "
                + (proc.tail(2, 300) or "no output"),
                hint="fix the script; it runs after the environment is installed, without "
                "network in a Docker build",
            )


def build_venv(
    lock_text: str,
    python_version: str,
    *,
    local_wheels: Sequence[LocalWheel] = (),
    post_build: PostBuild | None = None,
    wheels: Path | None = None,
    offline: bool = False,
    cache_root: Path | None = None,
    installer: Installer | None = None,
    sandbox: Sandbox | None = None,
) -> VirtualEnv:
    """A venv with exactly the lock's packages (hash-checked), then the local wheels (no
    index), then postBuild; reused when already built.

    Built in place under the cache (venvs are not relocatable) behind a file lock; a marker
    written last tells a complete build from an interrupted one, which is wiped and redone.
    `wheels`: a folder of the lock's wheels to install from with no index (vendored in the
    capsule); `offline`: never touch the network (needs `wheels` or a cached venv);
    `cache_root`: where venvs live instead of the user cache (a folder cluster nodes see);
    `sandbox`: where postBuild runs (a replay's; None: as it is, the user's own at capture).
    """
    tool = installer or UvInstaller()
    key = env_key(lock_text, python_version, local_wheels, post_build)
    root = (cache_root or cache_dir() / "venvs") / key
    python = root / "bin" / "python"
    record = root.parent / f"{root.name}{RECORD_SUFFIX}"
    note = None
    with locked(root.with_suffix(".lock")):
        if (root / MARKER).is_file() and python.exists():
            mismatch = check_tree(root, record)
            if mismatch is None:
                mark_used("venvs", key)
                return VirtualEnv(root, python, reused=True)
            note = (
                f"the cached environment {key} is not as it was built "
                f"({mismatch.describe()}): building it again"
            )
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
        interpreter = find_python(python_version, download=not offline)
        lock_file = root.parent / f"{root.name}.requirements.txt"
        lock_file.write_text(lock_text, encoding="utf-8")
        try:
            tool.create(interpreter, root)
            if has_packages:
                tool.sync(python, lock_file, find_links=wheels, offline=offline)
            tool.install_local(python, local_wheels)
            if post_build is not None:
                # repo2docker's environments have pip, and postBuild scripts use it: give
                # the venv its own (bundled with Python, no network) so `pip install` lands
                # here and never in the interpreter running repro.
                probe([str(python), "-m", "ensurepip", "--default-pip"], timeout=300)
                run_post_build(post_build, root, python, sandbox=sandbox)
            # Bytecode now, so that it is in the record: runs then write none into the
            # cached environment, and any a later check does not know is removed.
            run_tool(
                [str(python), "-m", "compileall", "-q", "-j", "0", str(root / "lib")],
                "compiling the environment's bytecode",
                timeout=BUILD_TIMEOUT_S,
                check=False,  # a package's deliberately broken test file is no failure
            )
            (root / MARKER).write_text(lock_text, encoding="utf-8")
            record_tree(root, record)
            mark_used("venvs", key)
        except BaseException:
            shutil.rmtree(root, ignore_errors=True)
            record.unlink(missing_ok=True)
            raise
        finally:
            lock_file.unlink(missing_ok=True)
        return VirtualEnv(root, python, reused=False, note=note)
