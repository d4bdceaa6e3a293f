"""`repro inspect`: what a capsule holds, after the same checks as verify.

(Not `inspect.py`: no module here shares a standard library module's name.)
"""

from __future__ import annotations

from repro.cli.lazy import terminal
from repro.cli.options import AsJson, CapsuleFile


def inspect_command(capsule: CapsuleFile, as_json: AsJson = False) -> None:
    """Show what is inside: metadata, source, environment, data, runs, expected results."""
    from repro.verify import inspect_capsule

    report = inspect_capsule(capsule)
    if as_json:
        from repro.report.models import InspectOutput

        terminal.emit_json(InspectOutput.build(report))
    else:
        terminal.render_inspect(report)
