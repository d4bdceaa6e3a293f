"""The `repro` command line: parse options, call one core function, render, map exit codes."""

from __future__ import annotations

import contextvars
import functools
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, ParamSpec, TypeVar

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from repro import __version__
from repro.config import describe_validation_error
from repro.errors import ExitCode, KeyPassphraseError, ReproError, UsageError
from repro.models import Run
from repro.sign import (
    export_public,
    fingerprint,
    generate_key,
    list_keys,
    load_public_key,
    trust_key,
    trusted_keys,
    untrust_key,
)
from repro.verify import Policy, VerifyReport, inspect_capsule, verify_capsule

if TYPE_CHECKING:
    from repro.capsule.reader import VerifiedCapsule
    from repro.capture.pipeline import CaptureResult

app = typer.Typer(
    name="repro",
    help="Make a computational study reproducible in one signed, deterministic capsule file.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    add_completion=False,
)
out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)
if not out.is_terminal:
    out.width = max(out.width, 160)  # piped into a file or a log: do not fold tables at 80
_RAW_ARGS: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar("raw", default=None)

P = ParamSpec("P")
R = TypeVar("R")

JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable result on stdout.")]


def _emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n")


def handles_errors(func: Callable[P, R]) -> Callable[P, R]:
    """ReproError -> one line on stderr (and JSON on stdout with --json) and its exit code."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except ReproError as exc:
            if kwargs.get("as_json"):
                _emit_json(
                    {
                        "ok": False,
                        "error": exc.message,
                        "hint": exc.hint,
                        "exit_code": exc.exit_code,
                        "kind": type(exc).__name__,
                    }
                )
            err.print(f"[bold red]error:[/] {escape(exc.message)}", highlight=False)
            if exc.hint:
                err.print(f"[yellow]hint:[/] {escape(exc.hint)}", highlight=False)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            err.print("[bold red]interrupted[/]: stopped what was running; nothing was written")
            raise typer.Exit(130) from None

    return wrapper


def _prompt_passphrase(label: str) -> str:
    if not sys.stdin.isatty():
        raise KeyPassphraseError(f"{label}: no terminal to ask on")
    return str(typer.prompt(label, hide_input=True))


def _say(message: str) -> None:
    err.print(f"[dim]· {escape(message)}[/]", highlight=False)


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"


@app.callback(invoke_without_command=True)
def _root(
    version: Annotated[bool, typer.Option("--version", help="Print the version.")] = False,
) -> None:
    if version:
        out.print(f"repro {__version__}")
        raise typer.Exit(0)


# --- init --------------------------------------------------------------------------------


@app.command()
@handles_errors
def init(
    directory: Annotated[Path, typer.Argument(help="Project directory.")] = Path(),
    as_json: JsonOpt = False,
) -> None:
    """Write repro.toml from what the project has (never overwrites one)."""
    from repro.init import init_project

    target, found = init_project(directory)
    if as_json:
        _emit_json({"ok": True, "config": str(target), "detected": found.__dict__})
        return
    out.print(f"wrote {target}")
    if found.requirements:
        out.print(f"  dependencies: {found.requirements}")
    for data in found.data_dirs:
        out.print(f"  data: {data}/")
    if found.notebooks:
        out.print(f"  notebooks: {', '.join(found.notebooks)}")
    out.print("Edit its [[runs]] section, then: repro capture -o study.capsule.tgz")


# --- capture -----------------------------------------------------------------------------


def pair_runs(
    raw: list[str] | None, runs: list[str], outputs: list[str]
) -> list[tuple[str, list[str]]]:
    """Each --output belongs to the --run before it (read from the raw argument order)."""
    if not runs:
        if outputs:
            raise UsageError(
                "--output needs a --run before it", hint="repro capture --run CMD --output PATH"
            )
        return []
    if raw is None or len(runs) == 1:
        return [(runs[0], list(outputs))] if len(runs) == 1 else [(r, []) for r in runs]
    pairs: list[tuple[str, list[str]]] = []
    tokens = iter(raw)
    for token in tokens:
        name, _, inline = token.partition("=")
        if name in ("--run", "--output"):
            value = inline if inline else next(tokens, "")
            if name == "--run":
                pairs.append((value, []))
            elif not pairs:
                raise UsageError("--output needs a --run before it")
            else:
                pairs[-1][1].append(value)
    return pairs


@app.command(name="capture")
@handles_errors
def capture_cmd(
    directory: Annotated[Path, typer.Argument(help="Project directory.")] = Path(),
    out_file: Annotated[
        Path | None, typer.Option("-o", "--out", help="Capsule file to write.")
    ] = None,
    run: Annotated[
        list[str] | None,
        typer.Option("--run", help="Command to run (repeatable); replaces repro.toml's runs."),
    ] = None,
    output: Annotated[
        list[str] | None, typer.Option("--output", help="Output of the last --run (repeatable).")
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
        Literal["uv", "pip-tools"] | None,
        typer.Option("--resolver", help="uv (default) or pip-tools."),
    ] = None,
    freeze: Annotated[
        bool,
        typer.Option(
            "--freeze", help="Lock exactly what this interpreter has installed and run with it."
        ),
    ] = False,
    no_run: Annotated[bool, typer.Option("--no-run", help="Do not execute the runs.")] = False,
    jobs: Annotated[
        int, typer.Option("-j", "--jobs", min=1, help="Sweep points to run in parallel.")
    ] = 1,
    base_image: Annotated[
        str | None, typer.Option("--base-image", help="Container base image.")
    ] = None,
    no_hash_cache: Annotated[
        bool, typer.Option("--no-hash-cache", help="Re-hash every file.")
    ] = False,
    sign: Annotated[
        bool | None,
        typer.Option("--sign/--no-sign", help="Sign the capsule (default: when a key exists)."),
    ] = None,
    key: Annotated[Path | None, typer.Option("--key", help="Private key to sign with.")] = None,
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
    as_json: JsonOpt = False,
) -> None:
    """Build a capsule: code, locked dependencies, data, runs and their results."""
    from repro.capture.pipeline import CaptureOptions, capture

    project = directory
    dest = out_file or Path(f"{directory.resolve().name}.capsule.tgz")
    runs = None
    if run:
        pairs = pair_runs(_RAW_ARGS.get(), run, output or [])
        try:
            runs = [
                Run(name=f"run{i + 1}" if len(pairs) > 1 else "run", command=cmd, outputs=outs)
                for i, (cmd, outs) in enumerate(pairs)
            ]
        except ValidationError as exc:
            raise UsageError(describe_validation_error(exc, "--run/--output")) from None
    elif output:
        raise UsageError(
            "--output needs a --run before it", hint="repro capture --run CMD --output PATH"
        )
    opts = CaptureOptions(
        project=project,
        output=dest,
        runs=runs,
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
        passphrase_prompt=_prompt_passphrase,
    )
    result = capture(opts, observe=None if as_json else _say)
    if as_json:
        _emit_json(_capture_json(result))
        return
    _render_capture(result)


def _capture_json(result: CaptureResult) -> dict[str, Any]:
    m = result.manifest
    return {
        "ok": True,
        "capsule": str(result.capsule.path),
        "capsule_id": result.capsule.capsule_id,
        "archive_sha256": result.capsule.sha256,
        "archive_size": result.capsule.size,
        "files": len(m.files),
        "payload_size": m.payload_size,
        "lock_source": m.environment.lock_source,
        "packages": len(m.environment.packages),
        "results": [
            {
                "run": r.run,
                "point": r.point_id,
                "executed": r.executed,
                "outputs": [o.path for o in r.outputs],
            }
            for r in m.results
        ],
        "notebooks": [
            {
                "path": nb.path,
                "executed": nb.executed,
                "code_cells": nb.code_cells,
                "kernel": nb.kernel.name,
                "language": nb.kernel.language,
            }
            for nb in m.notebook_results
        ],
        "excluded": m.excluded,
        "notes": m.notes,
        "timings": result.timings,
        "signed_by": result.signed_by,
    }


def _render_capture(result: CaptureResult) -> None:
    m = result.manifest
    outputs = sum(len(r.outputs) for r in m.results)
    out.print(f"[bold green]captured[/] {result.capsule.path} ({_size(result.capsule.size)})")
    out.print(f"  id        {result.capsule.capsule_id}")
    out.print(f"  files     {len(m.files)} ({_size(m.payload_size)} payload)")
    out.print(
        f"  lock      {len(m.environment.packages)} packages ({m.environment.lock_source}), "
        f"Python {m.environment.python_version}"
    )
    out.print(f"  results   {outputs} expected outputs from {len(m.results)} run point(s)")
    for nb in m.notebook_results:
        out.print(Text("  notebook  ") + _notebook_line(nb))
    if result.signed_by:
        out.print(f"  signed    {fingerprint(result.signed_by)}")
    else:
        out.print("  signed    [yellow]no[/] (create a key with: repro keys generate)")
    for path in m.excluded:
        out.print(Text("  excluded  ", style="yellow") + Text(path))
    for note in m.notes:
        out.print(Text("  note      ", style="yellow") + Text(note))


# --- verify / inspect --------------------------------------------------------------------


@app.command()
@handles_errors
def verify(
    capsule: Annotated[Path, typer.Argument(help="Capsule file.")],
    require_signed: Annotated[
        bool, typer.Option("--require-signed", help="Exit 4 unless the capsule is signed.")
    ] = False,
    require_trusted: Annotated[
        bool, typer.Option("--require-trusted", help="Exit 4 unless signed by a trusted key.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Check integrity and signature: every checksum, the manifest against the archive."""
    report = verify_capsule(capsule, Policy(require_signed, require_trusted))
    if as_json:
        _emit_json(report.to_json())
        return
    c = report.capsule
    out.print(
        f"[bold green]verified[/] {c.path}: {len(c.manifest.files)} files, "
        f"{_size(c.manifest.payload_size)}, every checksum matches"
    )
    out.print(f"  id         {c.capsule_id}")
    _render_signature(report)


