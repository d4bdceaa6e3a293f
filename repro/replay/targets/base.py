"""What every replay target shares: the Target protocol, the options it is given, its result."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

from repro.capsule.layout import created_epoch
from repro.capsule.manifest import Manifest, Package
from repro.config.models import Run
from repro.engines.runtimes import RuntimeName
from repro.execution.environment import Allowlist
from repro.execution.runs import CommandRunner, PointOutcome, execute_runs
from repro.execution.sandbox import Isolation
from repro.execution.stream import Echo
from repro.model_base import SweepValue

TargetName = Literal["local", "docker", "slurm"]
Observer = Callable[[str], None]
Select = Callable[[Run, dict[str, SweepValue]], bool]
"""Whether a run's sweep point is one the replay selected."""
OnPoint = Callable[[PointOutcome], None]
"""Called as each point finishes (progress)."""


@dataclass(frozen=True)
class SlurmSettings:
    partition: str | None = None
    account: str | None = None
    array_limit: int | None = None
    container: RuntimeName | None = None
    """--container RUNTIME: every task runs its point in the environment image, under that
    runtime (repro.engines.runtimes); None: in a virtual environment on the node."""
    image_cache: Path | None = None
    """Where converted images are kept: the --workdir (which the nodes share) when given."""

    def flags(self) -> list[str]:
        """The command-line flags these settings came from (for "ignored" warnings)."""
        given = {
            "--partition": self.partition,
            "--account": self.account,
            "--array-limit": self.array_limit,
            "--container": self.container,
        }
        return [flag for flag, value in given.items() if value is not None]


@dataclass(frozen=True)
class TargetOptions:
    """The replay options that concern targets; each target says which ones it ignores."""

    jobs: int = 1
    """Points run at once (-j)."""
    base_image: str | None = None
    offline: bool = False
    slurm: SlurmSettings = field(default_factory=SlurmSettings)
    pass_env: tuple[str, ...] = ()
    """Variables of this environment the runs get too (--pass-env NAME)."""
    no_sandbox: bool = False
    """--no-sandbox: local (and slurm) runs are not sandboxed, whoever signed the capsule."""
    trusted: bool = False
    """The capsule is signed by a trusted key or was captured by this user here (it may run
    unsandboxed where no sandbox works)."""
    confirm: Callable[[str], bool] | None = None
    """Asks the user a yes/no question (an interactive terminal), or None: nobody to ask."""
    echo: Echo | None = None
    """Gets each run's output lines as they are written; None: nobody watches."""


@dataclass(frozen=True)
class Prepared:
    """What a prepared target tells the report about the environment the runs use."""

    python_version: str
    """major.minor.micro of the interpreter the runs use."""
    installed: list[Package] | None
    """What the environment really has installed (None when it cannot be listed)."""
    warnings: list[str]
    python_abi: str | None = None
    """The interpreter's ABI tag (cp311), when it says."""
    isolation: Isolation = "none"
    """How the runs are isolated from this machine: docker, bubblewrap or none."""


class Target(Protocol):
    """Where a replay's runs execute: prepared once, given every selected point, cleaned up.

    A target is made from the TargetOptions of one replay; `ignored` says, before anything is
    built, which of those options it does not use, so no option is ignored silently.
    """

    @property
    def name(self) -> TargetName: ...

    def ignored(self) -> list[str]:
        """One warning per option given that this target does not use."""
        ...

    def prepare(self, manifest: Manifest, root: Path, say: Observer) -> Prepared:
        """Build (or reuse) the capsule's environment; `root` is the unpacked capsule."""
        ...

    def execute(
        self, runs: list[Run], project: Path, select: Select, on_point: OnPoint
    ) -> list[PointOutcome]:
        """Run every selected point of `runs` (in order) in `project`; failures are outcomes."""
        ...

    def close(self) -> None:
        """Release what prepare acquired (a client connection); safe when prepare failed."""
        ...


def ignored_slurm_settings(target: TargetName, options: TargetOptions) -> list[str]:
    """Slurm settings given to a target that submits nothing to Slurm."""
    flags = options.slurm.flags()
    if not flags:
        return []
    verb = "is" if len(flags) == 1 else "are"
    return [
        f"{', '.join(flags)} {verb} ignored on the {target} target: "
        "Slurm settings only apply to --target slurm"
    ]


def study_variables(manifest: Manifest) -> dict[str, str]:
    """What every run and notebook of a replay sees, as at capture: the capsule's own
    SOURCE_DATE_EPOCH (its creation time), so tools that honour it (matplotlib's PDF and
    PNG writers, among others) write the timestamps they wrote at capture."""
    return {"SOURCE_DATE_EPOCH": str(created_epoch(manifest.created))}


def allowlist(manifest: Manifest, options: TargetOptions) -> Allowlist:
    """What of the outside the runs see: the capsule's declared variables (as recorded at
    capture) and the --pass-env names."""
    declared: Mapping[str, str] = manifest.environment.variables
    return Allowlist(dict(declared), options.pass_env)


def run_points(
    runner: CommandRunner | None,
    options: TargetOptions,
    runs: list[Run],
    project: Path,
    select: Select,
    on_point: OnPoint,
    variables: dict[str, str],
) -> list[PointOutcome]:
    """Local and docker targets: every selected point through a per-command runner, -j at a
    time; a failing point does not stop the others."""
    if runner is None:
        raise RuntimeError("execute before prepare")
    return execute_runs(
        runs,
        project,
        runner,
        jobs=options.jobs,
        select=select,
        on_point=on_point,
        variables=variables,
        echo=options.echo,
    )
