"""Write a capsule: a deterministic .tgz, written to a temporary file and renamed into place."""

from __future__ import annotations

import errno
import hashlib
import io
import os
import tarfile
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, cast

from isal import igzip_threaded

from repro.capsule.layout import MANIFEST_NAME, SIGNATURE_NAME, member_order, tag_files
from repro.capsule.manifest import Manifest
from repro.capsule.tarheader import END_OF_ARCHIVE, member_header, padding
from repro.errors import FileChangedError, OutputWriteError
from repro.progress import meter

COMPRESS_LEVEL = 1
BLOCK = 1 << 20


@dataclass(frozen=True)
class Source:
    """Where a payload file's bytes come from, and the stat they were hashed at."""

    path: Path | str
    """A str for project files (capture builds no Path per file: 300 bytes and ~5 us each)."""
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


class _Members:
    """The tar stream: each member's header, content and zero padding, gathered into large
    writes to the compressor. The headers are tarfile's PAX format byte for byte
    (`member_header`), without a TarInfo per file nor tarfile's list of every member."""

    def __init__(self, out: BinaryIO, mtime: int) -> None:
        self._out = out
        self._mtime = mtime
        self._buf = bytearray()
        self.offset = 0

    def _put(self, data: bytes | bytearray | memoryview) -> None:
        self._buf += data
        self.offset += len(data)
        if len(self._buf) >= BLOCK:
            # Whole blocks only: the compressor deflates each write as a block (primed with
            # the previous one), so the capsule's bytes depend on the tar stream alone, not
            # on where its members begin and end.
            whole = len(self._buf) - len(self._buf) % BLOCK
            self._out.write(self._buf[:whole])
            del self._buf[:whole]

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
        when opened, or other bytes (or byte count) when read."""
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
            self._put(member_header(name, size, mode, self._mtime))
            if size <= BLOCK:
                data = os.read(fd, size)
                while len(data) < size and (more := os.read(fd, size - len(data))):
                    data += more
                if len(data) != size or hashlib.sha256(data).hexdigest() != sha256:
                    raise _changed(source.path)
                self._put(data)
            else:
                digest = hashlib.sha256()
                view = memoryview(buffer)
                remaining = size
                while remaining:
                    n = os.readv(fd, [view[: min(remaining, len(buffer))]])
                    if not n:
                        raise _changed(source.path)  # shrank while it was read
                    digest.update(view[:n])
                    self._put(view[:n])
                    remaining -= n
                # Rewritten in place after the check above (same size), or hashed wrong
                # earlier (a stale stat-cache entry): the archive would not verify.
                if digest.hexdigest() != sha256:
                    raise _changed(source.path)
            self._put(padding(size))
        finally:
            os.close(fd)

    def close(self) -> None:
        """End of archive: two zero blocks, then zeros to a whole record, as tarfile does."""
        self._put(END_OF_ARCHIVE)
        self._put(b"\0" * (-self.offset % tarfile.RECORDSIZE))
        self._out.write(self._buf)
        self._buf = bytearray()


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


def write_capsule(
    dest: Path,
    manifest: Manifest,
    sources: dict[str, Source | bytes],
    *,
    signature: bytes | None = None,
    mtime: int,
    threads: int = 2,
    progress: Callable[[int], None] | None = None,
) -> WrittenCapsule:
    """Write every member in the layout's one order; the destination appears only when done.

    Same manifest, same sources, same mtime -> same bytes: owners, modes and times are fixed,
    the gzip header carries no time or name, and the tar stream is compressed in fixed 1 MiB
    blocks (each primed with the previous), whatever the members.
    """
    manifest_bytes = manifest.canonical_json()
    tags = tag_files(manifest, manifest_bytes)
    entries = {f.path: f for f in manifest.files}
    dest = dest.absolute()
    if not dest.parent.is_dir():
        raise OutputWriteError(f"output folder does not exist: {dest.parent}")
    if dest.is_dir():
        raise OutputWriteError(
            f"the capsule file would replace a folder: {dest}",
            hint="give a file name, e.g. -o study.capsule.tgz",
        )
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".repro-tmp-{dest.name}.", dir=dest.parent)
    except OSError as exc:
        raise _write_error(exc, dest) from None
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as raw:
            hashing = _HashingWriter(raw)
            gz = cast(
                BinaryIO,
                igzip_threaded.open(  # type: ignore[no-untyped-call]
                    hashing, "wb", compresslevel=COMPRESS_LEVEL, threads=threads, block_size=BLOCK
                ),
            )
            members = _Members(gz, mtime)
            buffer = bytearray(BLOCK)
            order = member_order(manifest, signature is not None)
            with gz, meter("writing", total=len(order)) as shown:
                for name in order:
                    shown.advance()
                    if name == MANIFEST_NAME:
                        data = manifest_bytes
                    elif name == SIGNATURE_NAME:
                        data = signature or b""
                    elif name in tags:
                        data = tags[name]
                    else:
                        entry = entries[name]
                        if entry.link is not None:
                            members.add_link(name, entry.link)
                            continue
                        src = sources[name]
                        if isinstance(src, Source):
                            members.add_file(name, entry.mode, src, entry.sha256, buffer)
                            if progress:
                                progress(entry.size)
                            continue
                        data = src
                    mode = entries[name].mode if name in entries else 0o644
                    members.add_bytes(name, data, mode)
                members.close()
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
    return WrittenCapsule(
        path=dest,
        size=hashing.size,
        sha256=hashing.digest.hexdigest(),
        capsule_id=hashlib.sha256(manifest_bytes).hexdigest(),
    )
