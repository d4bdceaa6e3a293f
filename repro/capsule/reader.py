"""The one safe reader of capsules: verify every member while streaming, unpack atomically.

Nothing from a capsule is trusted before it is checked: the manifest comes first and bounds
everything after it; each member must be the next one the layout expects, of the declared
type, size and sha256; files are written (when unpacking) into a fresh temporary folder that
is moved into place only when the whole archive checked out.
"""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import gc
import gzip
import hashlib
import io
import json
import math
import os
import posixpath
import re
import shutil
import struct
import tarfile
import tempfile
import typing
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, NoReturn, cast

from isal import isal_zlib
from pydantic import ValidationError

from repro import FORMAT
from repro.capsule.layout import (
    HARD_MAX_BYTES,
    HARD_MAX_MEMBERS,
    LOCAL_WHEELS,
    MANIFEST_NAME,
    MAX_MANIFEST_BYTES,
    MAX_SIGNATURE_BYTES,
    PAYLOAD_DIR,
    PROJECT_PREFIX,
    SIGNATURE_NAME,
    TAG_FILES,
    created_epoch,
    manifest_too_dense,
    member_order,
    tag_files,
)
from repro.capsule.manifest import FileEntry, Manifest, Role, canonical_json, checked_entry
from repro.capsule.tarheader import END_OF_ARCHIVE, member_header, padding
from repro.config import describe_validation_error
from repro.errors import (
    CapsuleIntegrityError,
    CapsuleNotFoundError,
    MalformedCapsuleError,
    UnsafeArchiveMemberError,
    UnsupportedFormatError,
)
from repro.model_base import check_path_limits
from repro.progress import meter

CHUNK = 1 << 20
KEPT_CHUNKS = 4
"""Decompressed reads the gzip layer remembers, so the tar headers and padding the parser just
read can be compared byte for byte with what the writer emits."""
# Bytes of zero padding tolerated after the tar end-of-archive marker (tar pads to 10 KiB
# records; anything else after the archive is tampering).
MAX_TRAILING = 1 << 20
IsalError = cast(type[Exception], isal_zlib.error)


@dataclass(frozen=True)
class VerifiedCapsule:
    """A capsule whose every byte was checked against its manifest."""

    path: Path
    manifest: Manifest
    manifest_bytes: bytes
    capsule_id: str
    """sha256 of the canonical repro.json: the capsule's identity."""
    signature: bytes | None
    archive_sha256: str
    archive_size: int
    root: Path | None
    """Where it was unpacked, when it was."""


def safe_member_name(name: str) -> None:
    """Reject names that could escape or confuse the destination."""
    if not name or "\0" in name or "\\" in name:
        raise UnsafeArchiveMemberError(f"unsafe member name: {name!r}")
    if name.startswith("/"):
        raise UnsafeArchiveMemberError(f"absolute path in capsule: {name}")
    parts = name.split("/")
    if any(p in ("", ".", "..") for p in parts):
        raise UnsafeArchiveMemberError(f"path with '..', '.' or empty parts in capsule: {name}")


class _Node:
    """One path of the manifest's tree: its entry when a file or link is listed there, and
    the paths below it. Every check walks this tree, so each costs the length of the paths
    it reads (never the square of their depth: a path of 2,000 parts stays cheap)."""

    __slots__ = ("children", "entry")

    def __init__(self) -> None:
        self.children: dict[str, _Node] = {}
        self.entry: FileEntry | None = None

    def find(self, path: str) -> _Node | None:
        node: _Node | None = self
        for part in path.split("/"):
            node = node.children.get(part) if node is not None else None
        return node


def _check_manifest_entries(manifest: Manifest) -> None:
    """Every path the manifest names is safe to create under a fresh folder, and every
    other path field points at something the manifest lists."""
    paths = {f.path for f in manifest.files}
    folders = _plain_folders(manifest.files, paths)
    if folders is None:
        _check_manifest_tree(manifest)
    else:
        _check_references(manifest, paths, folders.__contains__)


def _plain_folders(files: list[FileEntry], paths: set[str]) -> set[str] | None:
    """The folders of a file list that passes `_check_manifest_tree` for certain, found with
    sets (no tree of nodes): no links, no duplicate, every path safe, under data/ and of a
    safe mode, and no path both a file and a folder. None when any of that does not hold
    (or might not): the tree walk then decides, with its own messages."""
    if len(paths) != len(files):
        return None  # a path listed twice
    if any(f.link is not None for f in files) or any(m & ~0o755 for m in {f.mode for f in files}):
        return None
    # Every path between slashes, one a line: an empty, '.' or '..' part is '//', '/./' or
    # '/../' inside a path's frame (its parts are exactly what lies between two consecutive
    # slashes), and no such pattern can span two lines. A path with a line break of its own
    # is left to the tree walk.
    framed = "/" + "/\n/".join(paths) + "/"
    if framed.count("\n") != len(paths) - 1 or "\0" in framed or "\\" in framed:
        return None
    if "//" in framed or "/./" in framed or "/../" in framed:
        return None
    if ("\n" + "\n".join(paths)).count("\ndata/") != len(paths):
        return None  # not every path under data/ (no path holds a line break, see above)
    folders: set[str] = set()
    for parent in {path.rpartition("/")[0] for path in paths}:
        folder = parent
        while folder and folder not in folders:
            folders.add(folder)
            folder = folder.rpartition("/")[0]
    if not folders.isdisjoint(paths):
        return None  # a path listed as a file and as a folder
    return folders


def _check_manifest_tree(manifest: Manifest) -> None:
    """_check_manifest_entries by a walk of the manifest's tree, which also checks links."""
    root = _file_tree(manifest.files)

    def is_folder(path: str) -> bool:
        folder = root.find(path)
        return folder is not None and bool(folder.children) and folder.entry is None

    _check_references(manifest, {f.path for f in manifest.files}, is_folder)


