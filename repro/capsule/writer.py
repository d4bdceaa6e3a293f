"""Write a capsule: a deterministic .tgz, written to a temporary file and renamed into place.

The tar stream (tarfile's PAX format, headers from `member_header`) is compressed in fixed
1 MiB blocks: each block is deflated on its own, primed with the last 32 KiB of the block
before (deflate's dictionary) and ended by a sync flush; one gzip member holds them all,
its CRC-32 combined from the blocks'. That is the format python-isal's threaded writer
makes, byte for byte, built here from python-isal's public `compressobj`, `crc32` and
`crc32_combine`.

Because every member's place in the stream is known from the manifest (a header's length
from its name, the content's from the manifest's size), each block's bytes are a function
of the manifest and the files in it: blocks are built and compressed independently — by
two forked worker processes for studies of many files (the per-file work: header, open,
fstat check, read, sha256 check, is Python's), written in order by this process. A block an
earlier capsule had (same description, see blockcache.py) is copied from the block cache
without opening its files. Files bigger than a block are read here, whole and in order, so
that each is checked against its sha256 as one read.
"""

from __future__ import annotations

import errno
import hashlib
import os
import struct
import tarfile
import tempfile
import threading
from array import array
from bisect import bisect_right
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import BrokenExecutor, Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, NoReturn

from isal import isal_zlib

from repro.capsule.blockcache import COMPRESSOR_ID, BlockCache, CachedBlock
from repro.capsule.layout import (
    MANIFEST_NAME,
    SIGNATURE_NAME,
    TAG_FILES,
    member_order,
    tag_files,
)
from repro.capsule.manifest import Manifest
from repro.capsule.tarheader import is_plain, member_header
from repro.errors import FileChangedError, OutputWriteError, WorkerDiedError
from repro.forking import forking, quiet_worker, worker_died
from repro.progress import meter

COMPRESS_LEVEL = 1
BLOCK = 1 << 20
WINDOW = 32 * 1024
"""Deflate's window: each block is primed with the last WINDOW bytes of the one before."""
GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\xff\x00"
"""What python-isal's threaded writer emits: no flags, mtime 0, XFL 255, OS 0."""
EMPTY_FINAL_BLOCK = isal_zlib.compress(b"", wbits=-15)
"""A final, empty, fixed-Huffman deflate block: what closes the stream."""
TAR_FORMAT_ID = b"pax-1"
"""Part of every block key: the header bytes `member_header` makes (bump if they change)."""
KEY_PREFIX = b"repro-block-2|%s|%s|%d|%d|" % (COMPRESSOR_ID, TAR_FORMAT_ID, COMPRESS_LEVEL, BLOCK)
LARGE = BLOCK
"""Files bigger than this are read by the writing process itself, whole and in order."""
TASK_BLOCKS = 4
"""Blocks per task given to a worker process."""
POOL_MIN_BLOCKS = 8
"""Fewer blocks to build than this: no worker processes (their start-up would cost more)."""
_RECORD = tarfile.RECORDSIZE


@dataclass(frozen=True)
class Source:
    """Where a payload file's bytes come from, and the stat they were hashed at."""

    path: Path | str
    """A str for project files (capture builds no Path per file: 300 bytes and ~5 us each)."""
    size: int
    mtime_ns: int | None = None
    ctime_ns: int | None = None


Src = Source | bytes | None
"""Where a member's content comes from: a file, bytes, or nothing (a link)."""


@dataclass(frozen=True)
class WrittenCapsule:
    path: Path
    size: int
    sha256: str
    capsule_id: str


class _CacheLost(Exception):
    """A cached block found when planned was gone or damaged when used."""


def _header_len(name: str, size: int, mode: int, mtime: int, link: str | None) -> int:
    """len(member_header(...)), without making it in the common case (its fast path)."""
    if is_plain(name, size, mode, mtime, link or ""):
        return tarfile.BLOCKSIZE
    return len(member_header(name, size, mode, mtime, link))


