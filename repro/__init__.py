"""repro: make a computational study reproducible in one signed, deterministic capsule."""

from __future__ import annotations

__version__ = "0.1.0"
FORMAT = "repro-capsule/1"