def _render_signature(report: VerifyReport) -> None:
    status = report.signature
    colour = {"trusted": "green", "unknown": "yellow", "unsigned": "yellow"}[status.state]
    out.print(f"  signature  [{colour}]{status.describe()}[/]", highlight=False)
    if status.state == "unknown":
        out.print("             (anyone can sign; trust the author's key to know it is theirs)")


@app.command(name="inspect")
@handles_errors
def inspect_cmd(
    capsule: Annotated[Path, typer.Argument(help="Capsule file.")],
    as_json: JsonOpt = False,
) -> None:
    """Show what is inside: metadata, source, environment, data, runs, expected results."""
    report = inspect_capsule(capsule)
    c = report.capsule
    if as_json:
        _emit_json(
            {
                "ok": True,
                "capsule_id": c.capsule_id,
                "archive_size": c.archive_size,
                "signature": report.to_json()["signature"],
                "manifest": c.manifest.model_dump(mode="json"),
            }
        )
        return
    _render_inspect(c)
    _render_signature(report)


def _render_inspect(c: VerifiedCapsule) -> None:
    m = c.manifest
    md = m.metadata
    out.print(Text(md.title, style="bold"))
    for a in md.authors:
        extra = ", ".join(x for x in (a.affiliation, f"ORCID {a.orcid}" if a.orcid else None) if x)
        out.print(f"  {a.name}" + (f" ({extra})" if extra else ""), markup=False)
    if md.license:
        out.print(
            f"  license {md.license}"
            + (f"; keywords: {', '.join(md.keywords)}" if md.keywords else ""),
            markup=False,
        )
    out.print(
        f"capsule   {c.capsule_id}  ({_size(c.archive_size)}, created {m.created}, "
        f"repro {m.repro_version})",
        markup=False,
    )
    s = m.source
    if s.kind == "git":
        out.print(
            f"source    git {s.remote or '(no remote)'} @ {(s.commit or 'no commit')[:12]}"
            f" on {s.branch or 'detached'}" + (" (dirty)" if s.dirty else "")
        )
    else:
        out.print("source    a directory (not a git work tree)", markup=False)
    e = m.environment
    out.print(
        f"env       Python {e.python_version}, {len(e.packages)} packages locked by {e.lock_source}"
        f", base image {e.base_image}",
        markup=False,
    )
    p = m.platform
    out.print(
        f"platform  {p.distribution or p.system} {p.machine}, {p.python_implementation} "
        f"{p.python_version}, {p.cpu_count} x {p.cpu_model}",
        markup=False,
    )
    roles: dict[str, tuple[int, int]] = {}
    for f in m.files:
        count, size = roles.get(f.role, (0, 0))
        roles[f.role] = (count + 1, size + f.size)
    out.print(
        "files     " + ", ".join(f"{r}: {n} ({_size(sz)})" for r, (n, sz) in sorted(roles.items())),
        markup=False,
    )
    for r in m.remote_data:
        out.print(
            f"remote    {r.path} <- {r.url} ({_size(r.size)}, sha256 {r.sha256[:12]})",
            markup=False,
        )
    table = Table(title="expected results", show_lines=False)
    for col in ("run", "point", "output", "size", "sha256", "rule"):
        table.add_column(col)
    for rec in m.results:
        if not rec.outputs:
            table.add_row(Text(rec.run), Text(rec.point_id), "(none recorded)", "", "", "")
        for o in rec.outputs:
            rule = o.rule.method + (f" rtol={o.rule.rtol:g}" if o.rule.rtol is not None else "")
            table.add_row(
                Text(rec.run), Text(rec.point_id), Text(o.path), _size(o.size), o.sha256[:12], rule
            )
    out.print(table)
    for nb in m.notebook_results:
        out.print(Text("notebook  ") + _notebook_line(nb))
    for note in m.notes:
        out.print(Text("note ", style="yellow") + Text(note))