_PADS = [bytes(n) for n in range(tarfile.BLOCKSIZE)]


class _FileHeaders:
    """`member_header` of a regular file, faster in the common case (an ASCII name of at most
    100 bytes): the fields that are the same for every member, and their share of the
    checksum, made once. Byte for byte member_header's (tested)."""

    def __init__(self, mtime: int) -> None:
        self.mtime = mtime
        self._fast = 0 <= mtime < 8**11
        self._mtime = b"%011o\0" % mtime if self._fast else b""
        self._ids = b"0000000\0" * 2  # uid, gid
        self._tail = (
            tarfile.REGTYPE + bytes(100) + b"ustar\x0000" + bytes(32 + 32 + 8 + 8 + 155 + 12)
        )
        self._base = sum(self._ids) + sum(self._mtime) + sum(b" " * 8) + sum(self._tail)
        self._modes: dict[int, tuple[bytes, int]] = {}

    def __call__(self, name: str, size: int, mode: int) -> bytes:
        if not (
            self._fast
            and name.isascii()
            and len(name) <= tarfile.LENGTH_NAME
            and 0 <= size < 8**11
            and 0 <= mode < 8**7
        ):
            return member_header(name, size, mode, self.mtime)
        field = self._modes.get(mode)
        if field is None:
            mode_bytes = b"%07o\0" % mode
            field = self._modes[mode] = (mode_bytes, sum(mode_bytes))
        encoded = name.encode("ascii")
        size_bytes = b"%011o\0" % size
        checksum = self._base + field[1] + sum(encoded) + sum(size_bytes)
        return b"".join(
            (
                encoded.ljust(100, b"\0"),
                field[0],
                self._ids,
                size_bytes,
                self._mtime,
                b"%06o\0 " % checksum,
                self._tail,
            )
        )


def deflate_block(data: bytes | bytearray | memoryview, zdict: bytes) -> bytes:
    """One block of the gzip member: raw deflate primed with `zdict`, ended by a sync flush."""
    if zdict:
        compressor = isal_zlib.compressobj(COMPRESS_LEVEL, isal_zlib.DEFLATED, -15, zdict=zdict)
    else:
        compressor = isal_zlib.compressobj(COMPRESS_LEVEL, isal_zlib.DEFLATED, -15)
    return bytes(compressor.compress(data) + compressor.flush(isal_zlib.Z_SYNC_FLUSH))


def compress_stream(stream: bytes | bytearray | memoryview) -> bytes:
    """A whole tar stream as the writer compresses it: one gzip member of 1 MiB blocks."""
    view = memoryview(stream)
    out = bytearray(GZIP_HEADER)
    crc, prev = 0, b""
    for at in range(0, len(view), BLOCK):
        block = view[at : at + BLOCK]
        out += deflate_block(block, prev)
        crc = isal_zlib.crc32_combine(crc, isal_zlib.crc32(block), len(block))
        prev = bytes(block[-WINDOW:])
    out += EMPTY_FINAL_BLOCK + struct.pack("<II", crc, len(view) & 0xFFFFFFFF)
    return bytes(out)


Built = tuple[bytes, int, bytes]
"""A block made: its compressed bytes, its CRC-32, its last WINDOW bytes."""


def _build(data: bytes | bytearray | memoryview, zdict: bytes) -> Built:
    return deflate_block(data, zdict), isal_zlib.crc32(data), bytes(data[-WINDOW:])


