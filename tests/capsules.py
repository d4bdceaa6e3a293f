"""Test helpers that take capsules apart and put them back together (possibly changed)."""

from __future__ import annotations

import io
import tarfile
from collections.abc import Callable
from pathlib import Path

from repro.capsule.writer import compress_stream

Members = list[tuple[tarfile.TarInfo, bytes]]


def members_of(capsule: Path) -> Members:
    out: Members = []
    with tarfile.open(capsule) as tar:
        for m in tar.getmembers():
            fh = tar.extractfile(m) if m.isfile() else None
            out.append((m, fh.read() if fh else b""))
    return out


def pack(members: Members) -> bytes:
    """Tar + gzip exactly as repro's writer does, so only the intended change differs."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            if info.isfile():
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            else:
                tar.addfile(info)
    return compress_stream(buf.getbuffer())


def rewrite(capsule: Path, dest: Path, mutate: Callable[[Members], None]) -> Path:
    members = members_of(capsule)
    mutate(members)
    dest.write_bytes(pack(members))
    return dest
