"""Run a command in a fresh container of an environment image (the project mounted at /work,
a non-root user, network off unless the run declares it, the run's CPU and memory limits):
replay's docker target and `capture --target docker` both run points through it."""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path
from typing import Any

from repro.execution.runs import CommandResult, InFlight
from repro.models import Run

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


def give_to_container_user(project: Path) -> None:
    """Running as root here: the container's non-root user must be able to write outputs."""
    if os.getuid() != 0:
        return
    for dirpath, dirnames, filenames in os.walk(project):
        for name in [*dirnames, *filenames]:
            os.lchown(os.path.join(dirpath, name), CONTAINER_UID, CONTAINER_UID)  # noqa: PTH118
    os.lchown(project, CONTAINER_UID, CONTAINER_UID)


def probe_image(client: Any, tag: str) -> tuple[str, str]:
    """The image's Python version and `pip list --format=freeze`, from a throwaway container
    with no network."""
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
    return version.strip(), freeze
