"""Reports for people: what `repro replay` found, rendered as one self-contained HTML page."""

from __future__ import annotations

from repro.report.page import write_html_report

__all__ = ["write_html_report"]