@dataclass
class _Job:
    """The tar stream, planned: each member's content source and place. Set before the
    worker processes are forked, so they inherit it."""

    names: list[str]
    modes: list[int]
    sizes: list[int]
    shas: list[str]
    links: list[str | None]
    srcs: list[Src]
    starts: array[int]
    """Where each member begins in the stream, then where the end of archive does."""
    mtime: int
    total: int
    large: list[tuple[int, int]]
    """The stream ranges of the content of files bigger than LARGE (sorted)."""

    def member(self, i: int) -> bytes:
        """Member `i`'s bytes (header, content, padding); a file is checked as it is read.
        Not for files bigger than LARGE (see `pieces`)."""
        size, link, src = self.sizes[i], self.links[i], self.srcs[i]
        header = member_header(self.names[i], size, self.modes[i], self.mtime, link)
        if link is not None:
            return header
        data = _read_small(src, self.shas[i]) if isinstance(src, Source) else (src or b"")
        return header + data + bytes(-size % tarfile.BLOCKSIZE)

    def member_at(self, offset: int) -> int:
        return bisect_right(self.starts, offset) - 1

    def pieces(self, lo: int, hi: int, buffer: bytearray) -> Iterator[bytes | memoryview]:
        """The stream's bytes in [lo, hi), in order; files bigger than LARGE read in pieces
        (and checked against their sha256 when their last piece is read)."""
        i = max(0, self.member_at(lo))
        n = len(self.names)
        end = self.starts[n]
        while i < n and self.starts[i] < hi:
            s = self.starts[i]
            src = self.srcs[i]
            if isinstance(src, Source) and self.sizes[i] > LARGE:
                yield from _clip(self._large(i, src, buffer), s, lo, hi)
            else:
                yield from _clip(iter((self.member(i),)), s, lo, hi)
            i += 1
        if hi > end:  # end of archive: zeros (two blocks, then to a whole record)
            yield bytes(min(hi, self.total) - max(lo, end))

    def _large(self, i: int, src: Source, buffer: bytearray) -> Iterator[bytes | memoryview]:
        size = self.sizes[i]
        yield member_header(self.names[i], size, self.modes[i], self.mtime, None)
        fd = _open_checked(src)
        try:
            digest = hashlib.sha256()
            view = memoryview(buffer)
            at = 0
            while at < size:
                n = os.readv(fd, [view[: min(size - at, len(buffer))]])
                if not n:
                    raise _changed(src.path)  # shrank while it was read
                digest.update(view[:n])
                yield view[:n]
                at += n
            # Rewritten in place after the check above (same size), or hashed wrong
            # earlier (a stale stat-cache entry): the archive would not verify.
            if digest.hexdigest() != self.shas[i]:
                raise _changed(src.path)
        finally:
            os.close(fd)
        yield bytes(-size % tarfile.BLOCKSIZE)

    def raw(self, lo: int, hi: int) -> bytearray:
        """The stream's bytes in [lo, hi), none of them from a file bigger than LARGE."""
        out = bytearray()
        i = max(0, self.member_at(lo))
        first = self.starts[i] if i < len(self.names) else lo
        n = len(self.names)
        starts, srcs, sizes, names, modes, shas = (
            self.starts,
            self.srcs,
            self.sizes,
            self.names,
            self.modes,
            self.shas,
        )
        header = _FileHeaders(self.mtime)
        while i < n and starts[i] < hi:
            src = srcs[i]
            if type(src) is Source:
                size = sizes[i]
                out += header(names[i], size, modes[i])
                if size > LARGE:
                    break  # its content is never in a worker's range: only its header can be
                out += _read_small(src, shas[i])
                out += _PADS[-size % tarfile.BLOCKSIZE]
            else:
                out += self.member(i)
            i += 1
        if hi > self.starts[n]:
            out += bytes(min(hi, self.total) - max(lo, self.starts[n], first))
        return out[lo - first : hi - first]


def _clip(
    parts: Iterator[bytes | memoryview], start: int, lo: int, hi: int
) -> Iterator[bytes | memoryview]:
    """The parts of a member beginning at `start`, cut to the stream range [lo, hi)."""
    at = start
    for part in parts:
        n = len(part)
        if at + n > lo and at < hi:
            yield part[max(0, lo - at) : min(n, hi - at)]
        at += n


