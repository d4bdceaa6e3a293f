"""repro: make a computational study reproducible in one signed, deterministic capsule."""

from __future__ import annotations

from typing import Final

__version__ = "0.1.0"
FORMAT: Final = "repro-capsule/1"
