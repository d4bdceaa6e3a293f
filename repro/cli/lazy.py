"""Modules the command modules import lazily, so `repro --help` does not load rich or pydantic.

`from repro.cli.lazy import terminal` reads like the real import; the module is imported the
first time a command uses it (mypy sees the real module).
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import TYPE_CHECKING, Any


class LazyModule(ModuleType):
    """A stand-in that imports the named module on first attribute access."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self._target: ModuleType | None = None

    def __getattr__(self, attr: str) -> Any:
        if self._target is None:
            self._target = importlib.import_module(self.__name__)
        return getattr(self._target, attr)


if TYPE_CHECKING:
    from repro.report import live, terminal
else:
    terminal = LazyModule("repro.report.terminal")
    live = LazyModule("repro.report.live")

__all__ = ["live", "terminal"]
