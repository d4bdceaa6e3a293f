"""`repro init`: write repro.toml from what the project has."""

from __future__ import annotations

from pathlib import Path

from repro.cli.options import AsJson, ProjectDir
from repro.report import terminal


def init_command(directory: ProjectDir = Path(), as_json: AsJson = False) -> None:
    """Write repro.toml from what the project has (never overwrites one)."""
    from repro.init import init_project
    from repro.report.models import InitOutput

    target, found = init_project(directory)
    if as_json:
        terminal.emit_json(InitOutput.build(str(target), found))
    else:
        terminal.render_init(target, found)
