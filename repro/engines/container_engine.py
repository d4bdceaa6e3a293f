"""The container engine interface: images built, loaded, saved and removed; containers run.

One real implementation (`DockerEngine`, over docker-py); tests may pass a fake for what the
real engine cannot do on demand (vanish mid-run). Every method raises ServiceUnavailableError
when no engine answers; anything the engine says that repro expects becomes a ReproError.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

from repro.errors import ReproError

Stream = Literal["stdout", "stderr"]


class ContainerRefusedError(ReproError):
    """The engine would not start a container (bad image, limits it refuses, ...)."""

    default_hint = "check the environment image and the run's resources in repro.toml"


@dataclass(frozen=True)
class Mount:
    """A host directory bound into a container, read-write unless `read_only`."""

    source: Path
    target: str
    read_only: bool = False


@dataclass(frozen=True)
class ContainerSpec:
    """One container to start, detached: always with every capability dropped and
    no-new-privileges (a setuid binary in the image gains nothing)."""

    image: str
    command: tuple[str, ...]
    workdir: str | None = None
    user: str | None = None
    """`uid:gid`; None: the image's user."""
    environment: Mapping[str, str] = field(default_factory=dict)
    mounts: tuple[Mount, ...] = ()
    network: bool = False
    cpus: float | None = None
    memory: str | None = None
    """A limit as the engine takes it (`512m`, `2g`); None: no limit."""
    read_only_root: bool = True
    """The image's filesystem read-only; the mounts and `tmpfs` are the writable places."""
    tmpfs: tuple[str, ...] = ("/tmp",)  # noqa: S108 - a path inside the container
    """Folders given a fresh, private, world-writable tmpfs."""
    pids_limit: int = 4096
    """Processes and threads the container may have at once (a fork bomb stops there)."""
    gpus: int = 0
    """NVIDIA GPUs given to the container (docker run --gpus N); 0: none."""


@dataclass(frozen=True)
class ImageInfo:
    """An image the engine has, as `repro cache list` shows it."""

    id: str
    """`sha256:...`"""
    tags: tuple[str, ...]
    size: int
    """Bytes, as the engine reports them (layers shared with other images included)."""
    created: float
    """When it was built (epoch seconds)."""


@dataclass(frozen=True)
class ContainerState:
    pid: int | None = None
    """The container's first process, as this machine sees it (None once it stopped, or
    when the engine runs elsewhere)."""
    running: bool = False
    oom_killed: bool = False
    """The kernel killed a process of it for memory (its `memory` limit)."""


class Container(Protocol):
    """A started container. kill and remove are best effort: they never raise."""

    def wait(self, timeout: float) -> int | None:
        """The exit status; None when it is still running after `timeout` seconds."""
        ...

    def logs(self, stream: Stream) -> bytes:
        """Everything the container wrote to `stream`."""
        ...

    def follow(self, stream: Stream) -> Iterator[bytes]:
        """What the container writes to `stream`, chunk by chunk as it is written, until it
        ends (a blocking iterator: read it in a thread of its own)."""
        ...

    def kill(self) -> None: ...

    def remove(self) -> None:
        """Remove the container, killing it if it still runs."""
        ...

    def state(self) -> ContainerState:
        """What the engine says of it now (best effort: unknown fields are None/False)."""
        ...


class ContainerEngine(Protocol):
    """A container engine. Making one contacts nothing; the first call connects."""

    def ping(self) -> None:
        """Return when the engine answers; ServiceUnavailableError when it does not."""
        ...

    def has_image(self, ref: str) -> bool: ...

    def image_label(self, ref: str, key: str) -> str | None:
        """The image's label `key`; None when the image or the label is missing."""
        ...

    def image_id(self, ref: str) -> str | None:
        """The id (`sha256:...`, the digest of the image's config) of the image `ref` (a tag
        or an id) names now; None when there is none."""
        ...

    def tag(self, ref: str, tag: str) -> None:
        """Point `tag` (repository:tag) at the image `ref`."""
        ...

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
        """Build `context`/Dockerfile as `tag`; EnvironmentBuildError with the log's tail.
        `progress` gets each line of the build's log as the engine streams it."""
        ...

    def pull(self, ref: str, progress: Callable[[int, int], None]) -> None:
        """Pull `ref` from its registry, calling `progress(done, total)` (bytes, as far as
        the registry says); ServiceUnavailableError naming the image and the registry's
        answer when it cannot."""
        ...

    def load(self, tarball: Path) -> None:
        """Load a `docker save` archive, with the tags it carries (callers check first that
        it carries none: a loaded tag would replace another image's)."""
        ...

    def save(self, image_id: str, dest: Path) -> None:
        """Write the image `image_id` to `dest` as a `docker save` archive with no tag."""
        ...

    def export(self, image_id: str, dest: Path) -> list[str]:
        """Write the image's filesystem, flattened, to `dest` as a tar (what a container of
        it holds before it starts); the image's environment (`NAME=value` entries)."""
        ...

    def remove_image(self, tag: str) -> None:
        """Remove the tag (forcibly); nothing when it is not there."""
        ...

    def start(self, spec: ContainerSpec) -> Container:
        """Start a container, detached; ContainerRefusedError when the engine will not."""
        ...

    def run_once(self, image: str, command: Sequence[str], *, network: bool = False) -> bytes:
        """Run `command` in a throwaway container to its end: its stdout; it is removed.
        ContainerRefusedError when it cannot start or exits non-zero."""
        ...

    def images(self, repositories: Sequence[str]) -> list[ImageInfo]:
        """The images with a tag in one of `repositories` (only those tags listed)."""
        ...

    def images_in_use(self) -> set[str]:
        """Ids of the images some container (running or stopped) was made from."""
        ...

    def run_attached(self, spec: ContainerSpec, *, tty: bool) -> int:
        """Run `spec` in the foreground with this process's stdin, stdout and stderr (a
        terminal when `tty`) until it ends, then remove it: its exit status."""
        ...

    def close(self) -> None:
        """Drop the connection, if one was made."""
        ...
