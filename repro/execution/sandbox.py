"""Sandboxes for runs on this machine: bubblewrap where it works, else none (said, never silent).

A sandboxed run sees the host filesystem read-only, with every home folder, /root, /tmp,
/var/tmp, /run (the Docker, munge and D-Bus sockets) and the host's private keys hidden;
its own work tree and private HOME writable; its environment (venv, interpreter) read-only;
new user, PID, IPC, UTS, cgroup and network namespaces (the network only when the run
declares it); no capabilities, a new session, and it dies with repro.
"""

from __future__ import annotations

import functools
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

from repro.execution.tools import probe

Isolation = Literal["docker", "bubblewrap", "none", "apptainer", "charliecloud", "podman"]
"""How a study's runs were isolated from the machine: in a container (docker; on a cluster
also apptainer, charliecloud, podman), in a bubblewrap sandbox, or not at all (only the
environment allowlist)."""

BWRAP_ENV = "REPRO_BWRAP"
"""The bubblewrap executable (default: bwrap on PATH); a path that does not exist means
"no sandbox here" (for tests and for machines whose bwrap misbehaves)."""
PROBE_TIMEOUT_S = 10.0

# Folders whose content is the user's or the machine's secrets: hidden (an empty tmpfs)
# unless a run's own folder lies inside, which is then bound again on top.
# Paths inside the sandbox, each an empty private tmpfs there.
HIDDEN_DIRS = (
    "/home",
    "/root",
    "/tmp",  # noqa: S108
    "/var/tmp",  # noqa: S108
    "/run",
    "/dev/shm",  # noqa: S108
    "/etc/ssh",
    "/etc/munge",
)
HIDDEN_FILES = ("/etc/shadow", "/etc/gshadow", "/etc/sudoers")


@dataclass(frozen=True)
class SandboxSpec:
    """What one sandboxed command may use."""

    workdir: Path
    """The run's work tree: writable, and where the command starts."""
    home: Path
    """The run's private HOME: writable."""
    read_only: tuple[Path, ...] = ()
    """Folders the command needs to read that may be hidden otherwise (the venv and its
    interpreter, which can live in the user's home)."""
    hidden: tuple[Path, ...] = ()
    """More folders to hide (the user's home and repro's cache and config folders where
    they are not under the standard hidden ones)."""
    network: bool = False
    """The run declared it needs the network."""
    writable: tuple[Path, ...] = ()
    """More folders the command writes (postBuild: the venv it completes)."""


class Sandbox(Protocol):
    """Turns a command into one that runs isolated from the machine (or says it cannot)."""

    @property
    def isolation(self) -> Isolation: ...

    def wrap(self, argv: Sequence[str], spec: SandboxSpec) -> list[str]:
        """The argv that runs `argv` in the sandbox, in `spec.workdir`."""
        ...


@dataclass(frozen=True)
class NoSandbox:
    """Runs as they are: only the environment allowlist protects the machine."""

    @property
    def isolation(self) -> Isolation:
        return "none"

    def wrap(self, argv: Sequence[str], spec: SandboxSpec) -> list[str]:
        return list(argv)


def _under(path: Path, parents: Sequence[str]) -> bool:
    return any(path == Path(p) or path.is_relative_to(p) for p in parents)


@dataclass(frozen=True)
class BubblewrapSandbox:
    """bubblewrap (bwrap): unprivileged namespaces, the host read-only, secrets hidden."""

    executable: str
    hidden_dirs: tuple[str, ...] = field(default=HIDDEN_DIRS)

    @property
    def isolation(self) -> Isolation:
        return "bubblewrap"

    def wrap(self, argv: Sequence[str], spec: SandboxSpec) -> list[str]:
        cmd = [self.executable, *_BASE_FLAGS]
        if spec.network:
            cmd.append("--share-net")
        cmd += ["--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc"]
        for folder in self.hidden_dirs:
            if Path(folder).is_dir() and not Path(folder).is_symlink():
                cmd += ["--tmpfs", folder]
        for extra in spec.hidden:
            if extra.is_dir() and not _under(extra, self.hidden_dirs):
                cmd += ["--tmpfs", str(extra)]
        for secret in HIDDEN_FILES:
            if Path(secret).is_file():
                cmd += ["--ro-bind", "/dev/null", secret]
        # Bound after the hiding mounts, so they show through wherever they live.
        for shown in spec.read_only:
            if shown.exists():
                cmd += ["--ro-bind", str(shown), str(shown)]
        for writable in (spec.workdir, spec.home, *spec.writable):
            cmd += ["--bind", str(writable), str(writable)]
        cmd += ["--chdir", str(spec.workdir), "--", *argv]
        return cmd


_BASE_FLAGS = (
    "--die-with-parent",
    "--new-session",
    "--unshare-all",
    "--cap-drop",
    "ALL",
)


def _probe_command(executable: str) -> list[str]:
    return [
        executable,
        *_BASE_FLAGS,
        "--ro-bind",
        "/",
        "/",
        "--dev",
        "/dev",
        "--proc",
        "/proc",
        "--tmpfs",
        "/tmp",  # noqa: S108 - a path inside the sandbox
        "true",
    ]


@functools.cache
def _probe(executable: str | None) -> Sandbox:
    if executable is None:
        return NoSandbox()
    done = probe(_probe_command(executable), timeout=PROBE_TIMEOUT_S)
    if done is None or not done.ok:
        return NoSandbox()
    return BubblewrapSandbox(executable)


def available_sandbox() -> Sandbox:
    """The strongest sandbox that works on this machine, probed once per process: bubblewrap
    when `bwrap` runs a command with every namespace unshared, else NoSandbox."""
    configured = os.environ.get(BWRAP_ENV)
    if configured:
        executable = configured if Path(configured).is_file() else None
    else:
        executable = shutil.which("bwrap")
    return _probe(executable)


def interpreter_prefix(venv_root: Path) -> Path | None:
    """Where a venv's base interpreter is installed (pyvenv.cfg's `home`, one folder up):
    the sandbox must show it, as it may live in the user's home (pyenv, uv)."""
    cfg = venv_root / "pyvenv.cfg"
    try:
        lines = cfg.read_text(encoding="utf-8").splitlines()
    except OSError:
        return None
    for line in lines:
        key, sep, value = line.partition("=")
        if sep and key.strip() == "home":
            home = Path(value.strip())
            # Not resolved: the venv's python links to this path as written.
            return home.parent if home.name == "bin" else home
    return None
