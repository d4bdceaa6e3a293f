"""Compressed 1 MiB blocks of earlier capsules, reused by the next capture of unchanged data.

The writer compresses the tar stream in fixed 1 MiB blocks, each deflated on its own but
primed with the last 32 KiB of the block before. So a block's compressed bytes are a
function of its own bytes and the previous block's, and both are known without reading any
file: a block holds parts of members whose bytes follow from their name, mode, size, link
and content sha256 (and the capsule's mtime). The key of a block is the sha256 of that
description for it and for the block before; an entry holds the block's compressed
bytes, its CRC-32 and its last 32 KiB (the dictionary of the next block when that one must
be compressed again). Every entry carries the sha256 of its body and is checked before use:
a damaged entry is removed and its block compressed again.

Entries live in `<cache>/blocks/store/` (one entry of `repro cache list`, removed by
`repro cache prune`), capped at REPRO_BLOCK_CACHE_MAX bytes (default 1 GiB: least recently
used first); REPRO_BLOCK_CACHE=0 turns the cache off.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import struct
import tempfile
from dataclasses import dataclass
from pathlib import Path

import isal

from repro.paths import cache_dir, mark_used

BLOCK_CACHE_ENV = "REPRO_BLOCK_CACHE"
BLOCK_CACHE_MAX_ENV = "REPRO_BLOCK_CACHE_MAX"
DEFAULT_MAX_BYTES = 1 << 30
MAGIC = b"repro-block-1\n"
_HEAD = struct.Struct("<II")  # crc32, length of the tail
COMPRESSOR_ID = f"isal-{isal.__version__}".encode()
"""Part of every key: another compressor version may deflate the same block differently."""


@dataclass(frozen=True)
class CachedBlock:
    compressed: bytes
    crc: int
    tail: bytes


class BlockCache:
    """Compressed blocks by key (hex sha256), in one folder, size-capped."""

    def __init__(self, root: Path, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.root = root
        self.max_bytes = max_bytes
        self.hits = 0
        self.stored = 0
        self.damaged = 0

    def _path(self, key: str) -> Path:
        return self.root / key

    def get_raw(self, key: str) -> bytes | None:
        """An entry's body, checked against the sha256 it carries; None when absent or
        damaged (a damaged one is removed)."""
        try:
            data = self._path(key).read_bytes()
        except OSError:
            return None
        body = data[len(MAGIC) + 32 :]
        if (
            not data.startswith(MAGIC)
            or hashlib.sha256(body).digest() != data[len(MAGIC) : len(MAGIC) + 32]
        ):
            self.damaged += 1
            self._path(key).unlink(missing_ok=True)
            return None
        return body

    def get(self, key: str) -> CachedBlock | None:
        """A block, checked (see get_raw)."""
        body = self.get_raw(key)
        if body is None or len(body) < _HEAD.size:
            return None
        crc, tail_len = _HEAD.unpack_from(body)
        start = _HEAD.size + tail_len
        if start > len(body):
            return None
        return CachedBlock(compressed=body[start:], crc=crc, tail=body[_HEAD.size : start])

    def empty(self) -> bool:
        """Nothing stored (or no store yet)."""
        try:
            with os.scandir(self.root) as listing:
                return next(listing, None) is None
        except OSError:
            return True

    def names(self) -> set[str]:
        """The keys stored (one listing; their entries are checked when read)."""
        try:
            return {e.name for e in os.scandir(self.root)}
        except OSError:
            return set()

    def touch(self, key: str) -> None:
        with contextlib.suppress(OSError):
            os.utime(self._path(key))

    def put(self, key: str, block: CachedBlock) -> None:
        self.put_raw(key, _HEAD.pack(block.crc, len(block.tail)) + block.tail + block.compressed)

    def put_raw(self, key: str, body: bytes) -> None:
        """Store an entry (atomically); a full disk or a read-only cache only loses it."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=self.root)
            try:
                with os.fdopen(fd, "wb") as out:
                    out.write(MAGIC + hashlib.sha256(body).digest() + body)
                Path(tmp).replace(self._path(key))
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
            self.stored += 1
        except OSError:
            pass

    def trim(self, keep: set[str]) -> None:
        """Remove the least recently used entries (never those in `keep`) until the store
        fits its cap."""
        try:
            listed = [(e.stat().st_mtime, e.stat().st_size, e) for e in os.scandir(self.root)]
        except OSError:
            return
        total = sum(size for _t, size, _e in listed)
        for _mtime, size, entry in sorted(listed, key=lambda t: t[0]):
            if total <= self.max_bytes:
                break
            if entry.name in keep:
                continue
            try:
                Path(entry.path).unlink()
            except OSError:
                continue
            total -= size


def default_block_cache() -> BlockCache | None:
    """The user's block cache, or None when REPRO_BLOCK_CACHE=0."""
    if os.environ.get(BLOCK_CACHE_ENV, "1").strip() in ("0", "off", "no", "false"):
        return None
    try:
        cap = int(os.environ.get(BLOCK_CACHE_MAX_ENV, DEFAULT_MAX_BYTES))
    except ValueError:
        cap = DEFAULT_MAX_BYTES
    mark_used("blocks", "store")  # `repro cache prune` leaves it alone while this runs
    return BlockCache(cache_dir() / "blocks" / "store", max_bytes=cap)
