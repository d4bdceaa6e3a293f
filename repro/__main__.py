"""`python -m repro`: the same entry point as the `repro` console script."""

from __future__ import annotations

from repro.cli import main

main()