def _file_tree(files: list[FileEntry]) -> _Node:
    """The tree of the file list, once each path is checked safe to create in a fresh folder
    and each link to stay inside the capsule."""
    root = _Node()
    for entry in files:
        safe_member_name(entry.path)
        if not entry.path.startswith(PAYLOAD_DIR + "/"):
            raise MalformedCapsuleError(f"manifest lists a file outside data/: {entry.path}")
        node = root
        for part in entry.path.split("/"):
            child = node.children.get(part)
            if child is None:
                child = node.children[part] = _Node()
            node = child
        if node.entry is not None:
            raise MalformedCapsuleError(f"manifest lists a file twice: {entry.path}")
        node.entry = entry
        if entry.link is not None:
            if entry.size != 0:
                raise MalformedCapsuleError(f"symlink with a size: {entry.path}")
        elif entry.mode & ~0o777 or entry.mode & 0o022:
            raise UnsafeArchiveMemberError(f"unsafe mode {oct(entry.mode)} for {entry.path}")
    for entry in files:
        node = root
        under_link = False
        for part in entry.path.split("/"):
            under_link = under_link or (node.entry is not None and node.entry.link is not None)
            node = node.children[part]
        if node.children:
            raise MalformedCapsuleError(f"manifest lists a path as file and folder: {entry.path}")
        if under_link:
            raise UnsafeArchiveMemberError(f"member under a symlink: {entry.path}")
        if entry.link is not None:
            _check_link(entry.path, entry.link, root)
    return root


def _check_link(path: str, link: str, root: _Node) -> None:
    """A link may point at a file or folder of the capsule, never leave it, and never pass
    through another link (whose own target was checked only on its own)."""
    target = posixpath.normpath(posixpath.join(posixpath.dirname(path), link))
    if link.startswith("/") or target == ".." or target.startswith("../"):
        raise UnsafeArchiveMemberError(f"symlink leaves the capsule: {path} -> {link}")
    target_node = root.find(target)
    # The nodes walked so far (None once the walk is below anything the manifest lists).
    walked: list[_Node | None] = [root]
    for part in posixpath.dirname(path).split("/"):
        here = walked[-1]
        walked.append(here.children.get(part) if here is not None else None)
    for part in link.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            walked.pop()
        else:
            here = walked[-1]
            walked.append(here.children.get(part) if here is not None else None)
        if len(walked) == 1:
            raise UnsafeArchiveMemberError(f"symlink leaves the capsule: {path} -> {link}")
        node = walked[-1]
        if (
            node is not None
            and node.entry is not None
            and node.entry.link is not None
            and node is not target_node
        ):
            raise UnsafeArchiveMemberError(f"symlink passes through another link: {path} -> {link}")


def _check_references(
    manifest: Manifest, files: set[str], is_folder: Callable[[str], bool]
) -> None:
    env = manifest.environment
    named = [("environment.lock", env.lock), ("environment.dockerfile", env.dockerfile)]
    named += [("environment.image", env.image)] if env.image else []
    named += [("environment.post_build", env.post_build)] if env.post_build else []
    named += [(f"environment.local_packages {p.name}", p.wheel) for p in env.local_packages]
    named += [
        (f"results {r.run} {r.point_id}", o.capsule_path)
        for r in manifest.results
        for o in r.outputs
    ]
    named += [(f"jobs {j.run}", path) for j in manifest.jobs for path in j.scripts.values()]
    for nb in manifest.notebook_results:
        named += [(f"notebook_results {nb.path}", nb.capsule_path)]
        named += [(f"notebook_results {nb.path} (code)", PROJECT_PREFIX + nb.path)]
    for what, path in named:
        if path not in files:
            raise MalformedCapsuleError(f"manifest {what} names a file it does not list: {path}")
    by_path = {f.path: f for f in manifest.files} if env.local_packages else {}
    for package in env.local_packages:
        if not package.wheel.startswith(LOCAL_WHEELS) or "/" in package.wheel[len(LOCAL_WHEELS) :]:
            raise MalformedCapsuleError(
                f"manifest environment.local_packages {package.name} is not under "
                f"{LOCAL_WHEELS}: {package.wheel}"
            )
        if by_path[package.wheel].sha256 != package.sha256:
            raise MalformedCapsuleError(
                f"manifest environment.local_packages {package.name}: sha256 differs from the "
                f"file list's for {package.wheel}"
            )
    if env.post_build and not env.post_build.startswith(PROJECT_PREFIX):
        raise MalformedCapsuleError(
            f"manifest environment.post_build is not a project file: {env.post_build}"
        )
    if env.wheels and not is_folder(env.wheels):
        raise MalformedCapsuleError(f"manifest environment.wheels is not a folder: {env.wheels}")


def _no_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not JSON")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} is out of range")
    return value


def parse_manifest(data: bytes) -> Manifest:
    """repro.json bytes -> Manifest, reading the format version before anything else.

    Strict: standard JSON only (no NaN or Infinity, numbers that fit a float), every string
    valid Unicode, and no type coercion ("6" is not a size, 6.0 is not a mode), so a
    manifest repro did not write is not read as if it had."""
    if manifest_too_dense(data):
        raise MalformedCapsuleError(
            f"repro.json ({len(data) / 2**20:,.0f} MiB) holds more JSON objects and arrays "
            "than a manifest of its size can: it was not written by repro",
            hint=NOT_A_CAPSULE,
        )
    manifest = _parse_canonical(data)
    if manifest is None:
        manifest = _parse_strict(data)
    _check_manifest_entries(manifest)
    return manifest


def _parse_strict(data: bytes) -> Manifest:
    """parse_manifest's JSON, canonical form and model checks, the plain way."""
    try:
        raw = json.loads(data, parse_constant=_no_constant, parse_float=_finite)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedCapsuleError(f"repro.json is not valid JSON: {exc}") from None
    try:
        canonical = canonical_json(raw)
    except UnicodeEncodeError:
        raise MalformedCapsuleError(
            "repro.json holds a string that is not valid Unicode (a lone surrogate)"
        ) from None
    if not isinstance(raw, dict):
        raise MalformedCapsuleError("repro.json is not a JSON object")
    fmt = raw.get("format")
    if fmt != FORMAT:
        if isinstance(fmt, str) and fmt.startswith("repro-capsule/"):
            raise UnsupportedFormatError(
                f"capsule format {fmt} is newer than this repro understands ({FORMAT})"
            )
        raise MalformedCapsuleError(f"not a repro capsule (format: {fmt!r})", hint=NOT_A_CAPSULE)
    try:
        manifest = Manifest.model_validate(raw, strict=True)
    except ValidationError as exc:
        raise MalformedCapsuleError(describe_validation_error(exc, "repro.json")) from None
    # Canonical as written, not as this version would dump it: capsules written before a new
    # optional field existed must keep verifying.
    if canonical != data:
        raise CapsuleIntegrityError("repro.json is not in canonical form (it was edited)")
    return manifest


