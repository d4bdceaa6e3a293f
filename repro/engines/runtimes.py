"""Container runtimes for cluster tasks (Apptainer, Charliecloud, Podman, Docker): one class
each, rendering the exact shell lines a batch task runs its point with, and converting the
environment image (built once through the Docker engine) into what the runtime runs.

Every runtime gets the same isolation as the docker target (repro.execution.container): the
project at /work and nothing else of the host's files, an explicit environment (the host's
is never inherited), no network unless the run declares it, a read-only image and a private
/tmp and HOME. The command lines are rendered here as shell words, so a test can check them
exactly where the runtime is not installed (Apptainer is not packaged in Debian 12).
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol, get_args

from repro.engines.container_engine import ContainerEngine
from repro.errors import EnvironmentBuildError, ServiceUnavailableError
from repro.paths import scratch_prefix

RuntimeName = Literal["apptainer", "charliecloud", "podman", "docker"]
RUNTIME_NAMES: tuple[RuntimeName, ...] = get_args(RuntimeName)
WORKDIR = "/work"
CONTAINER_UID = 1000
"""The user podman and docker run points as when repro runs as root (as the docker target)."""
TMPFS_OPTIONS = "rw,nosuid,nodev,exec,mode=1777"
PIDS_LIMIT = 4096
CONVERT_TIMEOUT_S = 1800
Say = Callable[[str], None]


def _q(word: str) -> str:
    return shlex.quote(word)


def _dynamic(prefix: str, name: str) -> str:
    """One shell word: `prefix` then the value of the task's shell variable `name` (a sweep
    point's variable, set by the batch script's `case` before the run line)."""
    return f'{_q(prefix)}"${{{name}}}"'


@dataclass(frozen=True)
class TaskSpec:
    """What one array task's container is made of."""

    image: str
    """What the runtime runs: a SIF file, an image directory, or an image id."""
    project: Path
    """The host folder bound at /work (the point's inputs and outputs)."""
    environment: Mapping[str, str]
    """The run's whole environment, except the sweep point's variables (see point_names)."""
    point_names: tuple[str, ...] = ()
    """Variables whose values the batch script sets per task (REPRO_POINT, REPRO_PARAM_*)."""
    network: bool = False
    gpus: int = 0
    cpus: int | None = None
    memory: str | None = None
    """A limit as podman/docker take it (512m); None: none."""
    archive: Path | None = None
    """podman/docker: the `docker save` archive a node loads the image from when it does
    not have it yet (the shared image cache)."""
    as_root: bool = field(default_factory=lambda: os.getuid() == 0)
    """repro runs as root: podman/docker points run as an unprivileged user instead."""


class Runtime(Protocol):
    """A container runtime a batch task runs its point in."""

    name: RuntimeName
    binary: str
    home: str
    """HOME inside the container: private to the one task."""

    def artifact_name(self, digest: str) -> str:
        """The file or folder name of the converted image in the image cache."""
        ...

    def convert(self, engine: ContainerEngine, image_id: str, dest: Path, say: Say) -> str:
        """Convert the engine's image `image_id` into `dest` (absent): what TaskSpec.image
        is then."""
        ...

    def ready(self, artifact: str, dest: Path) -> None:
        """Make the converted image runnable on this host (podman: loaded once here, not
        by every task at once)."""
        ...

    def lines(self, spec: TaskSpec) -> list[str]:
        """The shell lines that run `/bin/sh -c "$command"` in the container and leave its
        exit status in `$code`."""
        ...


