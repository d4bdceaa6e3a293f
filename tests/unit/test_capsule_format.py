"""The capsule file: deterministic bytes, BagIt and RO-Crate views, and integrity checks."""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import os
import tarfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import bagit
import pytest
from rocrate.rocrate import ROCrate

from repro.capsule.layout import USAGE_TERMS
from repro.capsule.manifest import FileEntry, Manifest, canonical_json
from repro.capsule.reader import read_capsule
from repro.capsule.writer import Source, write_capsule
from repro.capture.pipeline import CaptureOptions, capture
from repro.errors import (
    CapsuleIntegrityError,
    FileChangedError,
    MalformedCapsuleError,
    UnsupportedFormatError,
)
from tests.capsules import Members, pack, rewrite


def make_project(root: Path) -> Path:
    project = root / "proj"
    (project / "data" / "sub").mkdir(parents=True)
    (project / "analyse.py").write_text("print('hi')\n")
    (project / "run.sh").write_text("#!/bin/sh\necho run\n")
    (project / "run.sh").chmod(0o755)
    (project / "data" / "a.csv").write_text("x,y\n1,2\n")
    (project / "data" / "sub" / "empty.bin").write_bytes(b"")
    (project / "data" / "sub" / "blob.bin").write_bytes(os.urandom(300_000))
    (project / "notes with space ü.txt").write_text("unicode name\n")
    (project / "link.csv").symlink_to("data/a.csv")
    (project / "repro.toml").write_text(
        '[capsule]\ntitle = "Format test"\n[[data]]\npath = "data"\n'
    )
    return project


def do_capture(project: Path, out: Path) -> Path:
    capture(CaptureOptions(project=project, output=out, execute=False))
    return out


@pytest.fixture
def capsule(tmp_path: Path) -> Path:
    return do_capture(make_project(tmp_path), tmp_path / "c.tgz")


def test_same_inputs_and_source_date_epoch_give_identical_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    project = make_project(tmp_path)
    a = do_capture(project, tmp_path / "a.tgz").read_bytes()
    os.utime(project / "analyse.py", (1, 1))  # mtimes and the hash cache must not matter
    b = do_capture(project, tmp_path / "b.tgz").read_bytes()
    assert a == b
    with tarfile.open(tmp_path / "a.tgz") as tar:
        members = tar.getmembers()
    assert {m.mtime for m in members} == {1700000000}
    assert {(m.uid, m.gid, m.uname, m.gname) for m in members} == {(0, 0, "", "")}
    assert (tmp_path / "a.tgz").read_bytes()[4:8] == b"\0\0\0\0"  # gzip mtime 0


