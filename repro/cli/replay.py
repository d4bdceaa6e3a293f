"""`repro replay`: verify a capsule, rebuild its environment, re-run it, compare."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer

from repro.cli.options import (
    AsJson,
    BaseImage,
    Jobs,
    PassEnv,
    RequireSigned,
    RequireTrusted,
    ZenodoUrl,
)
from repro.errors import ExitCode
from repro.report import terminal


def replay_command(
    capsule: Annotated[
        str, typer.Argument(help="Capsule file, Zenodo DOI (10.5281/zenodo.N) or record URL.")
    ],
    target: Annotated[
        Literal["local", "docker", "slurm"] | None,
        typer.Option(
            "--target",
            help="local, docker or slurm (default: docker when an engine answers, else local, "
            "sandboxed).",
        ),
    ] = None,
    run: Annotated[list[str] | None, typer.Option("--run", help="Replay only this run.")] = None,
    point: Annotated[
        list[str] | None, typer.Option("--point", help="Replay only matching points: KEY=VALUE.")
    ] = None,
    workdir: Annotated[
        Path | None, typer.Option("--workdir", help="Where to unpack and run (kept).")
    ] = None,
    keep: Annotated[bool, typer.Option("--keep", help="Keep the working directory.")] = False,
    jobs: Jobs = 1,
    report: Annotated[
        Path | None, typer.Option("--report", help="Write a self-contained HTML report.")
    ] = None,
    base_image: BaseImage = None,
    offline: Annotated[
        bool, typer.Option("--offline", help="Fail rather than touch the network.")
    ] = False,
    require_signed: RequireSigned = False,
    require_trusted: RequireTrusted = False,
    partition: Annotated[
        str | None, typer.Option("--partition", help="Slurm partition (slurm target).")
    ] = None,
    account: Annotated[
        str | None, typer.Option("--account", help="Slurm account (slurm target).")
    ] = None,
    array_limit: Annotated[
        int | None,
        typer.Option("--array-limit", min=1, help="Array tasks running at once (slurm target)."),
    ] = None,
    zenodo_url: ZenodoUrl = None,
    pass_env: PassEnv = None,
    no_sandbox: Annotated[
        bool,
        typer.Option(
            "--no-sandbox",
            help="Run local (and slurm) runs without a sandbox even when the capsule is not "
            "signed by a trusted key: its code gets all your user's rights.",
        ),
    ] = False,
    as_json: AsJson = False,
) -> None:
    """Verify a capsule, rebuild its environment, re-run it and compare every result."""
    from repro.cli.prompts import confirm_on_terminal
    from repro.execution.environment import names_of
    from repro.replay.pipeline import ReplayOptions
    from repro.replay.pipeline import replay as run_replay
    from repro.replay.targets import SlurmSettings
    from repro.verify import Policy

    path = Path(capsule)
    if not path.is_file():  # a DOI or a record URL (the Zenodo client only when needed)
        from repro.publish.fetch import resolve_capsule_argument

        with terminal.TransferBar(f"downloading {capsule}", not as_json) as progress:
            path = resolve_capsule_argument(capsule, zenodo_url, None, progress)
    opts = ReplayOptions(
        capsule=path,
        target=target,
        runs=run or [],
        points=point or [],
        workdir=workdir,
        keep=keep,
        jobs=jobs,
        policy=Policy(require_signed, require_trusted),
        base_image=base_image,
        offline=offline,
        report_html=report,
        slurm=SlurmSettings(partition=partition, account=account, array_limit=array_limit),
        pass_env=names_of(pass_env),
        no_sandbox=no_sandbox,
        confirm=None if as_json else confirm_on_terminal,
    )
    result = run_replay(opts, observe=terminal.say)
    terminal.warn(result.warnings)
    if as_json:
        terminal.emit_json(result)
    else:
        terminal.render_replay(result, report)
    raise typer.Exit(ExitCode.OK if result.reproduced else ExitCode.NOT_REPRODUCED)
