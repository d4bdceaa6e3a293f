"""The local target: a virtual environment built from the lock (cached by lock digest), each
run point a /bin/sh command on this machine with that environment first on PATH."""

from __future__ import annotations

from pathlib import Path

from repro.capsule.manifest import Manifest
from repro.config.models import Run
from repro.env.apt import check_apt_on_host
from repro.env.capsule_env import capsule_environment
from repro.env.pythons import find_python, major_minor, python_info
from repro.env.virtualenv import VirtualEnv, build_venv
from repro.execution.runs import LocalRunner, PointOutcome
from repro.execution.sandbox import Isolation, Sandbox
from repro.replay.environment import installed_packages
from repro.replay.targets.base import (
    Observer,
    OnPoint,
    Prepared,
    Select,
    TargetName,
    TargetOptions,
    allowlist,
    ignored_slurm_settings,
    run_points,
    study_variables,
)
from repro.replay.targets.isolation import sandbox_for


def environment(
    manifest: Manifest,
    root: Path,
    offline: bool,
    say: Observer,
    cache_root: Path | None = None,
    sandbox: Sandbox | None = None,
) -> tuple[VirtualEnv, list[str]]:
    """The capsule's environment as a venv, and warnings (a different Python, say).

    The one place the local and slurm targets call the venv builder.
    """
    described = capsule_environment(manifest, root)
    # No image installs apt.txt here: what the host lacks, the study lacks (exit 5).
    check_apt_on_host(list(described.apt), "this capsule (apt.txt)")
    # The study's own Python, or none: another version is not the same study.
    version = major_minor(manifest.environment.python_version)
    find_python(version, download=not offline)
    warnings: list[str] = []
    say("preparing the environment from the lock")
    env = manifest.environment
    venv = build_venv(
        described.lock_text,
        version,
        local_wheels=described.local_wheels,
        post_build=described.post_build,
        wheels=root / env.wheels if env.wheels else None,
        offline=offline,
        cache_root=cache_root,
        sandbox=sandbox,
    )
    if venv.note:
        warnings.append(venv.note)  # a cached environment that changed: rebuilt, and said
    say("reusing the cached environment" if venv.reused else "built the environment")
    return venv, warnings


def describe(venv: VirtualEnv, warnings: list[str], isolation: Isolation) -> Prepared:
    """What the report says about a venv the runs use."""
    info = python_info(venv.python)
    return Prepared(
        info.version if info else "unknown",
        installed_packages(venv.python),
        warnings,
        python_abi=info.abi if info else None,
        isolation=isolation,
    )


class LocalTarget:
    """Points run on this machine, -j at a time, in a venv built from the lock."""

    def __init__(self, options: TargetOptions) -> None:
        self.options = options
        self._runner: LocalRunner | None = None
        self._variables: dict[str, str] = {}

    @property
    def name(self) -> TargetName:
        return "local"

    def ignored(self) -> list[str]:
        warnings = []
        if self.options.base_image is not None:
            warnings.append(
                "--base-image is ignored on the local target: it replays in a virtual "
                "environment built from the lock, not in an image"
            )
        return warnings + ignored_slurm_settings(self.name, self.options)

    def prepare(self, manifest: Manifest, root: Path, say: Observer) -> Prepared:
        # Decided first: a replay that may not run builds nothing.
        sandbox, warnings = sandbox_for(self.name, self.options)
        say(f"isolation: {sandbox.isolation}")
        self._variables = study_variables(manifest)
        allowed = allowlist(manifest, self.options)
        venv, env_warnings = environment(manifest, root, self.options.offline, say, sandbox=sandbox)
        self._runner = LocalRunner(venv.bin_dir, venv.root, allowed, sandbox)
        return describe(venv, [*warnings, *allowed.missing(), *env_warnings], sandbox.isolation)

    def execute(
        self, runs: list[Run], project: Path, select: Select, on_point: OnPoint
    ) -> list[PointOutcome]:
        return run_points(
            self._runner, self.options, runs, project, select, on_point, self._variables
        )

    def close(self) -> None:
        """Nothing to release: the cached venv is kept for the next replay."""
