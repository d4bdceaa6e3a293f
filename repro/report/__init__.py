"""Reports for people and scripts: the HTML replay page, terminal output, --json models.

The report models are `replay` (ReplayReport) and `diff` (CapsuleDiff); the other commands'
--json outputs are in `models`.

`write_html_report` is imported on first use: the CLI imports repro.report.terminal for
every command and should not pay for the HTML renderer's imports.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from repro.report.page import write_html_report

__all__ = ["write_html_report"]


def __getattr__(name: str) -> Any:
    if name == "write_html_report":
        from repro.report.page import write_html_report

        return write_html_report
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