def _open_checked(source: Source) -> int:
    """The file opened, refused if it is not the one hashed (another size, mtime or ctime)."""
    try:
        fd = os.open(source.path, os.O_RDONLY)
    except FileNotFoundError:
        raise FileChangedError(
            f"file vanished during capture: {source.path}", path=source.path
        ) from None
    try:
        st = os.fstat(fd)
    except BaseException:
        os.close(fd)
        raise
    if (
        st.st_size != source.size
        or (source.mtime_ns is not None and st.st_mtime_ns != source.mtime_ns)
        or (source.ctime_ns is not None and st.st_ctime_ns != source.ctime_ns)
    ):
        os.close(fd)
        raise _changed(source.path)
    return fd


def _read_small(source: Source, sha256: str) -> bytes:
    """A file's bytes, refused if it is not the one hashed (stat, byte count or sha256)."""
    fd = _open_checked(source)
    try:
        size = source.size
        data = os.read(fd, size)
        while len(data) < size and (more := os.read(fd, size - len(data))):
            data += more
    finally:
        os.close(fd)
    if len(data) != size or hashlib.sha256(data).hexdigest() != sha256:
        raise _changed(source.path)
    return data


_JOB: _Job | None = None
_fork_lock = threading.Lock()
"""The job of the writing in progress, as the forked workers see it."""

Failure = tuple[str, str, int, str]
"""A worker's refusal, sent back: ("changed", message, 0, path) or ("os", strerror, errno,
filename)."""


def _task(
    first: int, last: int, zdict: bytes | None, job: _Job | None = None
) -> list[Built] | Failure:
    """Blocks first..last-1 (in a worker, or here when `job` is given): their stream bytes
    made (files read and checked) and compressed, the first primed with `zdict` or with the
    stream's bytes before it. A forked worker takes the job it inherited."""
    job = job if job is not None else _JOB
    if job is None:
        raise RuntimeError("no job in this worker")
    lo, hi = first * BLOCK, min(last * BLOCK, job.total)
    pre = 0 if zdict is not None or first == 0 else WINDOW
    try:
        raw = job.raw(lo - pre, hi)
    except FileChangedError as exc:
        return ("changed", str(exc.message), 0, str(exc.path or ""))
    except OSError as exc:
        return ("os", exc.strerror or str(exc), exc.errno or 0, str(exc.filename or ""))
    view = memoryview(raw)
    prev = bytes(view[:pre]) if zdict is None else zdict
    built = []
    for at in range(pre, len(raw), BLOCK):
        block = view[at : at + BLOCK]
        built.append(_build(block, prev))
        prev = built[-1][2]
    return built


def _raise(failure: Failure) -> NoReturn:
    kind, message, code, name = failure
    if kind == "changed":
        raise FileChangedError(message, path=Path(name) if name else None)
    raise OSError(code, message, name or None)