_FILE_ENTRY_FIELDS = ("link", "mode", "path", "role", "sha256", "size")
_ROLES = "|".join(re.escape(role) for role in typing.get_args(Role))
_CANONICAL_ENTRY = re.compile(
    # One file entry exactly as canonical_json writes it: keys sorted, no whitespace, no link,
    # numbers in their one decimal form, strings with nothing json.dumps would escape.
    r'\{"link":null,"mode":(0|[1-9][0-9]{0,9}),"path":"([^"\\\x00-\x1f]*)",'
    rf'"role":"({_ROLES})","sha256":"([0-9a-f]{{64}})","size":(0|[1-9][0-9]{{0,17}})\}}([,\]])'
)
_FILES_KEY = '"files":['


def _parse_canonical(data: bytes) -> Manifest | None:
    """parse_manifest's result without a JSON object and a validation per file entry, for a
    manifest whose file list is canonical and plain (no links); None whenever that is not
    certain, and parse_manifest then decides from scratch.

    The file list is matched entry by entry against the one form canonical_json gives such
    an entry (`_CANONICAL_ENTRY`), which pins every key, type and byte, and each entry is
    checked as FileEntry's validators check it. The rest of the manifest, with a random
    mark where the list was, is parsed, checked canonical and validated as before: since
    the mark occurs once and canonical_json(rest) is exactly those bytes, the list sits at
    the top-level "files" key, and the whole is canonical_json of the whole (the encoding of
    a value does not depend on its neighbours). So this accepts only what the plain way
    accepts, with the same Manifest."""
    if tuple(sorted(FileEntry.model_fields)) != _FILE_ENTRY_FIELDS:
        return None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    start = text.find(_FILES_KEY)
    if start < 0:
        return None
    pos = start + len(_FILES_KEY)
    match = _CANONICAL_ENTRY.match
    fields = set(_FILE_ENTRY_FIELDS)  # as validating entries that list all six records
    files: list[FileEntry] = []
    try:
        while True:
            found = match(text, pos)
            if found is None:
                return None
            mode, path, role, sha, size, end = found.groups()
            check_path_limits(path, "file path")
            values = {"path": path, "sha256": sha, "size": int(size), "mode": int(mode)}
            files.append(checked_entry({**values, "role": role, "link": None}, fields))
            pos = found.end()
            if end == "]":
                break
    except ValueError:
        return None
    mark = f"repro-files-{os.urandom(16).hex()}"
    rest = f'{text[:start]}"files":"{mark}"{text[pos:]}'
    if mark in text or rest.count(mark) != 1:
        return None
    try:
        raw = json.loads(rest, parse_constant=_no_constant, parse_float=_finite)
        if not isinstance(raw, dict) or raw.get("files") != mark or raw.get("format") != FORMAT:
            return None
        if canonical_json(raw) != rest.encode():
            return None
        head = Manifest.model_validate({**raw, "files": []}, strict=True)
    except (ValueError, UnicodeError, ValidationError):
        return None
    return head.model_copy(update={"files": files})


NOT_A_CAPSULE = (
    "pass a capsule (the NAME.capsule.tgz that repro capture writes); to make one: "
    "repro capture DIR -o FILE"
)
"""The hint when the file is something else altogether (a CSV, a plain tarball...)."""


# What the writer emits: deflate, no flags, mtime 0, then XFL 0 and OS 255 ("unknown") —
# python-isal packs these two the other way round (XFL 255, OS 0); both orders are accepted
# so capsules stay readable when that is fixed.
GZIP_HEADERS = (
    b"\x1f\x8b\x08\x00\x00\x00\x00\x00\xff\x00",
    b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff",
)


