"""`repro extract CAPSULE [PATH...] -o DIR`: members of a verified capsule into a folder."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from repro.cli.lazy import terminal
from repro.cli.options import AsJson, CapsuleFile, RequireSigned, RequireTrusted


def extract_command(
    capsule: CapsuleFile,
    out: Annotated[
        Path, typer.Option("-o", "--out", help="Folder to extract into (made if missing).")
    ],
    paths: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="PATH",
            help="Files or folders to extract (project paths, paths under data/, or member "
            "names); default: everything.",
            show_default=False,
        ),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Overwrite files already in the folder.")
    ] = False,
    require_signed: RequireSigned = False,
    require_trusted: RequireTrusted = False,
    as_json: AsJson = False,
) -> None:
    """Extract a capsule's files, verified, at their paths inside it (data/project/...).

    Never outside the folder, never over a file unless --force, nothing half-written."""
    from repro.extract import extract_members
    from repro.report.tools import ExtractOutput
    from repro.verify import Policy

    result = extract_members(
        capsule, out, paths or [], force=force, policy=Policy(require_signed, require_trusted)
    )
    if as_json:
        terminal.emit_json(
            ExtractOutput(
                ok=True,
                capsule_id=result.capsule_id,
                dest=str(result.dest),
                files=result.files,
                replaced=result.replaced,
            )
        )
        return
    replaced = f", {len(result.replaced)} replaced" if result.replaced else ""
    terminal.say(f"extracted {len(result.files)} file(s) into {result.dest}{replaced}")