def _plan(job: _Job, describe: bool) -> tuple[array[int], int, list[str]]:
    """Each member's start, the stream's length and (when `describe`) each block's key.

    A block is described by what lies in it: for each member overlapping it, where it begins
    relative to the block, its name, mode, size, link and content sha256 (from which its
    bytes follow), and where the end of archive begins; its key is the sha256 of its own
    description and of the previous block's, which together fix its compressed bytes."""
    names, modes, sizes, links, shas = job.names, job.modes, job.sizes, job.links, job.shas
    n = len(names)
    mtime = job.mtime
    fast = 0 <= mtime < 8**11  # then a header is one block in member_header's common case
    starts = [0] * (n + 1)
    records: list[list[bytes]] = [[]]
    at = 0
    for i in range(n):
        starts[i] = at
        name, size, link = names[i], sizes[i], links[i]
        if (
            fast
            and link is None
            and len(name) <= tarfile.LENGTH_NAME
            and name.isascii()
            and 0 <= size < 8**11
            and 0 <= modes[i] < 8**7
        ):
            length = tarfile.BLOCKSIZE + size + (-size % tarfile.BLOCKSIZE)
        else:
            length = _header_len(name, size, modes[i], mtime, link)
            if link is None:
                length += size + (-size % tarfile.BLOCKSIZE)
        if describe:
            # Length-prefixed fields: no name or link (which may hold "|" or a newline)
            # can make one member's record read as two members' records.
            raw_name = name.encode("utf-8", "surrogateescape")
            raw_link = b"" if link is None else b"L" + link.encode("utf-8", "surrogateescape")
            record = b"|%d:%s|%o|%d|%d:%s|%s\n" % (
                len(raw_name),
                raw_name,
                modes[i],
                size,
                len(raw_link),
                raw_link,
                shas[i].encode(),
            )
            first, last = at >> 20, (at + length - 1) >> 20
            while len(records) <= last:
                records.append([])
            if first == last:
                records[first].append(b"%d" % (at - (first << 20)) + record)
            else:
                for b in range(first, last + 1):
                    records[b].append(b"%d" % (at - (b << 20)) + record)
        at += length
    starts[n] = at
    total = at + 2 * tarfile.BLOCKSIZE
    total += -total % _RECORD
    keys: list[str] = []
    if describe:
        blocks = (total + BLOCK - 1) // BLOCK
        while len(records) < blocks:
            records.append([])
        for b in range(at >> 20, blocks):
            records[b].append(b"E%d|%d" % (at - (b << 20), min(total - (b << 20), BLOCK)))
        prefix = KEY_PREFIX + b"%d|" % mtime
        prev = b""
        for block in records:
            digest = hashlib.sha256(b"".join(block)).digest()
            keys.append(hashlib.sha256(prefix + prev + digest).hexdigest())
            prev = digest
    return array("q", starts), total, keys


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


class _HashingFile:
    """Passes bytes to a file while hashing them: the archive's own sha256 for free."""

    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw
        self.digest = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> None:
        self.digest.update(data)
        self.size += len(data)
        self._raw.write(data)


class _Pending:
    """A block on its way to the file: from the cache, a worker's task or a local thread."""

    __slots__ = ("_built", "_cache", "_future", "_index", "_key")

    def __init__(
        self,
        cache: BlockCache | None = None,
        key: str = "",
        future: Future[list[Built] | Failure] | Future[Built] | None = None,
        index: int = -1,
    ) -> None:
        self._cache, self._key, self._future, self._index = cache, key, future, index
        self._built: Built | None = None

    def get(self) -> Built:
        if self._built is not None:
            return self._built
        built: Built
        if self._cache is not None:
            cached = self._cache.get(self._key)
            if cached is None:
                raise _CacheLost
            self._cache.touch(self._key)
            built = (cached.compressed, cached.crc, cached.tail)
        else:
            result: Any = self._future.result() if self._future is not None else None
            if isinstance(result, tuple) and isinstance(result[0], str):
                _raise(result)
            built = result[self._index] if self._index >= 0 else result
        self._built = built
        return built

    @property
    def hit(self) -> bool:
        return self._cache is not None


def _done(result: object) -> Future[object]:
    future: Future[object] = Future()
    future.set_result(result)
    return future


def _check_unchanged(sources: dict[str, Source | bytes]) -> None:
    """The files of blocks copied from the cache were not opened: each must still have the
    stat it was hashed at, so a file changed during capture is refused as when it is read
    (a stat each, no open). Not caught without a read: other bytes under the same size,
    mtime and ctime (a stale stat-cache entry on a file system that fakes ctime)."""
    for src in sources.values():
        if not isinstance(src, Source):
            continue
        try:
            st = os.stat(src.path)  # noqa: PTH116 (a str path: no Path per file)
        except FileNotFoundError:
            raise FileChangedError(
                f"file vanished during capture: {src.path}", path=src.path
            ) from None
        if (
            st.st_size != src.size
            or (src.mtime_ns is not None and st.st_mtime_ns != src.mtime_ns)
            or (src.ctime_ns is not None and st.st_ctime_ns != src.ctime_ns)
        ):
            raise _changed(src.path)


def _changed(path: Path | str) -> FileChangedError:
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


