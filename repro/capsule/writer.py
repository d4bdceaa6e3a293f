"""Write a capsule: a deterministic .tgz, written to a temporary file and renamed into place."""

from __future__ import annotations

import errno
import hashlib
import io
import os
import struct
import tarfile
import tempfile
import threading
from array import array
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from isal import isal_zlib

from repro.capsule.blockcache import COMPRESSOR_ID, BlockCache, CachedBlock
from repro.capsule.layout import MANIFEST_NAME, SIGNATURE_NAME, member_order, tag_files
from repro.capsule.manifest import Manifest
from repro.capsule.tarheader import END_OF_ARCHIVE, member_header, padding
from repro.errors import FileChangedError, OutputWriteError
from repro.progress import meter

COMPRESS_LEVEL = 1
BLOCK = 1 << 20
WINDOW = 32 * 1024
"""Deflate's window: each block is primed with the last WINDOW bytes of the one before."""
GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\xff\x00"
"""What python-isal's threaded writer emits: no flags, mtime 0, XFL 255, OS 0."""
KEY_PREFIX = b"repro-block-1|%s|%d|%d|" % (COMPRESSOR_ID, COMPRESS_LEVEL, BLOCK)
ZEROS = memoryview(bytes(BLOCK))


@dataclass(frozen=True)
class Source:
    """Where a payload file's bytes come from, and the stat they were hashed at."""

    path: Path
    size: int
    mtime_ns: int | None = None
    ctime_ns: int | None = None


@dataclass(frozen=True)
class WrittenCapsule:
    path: Path
    size: int
    sha256: str
    capsule_id: str


class _HashingWriter(io.RawIOBase):
    """Passes bytes to a file while hashing them: the archive's own sha256 for free."""

    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw
        self.digest = hashlib.sha256()
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        self.digest.update(data)
        self.size += len(data)
        return self._raw.write(data)


class _CacheLost(Exception):
    """A cached block checked good when planned was gone or damaged when used."""


def _compressor() -> Any:
    return isal_zlib._ParallelCompress(
        buffersize=BLOCK + max(BLOCK // 10, 500), level=COMPRESS_LEVEL
    )


class _Blocks:
    """The gzip member python-isal's threaded writer makes of the tar stream, byte for byte:
    its header, each 1 MiB block deflated on its own (primed with the last 32 KiB of the
    block before, ended by a sync flush), an empty final block, CRC-32 and size. A block the
    cache holds is copied from it; the others are compressed on `threads` threads (and
    stored for the next capture)."""

    def __init__(
        self, out: BinaryIO, threads: int, cache: BlockCache | None, hits: set[int]
    ) -> None:
        self._out = out
        self._threads = max(1, threads)
        self._cache = cache
        self._hits = hits
        self._pool: ThreadPoolExecutor | None = None
        self._local = threading.local()
        self._pending: deque[tuple[str, Future[tuple[bytes, int]], int, bytes, bool]] = deque()
        self._prev_tail = b""
        self._crc = 0
        self._size = 0
        out.write(GZIP_HEADER)

    def _compress(self, data: bytes, zdict: bytes) -> tuple[bytes, int]:
        compressor = getattr(self._local, "compressor", None)
        if compressor is None:
            compressor = self._local.compressor = _compressor()
        compressed, crc = compressor.compress_and_crc(data, zdict)
        return bytes(compressed), int(crc)

    def block(self, index: int, key: str, data: bytearray, length: int) -> None:
        """Block `index` (`length` bytes of the stream); `data` holds them unless it is a hit."""
        future: Future[tuple[bytes, int]]
        if index in self._hits and self._cache is not None:
            cached = self._cache.get(key)
            if cached is None:
                raise _CacheLost
            self._cache.touch(key)
            future = Future()
            future.set_result((cached.compressed, cached.crc))
            tail, store = cached.tail, False
        else:
            if len(data) != length:  # a skipped member in a block to compress: a bug
                raise RuntimeError(f"block {index} is incomplete ({len(data)} of {length})")
            block = bytes(data)
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self._threads, thread_name_prefix="deflate")
            future = self._pool.submit(self._compress, block, self._prev_tail[-WINDOW:])
            tail, store = block[-WINDOW:], self._cache is not None
        self._prev_tail = tail
        self._pending.append((key, future, length, tail, store))
        while len(self._pending) > 2 * self._threads:
            self._write_one()

    def _write_one(self) -> None:
        key, future, length, tail, store = self._pending.popleft()
        compressed, crc = future.result()
        self._out.write(compressed)
        self._crc = isal_zlib.crc32_combine(self._crc, crc, length)
        self._size += length
        if store and self._cache is not None:
            self._cache.put(key, CachedBlock(compressed=compressed, crc=crc, tail=tail))

    def finish(self) -> None:
        while self._pending:
            self._write_one()
        self._out.write(isal_zlib.compress(b"", wbits=-15))
        self._out.write(struct.pack("<II", self._crc, self._size & 0xFFFFFFFF))

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)