def test_different_content_gives_different_capsule(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    project = make_project(tmp_path)
    a = read_capsule(do_capture(project, tmp_path / "a.tgz"))
    (project / "analyse.py").write_text("print('changed')\n")
    b = read_capsule(do_capture(project, tmp_path / "b.tgz"))
    assert a.capsule_id != b.capsule_id


def test_unpacked_capsule_is_a_valid_bagit_bag(capsule: Path, tmp_path: Path) -> None:
    verified = read_capsule(capsule, tmp_path / "unpacked")
    root = verified.root
    assert root is not None
    bag = bagit.Bag(str(root))
    bag.validate()  # raises BagValidationError on any problem
    # 8 project files (one a symlink, hashed by bagit as its target), 2 env files, the crate
    assert bag.info["Payload-Oxum"].endswith(f".{len(verified.manifest.files)}")
    assert len(verified.manifest.files) == 11
    payload = set(bag.payload_entries())
    assert "data/project/analyse.py" in payload
    assert "data/project/link.csv" in payload


def test_bagit_detects_a_changed_payload_file(capsule: Path, tmp_path: Path) -> None:
    root = read_capsule(capsule, tmp_path / "unpacked").root
    assert root is not None
    (root / "data" / "project" / "analyse.py").write_text("tampered\n")
    with pytest.raises(bagit.BagValidationError):
        bagit.Bag(str(root)).validate()


def test_ro_crate_describes_each_run_as_a_create_action(tmp_path: Path) -> None:
    project = make_project(tmp_path)
    (project / "repro.toml").write_text(
        '[capsule]\ntitle = "Crate"\nlicense = "MIT"\n'
        'authors = [{ name = "Doe, Jane", orcid = "0000-0002-1825-0097" }]\n'
        '[[data]]\npath = "data"\n'
        '[[runs]]\nname = "count"\ncommand = "wc -l data/a.csv > out-{n}.txt"\n'
        'outputs = ["out-{n}.txt"]\n[runs.sweep]\nn = [1, 2]\n'
    )
    capture(CaptureOptions(project=project, output=tmp_path / "c.tgz", freeze=False))
    root = read_capsule(tmp_path / "c.tgz", tmp_path / "u").root
    assert root is not None
    crate = ROCrate(str(root / "data"))
    actions = [e for e in crate.get_entities() if e.type == "CreateAction"]
    assert sorted(a["name"] for a in actions) == ["count n=1", "count n=2"]
    for action in actions:
        results = action["result"]
        assert len(results) == 1 and results[0]["sha256"]
        assert (root / "data" / results[0].id).is_file()
    assert crate.root_dataset["name"] == "Crate"
    assert crate.root_dataset["conformsTo"].id == "https://w3id.org/ro/wfrun/process/0.5"
    # What each run used, as resourceUsage PropertyValues with namespaced ids and units.
    for action in actions:
        used = {v["propertyID"].rsplit("#", 1)[1]: v for v in action["resourceUsage"]}
        assert all(v.type == "PropertyValue" for v in used.values())
        assert all(v["propertyID"].startswith(USAGE_TERMS) for v in used.values())
        assert used["wall_s"]["value"] > 0 and used["wall_s"]["unitText"] == "s"
        assert used["wall_s"]["unitCode"] == "http://qudt.org/vocab/unit/SEC"
        assert used["peak_rss_bytes"]["unitCode"] == "http://qudt.org/vocab/unit/BYTE"
        assert used["ending"]["value"] == "exited with code 0"
        assert used["processes"]["unitCode"] == "http://qudt.org/vocab/unit/NUM"


def test_capsule_keeps_modes_links_and_empty_files(capsule: Path, tmp_path: Path) -> None:
    verified = read_capsule(capsule, tmp_path / "u")
    root = verified.root
    assert root is not None
    project = root / "data" / "project"
    assert str((project / "link.csv").readlink()) == "data/a.csv"
    assert (project / "link.csv").read_text() == "x,y\n1,2\n"
    assert (project / "run.sh").stat().st_mode & 0o111
    assert not (project / "analyse.py").stat().st_mode & 0o111
    assert (project / "data" / "sub" / "empty.bin").read_bytes() == b""
    assert (project / "notes with space ü.txt").is_file()
    roles = {f.path: f.role for f in verified.manifest.files}
    assert roles["data/project/data/a.csv"] == "data"
    assert roles["data/project/analyse.py"] == "code"


# --- tampering: every changed capsule is refused, naming what changed --------------------


def _replace(name: str, new: Callable[[bytes], bytes]) -> Callable[[Members], None]:
    def mutate(members: Members) -> None:
        for i, (info, data) in enumerate(members):
            if info.name == name:
                members[i] = (info, new(data))

    return mutate


def test_verify_refuses_a_changed_payload_byte(capsule: Path, tmp_path: Path) -> None:
    bad = rewrite(
        capsule,
        tmp_path / "bad.tgz",
        _replace("data/project/analyse.py", lambda d: d.replace(b"hi", b"ho")),
    )
    with pytest.raises(CapsuleIntegrityError, match=r"checksum mismatch: data/project/analyse\.py"):
        read_capsule(bad)


def test_verify_refuses_a_missing_member(capsule: Path, tmp_path: Path) -> None:
    def drop(members: Members) -> None:
        members[:] = [m for m in members if m[0].name != "data/project/data/a.csv"]

    bad = rewrite(capsule, tmp_path / "bad.tgz", drop)
    with pytest.raises(CapsuleIntegrityError, match=r"data/project/data/a\.csv"):
        read_capsule(bad)


def test_verify_refuses_an_extra_member(capsule: Path, tmp_path: Path) -> None:
    def add(members: Members) -> None:
        members.append((tarfile.TarInfo("data/project/evil.py"), b"import os\n"))

    bad = rewrite(capsule, tmp_path / "bad.tgz", add)
    with pytest.raises(
        CapsuleIntegrityError, match=r"not listed in the manifest: data/project/evil\.py"
    ):
        read_capsule(bad)


def test_verify_refuses_an_edited_manifest(capsule: Path, tmp_path: Path) -> None:
    def edit(data: bytes) -> bytes:
        doc = json.loads(data)
        doc["metadata"]["title"] = "Forged"
        return canonical_json(doc)

    bad = rewrite(capsule, tmp_path / "bad.tgz", _replace("repro.json", edit))
    with pytest.raises(CapsuleIntegrityError, match="tag file does not match the manifest"):
        read_capsule(bad)


def test_verify_refuses_a_truncated_archive(capsule: Path, tmp_path: Path) -> None:
    data = capsule.read_bytes()
    bad = tmp_path / "bad.tgz"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(CapsuleIntegrityError):
        read_capsule(bad)


@pytest.mark.parametrize("extra", [b"MALICIOUS", b"\0" * 512])
def test_verify_refuses_data_appended_after_the_archive(
    capsule: Path, tmp_path: Path, extra: bytes
) -> None:
    bad = tmp_path / "bad.tgz"
    bad.write_bytes(capsule.read_bytes() + extra)  # e.g. a second gzip member
    with pytest.raises(CapsuleIntegrityError, match="appended"):
        read_capsule(bad)


def test_repacking_unchanged_gives_the_same_bytes(capsule: Path, tmp_path: Path) -> None:
    # The helper the tampering tests use changes nothing by itself.
    same = rewrite(capsule, tmp_path / "same.tgz", lambda members: None)
    assert same.read_bytes() == capsule.read_bytes()
    read_capsule(same)


def test_unknown_format_version_says_upgrade(capsule: Path, tmp_path: Path) -> None:
    def bump(data: bytes) -> bytes:
        doc = json.loads(data)
        doc["format"] = "repro-capsule/9"
        return canonical_json(doc)

    bad = rewrite(capsule, tmp_path / "bad.tgz", _replace("repro.json", bump))
    with pytest.raises(UnsupportedFormatError) as info:
        read_capsule(bad)
    assert "upgrade repro" in info.value.hint


def test_not_a_capsule(tmp_path: Path) -> None:
    plain = tmp_path / "plain.tgz"
    plain.write_bytes(pack([(tarfile.TarInfo("hello.txt"), b"hi")]))
    with pytest.raises(MalformedCapsuleError, match="repro.json is not its first member"):
        read_capsule(plain)
    other_gzip = tmp_path / "other.tgz"
    other_gzip.write_bytes(gzip.compress(b"x" * 1000))
    with pytest.raises(CapsuleIntegrityError, match="gzip header"):
        read_capsule(other_gzip)
    text = tmp_path / "notes.txt"
    text.write_text("not a capsule at all")
    with pytest.raises(MalformedCapsuleError, match="not gzip-compressed"):
        read_capsule(text)


def test_failed_unpack_leaves_nothing_behind(capsule: Path, tmp_path: Path) -> None:
    bad = rewrite(
        capsule, tmp_path / "bad.tgz", _replace("data/project/run.sh", lambda d: d + b"# more\n")
    )
    dest_parent = tmp_path / "out"
    dest_parent.mkdir()
    with pytest.raises(CapsuleIntegrityError):
        read_capsule(bad, dest_parent / "capsule")
    assert list(dest_parent.iterdir()) == []


def test_a_capsule_from_before_a_new_optional_field_still_verifies(
    capsule: Path, tmp_path: Path
) -> None:
    from repro.capsule.layout import tag_files
    from repro.capsule.manifest import Manifest

    def as_older_version(members: Members) -> None:
        doc = json.loads(members[0][1])
        for key in (
            "wheels",
            "image",
            "image_tag",
            "image_id",
        ):  # fields added after format 1 shipped
            doc["environment"].pop(key)
        data = canonical_json(doc)
        tags = tag_files(Manifest.model_validate(doc), data)
        for i, (info, old) in enumerate(members):
            members[i] = (info, data if info.name == "repro.json" else tags.get(info.name, old))

    older = rewrite(capsule, tmp_path / "older.tgz", as_older_version)
    verified = read_capsule(older)
    assert verified.manifest.environment.wheels is None
    assert "wheels" not in json.loads(verified.manifest_bytes)["environment"]


# --- the writer checks what it writes (issue 16, defect 5) ----------------------------------


def _with_big_file(
    capsule: Path, tmp_path: Path, recorded_sha: str | None = None
) -> tuple[Manifest, dict[str, Source | bytes], Path]:
    """The capsule's manifest and sources plus one 64 MiB project file read from disk."""
    verified = read_capsule(capsule, tmp_path / "unpacked")
    data = os.urandom(1 << 20) * 64
    big = tmp_path / "big.bin"
    big.write_bytes(data)
    entry = FileEntry(
        path="data/project/big.bin",
        sha256=recorded_sha or hashlib.sha256(data).hexdigest(),
        size=len(data),
        mode=0o644,
        role="data",
    )
    manifest = verified.manifest.model_copy(
        update={"files": sorted([*verified.manifest.files, entry], key=lambda f: f.path.encode())}
    )
    sources: dict[str, Source | bytes] = {
        f.path: (verified.root / f.path).read_bytes()
        for f in verified.manifest.files
        if f.link is None
    }
    st = big.stat()
    sources[entry.path] = Source(big, len(data), st.st_mtime_ns, st.st_ctime_ns)
    return manifest, sources, big


def test_a_file_rewritten_while_it_is_streamed_is_caught_before_the_rename(
    capsule: Path, tmp_path: Path
) -> None:
    manifest, sources, big = _with_big_file(capsule, tmp_path)

    def rewrite_once_open() -> None:
        # After the writer opened (and stat-checked) the file: only the bytes show it.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            fds = Path("/proc/self/fd")
            for fd in list(fds.iterdir()):
                with contextlib.suppress(OSError):
                    if fd.readlink() == big:
                        with big.open("r+b") as fh:
                            fh.seek(-4096, os.SEEK_END)
                            fh.write(os.urandom(4096))
                        return
            time.sleep(0.0005)

    thread = threading.Thread(target=rewrite_once_open)
    thread.start()
    out = tmp_path / "out.tgz"
    try:
        with pytest.raises(FileChangedError, match=f"^{big} changed while it was captured$"):
            write_capsule(out, manifest, sources, mtime=0)
    finally:
        thread.join()
    assert not out.exists() and not list(tmp_path.glob(".repro-tmp-*"))


def test_a_wrong_recorded_digest_is_caught_before_the_rename(capsule: Path, tmp_path: Path) -> None:
    # What a stale or poisoned stat-cache entry gives: the stat matches, the bytes do not.
    manifest, sources, big = _with_big_file(capsule, tmp_path, recorded_sha="0" * 64)
    out = tmp_path / "out.tgz"
    with pytest.raises(FileChangedError) as caught:
        write_capsule(out, manifest, sources, mtime=0)
    assert caught.value.path == big
    assert not out.exists() and not list(tmp_path.glob(".repro-tmp-*"))
