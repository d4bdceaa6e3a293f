"""`repro fetch`: download a published capsule from Zenodo and verify it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from repro.cli.lazy import terminal
from repro.cli.options import AsJson, VersionDoiOnly, ZenodoUrl


def fetch_command(
    reference: Annotated[
        str, typer.Argument(help="DOI (10.5281/zenodo.N, doi:..., https://doi.org/...) or URL.")
    ],
    out_dir: Annotated[
        Path, typer.Option("-o", "--out", help="Folder to put the capsule in.")
    ] = Path(),
    zenodo_url: ZenodoUrl = None,
    attestations: Annotated[
        bool,
        typer.Option(
            "--attestations",
            help="Also fetch the replay attestations linked to the record, verified.",
        ),
    ] = False,
    version_doi_only: VersionDoiOnly = False,
    as_json: AsJson = False,
) -> None:
    """Download a published capsule from Zenodo, check Zenodo's checksum and verify it."""
    from repro.publish import fetch_capsule
    from repro.report.models import FetchOutput

    with terminal.TransferBar(f"downloading {reference}", not as_json) as progress:
        result = fetch_capsule(
            reference,
            zenodo_url=zenodo_url,
            dest_dir=out_dir,
            progress=progress,
            version_only=version_doi_only,
            attestations=attestations,
        )
    terminal.warn(result.warnings)
    if result.report is None:  # fetch_capsule verifies unless told not to
        raise RuntimeError("fetch_capsule returned an unverified capsule")
    if as_json:
        terminal.emit_json(FetchOutput.build(result, result.report, attestations))
    else:
        terminal.render_fetch(result, result.report)
        if attestations:
            terminal.render_fetched_attestations(result)
