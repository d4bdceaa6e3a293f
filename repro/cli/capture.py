"""`repro capture`: build a capsule from a project (flags override repro.toml)."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer
from typer.core import TyperCommand

from repro.cli.lazy import live, terminal
from repro.cli.options import (
    Account,
    ArrayLimit,
    AsJson,
    BaseImage,
    Container,
    Jobs,
    Partition,
    PassEnv,
    ProjectDir,
    SigningKey,
    verbosity,
)
from repro.cli.prompts import prompt_passphrase
from repro.errors import UsageError

if TYPE_CHECKING:
    from repro.config.models import Run

FLAG_ORDER = "repro.capture.flag_order"
"""ctx.meta key: the names ("run", "output") of the pairing flags, in command-line order."""
PAIRED = ("run", "output")


class CaptureCommand(TyperCommand):
    """capture's click command: also records in which order --run and --output occurred."""

    # ctx is Any: typer >= 0.29 runs on its vendored click (typer._click), older typer on
    # click itself, so the base class's Context type depends on the installed typer.
    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        # click's parser returns the order in which options occurred, but Command.parse_args
        # drops it once the values are grouped per option. The same parser over a copy of
        # the same tokens gives it back; it only tokenizes (no conversion, no callbacks), and
        # a malformed command line fails here with click's usual usage error.
        _, _, order = self.make_parser(ctx).parse_args(args=list(args))
        ctx.meta[FLAG_ORDER] = [p.name for p in order if p.name in PAIRED]
        return super().parse_args(ctx, args)


def pair_runs(
    order: Sequence[str], runs: Sequence[str], outputs: Sequence[str]
) -> list[tuple[str, list[str]]]:
    """Each --output belongs to the --run before it; `order` names the flags as they came."""
    if order.count("run") != len(runs) or order.count("output") != len(outputs):
        raise ValueError(
            f"flag order {order} does not match {len(runs)} runs, {len(outputs)} outputs"
        )
    run_values, output_values = iter(runs), iter(outputs)
    pairs: list[tuple[str, list[str]]] = []
    for flag in order:
        if flag == "run":
            pairs.append((next(run_values), []))
        elif not pairs:
            raise UsageError(
                "--output needs a --run before it",
                hint="--output is a run's output: repro capture --run CMD --output PATH; "
                "the capsule file is -o/--out: repro capture -o FILE",
            )
        else:
            pairs[-1][1].append(next(output_values))
    return pairs


def runs_from_flags(pairs: list[tuple[str, list[str]]]) -> list[Run] | None:
    """The runs --run/--output declare (None: none given, repro.toml's runs apply)."""
    if not pairs:
        return None
    from pydantic import ValidationError

    from repro.config import describe_validation_error
    from repro.config.models import Run

    try:
        return [
            Run(name=f"run{i + 1}" if len(pairs) > 1 else "run", command=cmd, outputs=outs)
            for i, (cmd, outs) in enumerate(pairs)
        ]
    except ValidationError as exc:
        raise UsageError(describe_validation_error(exc, "--run/--output")) from None


