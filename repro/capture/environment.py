"""Capture's environment stage: read the declarations (binder/ first, repo2docker's
precedence), build the local packages into wheels, lock the rest with hashes, and produce the
environment files and records that go into the capsule."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from repro.capsule.layout import LOCAL_WHEELS
from repro.capsule.manifest import Declaration, LocalPackage
from repro.config.models import EnvironmentSpec
from repro.env.capsule_env import post_build_digest
from repro.env.declarations import EnvironmentPlan, declared_environment, plan_environment
from repro.env.dockerfile import render_dockerfile
from repro.env.installer import LocalWheel
from repro.env.local_packages import BuiltWheel, build_wheels
from repro.env.lock import Lock, freeze_lock, lock_declared
from repro.env.requirements import Declared
from repro.env.virtualenv import PostBuild, find_python

Observer = Callable[[str], None]


@dataclass(frozen=True)
class PlannedEnvironment:
    """What the declarations ask for, read and checked before any slow work."""

    plan: EnvironmentPlan
    declared: Declared

    @property
    def python(self) -> str:
        return self.plan.python.version

    @property
    def notes(self) -> list[str]:
        return [*self.plan.notes, *self.declared.notes]

    def declaration(self) -> Declaration:
        used = list(dict.fromkeys([*self.plan.used, *self.declared.files]))
        return Declaration(
            folder=self.plan.folder,
            used=used,
            ignored=self.plan.ignored,
            translated=dict(self.declared.translated),
            left_out=list(self.declared.left_out),
        )


def plan(project: Path, spec: EnvironmentSpec, *, freeze: bool = False) -> PlannedEnvironment:
    """--freeze locks what this interpreter has: no declaration is read (a missing or
    malformed one does not matter), runtime.txt, apt.txt and postBuild still are."""
    if freeze:
        frozen = spec.model_copy(update={"requirements": None, "packages": []})
        environment = plan_environment(project, frozen)
        return PlannedEnvironment(environment, Declared())
    environment = plan_environment(project, spec)
    return PlannedEnvironment(
        environment, declared_environment(project, environment, spec.conda_only)
    )


@dataclass(frozen=True)
class LockedEnvironment:
    lock: Lock
    wheels: list[BuiltWheel]
    notes: list[str]

    @property
    def local_wheels(self) -> list[LocalWheel]:
        return [LocalWheel(w.path, w.sha256) for w in self.wheels]

    def local_packages(self) -> list[LocalPackage]:
        return [
            LocalPackage(
                name=w.name,
                version=w.version,
                kind=w.source.kind,
                origin=w.source.origin,
                ref=w.source.ref,
                commit=w.commit,
                wheel=LOCAL_WHEELS + w.path.name,
                sha256=w.sha256,
                declared_in=w.source.declared_in,
            )
            for w in self.wheels
        ]


def lock_environment(
    planned: PlannedEnvironment,
    project: Path,
    staged: Path,
    workdir: Path,
    spec: EnvironmentSpec,
    *,
    freeze: bool,
    epoch: int,
    say: Observer,
) -> LockedEnvironment:
    """The lock (index packages, hashed) and the local wheels, built from `staged` (a copy of
    exactly the captured files)."""
    if freeze:
        lock, notes = freeze_lock(planned.python)
        return LockedEnvironment(lock, [], notes)
    declared = planned.declared
    wheels: list[BuiltWheel] = []
    if declared.local:
        interpreter = find_python(planned.python)
        wheels = build_wheels(
            list(declared.local), staged, project, workdir, planned.python, interpreter, epoch, say
        )
    requires = [r for w in wheels for r in w.requires]
    lock = lock_declared(
        declared,
        requires,
        {w.name for w in wheels},
        planned.python,
        spec.resolver,
        planned.plan.dependency_file,
    )
    notes = [
        f"built {w.name} {w.version} ({w.source.kind} {w.source.origin}"
        + (f" at {w.commit[:12]}" if w.commit else "")
        + ") into a wheel; installed from the capsule, never from an index"
        for w in wheels
    ]
    editable = [w.name for w in wheels if w.source.editable]
    if editable:
        notes.append(f"installed as regular packages, not editable: {', '.join(editable)}")
    return LockedEnvironment(lock, wheels, notes)


def post_build(
    planned: PlannedEnvironment, project_files: dict[str, str], staged: Path
) -> PostBuild | None:
    """postBuild with a digest over the script and the captured files (`capsule path ->
    sha256`), so a change to either rebuilds the environment."""
    script = planned.plan.post_build
    if script is None:
        return None
    return PostBuild(script, staged, post_build_digest(project_files))


def dockerfile(
    base_image: str, planned: PlannedEnvironment, locked: LockedEnvironment, apt: list[str]
) -> str:
    return render_dockerfile(
        base_image,
        apt,
        bool(locked.lock.packages),
        local_wheels=[(w.path.name, w.sha256) for w in locked.wheels],
        post_build=planned.plan.post_build,
    )
