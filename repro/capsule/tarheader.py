"""The tar header bytes of a capsule member, as the writer emits them and the reader insists
on: tarfile's PAX format with fixed owners, mode and time, the common case built directly."""

from __future__ import annotations

import tarfile

__all__ = ["END_OF_ARCHIVE", "member_header", "padding"]

_ZERO8 = b"0000000\0"
_USTAR_TAIL = b"ustar\x0000" + b"\0" * (32 + 32 + 8 + 8 + 155 + 12)
_OCTAL_11 = 8**11
_FIXED_SUM = 2 * sum(_ZERO8) + 8 * ord(" ") + sum(_USTAR_TAIL)
"""The checksum's share of the fields every header has alike (uid, gid, the checksum itself
counted as spaces, the ustar tail): only the variable fields are summed per header."""


def member_header(name: str, size: int, mode: int, mtime: int, link: str | None = None) -> bytes:
    """The header bytes the writer emits for a member (a PAX record first when its name or
    link needs one): tarfile's PAX format, with the writer's owners, mode, time and encoding.

    The common case (an ASCII name and link of at most 100 bytes) is built here directly,
    byte for byte as tarfile builds it, at a fraction of the cost; the rest asks tarfile."""
    target = link or ""
    if is_plain(name, size, mode, mtime, target):
        name_b = name.encode("ascii")
        link_b = target.encode("ascii")
        kind = tarfile.SYMTYPE if link is not None else tarfile.REGTYPE
        mode_b = b"%07o\0" % mode
        size_b = b"%011o\0" % size
        mtime_b = b"%011o\0" % mtime
        checksum = (
            _FIXED_SUM + sum(name_b) + sum(mode_b) + sum(size_b) + sum(mtime_b) + kind[0]
        ) + sum(link_b)
        return b"".join(
            (
                name_b.ljust(100, b"\0"),
                mode_b,
                _ZERO8,  # uid
                _ZERO8,  # gid
                size_b,
                mtime_b,
                b"%06o\0 " % checksum,  # as tarfile writes it: six digits, NUL, space
                kind,
                link_b.ljust(100, b"\0"),
                _USTAR_TAIL,  # magic, version; empty uname, gname, device numbers, prefix
            )
        )
    return _tarfile_header(name, size, mode, mtime, link)


def is_plain(name: str, size: int, mode: int, mtime: int, target: str = "") -> bool:
    """Whether a member's header is one 512-byte block with no PAX record: an ASCII name and
    link target of at most 100 bytes, and numbers that fit their octal fields."""
    return (
        name.isascii()
        and target.isascii()
        and len(name) <= tarfile.LENGTH_NAME
        and len(target) <= tarfile.LENGTH_LINK
        and 0 <= size < _OCTAL_11
        and 0 <= mtime < _OCTAL_11
        and 0 <= mode < 8**7
    )


def _tarfile_header(name: str, size: int, mode: int, mtime: int, link: str | None) -> bytes:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mode = mode
    info.mtime = mtime
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    if link is not None:
        info.type = tarfile.SYMTYPE
        info.linkname = link
    return info.tobuf(tarfile.PAX_FORMAT, tarfile.ENCODING, "surrogateescape")


def padding(size: int) -> bytes:
    """The zero bytes after a member's content, up to the next 512-byte block."""
    return b"\0" * (-size % tarfile.BLOCKSIZE)


END_OF_ARCHIVE = b"\0" * (2 * tarfile.BLOCKSIZE)
"""Two zero blocks; tarfile then pads the archive to a whole record (RECORDSIZE)."""