def capture_command(
    ctx: typer.Context,
    directory: ProjectDir = Path(),
    out_file: Annotated[
        Path | None,
        typer.Option(
            "-o",
            "--out",
            metavar="FILE",
            help="Capsule file to write (default: ./NAME.capsule.tgz, NAME the project "
            "folder's name; its folder must exist). Not --output, a run's output.",
        ),
    ] = None,
    run: Annotated[
        list[str] | None,
        typer.Option("--run", help="Command to run (repeatable); replaces repro.toml's runs."),
    ] = None,
    output: Annotated[
        list[str] | None,
        typer.Option(
            "--output",
            metavar="PATH",
            help="A file the --run before it writes (repeatable). Not -o/--out, the capsule.",
        ),
    ] = None,
    data: Annotated[
        list[str] | None, typer.Option("--data", help="Data path to embed (repeatable).")
    ] = None,
    requirements: Annotated[
        str | None, typer.Option("--requirements", help="Dependency file to lock.")
    ] = None,
    python: Annotated[
        str | None, typer.Option("--python", help="Python version, e.g. 3.11.")
    ] = None,
    resolver: Annotated[
        Literal["auto", "uv", "pip-tools"] | None,
        typer.Option(
            "--resolver",
            help="auto (default: uv, falling back to pip's resolver for old metadata), "
            "uv or pip-tools.",
        ),
    ] = None,
    freeze: Annotated[
        bool,
        typer.Option(
            "--freeze", help="Lock exactly what this interpreter has installed and run with it."
        ),
    ] = False,
    no_run: Annotated[bool, typer.Option("--no-run", help="Do not execute the runs.")] = False,
    jobs: Jobs = 1,
    base_image: BaseImage = None,
    no_hash_cache: Annotated[
        bool, typer.Option("--no-hash-cache", help="Re-hash every file.")
    ] = False,
    sign: Annotated[
        bool | None,
        typer.Option("--sign/--no-sign", help="Sign the capsule (default: when a key exists)."),
    ] = None,
    key: SigningKey = None,
    wheels: Annotated[
        bool, typer.Option("--wheels", help="Vendor the lock's wheels (offline replays).")
    ] = False,
    image: Annotated[
        bool,
        typer.Option("--image", help="Build the environment image and save it into the capsule."),
    ] = False,
    allow_secret: Annotated[
        list[str] | None,
        typer.Option("--allow-secret", help="Path allowed to hold what looks like a secret."),
    ] = None,
    target: Annotated[
        Literal["local", "docker", "slurm"],
        typer.Option(
            "--target",
            help="Where the study runs: a venv here (local), the capsule's own image (docker), "
            "or one Slurm array per run (slurm).",
        ),
    ] = "local",
    workdir: Annotated[
        Path | None,
        typer.Option(
            "--workdir",
            help="slurm target: a folder every node mounts, where the project is staged and "
            "the environment built (default: ~/.repro/slurm-work).",
        ),
    ] = None,
    partition: Partition = None,
    account: Account = None,
    array_limit: ArrayLimit = None,
    container: Container = None,
    package: Annotated[
        list[str] | None,
        typer.Option("--package", help="Requirement to add, e.g. 'numpy>=1.24' (repeatable)."),
    ] = None,
    install_project: Annotated[
        bool | None,
        typer.Option(
            "--install-project/--no-install-project",
            help="Build and install the project's setup.py / pyproject.toml (default: as "
            "repo2docker does).",
        ),
    ] = None,
    skip_conda_only: Annotated[
        bool,
        typer.Option(
            "--skip-conda-only",
            help="Leave environment.yml's conda-only packages out, with a note in the capsule.",
        ),
    ] = False,
    pass_env: PassEnv = None,
    as_json: AsJson = False,
) -> None:
    """Build a capsule: code, locked dependencies, data, runs and their results."""
    from repro.capture.options import SlurmCapture
    from repro.capture.pipeline import CaptureOptions, capture
    from repro.capture.secret_scan import secret_values
    from repro.cli.output_mode import quiet
    from repro.execution.environment import names_of
    from repro.report.models import CaptureOutput

    pairs = pair_runs(ctx.meta[FLAG_ORDER], run or [], output or [])
    cluster = SlurmCapture(workdir, partition, account, array_limit, container)
    if target != "slurm":
        given = [
            flag
            for flag, value in (
                ("--workdir", workdir),
                ("--partition", partition),
                ("--account", account),
                ("--array-limit", array_limit),
                ("--container", container),
            )
            if value is not None
        ]
        if given:
            raise UsageError(
                f"{', '.join(given)} {'applies' if len(given) == 1 else 'apply'} only to "
                "the slurm target",
                hint="repro capture --target slurm " + " ".join(f"{g} ..." for g in given),
            )
    opts = CaptureOptions(
        project=directory,
        output=out_file or Path(f"{directory.resolve().name}.capsule.tgz"),
        runs=runs_from_flags(pairs),
        data=data or [],
        requirements=requirements,
        python=python,
        resolver=resolver,
        freeze=freeze,
        execute=not no_run,
        jobs=jobs,
        base_image=base_image,
        use_hash_cache=not no_hash_cache,
        sign=sign,
        key=key,
        allow_secrets=allow_secret or [],
        wheels=wheels,
        image=image,
        passphrase_prompt=prompt_passphrase,
        target=target,
        slurm=cluster,
        packages=package or [],
        install_project=install_project,
        skip_conda_only=skip_conda_only,
        pass_env=names_of(pass_env),
        echo=live.run_echo(quiet(), secret_values(os.environ)),
    )
    terminal.enable_progress(not as_json and not quiet())
    with live.activity(quiet() or as_json) as observe:
        opts = dataclasses.replace(opts, passphrase_prompt=observe.pausing(opts.passphrase_prompt))
        result = capture(opts, observe=None if as_json else observe)
    if as_json:
        terminal.emit_json(CaptureOutput.build(result))
    else:
        terminal.render_capture(result)
    if verbosity().verbose:  # -v: what was run, and where the time went
        for r in result.manifest.runs:
            terminal.say(f"run {r.name}: {r.command}")
        terminal.say("timings: " + ", ".join(f"{k} {v:.2f} s" for k, v in result.timings.items()))
