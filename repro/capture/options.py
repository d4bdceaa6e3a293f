"""What a capture was asked to do: the options the CLI (or a caller) passes to `capture`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from repro.config.models import Resolver, Run
from repro.engines.runtimes import RuntimeName
from repro.execution.stream import Echo
from repro.sign import PassphrasePrompt

Observer = Callable[[str], None]
CaptureTarget = Literal["local", "docker", "slurm"]


@dataclass(frozen=True)
class SlurmCapture:
    """--target slurm: the cluster settings of a capture."""

    workdir: Path | None = None
    """A folder every node mounts (--workdir); None: ~/.repro/slurm-work."""
    partition: str | None = None
    account: str | None = None
    array_limit: int | None = None
    container: RuntimeName | None = None
    """--container RUNTIME: each task runs in the environment image (else a venv)."""

    def shared_root(self) -> Path:
        """The working directory the nodes share (absolute)."""
        return (self.workdir or Path.home() / ".repro" / "slurm-work").absolute()


@dataclass(frozen=True)
class CaptureOptions:
    """What the user asked for; None means 'as repro.toml says'."""

    project: Path
    output: Path
    runs: list[Run] | None = None
    """Runs given as flags; they replace the config's runs."""
    data: list[str] = field(default_factory=list)
    requirements: str | None = None
    python: str | None = None
    resolver: Resolver | None = None
    freeze: bool = False
    execute: bool = True
    jobs: int = 1
    base_image: str | None = None
    use_hash_cache: bool = True
    wheels: bool = False
    """Vendor the lock's wheels into the capsule (offline replays)."""
    image: bool = False
    """Build the environment image and save it into the capsule (docker save)."""
    allow_secrets: list[str] = field(default_factory=list)
    """Paths allowed to hold what looks like a secret (--allow-secret)."""
    sign: bool | None = None
    """True: must sign; False: never; None: sign when a signing key exists."""
    key: Path | None = None
    passphrase_prompt: PassphrasePrompt | None = None
    target: CaptureTarget = "local"
    """Where the study runs at capture: a venv on this machine, the capsule's own image, or
    the Slurm cluster (one array per run, from `slurm.workdir`)."""
    slurm: SlurmCapture = field(default_factory=lambda: SlurmCapture())
    """--target slurm: where and how the arrays run."""
    packages: list[str] = field(default_factory=list)
    """Requirements added to the declaration's (--package)."""
    install_project: bool | None = None
    """Build and install the project itself (--install-project / --no-install-project)."""
    skip_conda_only: bool = False
    """Leave conda-only packages of environment.yml out, with a note (--skip-conda-only)."""
    pass_env: tuple[str, ...] = ()
    """Variables of this environment the runs get too (--pass-env NAME); runs get only an
    allowlisted environment otherwise."""
    echo: Echo | None = None
    """Gets each run's output lines as they are written (the CLI's live view); None: quiet."""
