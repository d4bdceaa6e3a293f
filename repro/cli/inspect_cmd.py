"""`repro inspect`: what a capsule holds, after the same checks as verify.

(Not `inspect.py`: no module here shares a standard library module's name.)
"""

from __future__ import annotations

from typing import Annotated

import typer

from repro.cli.lazy import terminal
from repro.cli.options import AsJson, CapsuleFile


def inspect_command(
    capsule: CapsuleFile,
    files: Annotated[
        bool, typer.Option("--files", help="Also list every file: path, size, role, sha256.")
    ] = False,
    packages: Annotated[
        bool,
        typer.Option("--packages", help="Also list the locked packages: name, version, hashes."),
    ] = False,
    as_json: AsJson = False,
) -> None:
    """Show what is inside: metadata, source, environment, data, runs, expected results."""
    from repro.contents import file_rows, package_rows, read_contents

    contents = read_contents(capsule, lock=packages and not as_json)
    report = contents.report
    if as_json:
        from repro.report.models import InspectOutput

        terminal.emit_json(InspectOutput.build(report))
        return
    terminal.render_inspect(report)
    manifest = report.capsule.manifest
    if files:
        terminal.render_rows(
            f"files ({len(manifest.files)})",
            ("path", "size", "role", "sha256"),
            file_rows(manifest),
        )
    if packages:
        rows = package_rows(manifest, contents.lock_text)
        terminal.render_rows(
            f"locked packages ({len(rows)}, {manifest.environment.lock_source})",
            ("name", "version", "hashes", "from"),
            rows,
        )
