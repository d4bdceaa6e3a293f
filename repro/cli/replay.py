"""`repro replay`: verify a capsule, rebuild its environment, re-run it, compare."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Annotated, Any, Literal

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
    RequireSigned,
    RequireTrusted,
    SigningKey,
    VersionDoiOnly,
    ZenodoUrl,
)
from repro.errors import ExitCode

ATTEST = "--attest"


def attest_value_args(args: list[str]) -> list[str]:
    """`--attest [FILE]`: a bare --attest takes the default file (an empty value), and the
    next word is its FILE only when it ends in .json -- so `--attest CAPSULE` still names
    the capsule. `--attest=FILE` always works."""
    out: list[str] = []
    i = 0
    while i < len(args):
        word = args[i]
        if word == "--":
            out.extend(args[i:])
            break
        if word == ATTEST:
            following = args[i + 1] if i + 1 < len(args) else None
            if following is not None and following.lower().endswith(".json"):
                out.append(f"{ATTEST}={following}")
                i += 2
                continue
            out.append(f"{ATTEST}=")
        else:
            out.append(word)
        i += 1
    return out


class ReplayCommand(TyperCommand):
    """replay's click command: lets --attest go without its FILE."""

    # ctx is Any: typer >= 0.29 runs on its vendored click (see repro/cli/capture.py).
    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        return super().parse_args(ctx, attest_value_args(list(args)))


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
    partition: Partition = None,
    account: Account = None,
    array_limit: ArrayLimit = None,
    container: Container = None,
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
    attest: Annotated[
        str | None,
        typer.Option(
            "--attest",
            metavar="[FILE]",
            help="Sign the verdicts into an in-toto attestation (FILE, default "
            "NAME.attestation.json here) with your key.",
        ),
    ] = None,
    key: SigningKey = None,
    version_doi_only: VersionDoiOnly = False,
    host: Annotated[
        str | None,
        typer.Option(
            "--host",
            help="Replay on a cluster over SSH (slurm target): user@host[:port] or a cluster "
            "named in ~/.config/repro/config.toml. Outputs come back and are compared here.",
        ),
    ] = None,
    detach: Annotated[
        bool,
        typer.Option(
            "--detach",
            help="Submit (slurm target) and return a replay id at once; follow it with "
            "repro status ID, gather it with repro collect ID.",
        ),
    ] = False,
    as_json: AsJson = False,
) -> None:
    """Verify a capsule, rebuild its environment, re-run it and compare every result."""
    from repro.capture.secret_scan import secret_values
    from repro.cli.output_mode import quiet
    from repro.cli.prompts import confirm_on_terminal
    from repro.execution.environment import names_of
    from repro.replay.pipeline import ReplayOptions
    from repro.replay.pipeline import replay as run_replay
    from repro.replay.targets import SlurmSettings
    from repro.verify import Policy

    terminal.enable_progress(not as_json)
    signing = _signing_key(key) if attest is not None else None  # before any slow work
    path = Path(capsule)
    doi = concept_doi = None
    if not path.is_file():  # a DOI or a record URL (the Zenodo client only when needed)
        from repro.publish.fetch import resolve_capsule

        with terminal.TransferBar(f"downloading {capsule}", not as_json) as progress:
            resolved = resolve_capsule(
                capsule, zenodo_url, None, progress, version_only=version_doi_only
            )
        path, doi, concept_doi = resolved.path, resolved.doi, resolved.concept_doi
        if concept_doi is not None:
            terminal.say(f"{concept_doi} is a concept DOI: replaying its latest version, {doi}")
    attest_request = None
    if attest is not None and signing is not None:
        from repro.attestation.attest import default_attestation_path
        from repro.replay.record import AttestRequest

        dest = Path(attest) if attest else default_attestation_path(path)
        attest_request = AttestRequest(dest, signing)
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
        slurm=SlurmSettings(
            partition=partition,
            account=account,
            array_limit=array_limit,
            container=container,
            image_cache=workdir.absolute() if workdir is not None and container else None,
        ),
        pass_env=names_of(pass_env),
        no_sandbox=no_sandbox,
        confirm=None if as_json else confirm_on_terminal,
        attest=attest_request,
        doi=doi,
        concept_doi=concept_doi,
        echo=live.run_echo(quiet(), secret_values(os.environ)),
    )
    if host is not None or detach:
        if target not in (None, "slurm"):
            from repro.errors import UsageError

            raise UsageError("--host and --detach replay on Slurm only", hint="add --target slurm")
        from repro.cli.collect import finish_replay, submit_detached

        if detach:
            submit_detached(opts, host, as_json)
            raise typer.Exit(ExitCode.OK)
        finish_replay(opts, host, report, as_json)
    with live.activity(quiet()) as observe:
        opts = dataclasses.replace(opts, confirm=observe.pausing(opts.confirm))
        result = run_replay(opts, observe=observe)
    terminal.warn(result.warnings)
    if as_json:
        terminal.render_replay_failures(result)
        terminal.emit_json(result)
    else:
        terminal.render_replay(result, report)
    raise typer.Exit(ExitCode.OK if result.reproduced else ExitCode.NOT_REPRODUCED)


def _signing_key(path: Path | None) -> Any:
    """The replayer's private key (--key, else the default key), loaded up front."""
    from repro.cli.prompts import prompt_passphrase
    from repro.errors import SigningKeyError
    from repro.sign import default_key_path, load_private_key

    chosen = path or default_key_path()
    if chosen is None:
        raise SigningKeyError(
            "--attest signs the replay with your key, and there is none",
            hint="create one with: repro keys generate (or pass --key PATH)",
        )
    return load_private_key(chosen, prompt_passphrase)
