"""Regenerate tests/assets/hostile/: one hostile capsule per way a reader could be fooled.

    python -m tests.assets.make_hostile

Each file is a small valid capsule with exactly one thing wrong; expected.json names the
error each must raise. Rerun after a change to the manifest model, and commit the result.
"""

from __future__ import annotations

import json
import os
import tarfile
import tempfile
from collections.abc import Callable
from pathlib import Path

from repro.capsule.layout import MANIFEST_NAME, tag_files
from repro.capsule.manifest import Manifest, canonical_json
from repro.capture.pipeline import CaptureOptions, capture
from repro.hashing import sha256_bytes
from tests.capsules import Members, members_of, pack

HERE = Path(__file__).parent / "hostile"


def base_capsule(tmp: Path) -> Path:
    project = tmp / "study"
    project.mkdir()
    (project / "analyse.py").write_text("print('hello')\n")
    (project / "notes.txt").write_text("notes\n")
    out = tmp / "base.tgz"
    os.environ["SOURCE_DATE_EPOCH"] = "1700000000"
    capture(CaptureOptions(project=project, output=out, execute=False, sign=False))
    return out


def info(name: str, kind: bytes = tarfile.REGTYPE, **fields: object) -> tarfile.TarInfo:
    ti = tarfile.TarInfo(name)
    ti.type = kind
    ti.mtime = 1700000000
    ti.mode = 0o644
    for key, value in fields.items():
        setattr(ti, key, value)
    return ti


def insert_after_tags(members: Members, item: tuple[tarfile.TarInfo, bytes]) -> None:
    index = next(i for i, (m, _) in enumerate(members) if m.name.startswith("data/"))
    members.insert(index, item)


def with_manifest(members: Members, edit: Callable[[dict[str, object]], None]) -> None:
    """Edit repro.json and keep the capsule otherwise self-consistent (tags regenerated)."""
    doc = json.loads(members[0][1])
    edit(doc)
    data = canonical_json(doc)
    manifest = Manifest.model_validate(doc)
    tags = tag_files(manifest, data)
    for i, (m, _old) in enumerate(members):
        if m.name == MANIFEST_NAME:
            members[i] = (m, data)
        elif m.name in tags:
            members[i] = (m, tags[m.name])


def replace_content(name: str, new: Callable[[bytes], bytes]) -> Callable[[Members], None]:
    def mutate(members: Members) -> None:
        for i, (m, data) in enumerate(members):
            if m.name == name:
                members[i] = (m, new(data))

    return mutate


def add_symlink_entry(members: Members) -> None:
    def edit(doc: dict[str, object]) -> None:
        files = doc["files"]
        assert isinstance(files, list)
        files.append(
            {
                "path": "data/project/passwd",
                "sha256": sha256_bytes(b"../../../../etc/passwd"),
                "size": 0,
                "mode": 0o777,
                "role": "code",
                "link": "../../../../etc/passwd",
            }
        )
        files.sort(key=lambda f: f["path"].encode())

    with_manifest(members, edit)
    link = info(
        "data/project/passwd", tarfile.SYMTYPE, mode=0o777, linkname="../../../../etc/passwd"
    )
    names = [m.name for m, _ in members]
    members.insert(names.index("data/project/notes.txt") + 1, (link, b""))


def link_chain(members: Members) -> None:
    """A link to the capsule root, and a second link walking through it to the host."""
    up = "/".join([".."] * 2)

    def edit(doc: dict[str, object]) -> None:
        files = doc["files"]
        assert isinstance(files, list)
        for path, link in (("data/project/root", up), ("data/project/e", f"root/{up}/tmp")):
            files.append(
                {
                    "path": path,
                    "sha256": sha256_bytes(link.encode()),
                    "size": 0,
                    "mode": 0o777,
                    "role": "code",
                    "link": link,
                }
            )
        files.sort(key=lambda f: f["path"].encode())

    with_manifest(members, edit)
    names = [m.name for m, _ in members]
    at = names.index("data/project/notes.txt")
    members.insert(
        at + 1, (info("data/project/root", tarfile.SYMTYPE, mode=0o777, linkname=up), b"")
    )
    members.insert(
        at, (info("data/project/e", tarfile.SYMTYPE, mode=0o777, linkname=f"root/{up}/tmp"), b"")
    )