class _Members:
    """The tar stream: each member's header, content and zero padding, cut into 1 MiB blocks.
    The headers are tarfile's PAX format byte for byte (`member_header`), without a TarInfo
    per file nor tarfile's list of every member.

    Each block is also described (a sha256 over its headers and padding, and over the
    sha256, offset and length of each file slice in it) and keyed by its description and
    the previous block's, which fixes its compressed bytes. With no `sink` this only plans:
    it lists the keys, reading no file. Writing, a file whose blocks are all in `hits` is
    not read at all (its bytes there are a placeholder: the cached block replaces them)."""

    def __init__(
        self,
        mtime: int,
        sink: _Blocks | None = None,
        hits: set[int] | None = None,
        plan: _Plan | None = None,
        describe: bool | None = None,
    ) -> None:
        self._mtime = mtime
        self._sink = sink
        self._describe = sink is None if describe is None else describe
        self._hits = hits or set()
        self._plan = plan
        self._buf = bytearray()
        self._fill = 0
        self._desc = hashlib.sha256()
        self._prev = b""
        self._run: tuple[str, int, int] | None = None
        self.keys: list[str] = []
        self.starts = array("q")
        """Planning: where each member begins in the stream (then where the end begins)."""
        self.offset = 0
        self._member = 0

    def begin(self) -> bool:
        """Before each member: True when it is to be skipped, every block it lies in coming
        from the cache (known from the plan, so not even its header is made)."""
        index = self._member
        self._member += 1
        if self._describe:
            self.starts.append(self.offset)
        if self._sink is None or self._plan is None or not self._hits:
            return False
        start, end = self._plan.starts[index], self._plan.starts[index + 1]
        first, last = start // BLOCK, (end - 1) // BLOCK
        if end == start or not (
            first in self._hits
            if first == last
            else all(b in self._hits for b in range(first, last + 1))
        ):
            return False
        n = end - start
        if self._fill + n < BLOCK:  # the usual case: inside the block
            self._fill += n
            self.offset += n
            return True
        # Skip it: its bytes lie only in blocks the cache replaces.
        n = end - start
        while n:
            step = min(n, BLOCK - self._fill)
            self._fill += step
            self.offset += step
            n -= step
            if self._fill == BLOCK:
                self._end_block()
        return True

    def _flush_run(self) -> None:
        """Describe the run of one file's bytes just put (however they were cut)."""
        if self._run is not None:
            ref, at, n = self._run
            self._desc.update(b"F%s:%d:%d:" % (ref.encode(), at, n))
            self._run = None

    def _end_block(self) -> None:
        index = len(self.keys)
        if self._describe:
            self._flush_run()
            digest = self._desc.digest()
            key = hashlib.sha256(KEY_PREFIX + self._prev + digest).hexdigest()
            self._prev = digest
            self._desc = hashlib.sha256()
        else:
            key = self._plan.keys[index] if self._plan is not None else ""
        if self._sink is not None:
            self._sink.block(index, key, self._buf, self._fill)
            self._buf = bytearray()
        self.keys.append(key)
        self._fill = 0

    def _put(
        self, data: bytes | bytearray | memoryview, ref: str | None = None, at: int = 0
    ) -> None:
        """Bytes of the stream; for a file's content, `ref` is its sha256 and `at` the
        offset of `data` in it."""
        view = memoryview(data)
        pos = 0
        writing, describe = self._sink is not None, self._describe
        while pos < len(view):
            piece = view[pos : pos + BLOCK - self._fill]
            if writing:
                self._buf += piece
            if not describe:
                pass
            elif ref is None:
                self._flush_run()
                self._desc.update(b"B%d:" % len(piece))
                self._desc.update(piece)
            elif self._run is not None and self._run[0] == ref and sum(self._run[1:]) == at + pos:
                self._run = (ref, self._run[1], self._run[2] + len(piece))
            else:
                self._flush_run()
                self._run = (ref, at + pos, len(piece))
            self._fill += len(piece)
            pos += len(piece)
            if self._fill == BLOCK:
                self._end_block()
        self.offset += len(view)

    def _put_unread(self, size: int, ref: str) -> None:
        at = 0
        while at < size:
            n = min(size - at, BLOCK)
            self._put(ZEROS[:n], ref, at)
            at += n

    def add_bytes(self, name: str, data: bytes, mode: int) -> None:
        self._put(member_header(name, len(data), mode, self._mtime))
        self._put(data)
        self._put(padding(len(data)))

    def add_link(self, name: str, target: str) -> None:
        self._put(member_header(name, 0, 0o777, self._mtime, target))

    def add_file(
        self, name: str, mode: int, source: Source, sha256: str, buffer: bytearray
    ) -> None:
        """A file from disk, refused if it is not the one hashed: another size, mtime or ctime
        when opened, or other bytes (or byte count) when read. Not opened when every block
        it lies in comes from the cache (or when only planning)."""
        size = source.size
        self._put(member_header(name, size, mode, self._mtime))
        first, last = self.offset // BLOCK, (self.offset + size - 1) // BLOCK
        if self._sink is None or all(b in self._hits for b in range(first, last + 1)):
            self._put_unread(size, sha256)
        else:
            self._read_file(source, sha256, buffer)
        self._put(padding(size))

    def _read_file(self, source: Source, sha256: str, buffer: bytearray) -> None:
        try:
            fd = os.open(source.path, os.O_RDONLY)
        except FileNotFoundError:
            raise FileChangedError(
                f"file vanished during capture: {source.path}", path=source.path
            ) from None
        try:
            st = os.fstat(fd)
            if (
                st.st_size != source.size
                or (source.mtime_ns is not None and st.st_mtime_ns != source.mtime_ns)
                or (source.ctime_ns is not None and st.st_ctime_ns != source.ctime_ns)
            ):
                raise _changed(source.path)
            size = source.size
            if size <= BLOCK:
                data = os.read(fd, size)
                while len(data) < size and (more := os.read(fd, size - len(data))):
                    data += more
                if len(data) != size or hashlib.sha256(data).hexdigest() != sha256:
                    raise _changed(source.path)
                self._put(data, sha256)
            else:
                digest = hashlib.sha256()
                view = memoryview(buffer)
                at = 0
                while at < size:
                    n = os.readv(fd, [view[: min(size - at, len(buffer))]])
                    if not n:
                        raise _changed(source.path)  # shrank while it was read
                    digest.update(view[:n])
                    self._put(view[:n], sha256, at)
                    at += n
                # Rewritten in place after the check above (same size), or hashed wrong
                # earlier (a stale stat-cache entry): the archive would not verify.
                if digest.hexdigest() != sha256:
                    raise _changed(source.path)
        finally:
            os.close(fd)

    def close(self) -> None:
        """End of archive: two zero blocks, then zeros to a whole record, as tarfile does;
        the last (short) block."""
        if self._describe:
            self.starts.append(self.offset)
        self._put(END_OF_ARCHIVE)
        self._put(b"\0" * (-self.offset % tarfile.RECORDSIZE))
        if self._fill:
            self._end_block()


