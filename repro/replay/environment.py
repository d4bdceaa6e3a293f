"""What differs between the environment a capsule was captured in and the one replaying it."""

from __future__ import annotations

from pathlib import Path

from repro.capsule.manifest import Manifest, Package, Platform
from repro.env.lock import parse_packages, uv_bin
from repro.execution.tools import probe
from repro.report.replay import EnvironmentDifference

TOOLS = frozenset({"pip", "setuptools", "wheel", "distribute"})


def installed_packages(python: Path) -> list[Package] | None:
    """What a venv really has installed (None when it cannot be listed)."""
    proc = probe([uv_bin(), "pip", "freeze", "--python", str(python)], timeout=60)
    if proc is None or not proc.ok:
        return None
    return parse_packages(proc.stdout)


def differences(
    manifest: Manifest,
    replay_platform: Platform,
    replay_python: str,
    installed: list[Package] | None,
    replay_abi: str | None = None,
) -> list[EnvironmentDifference]:
    captured = manifest.platform
    diffs = []

    def add(what: str, before: str | None, after: str | None) -> None:
        if before != after:
            diffs.append(EnvironmentDifference(what=what, captured=before, replayed=after))

    add("python", captured.python_version, replay_python)
    if captured.python_abi and replay_abi:  # older capsules do not record it
        add("python abi", captured.python_abi, replay_abi)
    add(
        "python implementation",
        captured.python_implementation,
        replay_platform.python_implementation,
    )
    add(
        "operating system",
        captured.distribution or captured.system,
        replay_platform.distribution or replay_platform.system,
    )
    add("architecture", captured.machine, replay_platform.machine)
    add("cpu", captured.cpu_model, replay_platform.cpu_model)
    add("cpu count", str(captured.cpu_count), str(replay_platform.cpu_count))
    add(
        "gpus",
        ", ".join(g.name for g in captured.gpus) or None,
        ", ".join(g.name for g in replay_platform.gpus) or None,
    )
    if installed is not None:
        env = manifest.environment
        locked = {p.name: p.version for p in env.packages}
        locked |= {p.name: p.version for p in env.local_packages}
        # The installer's own tools come with some venvs (python -m venv) and not others (uv):
        # not part of the study's environment unless the lock pins them.
        have = {p.name: p.version for p in installed if p.name in locked or p.name not in TOOLS}
        for name in sorted(set(locked) | set(have)):
            add(f"package {name}", locked.get(name), have.get(name))
    return diffs