class _StrictGunzip(io.RawIOBase):
    """Decompress exactly one gzip member, exactly as the writer makes it, and nothing more.

    Unlike gzip.GzipFile this refuses another header, a second member, or any byte after
    the trailer, so a capsule whose bytes changed cannot pass with the same content. It
    also hashes the archive as read, counts output against a budget (a decompression bomb
    stops as soon as it exceeds what the manifest declares), and remembers the last chunks
    it returned so bytes the tar parser buffered past the end-of-archive can be checked.
    """

    def __init__(self, raw: IO[bytes]) -> None:
        self._raw = raw
        self.archive_digest = hashlib.sha256()
        self.archive_size = 0
        header = self._read_raw(10)
        if header[:2] != b"\x1f\x8b":
            raise MalformedCapsuleError(
                "not a repro capsule: not gzip-compressed", hint=NOT_A_CAPSULE
            )
        if header not in GZIP_HEADERS:
            raise CapsuleIntegrityError("capsule gzip header differs from what repro writes")
        self._inflate = isal_zlib.decompressobj(wbits=-15)
        self._crc = 0
        self.pos = 0
        self.limit = MAX_MANIFEST_BYTES + 64 * 1024
        self.chunks: list[tuple[int, bytes]] = []
        self._done = False

    def _read_raw(self, n: int) -> bytes:
        data = self._raw.read(n)
        self.archive_digest.update(data)
        self.archive_size += len(data)
        return data

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        want = CHUNK if size is None or size < 0 else size
        pieces: list[bytes] = []
        have = 0
        while have < want and not self._done:
            tail = self._inflate.unconsumed_tail
            data = tail if tail else self._read_raw(CHUNK)
            if not data and not self._inflate.eof:
                raise CapsuleIntegrityError("capsule archive is truncated")
            piece = self._inflate.decompress(data, want - have)
            pieces.append(piece)
            have += len(piece)
            if self.pos + have > self.limit:
                # Checked inside the loop: tar asks for a huge pax header in one read.
                raise CapsuleIntegrityError(
                    "capsule holds more data than its manifest declares (decompression bomb?)"
                )
            if self._inflate.eof:
                self._finish()
        # Mostly one piece: returned as it is, not copied twice over.
        result = pieces[0] if len(pieces) == 1 else b"".join(pieces)
        self._crc = isal_zlib.crc32(result, self._crc)
        self.chunks = [*self.chunks[-(KEPT_CHUNKS - 1) :], (self.pos, result)]
        self.pos += len(result)
        if self.pos > self.limit:
            raise CapsuleIntegrityError(
                "capsule holds more data than its manifest declares (decompression bomb?)"
            )
        return result

    def _finish(self) -> None:
        trailer = self._inflate.unused_data
        while len(trailer) < 8:
            more = self._read_raw(8 - len(trailer))
            if not more:
                raise CapsuleIntegrityError("capsule archive is truncated (gzip trailer)")
            trailer += more
        self._done = True
        self._trailer = trailer

    def check_end(self) -> None:
        """After everything was read: trailer CRC and size, and no byte after it."""
        if not self._done:
            raise CapsuleIntegrityError("data after the end of the capsule archive")
        crc, size = struct.unpack("<II", self._trailer[:8])
        if crc != self._crc or size != self.pos & 0xFFFFFFFF:
            raise CapsuleIntegrityError("capsule gzip checksum does not match its content")
        if len(self._trailer) > 8 or self._read_raw(1):
            raise CapsuleIntegrityError("data appended after the end of the capsule archive")

    def unparsed_is_zero(self, offset: int) -> bool:
        for start, data in self.chunks:
            lo = max(offset - start, 0)
            if lo < len(data) and data[lo:].count(0) != len(data) - lo:
                return False
        return not self.chunks or self.chunks[0][0] <= offset

    def window(self, start: int, end: int) -> bytes | None:
        """The decompressed bytes [start, end) when they were among the last chunks returned
        (the tar headers just parsed always are), else None."""
        if not self.chunks or self.chunks[0][0] > start or end > self.pos:
            return None
        return b"".join(
            data[max(start - at, 0) : max(end - at, 0)]
            for at, data in self.chunks
            if at < end and at + len(data) > start
        )


def _content(tar: tarfile.TarFile, member: tarfile.TarInfo) -> IO[bytes]:
    fh = tar.extractfile(member)
    if fh is None:
        raise MalformedCapsuleError(f"member has no content: {member.name}")
    return fh


def _read_exact(fh: IO[bytes], size: int, name: str) -> bytes:
    data = fh.read(size)
    if len(data) != size:
        raise CapsuleIntegrityError(f"truncated member: {name}")
    return data


def read_capsule(
    path: Path,
    dest: Path | None = None,
    *,
    progress: Callable[[int], None] | None = None,
    only: Callable[[str], bool] | None = None,
) -> VerifiedCapsule:
    """Verify a capsule and, with `dest`, unpack it there (dest must not exist yet).

    `only`: unpack just the payload members it says yes to (by member name; repro.json and
    the tag files always); every member is verified all the same, and nothing is left
    unless all of them checked out (repro cat and extract)."""
    if not path.is_file():
        raise CapsuleNotFoundError(f"capsule not found: {path}")
    staging: Path | None = None
    if dest is not None:
        if dest.exists():
            raise CapsuleIntegrityError(
                f"destination already exists: {dest}", hint="choose a new folder"
            )
        dest.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".repro-unpack-", dir=dest.parent))
    try:
        try:
            with _gc_paused():
                result = _stream_canonical(path, staging, progress, only)
        except Exception:
            # Not byte for byte what the writer emits (or not readable at all): the strict
            # member-by-member reader judges it from scratch, and its verdict and message
            # are the answer. Only a canonical capsule is ever accepted by the fast path.
            if staging is not None:
                shutil.rmtree(staging, ignore_errors=True)
                staging.mkdir(mode=0o700)
            with _gc_paused():
                result = _stream(path, staging, progress, only)
        if staging is not None and dest is not None:
            staging.rename(dest)
            return VerifiedCapsule(**{**result.__dict__, "root": dest})
        return result
    except (tarfile.TarError, EOFError, zlib.error, IsalError, gzip.BadGzipFile) as exc:
        raise CapsuleIntegrityError(f"capsule archive is corrupt: {path.name}: {exc}") from None
    except OSError as exc:
        if exc.errno is not None:
            raise  # a real I/O failure of this machine, not a property of the capsule
        raise CapsuleIntegrityError(f"capsule archive is corrupt: {path.name}: {exc}") from None
    finally:
        if staging is not None and staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """No cyclic garbage collection while a capsule is read: the reader makes a few objects
    per member and no cycles, and the collector's passes over the growing heap (100,000
    manifest entries, their JSON, the checks' sets) cost a third of reading the manifest."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def peek_manifest(path: Path) -> Manifest:
    """The manifest alone, read from the capsule's first member, to choose what to unpack:
    checked as parse_manifest checks it, but not against the rest of the archive -- nothing
    it says may be relied on before read_capsule has verified the whole capsule."""
    if not path.is_file():
        raise CapsuleNotFoundError(f"capsule not found: {path}")
    try:
        with path.open("rb") as raw_fh:
            gz = _StrictGunzip(raw_fh)
            with tarfile.open(fileobj=cast(IO[bytes], gz), mode="r|") as tar:
                first = next(iter(tar), None)
                if first is None or first.name != MANIFEST_NAME or not first.isreg():
                    raise MalformedCapsuleError(
                        "not a repro capsule: repro.json is not its first member"
                    )
                if first.size > MAX_MANIFEST_BYTES:
                    raise MalformedCapsuleError("repro.json is larger than any real manifest")
                data = _read_exact(_content(tar, first), first.size, MANIFEST_NAME)
                with _gc_paused():
                    return parse_manifest(data)
    except (tarfile.TarError, EOFError, zlib.error, IsalError, gzip.BadGzipFile) as exc:
        raise CapsuleIntegrityError(f"capsule archive is corrupt: {path.name}: {exc}") from None


class _NotCanonical(Exception):
    """The capsule differs from the writer's output: the strict reader takes over."""


