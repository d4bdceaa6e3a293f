"""Run a command in a fresh container of an environment image (the project mounted at /work,
a non-root user, network off unless the run declares it, the run's CPU and memory limits,
no capabilities, no-new-privileges, a pids limit, a read-only root with tmpfs /tmp and HOME,
the allowlisted environment): replay's docker target and `capture --target docker` both run
points through it."""

from __future__ import annotations

import os
import shlex
import time
from pathlib import Path

import psutil

from repro.config.models import Run
from repro.engines import Container, ContainerEngine, ContainerRefusedError, ContainerSpec, Mount
from repro.env.pythons import PythonInfo, info_command, parse_info
from repro.errors import ServiceUnavailableError
from repro.execution.cgroups import cgroup_of
from repro.execution.environment import Allowlist, run_environment
from repro.execution.measure import Sampler, Watch, watch
from repro.execution.runs import CommandResult, InFlight
from repro.execution.stream import ChunkFollower, LineSink
from repro.resource_usage import Method, ResourceUsage, ending_of

CONTAINER_UID = 1000
CONTAINER_HOME = "/home/repro"
"""The container's HOME: a tmpfs, private to the one container (as /tmp)."""


def _memory(value: str | None) -> str | None:
    return value.lower() if value else None


class _Stoppable:
    """A running container as InFlight tracks it: stopping it kills it."""

    def __init__(self, container: Container) -> None:
        self.container = container

    def stop(self) -> None:
        self.container.kill()


class DockerRunner:
    """Each point runs in a fresh container of the environment image, the project at /work."""

    def __init__(
        self, engine: ContainerEngine, image: str, allowlist: Allowlist | None = None
    ) -> None:
        self.engine = engine
        self.image = image
        self.allowlist = allowlist or Allowlist()

    def run(
        self,
        command: str,
        workdir: Path,
        variables: dict[str, str],
        timeout: float,
        run: Run,
        in_flight: InFlight,
        echo: LineSink | None = None,
    ) -> CommandResult:
        res = run.resources
        user = (
            f"{CONTAINER_UID}:{CONTAINER_UID}"
            if os.getuid() == 0
            else f"{os.getuid()}:{os.getgid()}"
        )
        start = time.monotonic()
        # More CPUs than the host has is refused by the engine: the run gets all there are.
        cpus = min(res.cpus, os.cpu_count() or 1)
        spec = ContainerSpec(
            image=self.image,
            command=("/bin/sh", "-c", command),
            workdir="/work",
            user=user,
            # PATH stays the image's own (the environment first, set by its Dockerfile).
            environment=run_environment(
                self.allowlist,
                home=CONTAINER_HOME,
                path=None,
                variables=variables,
                host_paths=False,
            ),
            mounts=(Mount(workdir, "/work"),),
            tmpfs=("/tmp", CONTAINER_HOME),  # noqa: S108 - paths inside the container
            network=run.network,
            cpus=cpus,
            memory=_memory(res.memory),
            gpus=res.gpus,
        )
        try:
            container = self.engine.start(spec)
        except ContainerRefusedError as exc:
            # This point failed to start; the others still run and are compared.
            return CommandResult(125, time.monotonic() - start, "", f"docker: {exc.message}")
        handle = _Stoppable(container)
        in_flight.add(handle)
        measuring = _watch_container(container)
        follower = ChunkFollower(echo) if echo is not None else None
        if follower is not None:
            follower.follow("stdout", lambda: container.follow("stdout"))
            follower.follow("stderr", lambda: container.follow("stderr"))
        code: int | None
        try:
            code = container.wait(timeout)
            if code is None:
                handle.stop()
        except ServiceUnavailableError:
            # The engine stopped answering while the point ran: stopped, as at its timeout.
            handle.stop()
            code = None
        except BaseException:
            handle.stop()
            raise
        finally:
            in_flight.discard(handle)
            if measuring is not None:
                measuring.stop()
            if follower is not None:
                follower.join()  # the container has ended: its log streams end too
        duration = time.monotonic() - start
        try:
            usage = _usage(container, measuring, code, timeout, res.memory, duration)
            out = container.logs("stdout").decode("utf-8", "replace")[-4000:]
            err = container.logs("stderr").decode("utf-8", "replace")[-4000:]
        finally:
            container.remove()
        if usage is not None and usage.ending.kind == "killed_for_memory":
            err = f"{err}\n[{usage.ending.words}]".strip()[-4000:]
        return CommandResult(code, duration, out, err, usage)


def _watch_container(container: Container) -> Watch | None:
    """Sampling of the container's processes from this machine, and its cgroup (the
    engine's on this machine: the first process's cgroup); None when the engine runs
    elsewhere (no pid here) or the container already stopped."""
    state = container.state()
    if state.pid is None or not psutil.pid_exists(state.pid):
        return None
    return watch(state.pid, cgroup_of)


def _usage(
    container: Container,
    measuring: Watch | None,
    code: int | None,
    timeout: float,
    memory: str | None,
    wall: float,
) -> ResourceUsage | None:
    state = container.state()
    ending = ending_of(
        code if code is None or code >= 0 else None,
        timed_out_after=timeout if code is None else None,
        oom_killed=state.oom_killed,
        memory_limit=memory,
    )
    if measuring is None:
        # Ended before its first process could be seen: no figure, but what ended it.
        return Sampler(0).result("sampling", ending, wall_s=wall)
    method: Method = "docker-cgroup" if measuring.sampler.last is not None else "sampling"
    return measuring.sampler.result(method, ending, wall_s=wall)


def give_to_container_user(project: Path) -> None:
    """Running as root here: the container's non-root user must be able to write outputs."""
    if os.getuid() != 0:
        return
    for dirpath, dirnames, filenames in os.walk(project):
        for name in [*dirnames, *filenames]:
            os.lchown(os.path.join(dirpath, name), CONTAINER_UID, CONTAINER_UID)  # noqa: PTH118
    os.lchown(project, CONTAINER_UID, CONTAINER_UID)


def probe_image(engine: ContainerEngine, tag: str) -> tuple[PythonInfo | None, str]:
    """What the image's Python is, and its `pip list --format=freeze`, from a throwaway
    container with no network."""
    info = shlex.join(info_command("python"))
    probe = engine.run_once(
        tag,
        ["/bin/sh", "-c", f"{info} && python -m pip list --format=freeze"],
        network=False,
    ).decode("utf-8", "replace")
    lines = probe.splitlines()
    return parse_info("\n".join(lines[:3])), "\n".join(lines[3:])


def image_python(engine: ContainerEngine, tag: str) -> PythonInfo | None:
    """What the image's Python is."""
    return probe_image(engine, tag)[0]
