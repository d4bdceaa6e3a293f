"""The docker target: an environment image built through the Docker engine API, runs in
containers as a non-root user, network off unless the run declares it, CPU/memory limited.

The engine sits behind the docker SDK (docker-py), connected lazily: importing this module
contacts nothing.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from repro.capture.deps import parse_packages
from repro.capture.hashing import sha256_bytes
from repro.env.wheels import download_wheels
from repro.errors import EnvironmentBuildError, ServiceUnavailableError
from repro.execution.runs import CommandResult, InFlight
from repro.models import Manifest, Run

if TYPE_CHECKING:
    from repro.replay.pipeline import PreparedTarget

IMAGE_REPO = "repro-env"
LABEL = "org.repro.env-digest"
CONTAINER_UID = 1000
BASE_IMAGE_ENV = "REPRO_BASE_IMAGE"
ENGINE_HINT = "start the Docker engine (dockerd), or replay with --target local"


def _client(timeout: int = 60) -> Any:
    import docker
    import docker.errors

    try:
        client = docker.from_env(timeout=timeout)
        client.ping()
    except docker.errors.DockerException as exc:
        raise ServiceUnavailableError(
            f"no Docker engine answers: {str(exc).splitlines()[0][:200]}", hint=ENGINE_HINT
        ) from None
    return client


def engine_available() -> bool:
    try:
        _client(timeout=3)
    except ServiceUnavailableError:
        return False
    return True


def environment_digest(dockerfile: str, lock_text: str, base_image: str) -> str:
    return sha256_bytes(f"{base_image}\0{dockerfile}\0{lock_text}".encode())


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
        start = time.monotonic()
        container = self.client.containers.run(
            self.image,
            ["/bin/sh", "-c", command],
            detach=True,
            working_dir="/work",
            user=user,
            environment=variables,
            volumes={str(workdir): {"bind": "/work", "mode": "rw"}},
            network_disabled=not run.network,
            nano_cpus=int(res.cpus * 1e9),
            mem_limit=_memory(res.memory),
        )
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


def ensure_image(
    client: Any,
    manifest: Manifest,
    root: Path,
    base_image: str,
    offline: bool,
    say: Callable[[str], None],
) -> str:
    """The environment image, built once per environment digest and reused after."""
    import docker.errors

    dockerfile = (root / manifest.environment.dockerfile).read_text(encoding="utf-8")
    lock_text = (root / manifest.environment.lock).read_text(encoding="utf-8")
    digest = environment_digest(dockerfile, lock_text, base_image)
    tag = f"{IMAGE_REPO}:{digest[:16]}"
    try:
        client.images.get(tag)
        say(f"reusing image {tag}")
        return tag
    except docker.errors.ImageNotFound:
        pass
    try:
        client.images.get(base_image)
    except docker.errors.ImageNotFound:
        raise ServiceUnavailableError(
            f"base image {base_image} is not available to the Docker engine",
            hint=f"pull or build it, or choose one with --base-image / {BASE_IMAGE_ENV}",
        ) from None
    with tempfile.TemporaryDirectory(prefix="repro-image-") as tmp:
        context = Path(tmp)
        (context / "Dockerfile").write_text(dockerfile, encoding="utf-8")
        (context / "env").mkdir()
        (context / "env" / "requirements.lock").write_text(lock_text, encoding="utf-8")
        wheels = context / "wheels"
        if manifest.environment.packages:
            say("downloading the lock's wheels (hash-checked)")
            vendored = root / "data" / "env" / "wheels"
            source = vendored if vendored.is_dir() else download_wheels(lock_text, offline=offline)
            shutil.copytree(source, wheels, ignore=shutil.ignore_patterns(".repro-complete"))
        else:
            wheels.mkdir()
        say(f"building image {tag} from the capsule's Dockerfile")
        try:
            client.images.build(
                path=str(context),
                tag=tag,
                buildargs={"BASE_IMAGE": base_image},
                labels={LABEL: digest},
                rm=True,
                forcerm=True,
                network_mode="none" if not manifest.environment.apt_packages else None,
            )
        except docker.errors.BuildError as exc:
            lines = [
                str(chunk.get("stream", chunk.get("error", ""))).strip() for chunk in exc.build_log
            ]
            detail = " ".join(ln for ln in lines if ln)[-300:]
            raise EnvironmentBuildError(
                f"building the environment image failed: {detail}"
            ) from None
        except docker.errors.APIError as exc:
            raise EnvironmentBuildError(f"the Docker engine refused the build: {exc}") from None
    return tag


def prepare_docker(
    manifest: Manifest,
    root: Path,
    base_image: str | None,
    offline: bool,
    say: Callable[[str], None],
) -> PreparedTarget:
    from repro.replay.pipeline import PreparedTarget

    client = _client()
    base = base_image or os.environ.get(BASE_IMAGE_ENV) or manifest.environment.base_image
    tag = ensure_image(client, manifest, root, base, offline, say)
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
    _give_to_container_user(root / "data" / "project")
    return PreparedTarget(
        "docker", DockerRunner(client, tag), version.strip(), parse_packages(freeze), []
    )
