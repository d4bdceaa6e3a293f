"""The docker target: each run point in a fresh container of the environment image, as a
non-root user, network off unless the run declares it, with the run's CPU/memory limits.

(Not named docker.py: no module is named after a dependency, see STYLE.md.)
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path
from typing import Any

from repro.env.image import BASE_IMAGE_ENV, ImageSpec, docker_client, ensure_image
from repro.env.lock import parse_packages
from repro.execution.runs import CommandResult, InFlight, PointOutcome, execute_runs
from repro.models import Manifest, Run
from repro.replay.targets.base import (
    Observer,
    OnPoint,
    Prepared,
    Select,
    TargetName,
    TargetOptions,
    ignored_slurm_settings,
)

CONTAINER_UID = 1000


def _memory(value: str | None) -> str | None:
    return value.lower() if value else None


class _Container:
    def __init__(self, container: Any) -> None:
        self.container = container

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self.container.kill()


class DockerRunner:
    """Each point runs in a fresh container of the environment image, the project at /work."""

    def __init__(self, client: Any, image: str) -> None:
        self.client = client
        self.image = image

    def run(
        self,
        command: str,
        workdir: Path,
        variables: dict[str, str],
        timeout: float,
        run: Run,
        in_flight: InFlight,
    ) -> CommandResult:
        import requests

        res = run.resources
        user = (
            f"{CONTAINER_UID}:{CONTAINER_UID}"
            if os.getuid() == 0
            else f"{os.getuid()}:{os.getgid()}"
        )
        import docker.errors

        start = time.monotonic()
        # More CPUs than the host has is refused by the engine: the run gets all there are.
        cpus = min(res.cpus, os.cpu_count() or 1)
        try:
            container = self.client.containers.run(
                self.image,
                ["/bin/sh", "-c", command],
                detach=True,
                working_dir="/work",
                user=user,
                environment=variables,
                volumes={str(workdir): {"bind": "/work", "mode": "rw"}},
                network_disabled=not run.network,
                nano_cpus=int(cpus * 1e9),
                mem_limit=_memory(res.memory),
            )
        except docker.errors.DockerException as exc:
            # This point failed to start; the others still run and are compared.
            reason = str(exc).splitlines()[0][:300]
            return CommandResult(125, time.monotonic() - start, "", f"docker: {reason}")
        handle = _Container(container)
        in_flight.add(handle)
        code: int | None
        try:
            code = int(container.wait(timeout=timeout)["StatusCode"])
        except (requests.exceptions.ReadTimeout, requests.exceptions.ConnectionError):
            handle.stop()
            code = None
        except BaseException:
            handle.stop()
            raise
        finally:
            in_flight.discard(handle)
        duration = time.monotonic() - start
        try:
            out = container.logs(stdout=True, stderr=False).decode("utf-8", "replace")[-4000:]
            err = container.logs(stdout=False, stderr=True).decode("utf-8", "replace")[-4000:]
        finally:
            with contextlib.suppress(Exception):
                container.remove(force=True)
        return CommandResult(code, duration, out, err)


def _give_to_container_user(project: Path) -> None:
    """Running as root here: the container's non-root user must be able to write outputs."""
    if os.getuid() != 0:
        return
    for dirpath, dirnames, filenames in os.walk(project):
        for name in [*dirnames, *filenames]:
            os.lchown(os.path.join(dirpath, name), CONTAINER_UID, CONTAINER_UID)  # noqa: PTH118
    os.lchown(project, CONTAINER_UID, CONTAINER_UID)


def image_spec(manifest: Manifest, root: Path, base_image: str) -> ImageSpec:
    env = manifest.environment
    return ImageSpec(
        dockerfile=(root / env.dockerfile).read_text(encoding="utf-8"),
        lock_text=(root / env.lock).read_text(encoding="utf-8"),
        base_image=base_image,
        has_packages=bool(env.packages),
        needs_network=bool(env.apt_packages),
        wheels=root / env.wheels if env.wheels else None,
    )


def _environment(
    client: Any,
    manifest: Manifest,
    root: Path,
    base_image: str | None,
    offline: bool,
    say: Observer,
) -> str:
    """The environment image's tag: the capsule's saved image, or one built (or reused) from
    its Dockerfile. The one place the docker target calls the image builder."""
    env = manifest.environment
    saved = root / env.image if env.image and not base_image else None
    base = base_image or os.environ.get(BASE_IMAGE_ENV) or env.base_image
    if saved is not None and env.image_tag:
        return ensure_image(client, image_spec(manifest, root, env.base_image), offline, say, saved)
    return ensure_image(client, image_spec(manifest, root, base), offline, say)


def _probe(client: Any, tag: str) -> Prepared:
    """The image's Python version and installed packages, asked of a throwaway container."""
    probe = client.containers.run(
        tag,
        [
            "/bin/sh",
            "-c",
            "python -c 'import platform; print(platform.python_version())'"
            " && python -m pip list --format=freeze",
        ],
        remove=True,
        network_disabled=True,
    ).decode("utf-8", "replace")
    version, _, freeze = probe.partition("\n")
    return Prepared(version.strip(), parse_packages(freeze), [])


class DockerTarget:
    """Points run in containers of the environment image, -j at a time."""

    def __init__(self, options: TargetOptions) -> None:
        self.options = options
        self._client: Any = None
        self._runner: DockerRunner | None = None

    @property
    def name(self) -> TargetName:
        return "docker"

    def ignored(self) -> list[str]:
        return ignored_slurm_settings(self.name, self.options)

    def prepare(self, manifest: Manifest, root: Path, say: Observer) -> Prepared:
        self._client = docker_client()
        tag = _environment(
            self._client, manifest, root, self.options.base_image, self.options.offline, say
        )
        prepared = _probe(self._client, tag)
        _give_to_container_user(root / "data" / "project")
        self._runner = DockerRunner(self._client, tag)
        return prepared

    def execute(
        self, runs: list[Run], project: Path, select: Select, on_point: OnPoint
    ) -> list[PointOutcome]:
        if self._runner is None:
            raise RuntimeError("execute before prepare")
        return execute_runs(
            runs,
            project,
            self._runner,
            jobs=self.options.jobs,
            fail_fast=False,
            select=select,
            on_point=on_point,
        )

    def close(self) -> None:
        if self._client is not None:
            with contextlib.suppress(Exception):
                self._client.close()
            self._client = None
