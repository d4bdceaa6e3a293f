"""An in-memory `ContainerEngine` for the few cases the real Docker engine cannot stage on
demand: the engine going away between two calls of one replay, or while a container runs.

Everything else about the engine is tested against the real one (tests/integration, the
`docker_engine` fixture). The fake keeps only what the flows rely on: images by tag with
their labels, containers that exit with a given status, and "no engine answers" raised as
DockerEngine raises it once `gone` is set.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from repro.engines import ContainerSpec, ContainerState, Stream
from repro.engines.docker_engine import ENGINE_HINT
from repro.errors import ServiceUnavailableError


def _unavailable() -> ServiceUnavailableError:
    return ServiceUnavailableError(
        "no Docker engine answers: Connection aborted (fake)", hint=ENGINE_HINT
    )


@dataclass
class FakeContainer:
    spec: ContainerSpec
    exit_code: int | None = 0
    """What wait returns; None: still running at the timeout."""
    lose_engine_in_wait: bool = False
    """wait raises "no engine answers", as when the daemon's socket drops mid-run."""
    stdout: bytes = b""
    stderr: bytes = b""
    killed: int = 0
    removed: bool = False

    def wait(self, timeout: float) -> int | None:
        if self.lose_engine_in_wait:
            raise _unavailable()
        return self.exit_code

    def logs(self, stream: Stream) -> bytes:
        return self.stdout if stream == "stdout" else self.stderr

    def follow(self, stream: Stream) -> Iterator[bytes]:
        yield self.logs(stream)

    def kill(self) -> None:
        self.killed += 1

    def remove(self) -> None:
        self.removed = True

    def state(self) -> ContainerState:
        return ContainerState()


@dataclass
class FakeEngine:
    images: dict[str, dict[str, str]] = field(default_factory=dict)
    """tag -> labels."""
    ids: dict[str, str] = field(default_factory=dict)
    """tag -> image id (a build gives a new one)."""
    gone: bool = False
    """Set it to make every later call fail as when the engine stopped."""
    make_container: Callable[[ContainerSpec], FakeContainer] = FakeContainer
    """How each started container behaves (exits 0 at once by default)."""
    builds: list[str] = field(default_factory=list)
    started: list[FakeContainer] = field(default_factory=list)
    closed: bool = False

    def _answer(self) -> None:
        if self.gone:
            raise _unavailable()

    def ping(self) -> None:
        self._answer()

    def has_image(self, ref: str) -> bool:
        self._answer()
        return ref in self.images or ref in self.ids.values()

    def image_id(self, ref: str) -> str | None:
        self._answer()
        if ref in self.ids.values():
            return ref
        return self.ids.get(ref)

    def tag(self, ref: str, tag: str) -> None:
        self._answer()
        self.ids[tag] = self.image_id(ref) or ref
        self.images[tag] = {}

    def image_label(self, ref: str, key: str) -> str | None:
        self._answer()
        return self.images.get(ref, {}).get(key)

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
        self._answer()
        assert (context / "Dockerfile").is_file()
        self.builds.append(tag)
        self.images[tag] = dict(labels)
        self.ids[tag] = "sha256:" + hashlib.sha256(f"{tag}{len(self.builds)}".encode()).hexdigest()

    def load(self, tarball: Path) -> None:
        self._answer()
        raise NotImplementedError("saved images are tested against the real engine")

    def save(self, image_id: str, dest: Path) -> None:
        self._answer()
        raise NotImplementedError("saved images are tested against the real engine")

    def export(self, image_id: str, dest: Path) -> list[str]:
        self._answer()
        raise NotImplementedError("exports are tested against the real engine")

    def remove_image(self, tag: str) -> None:
        self._answer()
        self.images.pop(tag, None)
        self.ids.pop(tag, None)

    def start(self, spec: ContainerSpec) -> FakeContainer:
        self._answer()
        container = self.make_container(spec)
        self.started.append(container)
        return container

    def pull(self, ref: str, progress: Callable[[int, int], None]) -> None:
        self._answer()
        raise NotImplementedError("pulls are tested against the real engine")

    def run_once(self, image: str, command: Sequence[str], *, network: bool = False) -> bytes:
        self._answer()
        if list(command[:2]) == ["python3", "-c"]:  # the base image's probe
            return b"CPython\n3.11.9\ncpython-311-x86_64-linux-gnu\nglibc 2.36\nx86_64\n23.0.1\n"
        # the environment image's probe: what its Python is, then its packages
        return b"CPython\n3.11.9\ncpython-311-x86_64-linux-gnu\nreprotest-core==1.0.0\n"

    def close(self) -> None:
        self.closed = True
