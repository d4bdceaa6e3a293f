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
    as_json: AsJson = False,
) -> None:
    """What changed between two capsules: code, data, dependencies, runs, results."""
    from repro.diff import diff_capsules

    result = diff_capsules(capsule_a, capsule_b)
    if as_json:
        terminal.emit_json(result)
    else:
        terminal.render_diff(result, capsule_a, capsule_b)