def manifest_edit(change: Callable[[dict[str, object]], None]) -> Callable[[Members], None]:
    def mutate(members: Members) -> None:
        doc = json.loads(members[0][1])
        change(doc)
        members[0] = (members[0][0], canonical_json(doc))  # tags left stale on purpose

    return mutate


def set_field(name: str, **fields: object) -> Callable[[Members], None]:
    def mutate(members: Members) -> None:
        for m, _ in members:
            if m.name == name:
                for key, value in fields.items():
                    setattr(m, key, value)

    return mutate


def duplicate(name: str) -> Callable[[Members], None]:
    def mutate(members: Members) -> None:
        i = next(i for i, (m, _) in enumerate(members) if m.name == name)
        members.insert(i + 1, members[i])

    return mutate


def drop(name: str) -> Callable[[Members], None]:
    def mutate(members: Members) -> None:
        members[:] = [(m, d) for m, d in members if m.name != name]

    return mutate


def bomb(members: Members) -> None:
    # A 16 MiB pax record: tiny once compressed, far beyond what the manifest declares.
    ti = info("data/project/notes.txt")
    ti.pax_headers = {"comment": "A" * (16 << 20)}
    i = next(i for i, (m, _) in enumerate(members) if m.name == "data/project/notes.txt")
    members[i] = (ti, members[i][1])


def set_format(members: Members) -> None:
    doc = json.loads(members[0][1])
    doc["format"] = "repro-capsule/2"
    members[0] = (members[0][0], canonical_json(doc))


def pretty_manifest(members: Members) -> None:
    members[0] = (members[0][0], json.dumps(json.loads(members[0][1]), indent=2).encode())


def manifest_second(members: Members) -> None:
    members.insert(1, members.pop(0))


