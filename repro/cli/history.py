"""`repro history`: the replays this machine made, from the append-only ledger."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from repro.cli.lazy import terminal
from repro.cli.options import AsJson


def history_command(
    capsule: Annotated[
        str | None,
        typer.Argument(help="Only this capsule: a capsule file, its id (prefix) or a DOI."),
    ] = None,
    as_json: AsJson = False,
) -> None:
    """List the replays recorded in the history ledger (newest last)."""
    from repro import history
    from repro.report.attestation import HistoryOutput

    capsule_id = None
    if capsule is not None and Path(capsule).is_file():
        from repro.verify import open_capsule

        capsule_id = open_capsule(Path(capsule)).capsule.capsule_id
    found = history.select(history.read(), capsule, capsule_id)
    if as_json:
        terminal.emit_json(HistoryOutput.build(found))
    else:
        terminal.render_history(found)