def _job(
    manifest: Manifest,
    sources: dict[str, Source | bytes],
    order: list[str],
    manifest_bytes: bytes,
    signature: bytes | None,
    tags: dict[str, bytes],
    mtime: int,
) -> _Job:
    """The members in the layout's one order, with their content's source."""
    entries = {f.path: f for f in manifest.files}
    names: list[str] = []
    modes: list[int] = []
    sizes: list[int] = []
    shas: list[str] = []
    links: list[str | None] = []
    srcs: list[Src] = []
    for name in order:
        entry = entries.get(name)
        src: Src
        if name == MANIFEST_NAME:
            src = manifest_bytes
        elif name == SIGNATURE_NAME:
            src = signature or b""
        elif name in tags:
            src = tags[name]
        elif entry is not None and entry.link is not None:
            names.append(name)
            modes.append(0o777)
            sizes.append(0)
            shas.append("")
            links.append(entry.link)
            srcs.append(None)
            continue
        else:
            src = sources[name]
        names.append(name)
        modes.append(entry.mode if entry is not None else 0o644)
        if isinstance(src, Source):
            sizes.append(src.size)
            shas.append(entry.sha256 if entry is not None else "")
        else:
            sizes.append(len(src))
            shas.append(hashlib.sha256(src).hexdigest())
        links.append(None)
        srcs.append(src)
    return _Job(names, modes, sizes, shas, links, srcs, array("q"), mtime, 0, [])


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
    manifest_bytes: bytes | None = None,
) -> WrittenCapsule:
    """Write every member in the layout's one order; the destination appears only when done.

    Same manifest, same sources, same mtime -> same bytes: owners, modes and times are fixed,
    the gzip header carries no time or name, and the tar stream is compressed in fixed 1 MiB
    blocks (each primed with the previous), whatever the members, the cache or the number
    of workers (`threads`: processes building blocks, and threads compressing the blocks of
    big files). With a `cache`, blocks an earlier capsule had are copied from it (their
    files are not opened) and the others are stored in it: the bytes are the same either way.
    `progress` is called with each payload file's size once its block is written;
    `manifest_bytes`, when given, are `manifest.canonical_json()` (made by the caller anyway).
    """
    if manifest_bytes is None:
        manifest_bytes = manifest.canonical_json()
    # len(member_order(...)): the order itself and the tag files are made only when a block
    # is to be built (not when every block comes from the cache).
    members = 1 + (signature is not None) + len(TAG_FILES) + len(manifest.files)
    dest = dest.absolute()
    if not dest.parent.is_dir():
        raise OutputWriteError(f"output folder does not exist: {dest.parent}")
    if dest.is_dir():
        raise OutputWriteError(
            f"the capsule file would replace a folder: {dest}",
            hint="give a file name, e.g. -o study.capsule.tgz",
        )

    def make_job() -> _Job:
        order = member_order(manifest, signature is not None)
        tags = tag_files(manifest, manifest_bytes)
        return _job(manifest, sources, order, manifest_bytes, signature, tags, mtime)

    job: _Job | None = None
    plan = None
    plan_key = ""
    present: set[str] = set()
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
        present = cache.names()
        if plan_key in present:
            plan = _load_plan(cache, plan_key, members)
    if plan is not None:
        keys, starts = plan.keys, plan.starts
        end = starts[-1] + 2 * tarfile.BLOCKSIZE
        total = end + (-end % _RECORD)
    else:
        job = make_job()
        starts, total, keys = _plan(job, cache is not None)
        if cache is not None:
            _store_plan(cache, plan_key, _Plan(keys, starts))
    blocks = (total + BLOCK - 1) // BLOCK
    hits = {b for b, key in enumerate(keys) if key in present}
    if len(hits) < blocks and job is None:
        job = make_job()
    if job is not None:
        job.starts, job.total = starts, total

    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".repro-tmp-{dest.name}.", dir=dest.parent)
    except OSError as exc:
        raise _write_error(exc, dest) from None
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as raw:
            while True:
                out = _HashingFile(raw)
                try:
                    _write_blocks(
                        out, job, keys, total, hits, cache, threads, progress, members, starts
                    )
                    break
                except _CacheLost:
                    # An entry went between planning and copying: write it all afresh.
                    raw.seek(0)
                    raw.truncate()
                    hits = set()
                    if job is None:
                        job = make_job()
                        job.starts, job.total = starts, total
            if hits:
                _check_unchanged(sources)
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
        cache.trim({*keys, plan_key})
    return WrittenCapsule(
        path=dest,
        size=out.size,
        sha256=out.digest.hexdigest(),
        capsule_id=hashlib.sha256(manifest_bytes).hexdigest(),
    )