def _notebook_line(nb: Any) -> Text:
    how = "executed" if nb.executed else "saved outputs (--no-run)"
    version = f" {nb.kernel.language_version}" if nb.kernel.language_version else ""
    return Text(
        f"{nb.path}: {nb.code_cells} code cell(s), {how}, kernel {nb.kernel.name} "
        f"({nb.kernel.language}{version})"
    )


# --- replay ------------------------------------------------------------------------------

VERDICT_STYLE = {
    "identical": "green",
    "within_tolerance": "green",
    "different": "bold red",
    "missing": "bold red",
    "not_verified": "yellow",
    "failed": "bold red",
}


@app.command()
@handles_errors
def replay(
    capsule: Annotated[
        str, typer.Argument(help="Capsule file, Zenodo DOI (10.5281/zenodo.N) or record URL.")
    ],
    target: Annotated[
        Literal["local", "docker", "slurm"] | None,
        typer.Option(
            "--target", help="local, docker or slurm (default: docker when an engine answers)."
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
    jobs: Annotated[int, typer.Option("-j", "--jobs", min=1, help="Points in parallel.")] = 1,
    report: Annotated[
        Path | None, typer.Option("--report", help="Write a self-contained HTML report.")
    ] = None,
    base_image: Annotated[
        str | None, typer.Option("--base-image", help="Base image for the docker target.")
    ] = None,
    offline: Annotated[
        bool, typer.Option("--offline", help="Fail rather than touch the network.")
    ] = False,
    require_signed: Annotated[
        bool, typer.Option("--require-signed", help="Refuse an unsigned capsule (exit 4).")
    ] = False,
    require_trusted: Annotated[
        bool, typer.Option("--require-trusted", help="Refuse unless signed by a trusted key.")
    ] = False,
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
    zenodo_url: Annotated[
        str | None,
        typer.Option("--zenodo-url", help="Zenodo site root for DOIs (default REPRO_ZENODO_URL)."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Verify a capsule, rebuild its environment, re-run it and compare every result."""
    from repro.replay.pipeline import ReplayOptions
    from repro.replay.pipeline import replay as run_replay
    from repro.replay.targets import SlurmSettings

    path = Path(capsule)
    if not path.is_file():  # a DOI or a record URL (the Zenodo client only when needed)
        from repro.publish.fetch import resolve_capsule_argument

        with _TransferBar(f"downloading {capsule}", not as_json) as progress:
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
    )
    result = run_replay(opts, observe=_say)
    for warning in result.warnings:
        err.print(f"[bold yellow]warning:[/] {escape(warning)}", highlight=False)
    if as_json:
        _emit_json(result.model_dump(mode="json"))
    else:
        _render_replay(result, report)
    raise typer.Exit(ExitCode.OK if result.reproduced else ExitCode.NOT_REPRODUCED)


def _render_replay(result: Any, report: Path | None) -> None:
    table = Table(title=Text(f"{result.title} — replay on {result.target}"))
    for col in ("run", "point", "output", "verdict", "detail"):
        table.add_column(col, overflow="fold")
    for p in result.points:
        if not p.outputs:
            table.add_row(Text(p.run), Text(p.point_id), "(no outputs)", p.status, "")
        for v in p.outputs:
            style = VERDICT_STYLE[v.verdict]
            detail = v.detail
            if p.status != "ok":
                detail = f"run {p.status.replace('_', ' ')} (exit {p.exit_code}); {detail}"
            table.add_row(
                Text(p.run),
                Text(p.point_id),
                Text(v.path),
                Text(v.verdict.replace("_", " "), style=style),
                Text(detail),
            )
    for nb in result.notebooks:
        table.add_row(
            Text(nb.path),
            "",
            "(notebook)",
            Text(nb.verdict.replace("_", " "), style=VERDICT_STYLE[nb.verdict]),
            Text(nb.detail),
        )
        for cell in nb.cells:
            if cell.verdict != "identical":
                table.add_row(
                    Text(nb.path),
                    "",
                    Text(f"cell {cell.index}"),
                    Text(cell.verdict.replace("_", " "), style=VERDICT_STYLE[cell.verdict]),
                    Text(cell.detail),
                )
        if nb.error:
            err.print(Text(f"{nb.path}: {nb.error}", style="red"), highlight=False)
    out.print(table)
    for d in result.environment_differences:
        out.print(
            Text("  env ", style="dim") + Text(f"{d.what}: {d.captured} -> {d.replayed}"),
            highlight=False,
        )
    counts = ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in sorted(result.counts.items()))
    if result.notebooks:
        tally: dict[str, int] = {}
        for nb in result.notebooks:
            tally[nb.verdict] = tally.get(nb.verdict, 0) + 1
        notebooks = ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in sorted(tally.items()))
        counts = f"{counts}; notebooks: {notebooks}" if counts else f"notebooks: {notebooks}"
    if result.reproduced:
        out.print(f"[bold green]reproduced[/] ({counts}) in {result.duration_s:.1f} s")
    else:
        out.print(f"[bold red]not reproduced[/] ({counts}) in {result.duration_s:.1f} s")
    if report is not None:
        out.print(f"report: {report}")
    if result.workdir:
        out.print(f"working directory kept: {result.workdir}")


# --- diff --------------------------------------------------------------------------------


@app.command()
@handles_errors
def diff(
    capsule_a: Annotated[Path, typer.Argument(help="The earlier capsule.")],
    capsule_b: Annotated[Path, typer.Argument(help="The later capsule.")],
    as_json: JsonOpt = False,
) -> None:
    """What changed between two capsules: code, data, dependencies, runs, results."""
    from repro.diff import diff_capsules

    result = diff_capsules(capsule_a, capsule_b)
    if as_json:
        _emit_json(result.model_dump(mode="json"))
        return
    if not result.entries:
        out.print("[green]no differences[/]" + (" (same capsule)" if result.identical else ""))
        return
    table = Table(title=f"{capsule_a.name} -> {capsule_b.name}")
    for col in ("kind", "name", "change", "before", "after", "detail"):
        table.add_column(col, overflow="fold")
    for e in result.entries:
        cells = (e.kind, e.name, e.change, e.before, e.after, e.detail)
        table.add_row(*(Text(v or "") for v in cells))
    out.print(table)


# --- keys --------------------------------------------------------------------------------

keys_app = typer.Typer(help="Signing keys and the trust store.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")


@keys_app.command("generate")
@handles_errors
def keys_generate(
    name: Annotated[str, typer.Option("--name", help="Key name.")] = "default",
    passphrase: Annotated[
        bool, typer.Option("--passphrase", help="Encrypt the private key with a passphrase.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Create an Ed25519 key pair in the user's config directory."""
    secret = None
    if passphrase:
        secret = os.environ.get("REPRO_KEY_PASSPHRASE")
        if secret is None:
            if not sys.stdin.isatty():
                raise KeyPassphraseError("--passphrase needs a terminal or REPRO_KEY_PASSPHRASE")
            secret = str(typer.prompt("passphrase", hide_input=True, confirmation_prompt=True))
    info = generate_key(name, secret)
    if as_json:
        _emit_json({"ok": True, "name": info.name, "keyid": info.keyid, "path": str(info.path)})
        return
    out.print(f"created key [bold]{info.name}[/] {fingerprint(info.keyid)}")
    out.print(f"  private  {info.path} (mode 0600{', encrypted' if info.encrypted else ''})")
    out.print(f"  public   {info.path.with_suffix('.pub')}  <- share this one")


@keys_app.command("list")
@handles_errors
def keys_list(as_json: JsonOpt = False) -> None:
    """Your signing keys and the keys you trust."""
    own = list_keys()
    trusted = trusted_keys()
    if as_json:
        _emit_json(
            {
                "ok": True,
                "keys": [{"name": k.name, "keyid": k.keyid, "encrypted": k.encrypted} for k in own],
                "trusted": [
                    {"keyid": k, "name": v.get("name")} for k, v in sorted(trusted.items())
                ],
            }
        )
        return
    out.print("[bold]signing keys[/]" + ("" if own else "  (none: repro keys generate)"))
    for k in own:
        out.print(f"  {k.name:<16} {fingerprint(k.keyid)}{'  (encrypted)' if k.encrypted else ''}")
    out.print("[bold]trusted keys[/]" + ("" if trusted else "  (none: repro keys trust KEY.pub)"))
    for keyid, entry in sorted(trusted.items(), key=lambda kv: kv[1].get("name", "")):
        out.print(f"  {entry.get('name', '?'):<16} {fingerprint(keyid)}")


@keys_app.command("export")
@handles_errors
def keys_export(
    name: Annotated[str, typer.Option("--name", help="Key name.")] = "default",
) -> None:
    """Print a public key (PEM), to give to the people who replay your capsules."""
    from repro.sign import keys_dir

    key = load_public_key(keys_dir() / f"{name}.pub")
    sys.stdout.write(export_public(key).decode())


@keys_app.command("trust")
@handles_errors
def keys_trust(
    public_key: Annotated[Path, typer.Argument(help="A public key file (PEM).")],
    name: Annotated[str | None, typer.Option("--name", help="Who it belongs to.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Add a public key to the trust store."""
    keyid, label = trust_key(public_key, name)
    if as_json:
        _emit_json({"ok": True, "keyid": keyid, "name": label})
        return
    out.print(f"trusted [bold]{label}[/] {fingerprint(keyid)}")


@keys_app.command("untrust")
@handles_errors
def keys_untrust(
    name_or_id: Annotated[str, typer.Argument(help="Trusted key name, or key id prefix.")],
    as_json: JsonOpt = False,
) -> None:
    """Remove a key from the trust store."""
    gone = untrust_key(name_or_id)
    if as_json:
        _emit_json({"ok": True, "removed": gone})
        return
    for keyid in gone:
        out.print(f"no longer trusted: {fingerprint(keyid)}")


# --- publish / fetch (Zenodo) ------------------------------------------------------------


class _TransferBar:
    """A progress bar on stderr for an upload or download (none with --json or off a tty);
    entering it gives the (bytes done, total) callback the core reports to."""

    def __init__(self, label: str, enabled: bool) -> None:
        self.label = label
        self.enabled = enabled and err.is_terminal
        self.bar: Any = None

    def __enter__(self) -> Callable[[int, int | None], None] | None:
        if not self.enabled:
            return None
        from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

        bar = Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            console=err,
            transient=True,
        )
        self.bar = bar.__enter__()
        task = bar.add_task(escape(self.label), total=None)

        def update(done: int, total: int | None) -> None:
            bar.update(task, completed=done, total=total)

        return update

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)


@app.command(name="publish")
@handles_errors
def publish_cmd(
    capsule: Annotated[Path, typer.Argument(help="Capsule file.")],
    sandbox: Annotated[
        bool,
        typer.Option("--sandbox", help="Use sandbox.zenodo.org (token: ZENODO_SANDBOX_API_TOKEN)."),
    ] = False,
    zenodo_url: Annotated[
        str | None,
        typer.Option(
            "--zenodo-url",
            help="Zenodo site root (default: REPRO_ZENODO_URL, else https://zenodo.org).",
        ),
    ] = None,
    do_publish: Annotated[
        bool,
        typer.Option(
            "--publish", help="Publish the draft: registers the DOI; this cannot be undone."
        ),
    ] = False,
    new_version_of: Annotated[
        str | None,
        typer.Option(
            "--new-version-of", help="DOI (or id) of the published version this one follows."
        ),
    ] = None,
    community: Annotated[
        list[str] | None,
        typer.Option("--community", help="Zenodo community to submit to (repeatable)."),
    ] = None,
    upload_type: Annotated[
        str | None,
        typer.Option(
            "--upload-type", help="Zenodo upload type (default: CITATION.cff type, else software)."
        ),
    ] = None,
    key: Annotated[
        Path | None,
        typer.Option("--key", help="Key to re-sign the DOI-stamped capsule with."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Deposit a capsule on Zenodo with its own DOI stamped in (a draft unless --publish)."""
    from repro.publish import PublishOptions, publish, resolve_target

    target = resolve_target(sandbox=sandbox, zenodo_url=zenodo_url)
    opts = PublishOptions(
        capsule=capsule,
        target=target,
        publish=do_publish,
        new_version_of=new_version_of,
        communities=community or [],
        upload_type=upload_type,
        key=key,
        passphrase_prompt=_prompt_passphrase,
    )
    with _TransferBar(f"uploading {capsule.name}", not as_json) as progress:
        result = publish(opts, observe=None if as_json else _say, progress=progress)
    for warning in result.warnings:
        err.print(f"[bold yellow]warning:[/] {escape(warning)}", highlight=False)
    r = result.receipt
    if as_json:
        _emit_json(
            {
                "ok": True,
                **r.model_dump(mode="json"),
                "receipt": str(result.receipt_path),
                "journal": str(result.journal_path),
                "resumed": result.resumed,
                "already_done": result.already_done,
            }
        )
        return
    if r.state == "draft":
        where = " --sandbox" if sandbox else f" --zenodo-url {zenodo_url}" if zenodo_url else ""
        out.print(
            f"draft ready: {r.draft_url or r.record_url} (DOI {r.doi} reserved); "
            f"publish it with: repro publish {capsule}{where} --publish",
            highlight=False,
            markup=False,
        )
    else:
        done = "already published" if result.already_done else "published"
        out.print(f"{done} {r.doi}: {r.record_url} ({r.capsule})", highlight=False, markup=False)


@app.command(name="fetch")
@handles_errors
def fetch_cmd(
    reference: Annotated[
        str, typer.Argument(help="DOI (10.5281/zenodo.N, doi:..., https://doi.org/...) or URL.")
    ],
    out_dir: Annotated[
        Path, typer.Option("-o", "--out", help="Folder to put the capsule in.")
    ] = Path(),
    zenodo_url: Annotated[
        str | None,
        typer.Option("--zenodo-url", help="Zenodo site root (default: REPRO_ZENODO_URL)."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Download a published capsule from Zenodo, check Zenodo's checksum and verify it."""
    from repro.publish import fetch_capsule

    with _TransferBar(f"downloading {reference}", not as_json) as progress:
        result = fetch_capsule(
            reference, zenodo_url=zenodo_url, dest_dir=out_dir, progress=progress
        )
    for warning in result.warnings:
        err.print(f"[bold yellow]warning:[/] {escape(warning)}", highlight=False)
    assert result.report is not None  # noqa: S101 (fetch verifies)
    if as_json:
        _emit_json(
            {
                "ok": True,
                "capsule": str(result.path),
                "record_id": result.record_id,
                "doi": result.doi,
                "md5": result.md5,
                "size": result.size,
                "cached": result.cached,
                "warnings": result.warnings,
                "verify": result.report.to_json(),
            }
        )
        return
    out.print(
        f"[bold green]fetched[/] {escape(str(result.path))} ({_size(result.size)}) from "
        f"{escape(str(result.doi))}: Zenodo's md5 matches, every checksum verified",
        highlight=False,
    )
    _render_signature(result.report)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    args = list(sys.argv[1:] if argv is None else argv)
    token = _RAW_ARGS.set(args)
    try:
        app(args=args, prog_name="repro")
    finally:
        _RAW_ARGS.reset(token)
