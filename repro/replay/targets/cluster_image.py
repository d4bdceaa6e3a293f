"""The slurm target's container mode (--container RUNTIME): the environment image built once
through the Docker engine (as the docker target builds it), converted for the runtime into
the shared image cache (by image id, which covers every layer: a conversion is reused only
for the very image it was made from), and the shell lines each array task runs its point
with."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from repro.capsule.manifest import Manifest
from repro.config.models import Run, point_variables_for
from repro.engines import ContainerEngine
from repro.engines.runtimes import Charliecloud, Runtime, RuntimeName, TaskSpec, runtime_for
from repro.env.virtualenv import locked
from repro.execution.container import give_to_container_user
from repro.execution.environment import run_environment
from repro.paths import cache_dir
from repro.replay.targets.base import Observer, Prepared, TargetOptions, allowlist, study_variables

IMAGE_CACHE = "runtime-images"
"""The folder of converted images: under --workdir (shared with the nodes) when given, else
under this machine's cache."""


def image_cache(options: TargetOptions) -> Path:
    shared = options.slurm.image_cache
    path = shared / IMAGE_CACHE if shared is not None else cache_dir() / IMAGE_CACHE
    path.mkdir(parents=True, exist_ok=True)
    return path


def converted(
    runtime: Runtime, engine: ContainerEngine, image_id: str, cache: Path, say: Observer
) -> tuple[str, Path]:
    """The runtime's image for `image_id` (what it runs) and where it is in the cache:
    converted now, or the conversion made before (the stamp beside it names the image)."""
    short = image_id.removeprefix("sha256:")[:16]
    dest = cache / runtime.artifact_name(short)
    stamp = dest.with_name(f"{dest.name}.image-id")
    with locked(dest.with_name(f".{dest.name}.lock")):
        if dest.exists() and stamp.is_file() and stamp.read_text().strip() == image_id:
            say(f"reusing the {runtime.name} image {dest.name}")
            artifact = str(dest) if runtime.name in ("apptainer", "charliecloud") else image_id
            runtime.ready(artifact, dest)
            return artifact, dest
        say(f"converting the environment image {short} for {runtime.name} into {dest}")
        stamp.unlink(missing_ok=True)
        artifact = runtime.convert(engine, image_id, dest, say)
        stamp.write_text(image_id + "\n", encoding="utf-8")
        runtime.ready(artifact, dest)
    return artifact, dest


@dataclass(frozen=True)
class ContainerPlan:
    """How every task of a replay runs: the runtime, its image, the environment it gets."""

    runtime: Runtime
    image: str
    archive: Path | None
    environment: dict[str, str]

    def lines(self, run: Run, project: Path) -> list[str]:
        points = run.points()
        res = run.resources
        return self.runtime.lines(
            TaskSpec(
                image=self.image,
                project=project,
                environment=self.environment,
                point_names=tuple(point_variables_for(points[0])) if points else (),
                network=run.network,
                gpus=res.gpus,
                cpus=min(res.cpus, os.cpu_count() or 1),
                memory=res.memory.lower() if res.memory else None,
                archive=self.archive,
            )
        )


def plan_containers(
    name: RuntimeName,
    manifest: Manifest,
    root: Path,
    options: TargetOptions,
    gpus: bool,
    say: Observer,
) -> tuple[ContainerPlan, Prepared]:
    """Build (or reuse) the environment image, convert it for `name`, and say what the runs
    will see; ServiceUnavailableError before any build when the runtime or engine is absent."""
    from repro.engines.docker_engine import DockerEngine
    from repro.replay.targets.container import environment_image, probe_environment

    runtime = runtime_for(name)
    if isinstance(runtime, Charliecloud):
        runtime.gpus = gpus
    engine = DockerEngine()
    try:
        engine.ping()
        image_id = environment_image(engine, manifest, root, options, say)
        prepared = probe_environment(engine, manifest, image_id)
        artifact, dest = converted(runtime, engine, image_id, image_cache(options), say)
    finally:
        engine.close()
    if name in ("podman", "docker"):
        give_to_container_user(root / "data" / "project")
    allowed = allowlist(manifest, options)
    environment = run_environment(
        allowed, home=runtime.home, path=None, variables=study_variables(manifest), host_paths=False
    )
    plan = ContainerPlan(
        runtime, artifact, dest if name in ("podman", "docker") else None, environment
    )
    return plan, Prepared(
        prepared.python_version,
        prepared.installed,
        [*prepared.warnings, *allowed.missing()],
        python_abi=prepared.python_abi,
        isolation=name,
    )
