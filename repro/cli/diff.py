"""`repro diff`: what changed between two capsules."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from repro.cli.lazy import terminal
from repro.cli.options import AsJson


def diff_command(
    capsule_a: Annotated[Path, typer.Argument(help="The earlier capsule.")],
    capsule_b: Annotated[Path, typer.Argument(help="The later capsule.")],
    report: Annotated[
        Path | None,
        typer.Option(
            "--report",
            metavar="FILE.html",
            help="Also write an HTML page: text diffs, figures side by side with their difference.",
        ),
    ] = None,
    patch: Annotated[
        bool,
        typer.Option("--patch/--no-patch", help="Show the unified diff of changed text files."),
    ] = True,
    as_json: AsJson = False,
) -> None:
    """What changed between two capsules: code, data, dependencies, runs, results."""
    from repro.diff import diff_capsules

    result = diff_capsules(capsule_a, capsule_b, report_html=report)
    if as_json:
        terminal.emit_json(result)
        return
    terminal.render_diff(result, capsule_a, capsule_b)
    if patch:
        for entry in result.entries:
            if entry.unified:
                terminal.render_unified(entry.unified)
    if report is not None:
        terminal.say(f"report: {report}")
