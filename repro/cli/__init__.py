"""The `repro` command line: one module per command, wired together in app.py.

Each command parses its options, calls one core function, renders the result (through
repro.report.terminal, or a repro.report.models model with --json) and lets app.py map a
ReproError to its exit code. The console script is `repro.__main__:main` (which answers
`--version` before importing typer), then `repro.cli:main`.
"""

from __future__ import annotations

from repro.cli.app import app, main

__all__ = ["app", "main"]
