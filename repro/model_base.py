"""The base every boundary model shares: the frozen `Model`, `Sha256`, `SweepValue`, literals.

Three contracts are built on it, each in its own module: what repro.toml says
(`repro.config.models`), the capsule manifest (`repro.capsule.manifest`, which embeds
config models) and the replay report (`repro.report.replay`, with the comparators'
verdicts from `repro.compare.verdict`). This module imports nothing of repro, so any of
them, and anything else, may import it.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, StrictStr

SHA256_PATTERN = r"^[0-9a-f]{64}$"
Sha256 = Annotated[str, Field(pattern=SHA256_PATTERN, description="Lower-case hex sha256.")]
SweepValue = StrictBool | StrictInt | StrictFloat | StrictStr


class Model(BaseModel):
    """Frozen, strict base: unknown keys are an error, parsed once at the edge."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)


CompareMethod = Literal["exact", "text", "numeric", "image"]
"""How an output is compared: a config's CompareRule chooses it, a verdict reports it."""


def safe_relative(path: str, what: str) -> str:
    """`path` when it is a plain relative POSIX path (no absolute, empty, . or .. parts)."""
    parts = path.split("/")
    if not path or path.startswith("/") or "\\" in path or any(p in ("", ".", "..") for p in parts):
        raise ValueError(f"{what} {path!r} must be a plain relative path inside the project")
    return path