def _classify(job: _Job, blocks: int, hits: set[int]) -> tuple[set[int], list[tuple[int, int]]]:
    """Which blocks this process builds (those holding content of files bigger than LARGE,
    read here whole; and a block whose dictionary would be such content), and the tasks
    (runs of at most TASK_BLOCKS other blocks) for the workers. Hits are left out; a big
    file with any block to build has all its blocks built (it is read whole anyway)."""
    local: set[int] = set()
    large: list[tuple[int, int]] = []
    for i, size in enumerate(job.sizes):
        if size > LARGE and isinstance(job.srcs[i], Source):
            lo = job.starts[i + 1] - size - (-size % tarfile.BLOCKSIZE)
            span = range(lo >> 20, (lo + size - 1 >> 20) + 1)
            large.append((lo, lo + size))
            if any(b not in hits for b in span):
                local.update(span)
                hits.difference_update(span)
    job.large = large
    ends = [hi for _lo, hi in large]
    tasks: list[tuple[int, int]] = []
    b = 0
    while b < blocks:
        if b in hits or b in local:
            b += 1
            continue
        # The dictionary of a run's first block: made by the worker unless it is a big
        # file's content (then this process builds that block).
        if b:
            at = b * BLOCK
            k = bisect_right(ends, at - WINDOW)
            if k < len(large) and large[k][0] < at:
                local.add(b)
                b += 1
                continue
        first = b
        while b < blocks and b - first < TASK_BLOCKS and b not in hits and b not in local:
            b += 1
        tasks.append((first, b))
    return local, tasks