class _Cursor:
    """Sequential reads over the decompressed stream, from 1 MiB chunks."""

    def __init__(self, gz: _StrictGunzip) -> None:
        self._gz = gz
        self._buf = b""
        self._at = 0
        self.offset = 0
        """Bytes of the tar stream consumed so far."""

    def some(self, n: int) -> bytes:
        """Between 1 and n next bytes; _NotCanonical at the end of the stream."""
        if self._at >= len(self._buf):
            self._buf = self._gz.read(CHUNK)
            self._at = 0
            if not self._buf:
                raise _NotCanonical("truncated")
        piece = self._buf[self._at : self._at + n]
        self._at += len(piece)
        self.offset += len(piece)
        return piece

    def take(self, n: int) -> bytes:
        piece = self.some(n) if n else b""
        if len(piece) == n:
            return piece
        parts = [piece]
        have = len(piece)
        while have < n:
            more = self.some(n - have)
            parts.append(more)
            have += len(more)
        return b"".join(parts)

    def at_end(self) -> bool:
        if self._at < len(self._buf):
            return False
        self._buf = self._gz.read(CHUNK)
        self._at = 0
        return not self._buf


def _expect(cursor: _Cursor, want: bytes) -> None:
    if cursor.take(len(want)) != want:
        raise _NotCanonical("header or padding")


def _octal_field(header: bytes, start: int) -> int:
    field = header[start : start + 12]
    if len(field) != 12 or field[11] != 0 or not all(48 <= c <= 55 for c in field[:11]):
        raise _NotCanonical("size field")
    return int(field[:11], 8)


def _stream_canonical(
    path: Path,
    staging: Path | None,
    progress: Callable[[int], None] | None,
    only: Callable[[str], bool] | None = None,
) -> VerifiedCapsule:
    """Verify (and unpack) a capsule by regenerating, member by member, the tar stream the
    writer emits for its manifest and comparing: headers byte for byte, contents by sha256,
    padding and the end of the archive as zeros, the gzip layer as strict as ever. Anything
    else raises, and the strict reader (`_stream`) judges the capsule instead; so this only
    ever accepts what that one accepts, at a fraction of the cost per member."""
    with path.open("rb") as raw_fh, contextlib.ExitStack() as stack:
        gz = _StrictGunzip(raw_fh)
        cursor = _Cursor(gz)
        first = cursor.take(tarfile.BLOCKSIZE)
        size = _octal_field(first, 124)
        if size > MAX_MANIFEST_BYTES:
            raise _NotCanonical("manifest size")
        manifest_bytes = cursor.take(size)
        manifest = parse_manifest(manifest_bytes)
        epoch = _epoch(manifest.created)
        if first != member_header(MANIFEST_NAME, size, 0o644, epoch):
            raise _NotCanonical("manifest header")
        _expect(cursor, padding(size))
        tags = tag_files(manifest, manifest_bytes)
        if len(manifest.files) > HARD_MAX_MEMBERS or manifest.payload_size > HARD_MAX_BYTES:
            raise _NotCanonical("limits")
        gz.limit = cursor.offset + _budget(manifest, tags) + CHUNK
        head = cursor.take(tarfile.BLOCKSIZE)
        signature: bytes | None = None
        sig_size = _octal_field(head, 124)
        signed = head == member_header(SIGNATURE_NAME, sig_size, 0o644, epoch)
        if signed:
            if sig_size > MAX_SIGNATURE_BYTES:
                raise _NotCanonical("signature size")
            signature = cursor.take(sig_size)
            _expect(cursor, padding(sig_size))
            _place_bytes(staging, SIGNATURE_NAME, signature)
        pending = b"" if signed else head
        for name in TAG_FILES:
            data = tags[name]
            _expect_after(cursor, pending, member_header(name, len(data), 0o644, epoch))
            pending = b""
            if cursor.take(len(data)) != data:
                raise _NotCanonical("tag file")
            _expect(cursor, padding(len(data)))
            _place_bytes(staging, name, data)
        # The order member_order gives (the writer's), without a name -> entry lookup.
        files = sorted(manifest.files, key=lambda f: f.path.encode())
        links: list[FileEntry] = []
        unpacker = stack.enter_context(_Unpacker(staging)) if staging is not None else None
        shown = stack.enter_context(
            meter("unpacking" if staging else "verifying", total=len(TAG_FILES) + len(files))
        )
        shown.advance(len(TAG_FILES))
        sha256 = hashlib.sha256
        file_header = _FileHeaders(epoch).header
        # Every name is the manifest's (checked safe by parse_manifest).
        for entry in files:
            shown.advance()
            name = entry.path
            wanted = unpacker if only is None or only(name) else None
            if entry.mode & 0o7000:
                raise _NotCanonical("mode")
            if entry.link is not None:
                _expect(cursor, member_header(name, 0, 0o777, epoch, entry.link))
                if sha256(entry.link.encode()).hexdigest() != entry.sha256:
                    raise _NotCanonical("link checksum")
                if wanted is not None:
                    links.append(entry)
                continue
            size = entry.size
            header = file_header(name, size, entry.mode)
            if size <= SMALL_MEMBER:
                # Header, content and padding in one read, mostly one slice of a chunk.
                end = len(header) + size
                block = cursor.take(end + -size % tarfile.BLOCKSIZE)
                if not block.startswith(header) or not block.endswith(_ZEROS[: len(block) - end]):
                    raise _NotCanonical("header or padding")
                content = block[len(header) : end]
                if sha256(content).hexdigest() != entry.sha256:
                    raise _NotCanonical("checksum")
                if wanted is not None:
                    wanted.add(name, content, entry.mode)
            else:
                _expect(cursor, header)
                _copy_canonical(cursor, entry, wanted)
                _expect(cursor, padding(size))
            if progress:
                progress(size)
        _expect(cursor, END_OF_ARCHIVE)
        _expect(cursor, b"\0" * (-cursor.offset % tarfile.RECORDSIZE))
        if not cursor.at_end():
            raise _NotCanonical("data after the archive")
        gz.check_end()
        if unpacker is not None:
            unpacker.close()  # every file written (or the first error) before any link
        _place_bytes(staging, MANIFEST_NAME, manifest_bytes)
        for entry in links:
            if staging is not None:
                target = staging / entry.path
                target.parent.mkdir(parents=True, exist_ok=True)
                target.symlink_to(entry.link or "")
    return VerifiedCapsule(
        path=path,
        manifest=manifest,
        manifest_bytes=manifest_bytes,
        capsule_id=hashlib.sha256(manifest_bytes).hexdigest(),
        signature=signature,
        archive_sha256=gz.archive_digest.hexdigest(),
        archive_size=gz.archive_size,
        root=staging,
    )


