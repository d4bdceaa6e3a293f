"""Capture's plan stage: the options and repro.toml become the effective config, the planned
environment, the timestamp and what the listing leaves out, all before any slow work."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from repro.capture import environment as env_stage
from repro.capture.options import CaptureOptions
from repro.config import load_config
from repro.config.models import DataSpec, ProjectConfig, render
from repro.env.pythons import check_version
from repro.errors import DestinationNotFoundError, ProjectNotFoundError, UsageError


@dataclass(frozen=True)
class Plan:
    """What this capture will do, read and checked before any slow work."""

    options: CaptureOptions
    project: Path
    """The project directory, resolved."""
    config: ProjectConfig
    """repro.toml with the options' flags applied."""
    config_source: str | None
    environment: env_stage.PlannedEnvironment
    epoch: int
    """Capsule timestamp: SOURCE_DATE_EPOCH, or now."""
    reproducible: bool
    """SOURCE_DATE_EPOCH is set: nothing time-dependent (durations) is recorded."""
    output: Path
    """The capsule file, absolute."""
    exclude: frozenset[str]
    """Project paths left out of the listing: declared outputs, remote data, the capsule."""
    local_data: tuple[str, ...]
    remote_data: tuple[DataSpec, ...]
    allowed_secrets: frozenset[str]

    @property
    def notes(self) -> list[str]:
        return self.environment.notes


def plan_capture(opts: CaptureOptions, config: ProjectConfig | None = None) -> Plan:
    """The plan for `opts`; a missing project, a malformed declaration or a bad
    SOURCE_DATE_EPOCH fails here. `config` stands for a repro.toml not written yet (the
    one `repro init --try` proposes); by default the project's own is read."""
    project = project_dir(opts.project)
    if config is None:
        config, config_source = load_config(project)
    else:
        config_source = None
    config = effective_config(config, opts)
    epoch, reproducible = epoch_from_environment()
    # The declarations are read and checked before any slow work: a malformed file fails fast.
    planned = env_stage.plan(project, config.environment, freeze=opts.freeze)
    output = destination(opts.output)
    return Plan(
        options=opts,
        project=project,
        config=config,
        config_source=config_source,
        environment=planned,
        epoch=epoch,
        reproducible=reproducible,
        output=output,
        exclude=frozenset(exclusions(config, project, output)),
        local_data=tuple(d.path.rstrip("/") for d in config.data if d.url is None),
        remote_data=tuple(d for d in config.data if d.url is not None),
        allowed_secrets=frozenset(config.capture.allow_secrets) | frozenset(opts.allow_secrets),
    )


def destination(output: Path) -> Path:
    """The capsule's absolute path; its folder must exist now, before the study runs."""
    output = output.absolute()
    if not output.parent.is_dir():
        raise DestinationNotFoundError(
            f"the folder to write the capsule into does not exist: {output.parent}",
            hint=f"create it first (mkdir -p {output.parent}) or choose another -o FILE",
        )
    return output


def project_dir(path: Path) -> Path:
    hint = "pass the project folder: repro capture DIR [-o FILE]"
    if not path.exists():
        raise ProjectNotFoundError(f"project directory not found: {path}", hint=hint)
    if not path.is_dir():
        raise ProjectNotFoundError(f"not a directory: {path}", hint=hint)
    if not os.access(path, os.R_OK | os.X_OK):
        raise ProjectNotFoundError(
            f"project directory is not readable: {path}", hint="check its permissions"
        )
    return path.resolve()


def effective_config(config: ProjectConfig, opts: CaptureOptions) -> ProjectConfig:
    """The config with the flags applied: they replace its settings and runs, add data."""
    env = config.environment
    updates: dict[str, object] = {}
    if opts.requirements is not None:
        updates["requirements"] = opts.requirements
    if opts.python is not None:
        updates["python"] = check_version(opts.python, "--python", usage=True)
    if opts.resolver is not None:
        updates["resolver"] = opts.resolver
    if opts.base_image is not None:
        updates["base_image"] = opts.base_image
    if opts.packages:
        updates["packages"] = [*env.packages, *opts.packages]
    if opts.install_project is not None:
        updates["install_project"] = opts.install_project
    if opts.skip_conda_only:
        updates["conda_only"] = "skip"
    data = list(config.data) + [DataSpec(path=p) for p in opts.data]
    return config.model_copy(
        update={
            "environment": env.model_copy(update=updates),
            "data": data,
            "runs": opts.runs if opts.runs is not None else config.runs,
        }
    )


def epoch_from_environment() -> tuple[int, bool]:
    value = os.environ.get("SOURCE_DATE_EPOCH")
    if value is None:
        return int(time.time()), False
    try:
        return int(value), True
    except ValueError:
        raise UsageError(f"SOURCE_DATE_EPOCH is not an integer: {value!r}") from None


def exclusions(config: ProjectConfig, project: Path, output: Path) -> set[str]:
    """Every run point's declared outputs, the remote data files and the capsule being
    written (when it is inside the project) are not project files."""
    exclude = {render(t, p) for run in config.runs for t in run.outputs for p in run.points()}
    exclude |= {d.path for d in config.data if d.url is not None}
    if output.is_relative_to(project):
        exclude.add(output.relative_to(project).as_posix())
    return exclude
