"""`repro shell CAPSULE` and `repro exec CAPSULE -- CMD...`: a shell or a command in the
capsule's locked environment, isolated as a replay's runs are; the command's exit status."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Literal

import typer

from repro.cli.lazy import terminal
from repro.cli.options import BaseImage, CapsuleFile, PassEnv, RequireSigned, RequireTrusted

TargetOption = Annotated[
    Literal["local", "docker"] | None,
    typer.Option(
        "--target",
        help="local (the lock's venv, sandboxed) or docker (the environment image); "
        "default: docker when an engine answers, else local.",
        show_default=False,
    ),
]
Network = Annotated[
    bool, typer.Option("--network", help="Give the command the network (off otherwise).")
]
NoSandbox = Annotated[
    bool,
    typer.Option(
        "--no-sandbox", help="Local target: run without bubblewrap, with all your user's rights."
    ),
]
Offline = Annotated[bool, typer.Option("--offline", help="Never touch the network to build.")]
Keep = Annotated[bool, typer.Option("--keep", help="Keep the scratch folder afterwards.")]


def _run(
    capsule: Path,
    command: list[str] | None,
    target: Literal["local", "docker"] | None,
    network: bool,
    pass_env: list[str] | None,
    no_sandbox: bool,
    base_image: str | None,
    offline: bool,
    keep: bool,
    require_signed: bool,
    require_trusted: bool,
) -> None:
    from repro.cli.prompts import confirm_on_terminal
    from repro.execution.environment import names_of
    from repro.replay.shell import ShellOptions, run_in_capsule
    from repro.verify import Policy

    opts = ShellOptions(
        capsule=capsule,
        command=command,
        target=target,
        policy=Policy(require_signed, require_trusted),
        base_image=base_image,
        offline=offline,
        pass_env=names_of(pass_env),
        no_sandbox=no_sandbox,
        network=network,
        keep=keep,
        tty=sys.stdin.isatty() and sys.stdout.isatty(),
        confirm=confirm_on_terminal,
    )
    raise typer.Exit(run_in_capsule(opts, terminal.say))


def shell_command(
    capsule: CapsuleFile,
    target: TargetOption = None,
    network: Network = False,
    pass_env: PassEnv = None,
    no_sandbox: NoSandbox = False,
    base_image: BaseImage = None,
    offline: Offline = False,
    keep: Keep = False,
    require_signed: RequireSigned = False,
    require_trusted: RequireTrusted = False,
) -> None:
    """A shell in the capsule's locked environment, in a scratch copy of its files."""
    _run(
        capsule,
        None,
        target,
        network,
        pass_env,
        no_sandbox,
        base_image,
        offline,
        keep,
        require_signed,
        require_trusted,
    )


def exec_command(
    capsule: CapsuleFile,
    command: Annotated[
        list[str],
        typer.Argument(
            help="The command and its arguments (after --).", metavar="CMD...", show_default=False
        ),
    ],
    target: TargetOption = None,
    network: Network = False,
    pass_env: PassEnv = None,
    no_sandbox: NoSandbox = False,
    base_image: BaseImage = None,
    offline: Offline = False,
    keep: Keep = False,
    require_signed: RequireSigned = False,
    require_trusted: RequireTrusted = False,
) -> None:
    """Run one command in the capsule's locked environment; exits with its exit status."""
    _run(
        capsule,
        command,
        target,
        network,
        pass_env,
        no_sandbox,
        base_image,
        offline,
        keep,
        require_signed,
        require_trusted,
    )
