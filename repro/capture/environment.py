"""Capture's environment stage: read the declarations (binder/ first, repo2docker's
precedence), build the local packages into wheels, lock the rest with hashes, and produce the
environment files and records that go into the capsule."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from repro.capsule.layout import LOCAL_WHEELS
from repro.capsule.manifest import Declaration, LocalPackage
from repro.config.models import EnvironmentSpec, Resolver
from repro.env.capsule_env import post_build_digest
from repro.env.declarations import EnvironmentPlan, declared_environment, plan_environment
from repro.env.dockerfile import default_base_image, render_dockerfile
from repro.env.image import BASE_IMAGE_ENV, ImageSpec
from repro.env.installer import LocalWheel
from repro.env.local_packages import BuiltWheel, build_wheels
from repro.env.lock import Lock, freeze_lock, lock_declared, with_packages
from repro.env.pythons import find_python
from repro.env.requirements import Declared
from repro.env.virtualenv import PostBuild
from repro.errors import EnvironmentBuildError, ResolverError
from repro.execution.runs import stage_project
from repro.notebooks import notebook as nbk

if TYPE_CHECKING:
    # Only for annotations: the plan stage imports this module.
    from repro.capture.plan import Plan
    from repro.capture.snapshot import Snapshot

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
        # a file the declaration includes (environment.yml's pip: -r requirements.txt) is
        # used, not ignored
        ignored = [item for item in self.plan.ignored if item.split(" (", 1)[0] not in used]
        return Declaration(
            folder=self.plan.folder,
            used=used,
            ignored=ignored,
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
        frozen, frozen_notes = freeze_lock(planned.python)
        return LockedEnvironment(frozen, [], frozen_notes)
    declared = planned.declared
    wheels: list[BuiltWheel] = []
    notes: list[str] = []
    # The project found by repo2docker's rules (not asked for by name) is best effort: many
    # research repositories carry a setup.py that no longer builds, and run from their root.
    auto = [
        s
        for s in declared.local
        if s.kind == "project"
        and s.declared_in == planned.plan.project_file
        and spec.install_project is None
    ]
    asked = [s for s in declared.local if s not in auto]
    if declared.local:
        interpreter = find_python(planned.python)
        if asked:
            wheels = build_wheels(
                asked, staged, project, workdir, planned.python, interpreter, epoch, say
            )
        try:
            wheels += build_wheels(
                auto, staged, project, workdir / "project", planned.python, interpreter, epoch, say
            )
        except EnvironmentBuildError as exc:
            notes.append(
                f"the project's own {planned.plan.project_file} could not be built into a "
                f"wheel, so it is not installed ({exc.message}); set [environment] "
                "install_project = true to make this an error"
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
    notes += lock.notes
    notes += [
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
    planned: PlannedEnvironment,
    project_files: dict[str, str] | Callable[[], dict[str, str]],
    staged: Path,
) -> PostBuild | None:
    """postBuild with a digest over the script and the captured files (`capsule path ->
    sha256`, or what gives them: built only when there is a postBuild), so a change to
    either rebuilds the environment."""
    script = planned.plan.post_build
    if script is None:
        return None
    files = project_files() if callable(project_files) else project_files
    return PostBuild(script, staged, post_build_digest(files))


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


@dataclass(frozen=True)
class EnvironmentBuild:
    """What the study's environment is built from, for the target capture runs on."""

    locked: LockedEnvironment
    post_build: PostBuild | None
    python: str
    apt: list[str]
    dockerfile: str
    base_image: str
    timings: Mapping[str, float]

    def image_spec(self, wheels: Path | None = None) -> ImageSpec:
        return ImageSpec(
            dockerfile=self.dockerfile,
            lock_text=self.locked.lock.text,
            base_image=self.base_image,
            has_packages=bool(self.locked.lock.packages),
            needs_network=bool(self.apt),
            wheels=wheels,
            local_wheels=tuple(self.locked.local_wheels),
            post_build_project=self.post_build.project if self.post_build else None,
            post_build_digest=self.post_build.digest if self.post_build else "",
            python_version=self.python_mm,
        )

    @property
    def python_mm(self) -> str:
        return ".".join(self.python.split(".")[:2])


def prepare(plan: Plan, snapshot: Snapshot, work: Path, say: Observer) -> EnvironmentBuild:
    """The stage: lock (with the notebook kernel when there are notebooks), then what the
    environment is built from. `work` holds the staged files and the wheel builds."""
    planned, spec, freeze = plan.environment, plan.config.environment, plan.options.freeze
    say("locking dependencies")
    t0 = time.perf_counter()
    pristine = work / "files"
    if planned.declared.local or planned.plan.post_build:
        # Wheels are built, and postBuild runs, from exactly the captured files, never from
        # the user's tree (builds write into their source folder).
        files = snapshot.listing.files
        stage_project([(f.rel, f.path, f.link_target) for f in files], pristine)
    locked = lock_environment(
        planned,
        plan.project,
        pristine,
        work / "build",
        spec,
        freeze=freeze,
        epoch=plan.epoch,
        say=say,
    )
    if snapshot.notebooks:
        locked = with_kernel(locked, planned.python, spec.resolver, freeze=freeze)
    elapsed = time.perf_counter() - t0
    # flag or repro.toml, then REPRO_BASE_IMAGE (as replay reads it), then python:X.Y-slim
    base_image = (
        spec.base_image or os.environ.get(BASE_IMAGE_ENV) or default_base_image(planned.python)
    )
    return EnvironmentBuild(
        locked,
        post_build(planned, snapshot.capsule_digests, pristine),
        planned.python,
        planned.plan.apt,
        dockerfile(base_image, planned, locked, planned.plan.apt),
        base_image,
        {"lock": elapsed},
    )


def with_kernel(
    locked: LockedEnvironment, python: str, resolver: Resolver, *, freeze: bool
) -> LockedEnvironment:
    """Notebooks execute with nbclient and ipykernel from the study's own environment."""
    lock = locked.lock
    if not freeze:
        lock, notes = with_packages(lock, nbk.KERNEL_PACKAGES, python, resolver)
        return LockedEnvironment(lock, locked.wheels, [*locked.notes, *notes])
    have = {p.name for p in lock.packages}
    missing = [name for name in nbk.KERNEL_PACKAGES if name not in have]
    if missing:
        raise ResolverError(
            f"--freeze: this environment lacks {', '.join(missing)}, which notebooks need",
            hint=f"pip install {' '.join(missing)}, then capture again",
        )
    return locked