CASES: dict[str, tuple[Callable[[Members], None] | None, str, str]] = {
    "traversal.tgz": (
        lambda m: insert_after_tags(m, (info("data/../../evil.sh"), b"rm -rf ~\n")),
        "UnsafeArchiveMemberError",
        "'..'",
    ),
    "absolute.tgz": (
        lambda m: insert_after_tags(m, (info("/tmp/evil.sh"), b"x")),
        "UnsafeArchiveMemberError",
        "absolute path",
    ),
    "symlink-escape.tgz": (
        add_symlink_entry,
        "UnsafeArchiveMemberError",
        "symlink leaves the capsule",
    ),
    "hardlink.tgz": (
        lambda m: insert_after_tags(
            m, (info("data/project/h", tarfile.LNKTYPE, linkname="data/project/analyse.py"), b"")
        ),
        "UnsafeArchiveMemberError",
        "hard link",
    ),
    "device.tgz": (
        lambda m: insert_after_tags(m, (info("data/project/sda", tarfile.BLKTYPE), b"")),
        "UnsafeArchiveMemberError",
        "device or FIFO",
    ),
    "fifo.tgz": (
        lambda m: insert_after_tags(m, (info("data/project/p", tarfile.FIFOTYPE), b"")),
        "UnsafeArchiveMemberError",
        "device or FIFO",
    ),
    "setuid.tgz": (
        set_field("data/project/analyse.py", mode=0o4755),
        "UnsafeArchiveMemberError",
        "setuid",
    ),
    "undeclared-symlink.tgz": (
        lambda m: insert_after_tags(
            m, (info("data/project/l", tarfile.SYMTYPE, linkname="analyse.py", mode=0o777), b"")
        ),
        "CapsuleIntegrityError",
        "not listed in the manifest",
    ),
    "duplicate.tgz": (duplicate("data/project/analyse.py"), "CapsuleIntegrityError", "duplicate"),
    "unlisted.tgz": (
        lambda m: m.append((info("data/project/zz-extra.py"), b"import os\n")),
        "CapsuleIntegrityError",
        "not listed in the manifest: data/project/zz-extra.py",
    ),
    "missing.tgz": (
        drop("data/project/notes.txt"),
        "CapsuleIntegrityError",
        "missing from the capsule: data/project/notes.txt",
    ),
    "size-mismatch.tgz": (
        replace_content("data/project/notes.txt", lambda d: d + b"more"),
        "CapsuleIntegrityError",
        "size mismatch: data/project/notes.txt",
    ),
    "checksum-mismatch.tgz": (
        replace_content("data/project/notes.txt", lambda d: d.upper()),
        "CapsuleIntegrityError",
        "checksum mismatch: data/project/notes.txt",
    ),
    "bomb.tgz": (bomb, "CapsuleIntegrityError", "more data than its manifest declares"),
    "manifest-not-first.tgz": (manifest_second, "MalformedCapsuleError", "not its first member"),
    "manifest-not-json.tgz": (
        replace_content(MANIFEST_NAME, lambda d: b"{" + d),
        "MalformedCapsuleError",
        "not valid JSON",
    ),
    "manifest-not-canonical.tgz": (pretty_manifest, "CapsuleIntegrityError", "canonical"),
    "future-format.tgz": (set_format, "UnsupportedFormatError", "newer than this repro"),
    "tag-file-edited.tgz": (
        replace_content("bag-info.txt", lambda d: d + b"X: y\n"),
        "CapsuleIntegrityError",
        "tag file does not match",
    ),
    "foreign-owner.tgz": (
        set_field("data/project/notes.txt", uid=1000, uname="mallory"),
        "CapsuleIntegrityError",
        "owner differs",
    ),
    "appended.tgz": (None, "CapsuleIntegrityError", "appended"),
    "symlink-through-symlink.tgz": (link_chain, "UnsafeArchiveMemberError", "through another link"),
    "lock-outside.tgz": (
        manifest_edit(lambda d: d["environment"].update({"lock": "/etc/passwd"})),  # type: ignore[union-attr]
        "MalformedCapsuleError",
        "does not list: /etc/passwd",
    ),
    "remote-data-escape.tgz": (
        manifest_edit(
            lambda d: d.update(
                {
                    "remote_data": [
                        {
                            "url": "https://example.org/x",
                            "sha256": "0" * 64,
                            "size": 1,
                            "path": "../../../root/.bashrc",
                        }
                    ]
                }
            )
        ),
        "MalformedCapsuleError",
        "plain relative path",
    ),
    "sweep-escape.tgz": (
        manifest_edit(
            lambda d: d.update(
                {
                    "runs": [
                        {
                            "name": "r",
                            "command": "true",
                            "outputs": ["{v}"],
                            "sweep": {"v": ["../../../../tmp/victim"]},
                        }
                    ]
                }
            )
        ),
        "MalformedCapsuleError",
        "plain relative path",
    ),
    "notebook-expectation-outside.tgz": (
        manifest_edit(
            lambda d: d.update(
                {
                    "notebook_results": [
                        {
                            "path": "notes.txt",
                            "capsule_path": "/etc/passwd",
                            "sha256": "0" * 64,
                            "size": 1,
                            "kernel": {"name": "python3", "language": "python"},
                            "executed": True,
                            "code_cells": 1,
                        }
                    ]
                }
            )
        ),
        "MalformedCapsuleError",
        "does not list: /etc/passwd",
    ),
    "notebook-escape.tgz": (
        manifest_edit(lambda d: d.update({"notebooks": [{"path": "../../../tmp/x.ipynb"}]})),
        "MalformedCapsuleError",
        "plain relative path",
    ),
    # A "local wheel" that is really one of the project's files: installing it would run
    # whatever the capsule put there as a package, outside the recorded environment.
    "local-wheel-not-a-wheel.tgz": (
        manifest_edit(
            lambda d: d["environment"].update(  # type: ignore[union-attr]
                {
                    "local_packages": [
                        {
                            "name": "evil",
                            "version": "1",
                            "kind": "path",
                            "origin": "evil",
                            "wheel": "data/project/analyse.py",
                            "sha256": "0" * 64,
                            "declared_in": "requirements.txt",
                        }
                    ]
                }
            )
        ),
        "MalformedCapsuleError",
        "is not under data/env/local-wheels/",
    ),
    "post-build-outside.tgz": (
        manifest_edit(
            lambda d: d["environment"].update({"post_build": "data/env/requirements.lock"})  # type: ignore[union-attr]
        ),
        "MalformedCapsuleError",
        "post_build is not a project file",
    ),
}


def main() -> None:
    HERE.mkdir(exist_ok=True)
    expected = {}
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["REPRO_CACHE_DIR"] = str(Path(tmp) / "cache")
        base = base_capsule(Path(tmp))
        for name, (mutate, error, message) in CASES.items():
            if mutate is None:
                data = base.read_bytes() + b"\x1f\x8b\x08\x00" + b"\0" * 16
            else:
                members = members_of(base)
                mutate(members)
                data = pack(members)
            (HERE / name).write_bytes(data)
            expected[name] = {"error": error, "message": message}
    (HERE / "expected.json").write_text(json.dumps(expected, indent=2, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
