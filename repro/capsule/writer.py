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
from repro.errors import FileChangedError, OutputWriteError

COMPRESS_LEVEL = 1
BLOCK = 1 << 20


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


class _Position:
    """tarfile asks for tell() once; a compressed stream cannot seek, so count instead."""

    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw
        self._pos = 0

    def write(self, data: bytes) -> int:
        self._pos += len(data)
        return self._raw.write(data)

    def tell(self) -> int:
        return self._pos


def _info(name: str, size: int, mode: int, mtime: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mode = mode
    info.mtime = mtime
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


class _HashingReader:
    """The bytes tarfile copies into the archive, hashed as they stream past: what is
    checked against the manifest is what was written, not what was read earlier."""

    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw
        self.digest = hashlib.sha256()
        self.size = 0

    def read(self, n: int = -1) -> bytes:
        data = self._raw.read(n)
        self.digest.update(data)
        self.size += len(data)
        return data


def _changed(path: Path) -> FileChangedError:
    return FileChangedError(f"{path} changed while it was captured", path=path)


def _add_file(
    tar: tarfile.TarFile, name: str, mode: int, mtime: int, source: Source, sha256: str
) -> None:
    try:
        fh = source.path.open("rb")
    except FileNotFoundError:
        raise FileChangedError(
            f"file vanished during capture: {source.path}", path=source.path
        ) from None
    with fh:
        st = os.fstat(fh.fileno())
        changed = (
            st.st_size != source.size
            or (source.mtime_ns is not None and st.st_mtime_ns != source.mtime_ns)
            or (source.ctime_ns is not None and st.st_ctime_ns != source.ctime_ns)
        )
        if changed:
            raise _changed(source.path)
        reader = _HashingReader(cast(BinaryIO, fh))
        try:
            tar.addfile(_info(name, source.size, mode, mtime), cast(BinaryIO, reader))
        except OSError as exc:
            # tarfile's "unexpected end of data": the file shrank while it was read.
            if exc.errno is None and reader.size < source.size:
                raise _changed(source.path) from None
            raise
        # Rewritten in place after the check above (same size), or hashed wrong earlier (a
        # stale stat-cache entry): the archive would not verify. Nothing is renamed into place.
        if reader.size != source.size or reader.digest.hexdigest() != sha256:
            raise _changed(source.path)


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
    the gzip header carries no time or name, and compression is block-wise deterministic.
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
            position = cast(BinaryIO, _Position(gz))
            with (
                gz,
                tarfile.TarFile(
                    fileobj=position, mode="w", format=tarfile.PAX_FORMAT, copybufsize=BLOCK
                ) as tar,
            ):
                for name in member_order(manifest, signature is not None):
                    if name == MANIFEST_NAME:
                        data = manifest_bytes
                    elif name == SIGNATURE_NAME:
                        data = signature or b""
                    elif name in tags:
                        data = tags[name]
                    else:
                        entry = entries[name]
                        if entry.link is not None:
                            info = _info(name, 0, 0o777, mtime)
                            info.type = tarfile.SYMTYPE
                            info.linkname = entry.link
                            tar.addfile(info)
                            continue
                        src = sources[name]
                        if isinstance(src, Source):
                            _add_file(tar, name, entry.mode, mtime, src, entry.sha256)
                            if progress:
                                progress(entry.size)
                            continue
                        data = src
                    mode = entries[name].mode if name in entries else 0o644
                    tar.addfile(_info(name, len(data), mode, mtime), io.BytesIO(data))
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
