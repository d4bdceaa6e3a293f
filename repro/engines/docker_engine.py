"""DockerEngine: the ContainerEngine over the Docker SDK (docker-py), the one module that
imports `docker` (and `requests`, for its transport errors).

Connected lazily: making a DockerEngine contacts nothing (docker-py's `from_env()` asks the
daemon its API version); the first call connects and pings, once.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import docker
import docker.errors
import docker.types
import requests
from urllib3.exceptions import ReadTimeoutError

from repro.engines.container_engine import (
    ContainerRefusedError,
    ContainerSpec,
    ContainerState,
    ImageInfo,
    Stream,
)
from repro.errors import EnvironmentBuildError, ImageBuildError, ServiceUnavailableError

ENGINE_HINT = "start the Docker engine (dockerd), or replay with --target local"
# Every container repro starts, runs and probes alike: no capabilities (a root process in
# it is an ordinary user), and no setuid/file capability gains them back.
HARDENED: dict[str, Any] = {"cap_drop": ["ALL"], "security_opt": ["no-new-privileges"]}
TMPFS_OPTIONS = "rw,nosuid,nodev,exec,mode=1777"
PROBE_PIDS_LIMIT = 512


def _first_line(exc: BaseException, limit: int) -> str:
    lines = str(exc).splitlines()
    return lines[0][:limit] if lines else type(exc).__name__


def _unavailable(exc: BaseException) -> ServiceUnavailableError:
    return ServiceUnavailableError(
        f"no Docker engine answers: {_first_line(exc, 200)}", hint=ENGINE_HINT
    )


@contextlib.contextmanager
def _answering() -> Iterator[None]:
    """An engine that stops answering mid-way is unavailable, as one that never answered
    (docker-py lets requests' connection errors through unwrapped)."""
    try:
        yield
    except requests.exceptions.ConnectionError as exc:
        raise _unavailable(exc) from None


class DockerContainer:
    """A started container, by its docker-py object."""

    def __init__(self, container: Any) -> None:
        self._container = container

    def wait(self, timeout: float) -> int | None:
        try:
            return int(self._container.wait(timeout=timeout)["StatusCode"])
        except requests.exceptions.ReadTimeout:
            return None
        except requests.exceptions.ConnectionError as exc:
            # Over the unix socket a read timeout arrives as a ConnectionError wrapping
            # urllib3's ReadTimeoutError: the container still runs, the engine answers.
            if exc.args and isinstance(exc.args[0], ReadTimeoutError):
                return None
            raise _unavailable(exc) from None

    def logs(self, stream: Stream) -> bytes:
        with _answering():
            data: bytes = self._container.logs(stdout=stream == "stdout", stderr=stream == "stderr")
        return data

    def follow(self, stream: Stream) -> Iterator[bytes]:
        with _answering():
            # A CancellableStream over the engine's response: closed when we are done, so
            # no socket is left to the garbage collector.
            chunks: Any = self._container.logs(
                stdout=stream == "stdout", stderr=stream == "stderr", stream=True, follow=True
            )
        try:
            yield from chunks
        finally:
            chunks.close()

    def kill(self) -> None:
        # Already exited, already gone, or no engine any more: nothing left to stop.
        with contextlib.suppress(docker.errors.DockerException, requests.RequestException):
            self._container.kill()

    def remove(self) -> None:
        with contextlib.suppress(docker.errors.DockerException, requests.RequestException):
            self._container.remove(force=True)

    def state(self) -> ContainerState:
        try:
            self._container.reload()
        except (docker.errors.DockerException, requests.RequestException):
            return ContainerState()
        state = self._container.attrs.get("State") or {}
        pid = state.get("Pid") or None
        return ContainerState(
            pid=int(pid) if pid else None,
            running=bool(state.get("Running")),
            oom_killed=bool(state.get("OOMKilled")),
        )


class DockerEngine:
    """The Docker engine `from_env` finds (DOCKER_HOST, else the local socket)."""

    def __init__(self, timeout: int = 60) -> None:
        self.timeout = timeout
        self._docker: Any = None

    def _client(self) -> Any:
        if self._docker is None:
            try:
                client = docker.from_env(timeout=self.timeout)
                client.ping()
            except docker.errors.DockerException as exc:
                raise _unavailable(exc) from None
            self._docker = client
        return self._docker

    def ping(self) -> None:
        if self._docker is None:
            self._client()  # connecting pings
            return
        with _answering():
            self._docker.ping()

    def _image(self, ref: str) -> Any:
        """The docker-py image, or None when the engine has no such image."""
        client = self._client()
        with _answering():
            try:
                return client.images.get(ref)
            except docker.errors.ImageNotFound:
                return None

    def has_image(self, ref: str) -> bool:
        return self._image(ref) is not None

    def image_label(self, ref: str, key: str) -> str | None:
        image = self._image(ref)
        if image is None:
            return None
        value = (image.labels or {}).get(key)
        return None if value is None else str(value)

    def image_id(self, ref: str) -> str | None:
        image = self._image(ref)
        return None if image is None else str(image.id)

    def tag(self, ref: str, tag: str) -> None:
        repository, _, name = tag.rpartition(":")
        client = self._client()
        with _answering():
            client.api.tag(ref, repository, name)

    def build(
        self,
        context: Path,
        tag: str,
        *,
        build_args: Mapping[str, str],
        labels: Mapping[str, str],
        network: bool,
        progress: Callable[[str], None] | None = None,
    ) -> None:
        client = self._client()
        try:
            with _answering():
                # The low-level API streams the log as the engine writes it (images.build
                # returns only at the end): a first build is not silent for a minute.
                chunks = client.api.build(
                    path=str(context),
                    tag=tag,
                    buildargs=dict(build_args),
                    labels=dict(labels),
                    rm=True,
                    forcerm=True,
                    network_mode=None if network else "none",
                    decode=True,
                )
                _follow_build(chunks, progress)
        except docker.errors.BuildError as exc:
            step, output = _failed_step(exc.build_log)
            raise ImageBuildError(
                f"building the environment image failed at {step[:160]}: {output}"
                if step
                else f"building the environment image failed: {output}",
                step=step,
            ) from None
        except docker.errors.APIError as exc:
            raise EnvironmentBuildError(f"the Docker engine refused the build: {exc}") from None

    def pull(self, ref: str, progress: Callable[[int, int], None]) -> None:
        client = self._client()
        repository, tag = _split_ref(ref)
        layers: dict[str, tuple[int, int]] = {}
        try:
            with _answering():
                for event in client.api.pull(repository, tag=tag, stream=True, decode=True):
                    if "error" in event:
                        raise docker.errors.APIError(str(event["error"]))
                    detail = event.get("progressDetail") or {}
                    if event.get("id") and detail.get("total"):
                        layers[event["id"]] = (int(detail.get("current", 0)), int(detail["total"]))
                    elif event.get("id") and event.get("status") == "Pull complete":
                        done = layers.get(event["id"], (0, 0))[1]
                        layers[event["id"]] = (done, done)
                    progress(sum(c for c, _ in layers.values()), sum(t for _, t in layers.values()))
        except docker.errors.DockerException as exc:
            raise ServiceUnavailableError(
                f"cannot pull base image {ref}: {_first_line(exc, 240)}",
                hint="check the image name and the network, or choose another with --base-image",
            ) from None
        if not self.has_image(ref):
            raise ServiceUnavailableError(f"pulling {ref} did not give the image")

    def load(self, tarball: Path) -> None:
        client = self._client()
        with _answering(), tarball.open("rb") as fh:
            client.images.load(fh)

    def save(self, image_id: str, dest: Path) -> None:
        client = self._client()
        with _answering(), dest.open("wb") as fh:
            # By id: the archive carries no RepoTags, so loading it tags nothing.
            for chunk in client.api.get_image(image_id):
                fh.write(chunk)

    def export(self, image_id: str, dest: Path) -> list[str]:
        client = self._client()
        try:
            with _answering():
                env = list((client.images.get(image_id).attrs.get("Config") or {}).get("Env") or [])
                container = client.containers.create(image_id, ["true"], network_disabled=True)
                try:
                    with dest.open("wb") as fh:
                        for chunk in container.export():
                            fh.write(chunk)
                finally:
                    with contextlib.suppress(docker.errors.DockerException):
                        container.remove(force=True)
        except docker.errors.DockerException as exc:
            raise EnvironmentBuildError(
                f"the Docker engine could not export the image: {_first_line(exc, 200)}"
            ) from None
        return [str(e) for e in env]

    def remove_image(self, tag: str) -> None:
        client = self._client()
        with _answering(), contextlib.suppress(docker.errors.ImageNotFound):
            client.images.remove(tag, force=True)

    def start(self, spec: ContainerSpec) -> DockerContainer:
        client = self._client()
        try:
            with _answering():
                container = client.containers.run(
                    spec.image,
                    list(spec.command),
                    detach=True,
                    working_dir=spec.workdir,
                    user=spec.user,
                    environment=dict(spec.environment),
                    volumes={
                        str(m.source): {"bind": m.target, "mode": "ro" if m.read_only else "rw"}
                        for m in spec.mounts
                    },
                    network_disabled=not spec.network,
                    nano_cpus=int(spec.cpus * 1e9) if spec.cpus is not None else None,
                    mem_limit=spec.memory,
                    read_only=spec.read_only_root,
                    tmpfs=dict.fromkeys(spec.tmpfs, TMPFS_OPTIONS),
                    pids_limit=spec.pids_limit,
                    device_requests=device_requests(spec.gpus),
                    **HARDENED,
                )
        except docker.errors.DockerException as exc:
            raise ContainerRefusedError(_first_line(exc, 300)) from None
        return DockerContainer(container)

    def run_once(self, image: str, command: Sequence[str], *, network: bool = False) -> bytes:
        client = self._client()
        try:
            with _answering():
                output: bytes = client.containers.run(
                    image,
                    list(command),
                    remove=True,
                    network_disabled=not network,
                    pids_limit=PROBE_PIDS_LIMIT,
                    **HARDENED,
                )
        except docker.errors.DockerException as exc:
            raise ContainerRefusedError(_first_line(exc, 300)) from None
        return output

    def images(self, repositories: Sequence[str]) -> list[ImageInfo]:
        """One listing call, no inspect per image: another process may remove an image
        between a listing and its inspect (docker-py's images.list() then raised
        ImageNotFound for an image that was never ours)."""
        client = self._client()
        with _answering():
            listed = client.api.images()
        found = []
        for row in listed:
            tags = tuple(
                t for t in row.get("RepoTags") or [] if t.rpartition(":")[0] in repositories
            )
            if tags:
                created = row.get("Created")
                when = float(created) if isinstance(created, int | float) else 0.0
                found.append(
                    ImageInfo(str(row.get("Id", "")), tags, int(row.get("Size") or 0), when)
                )
        return found

    def images_in_use(self) -> set[str]:
        client = self._client()
        with _answering():
            listed = client.api.containers(all=True)  # one call, as images() (no inspect)
        return {str(c.get("ImageID", "")) for c in listed}

    def run_attached(self, spec: ContainerSpec, *, tty: bool) -> int:
        """Through the docker CLI: docker-py cannot hand a container this terminal."""
        docker_cli = shutil.which("docker")
        if docker_cli is None:
            raise ServiceUnavailableError(
                "the docker command is not installed: an interactive container needs it",
                hint="install the Docker CLI (apt-get install docker.io), or use --target local",
            )
        self.ping()
        argv = [docker_cli, "run", "--rm", "-i", *(["-t"] if tty else [])]
        argv += ["--cap-drop", "ALL", "--security-opt", "no-new-privileges"]
        argv += ["--pids-limit", str(spec.pids_limit)]
        if spec.read_only_root:
            argv.append("--read-only")
        for path in spec.tmpfs:
            argv += ["--tmpfs", f"{path}:{TMPFS_OPTIONS}"]
        if not spec.network:
            argv += ["--network", "none"]
        if spec.workdir:
            argv += ["--workdir", spec.workdir]
        if spec.user:
            argv += ["--user", spec.user]
        if spec.cpus is not None:
            argv += ["--cpus", f"{spec.cpus:g}"]
        if spec.memory:
            argv += ["--memory", spec.memory]
        for m in spec.mounts:
            argv += ["--volume", f"{m.source}:{m.target}:{'ro' if m.read_only else 'rw'}"]
        env = dict(os.environ)
        for key, value in spec.environment.items():
            # By name only on the command line (values stay out of `ps`), from this env.
            argv += ["--env", key]
            env[key] = value
        argv += [spec.image, *spec.command]
        return subprocess.run(argv, env=env, check=False).returncode

    def close(self) -> None:
        if self._docker is not None:
            with contextlib.suppress(Exception):
                self._docker.close()
            self._docker = None


def device_requests(gpus: int) -> list[Any] | None:
    """`docker run --gpus N`: N NVIDIA GPUs (the engine's NVIDIA runtime must be set up)."""
    if not gpus:
        return None
    return [docker.types.DeviceRequest(count=gpus, capabilities=[["gpu"]])]


def _split_ref(ref: str) -> tuple[str, str | None]:
    """python:3.6-slim -> (python, 3.6-slim); host:5000/a/b -> (host:5000/a/b, None);
    a digest reference stays whole."""
    if "@" in ref:
        return ref, None
    head, _, last = ref.rpartition("/")
    if ":" in last:
        name, tag = last.rsplit(":", 1)
        return (f"{head}/{name}" if head else name), tag
    return ref, "latest"


_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_NOISE = re.compile(r"^(---> |Removing intermediate container|Running in |Successfully )")


def _follow_build(chunks: Any, progress: Callable[[str], None] | None) -> None:
    """Read a build's streamed log to its end: each line to `progress`; an error chunk
    raises docker's BuildError with the whole log (as images.build does)."""
    log: list[dict[str, Any]] = []
    error: str | None = None
    for chunk in chunks:  # read to the end even after an error: the response is then closed
        log.append(chunk)
        if "error" in chunk and error is None:
            error = str(chunk["error"])
        text = chunk.get("stream")
        if progress is not None and isinstance(text, str):
            for raw in _ANSI.sub("", text).splitlines():
                if raw.strip():
                    progress(raw.rstrip())
    if error is not None:
        raise docker.errors.BuildError(error, iter(log))


def _failed_step(build_log: Any) -> tuple[str, str]:
    """The build step that failed (`RUN ...`) and the last lines it printed, one line, with
    no terminal escapes and no Docker bookkeeping."""
    step = ""
    output: list[str] = []
    for chunk in build_log:
        text = _ANSI.sub("", str(chunk.get("stream") or chunk.get("error") or ""))
        for raw in text.splitlines():
            line = raw.strip()
            if not line or _NOISE.match(line):
                continue
            if re.match(r"^Step \d+/\d+ : ", line):
                step, output = line.split(" : ", 1)[1], []
            elif not line.startswith("The command '/bin/sh -c"):
                output.append(line)
    return step, " ".join(output[-3:])[-300:] or "no output"
