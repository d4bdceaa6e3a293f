"""Write a file atomically: a temporary file in the destination's folder, fsynced, then a
rename; nothing half-written is ever left at the destination or beside it."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from repro.errors import OutputWriteError


def write_atomically(dest: Path, data: bytes, what: str) -> None:
    """`data` at `dest` (mode 0644); OutputWriteError naming `what` when it cannot be."""
    tmp: Path | None = None
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
        tmp = Path(name)
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        tmp.chmod(0o644)
        tmp.replace(dest)
    except OSError as exc:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
        raise OutputWriteError(f"cannot write {what} {dest}: {exc.strerror or exc}") from None
    except BaseException:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
        raise
