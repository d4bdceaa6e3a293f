"""`repro restamp CAPSULE`: fix a capsule's metadata or sign it again, without re-running."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from repro.cli.lazy import terminal
from repro.cli.options import AsJson, CapsuleFile, SigningKey


def restamp_command(
    capsule: CapsuleFile,
    out: Annotated[
        Path | None,
        typer.Option("-o", "--out", help="Where to write the restamped capsule."),
    ] = None,
    in_place: Annotated[
        bool, typer.Option("--in-place", help="Replace the input capsule (atomically).")
    ] = False,
    title: Annotated[str | None, typer.Option("--title", help="New title.")] = None,
    authors: Annotated[
        list[str] | None,
        typer.Option(
            "--author",
            metavar="NAME",
            help="'Family, Given' (repeatable; replaces the author list).",
        ),
    ] = None,
    license_id: Annotated[
        str | None, typer.Option("--license", help="SPDX licence id (CC-BY-4.0).")
    ] = None,
    doi: Annotated[str | None, typer.Option("--doi", help="The capsule's own DOI.")] = None,
    related_doi: Annotated[
        str | None, typer.Option("--related-doi", help="DOI of the paper it supplements.")
    ] = None,
    description: Annotated[
        str | None, typer.Option("--description", help="New description.")
    ] = None,
    keywords: Annotated[
        list[str] | None,
        typer.Option("--keyword", metavar="WORD", help="Keyword (repeatable; replaces them)."),
    ] = None,
    key: SigningKey = None,
    sign: Annotated[
        bool,
        typer.Option("--sign/--no-sign", help="Sign the result (default: with your key)."),
    ] = True,
    as_json: AsJson = False,
) -> None:
    """Fix a capsule's metadata (title, authors, licence, DOI...) or sign it again.

    The payload is carried over byte for byte and nothing is re-run."""
    from repro.capsule.restamp import restamp_file
    from repro.cli.prompts import prompt_passphrase
    from repro.report.tools import RestampOutput
    from repro.sign import default_key_path, load_private_key

    metadata: dict[str, Any] = {
        name: value
        for name, value in {
            "title": title,
            "license": license_id,
            "doi": doi,
            "related_doi": related_doi,
            "description": description,
            "keywords": keywords,
            "authors": [{"name": a} for a in authors] if authors else None,
        }.items()
        if value is not None
    }
    key_path = key or (default_key_path() if sign else None)
    private = load_private_key(key_path, prompt_passphrase) if key_path and sign else None
    result = restamp_file(
        capsule, out, in_place=in_place, metadata=metadata, key=private, sign=sign
    )
    w = result.written
    if as_json:
        terminal.emit_json(
            RestampOutput(
                ok=True,
                capsule=str(w.path),
                capsule_id=w.capsule_id,
                previous_id=result.previous_id,
                sha256=w.sha256,
                signed=result.signed,
                changed=result.changed,
            )
        )
        return
    what = ", ".join(result.changed) or "nothing in the metadata"
    signed = "signed" if result.signed else "unsigned"
    terminal.say(f"wrote {w.path} ({signed}; changed: {what}); capsule id {w.capsule_id}")