@dataclass(frozen=True)
class _Plan:
    keys: list[str]
    """Each block's key."""
    starts: array[int]
    """Where each member begins in the tar stream, then where the end of archive does."""


def _load_plan(cache: BlockCache, key: str, members: int) -> _Plan | None:
    body = cache.get_raw(key)
    if body is None or len(body) < 8:
        return None
    (count,) = struct.unpack_from("<Q", body)
    tail = body[8 + 32 * count :]
    if len(body) < 8 + 32 * count or len(tail) != 8 * (members + 1):
        return None
    starts = array("q")
    starts.frombytes(tail)
    keys = [body[8 + 32 * i : 8 + 32 * (i + 1)].hex() for i in range(count)]
    cache.touch(key)
    return _Plan(keys, starts)


def _store_plan(cache: BlockCache, key: str, plan: _Plan) -> None:
    body = struct.pack("<Q", len(plan.keys)) + b"".join(bytes.fromhex(k) for k in plan.keys)
    cache.put_raw(key, body + plan.starts.tobytes())


def _changed(path: Path) -> FileChangedError:
    return FileChangedError(f"{path} changed while it was captured", path=path)


def _write_error(exc: OSError, dest: Path) -> OutputWriteError:
    """A machine fault writing the capsule (full disk, read-only or forbidden folder), as one
    line naming the destination."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return OutputWriteError(
            f"no space left writing {dest}", hint="free some space, or write it elsewhere (-o)"
        )
    if exc.errno == errno.EROFS:
        return OutputWriteError(
            f"cannot write {dest}: the folder is on a read-only file system",
            hint="write it elsewhere (-o)",
        )
    if exc.errno in (errno.EACCES, errno.EPERM):
        return OutputWriteError(
            f"cannot write {dest}: permission denied", hint="write it elsewhere (-o)"
        )
    return OutputWriteError(f"cannot write {dest}: {exc.strerror or exc}")


def write_capsule(
    dest: Path,
    manifest: Manifest,
    sources: dict[str, Source | bytes],
    *,
    signature: bytes | None = None,
    mtime: int,
    threads: int = 2,
    progress: Callable[[int], None] | None = None,
    cache: BlockCache | None = None,
) -> WrittenCapsule:
    """Write every member in the layout's one order; the destination appears only when done.

    Same manifest, same sources, same mtime -> same bytes: owners, modes and times are fixed,
    the gzip header carries no time or name, and the tar stream is compressed in fixed 1 MiB
    blocks (each primed with the previous), whatever the members. With a `cache`, blocks an
    earlier capsule had are copied from it (their files are not read) and the others are
    stored in it: the bytes are the same either way.
    """
    manifest_bytes = manifest.canonical_json()
    tags = tag_files(manifest, manifest_bytes)
    entries = {f.path: f for f in manifest.files}
    order = member_order(manifest, signature is not None)
    dest = dest.absolute()
    if not dest.parent.is_dir():
        raise OutputWriteError(f"output folder does not exist: {dest.parent}")
    if dest.is_dir():
        raise OutputWriteError(
            f"the capsule file would replace a folder: {dest}",
            hint="give a file name, e.g. -o study.capsule.tgz",
        )

    def members(out: _Members, buffer: bytearray, shown: Callable[[], None] | None) -> None:
        for name in order:
            if shown:
                shown()
            if out.begin():
                entry = entries.get(name)
                if progress and shown and entry is not None and entry.link is None:
                    progress(entry.size)
                continue
            if name == MANIFEST_NAME:
                data = manifest_bytes
            elif name == SIGNATURE_NAME:
                data = signature or b""
            elif name in tags:
                data = tags[name]
            else:
                entry = entries[name]
                if entry.link is not None:
                    out.add_link(name, entry.link)
                    continue
                src = sources[name]
                if isinstance(src, Source):
                    out.add_file(name, entry.mode, src, entry.sha256, buffer)
                    if progress and shown:
                        progress(entry.size)
                    continue
                data = src
            mode = entries[name].mode if name in entries else 0o644
            out.add_bytes(name, data, mode)
        out.close()

    hits: set[int] = set()
    keys: list[str] = []
    plan = None
    plan_key = ""
    if cache is not None:
        # The plan is a function of the manifest, the signature and the mtime: kept too.
        plan_key = (
            hashlib.sha256(
                KEY_PREFIX
                + b"plan|%d|" % mtime
                + (hashlib.sha256(signature).digest() if signature is not None else b"")
                + b"|"
                + hashlib.sha256(manifest_bytes).digest()
            ).hexdigest()
            + ".plan"
        )
        plan = _load_plan(cache, plan_key, len(order))
        if plan is None and cache.empty():
            pass  # nothing to reuse: the writing pass describes the blocks itself
        elif plan is None:
            planned = _Members(mtime)
            members(planned, bytearray(), None)
            plan = _Plan(planned.keys, planned.starts)
            _store_plan(cache, plan_key, plan)
        if plan is not None:
            keys = [*plan.keys, plan_key]
            # Checked here (and again when copied): a damaged entry is removed, its block
            # redone.
            hits = {i for i, key in enumerate(plan.keys) if cache.get(key) is not None}
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".repro-tmp-{dest.name}.", dir=dest.parent)
    except OSError as exc:
        raise _write_error(exc, dest) from None
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as raw:
            while True:
                hashing = _HashingWriter(raw)
                blocks = _Blocks(hashing, threads, cache, hits)  # type: ignore[arg-type]
                try:
                    describe = cache is not None and plan is None
                    stream = _Members(mtime, blocks, hits, plan, describe)
                    with meter("writing", total=len(order)) as shown:
                        members(stream, bytearray(BLOCK), shown.advance)
                    blocks.finish()
                    if cache is not None and describe:
                        _store_plan(cache, plan_key, _Plan(stream.keys, stream.starts))
                        keys = [*stream.keys, plan_key]
                    break
                except _CacheLost:
                    # An entry went between planning and copying: write it all afresh.
                    raw.seek(0)
                    raw.truncate()
                    hits = set()
                finally:
                    blocks.close()
            raw.flush()
            os.fsync(raw.fileno())
        tmp.chmod(0o644)
        tmp.replace(dest)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise _write_error(exc, dest) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if cache is not None:
        cache.hits += len(hits)
        cache.trim(set(keys))
    return WrittenCapsule(
        path=dest,
        size=hashing.size,
        sha256=hashing.digest.hexdigest(),
        capsule_id=hashlib.sha256(manifest_bytes).hexdigest(),
    )