class _FileHeaders:
    """member_header for the regular files of one capsule, the common case (an ASCII name
    of at most 100 bytes) built from parts made once per mode: the same bytes, cheaper."""

    def __init__(self, mtime: int) -> None:
        self._mtime = mtime
        self._parts: dict[int, tuple[bytes, bytes, int]] = {}

    def header(self, name: str, size: int, mode: int) -> bytes:
        parts = self._parts.get(mode)
        if parts is None:
            parts = self._parts[mode] = self._parts_for(mode)
        name_b = name.encode()
        if len(name_b) > tarfile.LENGTH_NAME or len(name_b) != len(name) or size >= _OCTAL_11:
            return member_header(name, size, mode, self._mtime)
        head, tail, fixed = parts
        size_b = b"%011o\0" % size
        checksum = fixed + sum(name_b) + sum(size_b)
        return b"".join(
            (name_b.ljust(tarfile.LENGTH_NAME, b"\0"), head, size_b, tail % checksum, _TYPE_TAIL)
        )

    def _parts_for(self, mode: int) -> tuple[bytes, bytes, int]:
        """What precedes the size field, what follows it up to the checksum (a %-format for
        it), and the checksum of the header with an empty name and size."""
        empty = member_header("", 0, mode, self._mtime)
        if len(empty) != tarfile.BLOCKSIZE or not 0 <= mode < 8**7:
            raise _NotCanonical("mode")
        head = empty[100:124]
        tail = empty[136:148].replace(b"%", b"%%") + b"%06o\0 "
        blank = empty[:148] + b" " * 8 + empty[156:]
        fixed = sum(blank) - sum(empty[124:136])
        return head, tail, fixed


_OCTAL_11 = 8**11
_TYPE_TAIL = tarfile.REGTYPE + bytes(tarfile.LENGTH_LINK) + b"ustar\x0000" + bytes(247)
"""A regular file's header after its checksum: type, no link, ustar magic and version, empty
owner names, device numbers and prefix (32 + 32 + 8 + 8 + 155 + 12 zero bytes)."""
SMALL_MEMBER = 1 << 20
"""Members up to this size are read whole and handed to the unpacker's threads."""
_ZEROS = bytes(tarfile.BLOCKSIZE)


class _Unpacker:
    """Writes verified files into the staging folder from a writer thread: creating a file
    is a slow system call (ext4: ~0.1 ms), and os.open/os.write/os.close release the GIL, so
    the main thread goes on decompressing and checking while it waits (as gzip and tar run
    side by side in `tar xzf`). The files go in batches (fewer hand-offs) and at most
    MAX_BATCHES of them wait (flat memory); folders are made once, by the main thread,
    before any file in them is handed over. Only bytes whose sha256 already matched the
    manifest are handed over.

    One thread: at 100,000 files, 4 threads spent 2-3x the system CPU of 1 or 2 (several
    threads creating files in one folder wait on its lock), for no shorter wall time."""

    THREADS = 1
    BATCH_FILES = 256
    BATCH_BYTES = 1 << 20
    MAX_BATCHES = 16

    def __init__(self, root: Path) -> None:
        self._root = str(root)
        self._umask = _read_umask()
        self._made: set[str] = set()
        self._batch: list[tuple[str, bytes, int]] = []
        self._batch_bytes = 0
        self._waiting: collections.deque[concurrent.futures.Future[None]] = collections.deque()
        self._pool = concurrent.futures.ThreadPoolExecutor(
            self.THREADS, thread_name_prefix="repro-unpack"
        )

    def __enter__(self) -> _Unpacker:
        return self

    def __exit__(self, *exc: object) -> None:
        # Even on an error: no thread may still write once the caller removes the folder.
        self._pool.shutdown(wait=True, cancel_futures=True)

    def path(self, name: str) -> str:
        """Where `name` goes, its folder made."""
        folder = name.rpartition("/")[0]
        if folder not in self._made:
            os.makedirs(f"{self._root}/{folder}", exist_ok=True)  # noqa: PTH103 (a str path is cheaper)
            self._made.add(folder)
        return f"{self._root}/{name}"

    def add(self, name: str, data: bytes, mode: int) -> None:
        self._batch.append((self.path(name), data, mode))
        self._batch_bytes += len(data)
        if len(self._batch) >= self.BATCH_FILES or self._batch_bytes >= self.BATCH_BYTES:
            self._submit()

    def _submit(self) -> None:
        while len(self._waiting) >= self.MAX_BATCHES:
            self._waiting.popleft().result()
        self._waiting.append(self._pool.submit(_write_files, self._batch, self._umask))
        self._batch = []
        self._batch_bytes = 0

    def close(self) -> None:
        """Wait for every file to be written; the first error, if any, raised."""
        if self._batch:
            self._submit()
        while self._waiting:
            self._waiting.popleft().result()


def _write_files(batch: list[tuple[str, bytes, int]], umask: int | None) -> None:
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
    for target, data, mode in batch:
        mode &= 0o755
        # Created with its mode when the umask leaves it whole (the staging folder is the
        # caller's alone, mode 0700): one system call less per file than chmod after.
        fd = os.open(target, flags, mode if umask is not None and not mode & umask else 0o600)
        try:
            written = os.write(fd, data)
            if written < len(data):
                view = memoryview(data)[written:]
                while view:
                    view = view[os.write(fd, view) :]
            if umask is None or mode & umask:
                os.fchmod(fd, mode)
        finally:
            os.close(fd)


