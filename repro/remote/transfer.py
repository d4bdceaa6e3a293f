"""Files to and from a RemoteHost: a resumable upload checked by sha256 on the far side, and
a safe download of chosen project files as a tar stream.

The upload is content-addressed (`DIR/SHA256.NAME`), so a file already there is not sent
again. A partial upload (`.part`) continues from its size once the far side's sha256 of it
matches the same prefix here; a partial that does not match (corrupted, another file) is
sent again from the start. The whole file's sha256 is checked there before it is renamed
into place.
"""

from __future__ import annotations

import hashlib
import posixpath
import secrets
import shlex
import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from repro.errors import ReproError
from repro.remote.host import RemoteDiskFullError, RemoteHost


class TransferChecksumError(ReproError):
    default_hint = "run the command again: the upload starts over"


class UnsafeDownloadError(ReproError):
    default_hint = "the far side sent a path outside the project; check the host"


@dataclass(frozen=True)
class Upload:
    remote_path: str
    size: int
    sha256: str
    sent: int
    """Bytes sent this time (0: the file was already there)."""
    resumed_from: int
    """Size of the partial upload continued (0: none, or it did not match)."""
    restarted: bool
    """A partial upload was there and did not match: it was sent again from the start."""


def _sha256(path: Path, limit: int | None = None) -> str:
    digest = hashlib.sha256()
    left = limit
    with path.open("rb") as fh:
        while left is None or left > 0:
            block = fh.read(1 << 20 if left is None else min(1 << 20, left))
            if not block:
                break
            digest.update(block)
            if left is not None:
                left -= len(block)
    return digest.hexdigest()


def _free_bytes(host: RemoteHost, folder: str) -> int | None:
    answer = host.run(f"df -Pk {shlex.quote(folder)} | tail -n 1", check=False, what="df")
    fields = answer.text.split()
    if answer.ok and len(fields) >= 4 and fields[3].isdigit():
        return int(fields[3]) * 1024
    return None


def upload(
    host: RemoteHost,
    local: Path,
    folder: str,
    *,
    progress: Callable[[int, int], None] | None = None,
    say: Callable[[str], None] = lambda _m: None,
    resumable: bool = True,
) -> Upload:
    """`local` in `folder` there (absolute), resumed when a partial is there; checked.
    `resumable=False`: a partial of this process's own (small files several repro processes
    may send at once)."""
    size = local.stat().st_size
    digest = _sha256(local)
    final = posixpath.join(folder, f"{digest[:16]}.{local.name}")
    part = final + (".part" if resumable else f".{secrets.token_hex(4)}.part")
    q_folder, q_final, q_part = shlex.quote(folder), shlex.quote(final), shlex.quote(part)
    probe = host.run(
        f"mkdir -p {q_folder} && if [ -f {q_final} ]; then echo final 0 "
        f"$(sha256sum < {q_final}); elif [ -f {q_part} ]; then echo part "
        f"$(stat -c %s {q_part}) $(sha256sum < {q_part}); else echo none 0 -; fi",
        what="looking for an earlier upload",
    )
    kind, have, remote_sha = [*probe.text.split(), "", "", ""][:3]
    if kind == "final" and remote_sha == digest:
        say(f"{local.name} is already on {host.spec.label}")
        return Upload(final, size, digest, 0, 0, False)
    offset, restarted = 0, False
    if kind == "part":
        partial = int(have)
        if 0 < partial <= size and remote_sha == _sha256(local, partial):
            offset = partial
            say(f"resuming the upload of {local.name} at {partial} of {size} bytes")
        else:
            restarted = True
            say(f"the partial upload of {local.name} there does not match: sending it again")
    free = _free_bytes(host, folder)
    if free is not None and free < size - offset:
        raise RemoteDiskFullError(
            f"{host.spec.label} has {free} bytes free in {folder}, the capsule needs "
            f"{size - offset} more"
        )
    with local.open("rb") as fh:
        fh.seek(offset)
        redirect = ">>" if offset else ">"
        sent = host.send(
            f"cat {redirect} {q_part}",
            fh,
            progress=(lambda n: progress(offset + n, size)) if progress else None,
            what=f"uploading {local.name}",
        )
    check = host.run(f"sha256sum < {q_part}", what="checking the upload")
    got = (check.text.split() or [""])[0]
    if got != digest:
        host.run(f"rm -f {q_part}", check=False)
        raise TransferChecksumError(
            f"{local.name} arrived on {host.spec.label} with sha256 {got[:12]}..., "
            f"not {digest[:12]}..."
        )
    host.run(f"mv -f {q_part} {q_final}", what="placing the upload")
    return Upload(final, size, digest, sent, offset, restarted)


def _safe_member(member: tarfile.TarInfo) -> PurePosixPath:
    name = PurePosixPath(member.name)
    if name.is_absolute() or ".." in name.parts or not (member.isfile() or member.isdir()):
        raise UnsafeDownloadError(f"refused {member.name!r} from the far side")
    return name


def download(host: RemoteHost, folder: str, names: list[str], dest: Path) -> int:
    """The project-relative `names` of `folder` there, written under `dest` (regular files
    only, never outside it). The number of files written."""
    if not names:
        return 0
    for name in names:
        path = PurePosixPath(name)
        if path.is_absolute() or ".." in path.parts:
            raise UnsafeDownloadError(f"refused to fetch {name!r}")
    listing = " ".join(shlex.quote(n) for n in names)
    written = 0
    with (
        host.receive(f"cd {shlex.quote(folder)} && tar -cf - -- {listing}") as stream,
        tarfile.open(fileobj=stream, mode="r|") as archive,
    ):
        for member in archive:
            rel = _safe_member(member)
            target = dest.joinpath(*rel.parts)
            if member.isdir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            source = archive.extractfile(member)
            if source is None:
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.is_symlink():
                target.unlink()
            with target.open("wb") as out:
                while block := source.read(1 << 20):
                    out.write(block)
            written += 1
    return written
