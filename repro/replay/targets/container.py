"""The docker target: each run point in a fresh container of the environment image, as a
non-root user, network off unless the run declares it, with the run's CPU/memory limits, no
capabilities and a read-only root; the image built only from the Dockerfile repro renders
from the capsule's declarations.

(Not named docker.py: no module is named after a dependency, see STYLE.md.)
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from repro.capsule.manifest import Manifest
from repro.config.models import Run
from repro.engines import ContainerEngine, ContainerRefusedError
from repro.engines.docker_engine import DockerEngine
from repro.env.capsule_env import capsule_environment, checked_dockerfile
from repro.env.image import BASE_IMAGE_ENV, ImageSpec, ensure_image, load_saved_image
from repro.env.lock import parse_packages
from repro.errors import EnvironmentBuildError
from repro.execution.container import DockerRunner, give_to_container_user, probe_image
from repro.execution.runs import PointOutcome
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


def image_spec(manifest: Manifest, root: Path, base_image: str) -> ImageSpec:
    env = manifest.environment
    described = capsule_environment(manifest, root)
    return ImageSpec(
        dockerfile=checked_dockerfile(manifest, root),
        lock_text=described.lock_text,
        base_image=base_image,
        has_packages=bool(env.packages),
        needs_network=bool(env.apt_packages),
        wheels=root / env.wheels if env.wheels else None,
        local_wheels=described.local_wheels,
        post_build_project=described.post_build.project if described.post_build else None,
        post_build_digest=described.post_build.digest if described.post_build else "",
        python_version=".".join(env.python_version.split(".")[:2]),
    )


def _environment(
    engine: ContainerEngine,
    manifest: Manifest,
    root: Path,
    base_image: str | None,
    offline: bool,
    say: Observer,
) -> str:
    """The environment image's id: the capsule's saved image (checked to be the image its
    manifest records), or one built (or reused) from its Dockerfile. The one place the
    docker target calls the image builder."""
    env = manifest.environment
    saved = root / env.image if env.image and not base_image else None
    base = base_image or os.environ.get(BASE_IMAGE_ENV) or env.base_image
    if saved is not None and env.image_id:
        return load_saved_image(engine, saved, env.image_id, say)
    if saved is not None:
        say(
            "the capsule's saved image records no image id (an older repro made it): "
            "building the environment from its Dockerfile instead"
        )
    return ensure_image(engine, image_spec(manifest, root, base), offline, say)


PROBE_HINT = "the image must run `python` (check the base image and postBuild), or use --base-image"


def _probe(engine: ContainerEngine, tag: str) -> Prepared:
    """The image's Python (version, ABI) and installed packages, asked of a throwaway
    container. An image whose Python does not answer with a version is refused here, in one
    line."""
    try:
        info, freeze = probe_image(engine, tag)
    except ContainerRefusedError as exc:
        raise EnvironmentBuildError(
            f"the environment image's Python does not run: {exc.message}", hint=PROBE_HINT
        ) from None
    if info is None:
        raise EnvironmentBuildError(
            f"the environment image's Python did not answer with its version: {freeze[:80]!r}",
            hint=PROBE_HINT,
        )
    return Prepared(
        info.version, parse_packages(freeze), [], python_abi=info.abi, isolation="docker"
    )


def environment_image(
    engine: ContainerEngine, manifest: Manifest, root: Path, options: TargetOptions, say: Observer
) -> str:
    """The environment image's id, built or loaded through `engine` (the docker target, and
    the slurm target's --container mode, which converts it for its runtime)."""
    return _environment(engine, manifest, root, options.base_image, options.offline, say)


def probe_environment(engine: ContainerEngine, manifest: Manifest, image: str) -> Prepared:
    """What the image's Python and packages are, with a warning when its Python is not the
    capsule's."""
    prepared = _probe(engine, image)
    captured = ".".join(manifest.environment.python_version.split(".")[:2])
    running = ".".join(prepared.python_version.split(".")[:2])
    if running == captured:
        return prepared
    return dataclasses.replace(
        prepared,
        warnings=[
            *prepared.warnings,
            f"the image runs Python {running}, but the capsule was captured with "
            f"Python {captured}: choose a base image with Python {captured} "
            "(--base-image)",
        ],
    )


class DockerTarget:
    """Points run in containers of the environment image, -j at a time; on `engine` when
    given (it is the caller's to close), else on the Docker engine, connected in prepare."""

    def __init__(self, options: TargetOptions, engine: ContainerEngine | None = None) -> None:
        self.options = options
        self._given = engine
        self._engine: ContainerEngine | None = None
        self._runner: DockerRunner | None = None
        self._variables: dict[str, str] = {}

    @property
    def name(self) -> TargetName:
        return "docker"

    def ignored(self) -> list[str]:
        warnings = ignored_slurm_settings(self.name, self.options)
        if self.options.no_sandbox:
            warnings.append(
                "--no-sandbox is ignored on the docker target: runs are always isolated in "
                "their containers"
            )
        return warnings

    def prepare(self, manifest: Manifest, root: Path, say: Observer) -> Prepared:
        self._variables = study_variables(manifest)
        engine = self._engine = self._given if self._given is not None else DockerEngine()
        engine.ping()
        tag = environment_image(engine, manifest, root, self.options, say)
        prepared = probe_environment(engine, manifest, tag)
        give_to_container_user(root / "data" / "project")
        allowed = allowlist(manifest, self.options)
        self._runner = DockerRunner(engine, tag, allowed)
        return dataclasses.replace(prepared, warnings=[*prepared.warnings, *allowed.missing()])

    def execute(
        self, runs: list[Run], project: Path, select: Select, on_point: OnPoint
    ) -> list[PointOutcome]:
        return run_points(
            self._runner, self.options, runs, project, select, on_point, self._variables
        )

    def close(self) -> None:
        if self._engine is not None and self._engine is not self._given:
            self._engine.close()
        self._engine = None
