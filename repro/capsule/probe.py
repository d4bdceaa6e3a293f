"""Whether a file is a repro capsule, by its name or its first bytes (nothing verified)."""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

from repro.capsule.layout import MANIFEST_NAME

CAPSULE_SUFFIX = ".capsule.tgz"
GZIP_MAGIC = b"\x1f\x8b"
TAR_BLOCK = 512


def looks_like_capsule(path: Path) -> bool:
    """A gzip-compressed tar whose first member is repro's manifest (repro.json): what every
    capsule starts with. Reads at most one compressed block; never raises on a bad file."""
    try:
        with path.open("rb") as raw:
            if raw.read(2) != GZIP_MAGIC:
                return False
            raw.seek(0)
            with gzip.GzipFile(fileobj=raw) as unzipped:
                header = unzipped.read(TAR_BLOCK)
    except (OSError, EOFError, zlib.error):
        return False
    name = header[:100].split(b"\0", 1)[0]
    return len(header) == TAR_BLOCK and name == MANIFEST_NAME.encode()


GZIP_SUFFIXES = (".tgz", ".gz", ".taz")
"""Names whose content is looked at: opening every file of a 300,000-file study to find
capsules would cost more than the listing itself."""


def is_capsule(rel: str, path: Path) -> bool:
    """A project file that is a capsule: named *.capsule.tgz, or a gzip file (*.tgz, *.gz)
    that is one by its content."""
    if rel.endswith(CAPSULE_SUFFIX):
        return True
    return rel.endswith(GZIP_SUFFIXES) and looks_like_capsule(path)