def _write_blocks(
    out: _HashingFile,
    job: _Job | None,
    keys: list[str],
    total: int,
    hits: set[int],
    cache: BlockCache | None,
    threads: int,
    progress: Callable[[int], None] | None,
    members: int,
    plan_starts: array[int],
) -> None:
    """The gzip member: header, every block in order (copied, or built by a worker or
    here), the empty final block, CRC-32 and length."""
    global _JOB
    blocks = (total + BLOCK - 1) // BLOCK
    local: set[int] = set()
    tasks: list[tuple[int, int]] = []
    if job is not None:
        local, tasks = _classify(job, blocks, hits)
    remote = sum(last - first for first, last in tasks)
    pool: Executor | None = None
    threads_pool: ThreadPoolExecutor | None = None
    workers = max(1, threads)
    if remote >= POOL_MIN_BLOCKS and workers > 1:
        from concurrent.futures import ProcessPoolExecutor

        with forking() as context:
            pool = ProcessPoolExecutor(workers, mp_context=context, initializer=quiet_worker)
    task_of = {b: first for first, last in tasks for b in range(first, last)}
    submitted: dict[int, Future[list[Built] | Failure]] = {}
    next_task = 0
    ahead = TASK_BLOCKS * (2 * workers + 1)
    buffer = bytearray(BLOCK)
    local_iter: Iterator[bytes] | None = None
    local_next = -1  # the block local_iter makes next
    pending: deque[tuple[int, _Pending]] = deque()
    crc = size = 0
    shown_members = 0
    starts = plan_starts

    def submit_until(b: int) -> None:
        nonlocal next_task
        while next_task < len(tasks) and tasks[next_task][0] <= b:
            first, last = tasks[next_task]
            # After a cached block, its stored tail primes the task (so the files at the
            # end of that block are not opened); else the worker rebuilds those bytes.
            zdict = None
            if first and first - 1 in hits and cache is not None:
                cached = cache.get(keys[first - 1])
                zdict = cached.tail if cached is not None else None
            if pool is not None:
                submitted[first] = pool.submit(_task, first, last, zdict)
            else:
                submitted[first] = _done(_task(first, last, zdict, job))  # type: ignore[assignment]
            next_task += 1

    def local_blocks(b: int) -> Iterator[bytes]:
        """Blocks b, b+1... while local, from the stream's pieces."""
        if job is None:
            return
        last = b
        while last in local:
            last += 1
        block = bytearray()
        for piece in job.pieces(b * BLOCK, min(last * BLOCK, job.total), buffer):
            view = memoryview(piece)
            while view:
                take = BLOCK - len(block)
                block += view[:take]
                view = view[take:]
                if len(block) == BLOCK:
                    yield bytes(block)
                    block = bytearray()
        if block:
            yield bytes(block)

    def write_one(meter_advance: Callable[[int], None]) -> None:
        nonlocal crc, size, shown_members
        b, item = pending.popleft()
        compressed, block_crc, tail = item.get()
        length = min(BLOCK, total - b * BLOCK)
        out.write(compressed)
        crc = isal_zlib.crc32_combine(crc, block_crc, length)
        size += length
        if cache is not None and not item.hit:
            cache.put(keys[b], CachedBlock(compressed=compressed, crc=block_crc, tail=tail))
        # Members whose last byte is written by now.
        done = members if b == blocks - 1 else bisect_right(starts, (b + 1) * BLOCK) - 2
        if done > shown_members:
            if progress is not None and job is not None:
                for i in range(shown_members, done):
                    src = job.srcs[i]
                    if isinstance(src, Source):
                        progress(src.size)
            meter_advance(done - shown_members)
            shown_members = done

    try:
        out.write(GZIP_HEADER)
        # The workers are forked by the pool's first submission (before the progress
        # display's thread starts) and inherit the job from _JOB, set only meanwhile and
        # under a lock: another capture in a thread of this process has its own.
        with _fork_lock, forking():
            _JOB = job if pool is not None else None
            try:
                # At least the first task now, though cached blocks may come before it.
                submit_until(max(ahead, tasks[0][0] if tasks else 0))
            finally:
                _JOB = None
        prev: _Pending | None = None
        prev_raw = b""  # the last bytes of the previous block, when it was built here
        with meter("writing", total=members) as shown:
            for b in range(blocks):
                submit_until(b + ahead)
                item: _Pending
                if b in hits and cache is not None:
                    item = _Pending(cache, keys[b])
                elif b in local:
                    if local_iter is None or local_next != b:
                        local_iter, local_next = local_blocks(b), b
                    data = next(local_iter)
                    local_next += 1
                    zdict = prev_raw if prev_raw or prev is None else prev.get()[2]
                    if threads_pool is None:
                        threads_pool = ThreadPoolExecutor(workers, thread_name_prefix="deflate")
                    item = _Pending(future=threads_pool.submit(_build, data, zdict))
                    prev_raw = data[-WINDOW:]
                else:
                    first = task_of[b]
                    item = _Pending(future=submitted[first], index=b - first)
                if b not in local:
                    prev_raw = b""
                pending.append((b, item))
                prev = item
                while len(pending) > ahead:
                    write_one(shown.advance)
            while pending:
                write_one(shown.advance)
        out.write(EMPTY_FINAL_BLOCK)
        out.write(struct.pack("<II", crc, size & 0xFFFFFFFF))
    except BrokenExecutor:
        # A worker killed (the OOM killer): the pool fails every task, at submit or result.
        raise WorkerDiedError(worker_died("writing the capsule")) from None
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        if threads_pool is not None:
            threads_pool.shutdown(wait=True, cancel_futures=True)
