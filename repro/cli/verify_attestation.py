"""`repro verify-attestation`: check signed replay attestations, offline, and summarise them."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from repro.cli.lazy import terminal
from repro.cli.options import AsJson
from repro.errors import ExitCode


def verify_attestation_command(
    attestations: Annotated[
        list[Path], typer.Argument(help="Attestation files (repro replay --attest).")
    ],
    capsule: Annotated[
        Path | None,
        typer.Option("--capsule", help="Exit 4 unless every attestation is about this capsule."),
    ] = None,
    require_trusted: Annotated[
        bool,
        typer.Option("--require-trusted", help="Exit 4 unless signed by a key you trust."),
    ] = False,
    badge: Annotated[
        Path | None,
        typer.Option("--badge", help="Write an SVG badge derived from the (first) attestation."),
    ] = None,
    as_json: AsJson = False,
) -> None:
    """Check replay attestations: signature, trust, subject; say who reproduced what, where.

    Exit 0 when every attestation verifies and says reproduced, 3 when one says not
    reproduced, 4 when one is invalid, tampered, about another capsule or (with
    --require-trusted) signed by an unknown key.
    """
    from repro.attestation.attest import write_attestation
    from repro.attestation.badge import badge_svg
    from repro.attestation.check import (
        match_capsule,
        read_attestation,
        summarise,
    )
    from repro.attestation.check import (
        require_trusted as enforce_trust,
    )
    from repro.report.attestation import (
        AttestationCheck,
        CapsuleAttestations,
        VerifyAttestationOutput,
    )
    from repro.verify import open_capsule

    checked = [read_attestation(path) for path in attestations]
    if require_trusted:
        for att in checked:
            enforce_trust(att)
    matches: list[bool | None] = [None] * len(checked)
    if capsule is not None:
        opened = open_capsule(capsule).capsule
        for i, att in enumerate(checked):
            matches[i] = match_capsule(
                att, opened.capsule_id, opened.archive_sha256
            ).archive_matches
            if not matches[i]:
                terminal.warn(
                    [
                        f"{att.source}: same capsule id, but another archive than {capsule} "
                        "(repacked?)"
                    ]
                )
    if badge is not None:
        write_attestation(badge_svg(checked[0]).encode(), badge)
    summaries = summarise(checked)
    reproduced = all(a.statement.reproduced for a in checked)
    if as_json:
        terminal.emit_json(
            VerifyAttestationOutput(
                ok=True,
                reproduced=reproduced,
                attestations=[
                    AttestationCheck.build(a, m) for a, m in zip(checked, matches, strict=True)
                ],
                capsules=[CapsuleAttestations.build(s) for s in summaries],
                badge=str(badge) if badge is not None else None,
            )
        )
    else:
        terminal.render_attestations(checked, summaries, badge)
    raise typer.Exit(ExitCode.OK if reproduced else ExitCode.NOT_REPRODUCED)