def _run(argv: list[str], doing: str) -> None:
    try:
        proc = subprocess.run(
            argv, capture_output=True, text=True, check=False, timeout=CONVERT_TIMEOUT_S
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise EnvironmentBuildError(f"{doing} failed: {exc}") from None
    if proc.returncode != 0:
        tail = " ".join((proc.stderr or proc.stdout).split())[-300:]
        raise EnvironmentBuildError(f"{doing} failed (exit {proc.returncode}): {tail}")


def _save(engine: ContainerEngine, image_id: str, dest: Path) -> None:
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
    try:
        engine.save(image_id, tmp)
        tmp.replace(dest)
    finally:
        tmp.unlink(missing_ok=True)


def _run_line(words: list[str]) -> list[str]:
    return [" ".join([*words, "/bin/sh", "-c", '"$command"']), "code=$?"]


class Apptainer:
    """Apptainer (and SingularityCE, whose options are the same): a SIF built from a
    `docker save` archive; `--containall --cleanenv --no-home`, the project bound, the
    environment passed as APPTAINERENV_* (the one way through --cleanenv), no network
    unless declared, `--nv` for GPUs."""

    name: RuntimeName = "apptainer"
    binary = "apptainer"
    home = "/tmp"  # noqa: S108 - a path inside the container, private with --containall
    """Not passed: Apptainer refuses APPTAINERENV_HOME; with --no-home a run's HOME is the
    user's home path, not mounted (docs/clusters.md)."""

    def artifact_name(self, digest: str) -> str:
        return f"apptainer-{digest[:16]}.sif"

    def convert_commands(self, archive: Path, dest: Path) -> list[list[str]]:
        return [[self.binary, "build", "--force", str(dest), f"docker-archive://{archive}"]]

    def convert(self, engine: ContainerEngine, image_id: str, dest: Path, say: Say) -> str:
        with tempfile.TemporaryDirectory(prefix=scratch_prefix("sif"), dir=dest.parent) as tmp:
            archive = Path(tmp) / "image.tar"
            engine.save(image_id, archive)
            partial = Path(tmp) / dest.name
            for argv in self.convert_commands(archive, partial):
                _run(argv, "building the Apptainer image (SIF)")
            partial.replace(dest)
        return str(dest)

    def ready(self, artifact: str, dest: Path) -> None:
        """A SIF file runs as it is."""

    def lines(self, spec: TaskSpec) -> list[str]:
        env = [_q(f"APPTAINERENV_{k}={v}") for k, v in spec.environment.items() if k != "HOME"]
        env += [_dynamic(f"APPTAINERENV_{n}=", n) for n in spec.point_names]
        words = ["env", *env, self.binary, "exec", "--containall", "--cleanenv", "--no-home"]
        words += ["--no-privs", "--bind", _q(f"{spec.project}:{WORKDIR}"), "--pwd", WORKDIR]
        if not spec.network:
            words += ["--net", "--network", "none"]
        if spec.gpus:
            words.append("--nv")
        words.append(_q(spec.image))
        return _run_line(words)


class Charliecloud:
    """Charliecloud: an image directory from `ch-convert -i docker`; `ch-run` with the whole
    environment unset and set again explicitly (the image's own, then the run's), the
    project bound, a private /tmp, the image read-only. ch-run shares the host's network
    namespace, so a run without network gets a new, empty one from `unshare --net`. GPUs:
    ch-run has no flag; the NVIDIA libraries are injected into the image directory by
    `ch-fromhost --nvidia` when a run asks for GPUs (docs/clusters.md)."""

    name: RuntimeName = "charliecloud"
    binary = "ch-run"
    home = "/tmp"  # noqa: S108 - ch-run --private-tmp: private to the task

    def __init__(self, gpus: bool = False) -> None:
        self.gpus = gpus
        """Inject this host's NVIDIA libraries into the image (ch-fromhost --nvidia)."""

    def artifact_name(self, digest: str) -> str:
        return f"charliecloud-{digest[:16]}" + ("-nvidia" if self.gpus else "")

    def convert_commands(self, archive: Path, dest: Path, gpus: bool) -> list[list[str]]:
        argv = [["ch-convert", "-i", "tar", "-o", "dir", str(archive), str(dest)]]
        if gpus:
            argv.append(["ch-fromhost", "--nvidia", str(dest)])
        return argv

    def convert(self, engine: ContainerEngine, image_id: str, dest: Path, say: Say) -> str:
        # The engine's flattened export, unpacked by ch-convert (`-i docker` would export
        # the same, then gzip it and unpack that: 2.5 times slower here), and the image's
        # environment written where `ch-run --set-env` reads it, as ch-convert does.
        with tempfile.TemporaryDirectory(prefix=scratch_prefix("ch"), dir=dest.parent) as tmp:
            archive = Path(tmp) / "image.tar"
            env = engine.export(image_id, archive)
            partial = Path(tmp) / dest.name
            for argv in self.convert_commands(archive, partial, gpus=self.gpus):
                _run(argv, "converting the image for Charliecloud (ch-convert)")
            (partial / "ch").mkdir(exist_ok=True)
            (partial / "ch" / "environment").write_text(
                "".join(f"{line}\n" for line in env if "\n" not in line), encoding="utf-8"
            )
            partial.replace(dest)
        return str(dest)

    def ready(self, artifact: str, dest: Path) -> None:
        """An image directory runs as it is."""

    def lines(self, spec: TaskSpec) -> list[str]:
        words = ['USER="${USER:-$(id -un)}"']
        if not spec.network:
            words += ["unshare", "--net", "--map-current-user"]
        # --unset-env='*' first, then the image's /ch/environment (PATH with the venv), then
        # the run's own; no $ expansion in the values (they are given whole).
        words += [self.binary, _q("--unset-env=*"), "--set-env", "--env-no-expand"]
        words += [_q(f"--set-env={k}={v}") for k, v in spec.environment.items()]
        words += [_dynamic(f"--set-env={n}=", n) for n in spec.point_names]
        words += ["--private-tmp", "-b", _q(f"{spec.project}:{WORKDIR}"), "-c", WORKDIR]
        words += [_q(spec.image), "--"]
        return _run_line(words)


class _Engine:
    """podman and docker run: the same options as repro's docker target (no capabilities,
    no-new-privileges, a pids limit, a read-only root with tmpfs /tmp and HOME, a non-root
    user, no network unless declared, the run's CPU and memory limits); the node loads the
    image from the shared archive when it does not have it; scancel stops the container."""

    name: RuntimeName
    binary: str
    home = "/home/repro"

    def artifact_name(self, digest: str) -> str:
        return f"{self.name}-{digest[:16]}.tar"

    def convert(self, engine: ContainerEngine, image_id: str, dest: Path, say: Say) -> str:
        _save(engine, image_id, dest)
        return image_id

    def ready(self, artifact: str, dest: Path) -> None:
        """The image in this host's store (from the archive when it is not yet)."""
        try:
            probe = subprocess.run(
                [self.binary, "image", "inspect", artifact],
                capture_output=True,
                check=False,
                timeout=120,
            )
            present = probe.returncode == 0
        except (OSError, subprocess.TimeoutExpired):
            present = False
        if not present:
            _run([self.binary, "load", "-q", "-i", str(dest)], f"{self.binary} load")

    def _gpu_words(self, gpus: int) -> list[str]:
        raise NotImplementedError

    def _user_words(self, spec: TaskSpec) -> list[str]:
        return ["--user", f"{CONTAINER_UID}:{CONTAINER_UID}"] if spec.as_root else []

    def lines(self, spec: TaskSpec) -> list[str]:
        b = self.binary
        words = [b, "run", "--rm", "--init", "--name", '"$name"']
        words += ["--network", "none"] if not spec.network else []
        words += ["--read-only", "--cap-drop", "all", "--security-opt", "no-new-privileges"]
        words += ["--pids-limit", str(PIDS_LIMIT)]
        for path in ("/tmp", self.home):  # noqa: S108 - paths inside the container
            words += ["--tmpfs", _q(f"{path}:{TMPFS_OPTIONS}")]
        words += self._user_words(spec)
        words += ["-v", _q(f"{spec.project}:{WORKDIR}"), "-w", WORKDIR]
        if spec.cpus is not None:
            words += ["--cpus", str(spec.cpus)]
        if spec.memory:
            words += ["--memory", _q(spec.memory)]
        if spec.gpus:
            words += self._gpu_words(spec.gpus)
        words += [_q(f"--env={k}={v}") for k, v in spec.environment.items()]
        words += [_dynamic(f"--env={n}=", n) for n in spec.point_names]
        words.append(_q(spec.image))
        image = _q(spec.image)
        load = []
        if spec.archive is not None:
            load = [
                f"{b} image inspect {image} >/dev/null 2>&1 || "
                f"{b} load -q -i {_q(str(spec.archive))} >&2"
            ]
        return [
            *load,
            'name="repro-${SLURM_JOB_ID:-0}-${task}"',
            # scancel signals the batch shell; the container belongs to the engine, not to
            # the job, and would outlive it: stop it by name.
            f"trap '{b} stop -t 5 \"$name\" >/dev/null 2>&1' TERM INT",
            " ".join([*words, "/bin/sh", "-c", '"$command"']) + " &",
            'wait "$!"',
            "code=$?",
        ]


class Podman(_Engine):
    """Podman: the image loaded from the archive; GPUs through CDI (nvidia.com/gpu=all)."""

    name: RuntimeName = "podman"
    binary = "podman"

    def _gpu_words(self, gpus: int) -> list[str]:
        return ["--device", "nvidia.com/gpu=all"]

    def _user_words(self, spec: TaskSpec) -> list[str]:
        # Rootless podman: the user's own id inside, so the outputs are the user's.
        return super()._user_words(spec) if spec.as_root else ["--userns=keep-id"]


class Docker(_Engine):
    """The Docker engine on the nodes (where a site allows it)."""

    name: RuntimeName = "docker"
    binary = "docker"

    def _gpu_words(self, gpus: int) -> list[str]:
        return ["--gpus", str(gpus)]


RUNTIMES: Mapping[RuntimeName, Callable[[], Runtime]] = {
    "apptainer": Apptainer,
    "charliecloud": Charliecloud,
    "podman": Podman,
    "docker": Docker,
}


def runtime_for(name: RuntimeName) -> Runtime:
    """The runtime `name`, checked to be on PATH here (the nodes need it too)."""
    runtime = RUNTIMES[name]()
    if shutil.which(runtime.binary) is None:
        raise ServiceUnavailableError(
            f"--container {name}: {runtime.binary} is not on PATH on this machine",
            hint=f"install {name} (docs/clusters.md), or choose another --container",
        )
    return runtime
