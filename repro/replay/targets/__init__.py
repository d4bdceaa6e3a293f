"""Replay targets, one module each (local, container for docker, slurm), behind the Target
protocol; the registry makes the one a replay asks for, or picks one when it asks for none."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from repro.replay.targets.base import (
    Observer,
    OnPoint,
    Prepared,
    Select,
    SlurmSettings,
    Target,
    TargetName,
    TargetOptions,
)

__all__ = [
    "TARGETS",
    "Observer",
    "OnPoint",
    "Prepared",
    "Select",
    "SlurmSettings",
    "Target",
    "TargetName",
    "TargetOptions",
    "choose",
    "make_target",
]


# Each implementation is imported when asked for, as before: a local replay never loads the
# container or scheduler code.
def _local(options: TargetOptions) -> Target:
    from repro.replay.targets.local import LocalTarget

    return LocalTarget(options)


def _docker(options: TargetOptions) -> Target:
    from repro.replay.targets.container import DockerTarget

    return DockerTarget(options)


def _slurm(options: TargetOptions) -> Target:
    from repro.replay.targets.slurm import SlurmTarget

    return SlurmTarget(options)


TARGETS: Mapping[TargetName, Callable[[TargetOptions], Target]] = {
    "local": _local,
    "docker": _docker,
    "slurm": _slurm,
}


def choose(name: TargetName | None, say: Observer) -> TargetName:
    """The target asked for; none asked for: the strongest isolation available -- docker when
    an engine answers, else local, which sandboxes its runs (bubblewrap) or refuses a capsule
    not signed by a trusted key (repro.replay.targets.isolation): never silently unsandboxed."""
    if name is not None:
        return name
    from repro.env.image import engine_available

    chosen: TargetName = "docker" if engine_available() else "local"
    say(f"target: {chosen}" + ("" if chosen == "docker" else " (no Docker engine answered)"))
    return chosen


def make_target(name: TargetName | None, options: TargetOptions, say: Observer) -> Target:
    return TARGETS[choose(name, say)](options)