def _read_umask() -> int | None:
    """This process's umask, read without changing it (os.umask would, for every thread
    at once); None where /proc does not say."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:  # noqa: PTH123
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return None


def _expect_after(cursor: _Cursor, pending: bytes, want: bytes) -> None:
    """`want` next in the stream; `pending` is a header block already read (the one after
    repro.json, read to tell whether the capsule is signed)."""
    if pending:
        if want[: len(pending)] != pending:
            raise _NotCanonical("header")
        want = want[len(pending) :]
    _expect(cursor, want)


def _copy_canonical(cursor: _Cursor, entry: FileEntry, unpacker: _Unpacker | None) -> None:
    """A member too large to hold whole: hashed (and written) as it streams by."""
    digest = hashlib.sha256()
    fd = None
    if unpacker is not None:
        target = unpacker.path(entry.path)
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        remaining = entry.size
        while remaining:
            chunk = cursor.some(min(CHUNK, remaining))
            digest.update(chunk)
            if fd is not None:
                view = memoryview(chunk)
                while view:
                    view = view[os.write(fd, view) :]
            remaining -= len(chunk)
        if digest.hexdigest() != entry.sha256:
            raise _NotCanonical("checksum")
        if fd is not None:
            os.fchmod(fd, entry.mode & 0o755)
    finally:
        if fd is not None:
            os.close(fd)


def _stream(
    path: Path,
    staging: Path | None,
    progress: Callable[[int], None] | None,
    only: Callable[[str], bool] | None = None,
) -> VerifiedCapsule:
    with path.open("rb") as raw_fh:
        gz = _StrictGunzip(raw_fh)
        stream = cast(IO[bytes], gz)
        with tarfile.open(fileobj=stream, mode="r|", bufsize=256 << 10) as tar:
            members = iter(tar)
            first = next(members, None)
            if first is None or first.name != MANIFEST_NAME or not first.isreg():
                raise MalformedCapsuleError(
                    "not a repro capsule: repro.json is not its first member", hint=NOT_A_CAPSULE
                )
            if first.size > MAX_MANIFEST_BYTES:
                raise MalformedCapsuleError("repro.json is larger than any real manifest")
            first_header = gz.window(0, first.offset_data)
            manifest_bytes = _read_exact(_content(tar, first), first.size, MANIFEST_NAME)
            manifest = parse_manifest(manifest_bytes)
            entries = {f.path: f for f in manifest.files}
            tags = tag_files(manifest, manifest_bytes)
            if len(entries) > HARD_MAX_MEMBERS:
                raise MalformedCapsuleError("capsule lists more members than repro allows")
            if manifest.payload_size > HARD_MAX_BYTES:
                raise MalformedCapsuleError("capsule declares more data than repro allows")
            gz.limit = gz.pos + _budget(manifest, tags)
            epoch = _epoch(manifest.created)
            _check_header(first, None, epoch)
            if first_header != member_header(MANIFEST_NAME, first.size, 0o644, epoch):
                raise CapsuleIntegrityError(
                    f"member header differs from what repro writes: {MANIFEST_NAME}"
                )
            data_end = first.offset_data + first.size

            signature: bytes | None = None
            member = next(members, None)
            signed = member is not None and member.name == SIGNATURE_NAME
            order = member_order(manifest, signed)[1:]
            position = {name: i for i, name in enumerate(order)}
            cursor = 0
            links: list[FileEntry] = []
            while member is not None:
                _check_member(
                    member,
                    order[cursor] if cursor < len(order) else None,
                    entries,
                    position,
                    cursor,
                )
                _check_header(member, entries.get(member.name), epoch)
                _check_raw_header(gz, member, entries.get(member.name), epoch, data_end)
                data_end = member.offset_data + member.size
                cursor += 1
                name = member.name
                if name == SIGNATURE_NAME:
                    if member.size > MAX_SIGNATURE_BYTES:
                        raise CapsuleIntegrityError("repro.sig is larger than any real signature")
                    signature = _read_exact(_content(tar, member), member.size, name)
                    _place_bytes(staging, name, signature)
                elif name in TAG_FILES:
                    data = _read_exact(_content(tar, member), member.size, name)
                    if data != tags[name]:
                        raise CapsuleIntegrityError(f"tag file does not match the manifest: {name}")
                    _place_bytes(staging, name, data)
                else:
                    entry = entries[name]
                    wanted = staging if only is None or only(name) else None
                    if entry.link is not None:
                        if wanted is not None:
                            links.append(entry)
                    else:
                        _copy_checked(_content(tar, member), entry, wanted)
                        if progress:
                            progress(entry.size)
                member = next(members, None)
            if cursor < len(order):
                raise CapsuleIntegrityError(f"member missing from the capsule: {order[cursor]}")
            _place_bytes(staging, MANIFEST_NAME, manifest_bytes)
            # Links last, so no file is ever written through one.
            for entry in links:
                if staging is not None:
                    target = staging / entry.path
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.symlink_to(entry.link or "")
            padding = gz.window(data_end, tar.offset)
            if padding is None or padding.count(0) != len(padding):
                raise CapsuleIntegrityError("data in the padding after a member of the capsule")
            if not gz.unparsed_is_zero(tar.offset):
                raise CapsuleIntegrityError("data appended after the end of the capsule archive")
            _check_trailer(gz)
        gz.check_end()
    return VerifiedCapsule(
        path=path,
        manifest=manifest,
        manifest_bytes=manifest_bytes,
        capsule_id=hashlib.sha256(manifest_bytes).hexdigest(),
        signature=signature,
        archive_sha256=gz.archive_digest.hexdigest(),
        archive_size=gz.archive_size,
        root=staging,
    )


def _budget(manifest: Manifest, tags: dict[str, bytes]) -> int:
    """Most decompressed bytes a capsule with this manifest can hold after repro.json."""
    total = 20 * 512 * 2  # end-of-archive blocks and record padding
    total += MAX_SIGNATURE_BYTES + 4 * 512
    for data in tags.values():
        total += 4 * 512 + len(data)
    # Per file: header, a pax header and its data (long or non-ASCII names), content padded
    # to 512 bytes; the names and link targets summed at once.
    files = manifest.files
    total += 4 * 512 * len(files) + sum(f.size for f in files)
    total += 2 * len("".join(f.path for f in files).encode())
    total += 2 * len("".join(f.link or "" for f in files).encode())
    return total


def _epoch(created: str) -> int:
    try:
        return created_epoch(created)
    except ValueError:
        raise MalformedCapsuleError(
            f"repro.json has an invalid creation time: {created!r}"
        ) from None


def _check_header(member: tarfile.TarInfo, entry: FileEntry | None, epoch: int) -> None:
    """Owners, times and modes are fixed by the writer; anything else is a changed capsule."""
    mode = 0o777 if entry is not None and entry.link else entry.mode if entry else 0o644
    if (member.uid, member.gid, member.uname, member.gname) != (0, 0, "", ""):
        raise CapsuleIntegrityError(f"member owner differs from what repro writes: {member.name}")
    if member.mtime != epoch:
        raise CapsuleIntegrityError(f"member time differs from the manifest's: {member.name}")
    if member.mode != mode:
        raise CapsuleIntegrityError(
            f"member mode {oct(member.mode)} differs from the manifest's {oct(mode)}: {member.name}"
        )


def _check_raw_header(
    gz: _StrictGunzip, member: tarfile.TarInfo, entry: FileEntry | None, epoch: int, data_end: int
) -> None:
    """The member's header is byte for byte what the writer emits for it, right after the
    previous member's zero padding: no PAX comments or global records, no GNU long names, no
    other type, link name or time format, no data hidden in padding."""
    name = member.name
    if member.offset != data_end + (-data_end % tarfile.BLOCKSIZE):
        raise CapsuleIntegrityError(f"data between members of the capsule, before: {name}")
    raw = gz.window(data_end, member.offset_data)
    if raw is None:
        raise CapsuleIntegrityError(f"member header larger than repro writes: {name}")
    pad = member.offset - data_end
    if raw[:pad].count(0) != pad:
        raise CapsuleIntegrityError(f"data in the padding after a member of the capsule: {name}")
    if entry is not None and entry.link is not None:
        want = member_header(name, 0, 0o777, epoch, entry.link)
    else:
        want = member_header(name, member.size, entry.mode if entry else 0o644, epoch)
    if raw[pad:] != want:
        raise CapsuleIntegrityError(f"member header differs from what repro writes: {name}")


def _check_member(
    member: tarfile.TarInfo,
    want: str | None,
    entries: dict[str, FileEntry],
    position: dict[str, int],
    cursor: int,
) -> None:
    name = member.name
    safe_member_name(name)
    if member.mode & 0o7000:
        raise UnsafeArchiveMemberError(f"setuid, setgid or sticky bit on member: {name}")
    if member.islnk():
        raise UnsafeArchiveMemberError(f"hard link in capsule: {name}")
    if member.isdev() or member.isfifo():
        raise UnsafeArchiveMemberError(f"device or FIFO in capsule: {name}")
    if not (member.isreg() or member.issym()):
        raise UnsafeArchiveMemberError(f"unexpected member type in capsule: {name}")
    if name == want:
        pass
    elif name not in entries and name not in TAG_FILES and name != SIGNATURE_NAME:
        raise CapsuleIntegrityError(f"member not listed in the manifest: {name}")
    elif want is None or position.get(name, -1) < cursor:
        raise CapsuleIntegrityError(f"member out of place (duplicate or reordered): {name}")
    else:
        raise CapsuleIntegrityError(f"member missing from the capsule: {want}")
    entry = entries.get(name)
    if entry is not None and entry.link is not None:
        if not member.issym() or member.linkname != entry.link:
            raise CapsuleIntegrityError(f"symlink does not match the manifest: {name}")
        if hashlib.sha256(entry.link.encode()).hexdigest() != entry.sha256:
            raise CapsuleIntegrityError(f"checksum mismatch: {name}")
    elif member.issym():
        raise UnsafeArchiveMemberError(f"symlink not declared in the manifest: {name}")
    elif entry is not None and member.size != entry.size:
        raise CapsuleIntegrityError(
            f"size mismatch: {name} is {member.size} bytes, manifest says {entry.size}"
        )


def _open_new(staging: Path, name: str) -> IO[bytes]:
    target = staging / name
    target.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    return os.fdopen(fd, "wb")


def _place_bytes(staging: Path | None, name: str, data: bytes) -> None:
    if staging is None:
        return
    with _open_new(staging, name) as out:
        out.write(data)
    (staging / name).chmod(0o644)


def _copy_checked(fh: IO[bytes], entry: FileEntry, staging: Path | None) -> None:
    digest = hashlib.sha256()
    out = _open_new(staging, entry.path) if staging is not None else None
    remaining = entry.size
    try:
        while remaining:
            chunk = fh.read(min(CHUNK, remaining))
            if not chunk:
                raise CapsuleIntegrityError(f"truncated member: {entry.path}")
            digest.update(chunk)
            if out is not None:
                out.write(chunk)
            remaining -= len(chunk)
    finally:
        if out is not None:
            out.close()
    if digest.hexdigest() != entry.sha256:
        raise CapsuleIntegrityError(f"checksum mismatch: {entry.path}")
    if staging is not None:
        (staging / entry.path).chmod(entry.mode & 0o755)


def _check_trailer(gz: _StrictGunzip) -> None:
    """After the archive only zero padding may follow (appended data is tampering)."""
    seen = 0
    while chunk := gz.read(CHUNK):
        if chunk.count(0) != len(chunk):
            raise CapsuleIntegrityError("data appended after the end of the capsule archive")
        seen += len(chunk)
        if seen > MAX_TRAILING:
            raise CapsuleIntegrityError("too much padding after the end of the capsule archive")
