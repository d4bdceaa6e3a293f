"""The reader's fast path (issue 20) judged against the strict one: the same tree unpacked,
the same file-list verdicts, writer-thread errors surfaced; and the size limits capture and
the reader share, so that every capsule capture writes is one verify reads."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from repro.capsule import layout, reader
from repro.capsule.layout import (
    HARD_MAX_MEMBERS,
    MAX_MANIFEST_BYTES,
    check_capsule_size,
    check_manifest_size,
    check_project_listing,
    manifest_floor,
)
from repro.capsule.manifest import FileEntry, canonical_json
from repro.capsule.tarheader import member_header
from repro.capture.pipeline import CaptureOptions, capture
from repro.errors import CapsuleTooLargeError, ReproError

EPOCH = "1700000000"


@pytest.fixture(scope="module")
def capsule(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small capsule with what takes each branch: small files, one larger than a read
    (SMALL_MEMBER), an executable, a non-ASCII and a long name, a link."""
    root = tmp_path_factory.mktemp("fast")
    project = root / "study"
    (project / "data" / "sub").mkdir(parents=True)
    for i in range(40):
        (project / "data" / "sub" / f"f{i:02d}.csv").write_text(f"{i},{i * i}\n" * (i + 1))
    (project / "data" / "big.bin").write_bytes(os.urandom(reader.SMALL_MEMBER + 1000))
    (project / "data" / "é.txt").write_text("x\n")
    (project / "data" / ("long" * 40 + ".txt")).write_text("long\n")
    (project / "data" / "link.csv").symlink_to("sub/f03.csv")
    tool = project / "tool.sh"
    tool.write_text("#!/bin/sh\necho hi\n")
    tool.chmod(0o755)
    (project / "repro.toml").write_text('[capsule]\ntitle = "Fast"\n[[data]]\npath = "data"\n')
    mp = pytest.MonkeyPatch()
    mp.setenv("SOURCE_DATE_EPOCH", EPOCH)
    mp.setenv("REPRO_CACHE_DIR", str(root / "cache"))
    try:
        capture(CaptureOptions(project=project, output=root / "c.tgz", execute=False))
    finally:
        mp.undo()
    return root / "c.tgz"


def tree(root: Path) -> dict[str, tuple[int, bytes]]:
    out = {}
    for path in sorted(root.rglob("*")):
        info = path.lstat()
        if stat.S_ISLNK(info.st_mode):
            out[str(path.relative_to(root))] = (0o120000, str(path.readlink()).encode())
        elif stat.S_ISREG(info.st_mode):
            out[str(path.relative_to(root))] = (info.st_mode, path.read_bytes())
    return out


@pytest.mark.parametrize("selection", [None, {"data/project/data/sub/f03.csv"}])
def test_fast_unpack_is_the_strict_readers_tree(
    capsule: Path, tmp_path: Path, selection: set[str] | None
) -> None:
    only = selection.__contains__ if selection else None
    (tmp_path / "fast").mkdir()
    (tmp_path / "strict").mkdir()
    fast = reader._stream_canonical(capsule, tmp_path / "fast", None, only)
    strict = reader._stream(capsule, tmp_path / "strict", None, only)
    assert fast.capsule_id == strict.capsule_id
    assert fast.archive_sha256 == strict.archive_sha256
    got = tree(tmp_path / "fast")
    assert got == tree(tmp_path / "strict")
    if not selection:
        assert len(got["data/project/data/big.bin"][1]) > reader.SMALL_MEMBER
        assert got["data/project/tool.sh"][0] & 0o777 == 0o755
        assert got["data/project/data/link.csv"] == (0o120000, b"sub/f03.csv")
    else:
        assert {n for n in got if n.startswith("data/")} == selection


def test_a_writer_thread_error_is_raised_and_no_thread_is_left(
    capsule: Path, tmp_path: Path
) -> None:
    staging = tmp_path / "staging"
    (staging / "data" / "project" / "data" / "sub").mkdir(parents=True)
    (staging / "data" / "project" / "data" / "sub" / "f20.csv").write_text("in the way\n")
    before = threading.active_count()
    with pytest.raises(FileExistsError):
        reader._stream_canonical(capsule, staging, None)
    assert threading.active_count() == before
    out = reader.read_capsule(capsule, tmp_path / "out")  # a fresh folder: unpacked
    assert out.root == tmp_path / "out"
    assert (tmp_path / "out" / "data/project/data/sub/f20.csv").read_text() == "20,400\n" * 21


_part = st.sampled_from(["a", "b", "é", ".", "..", "", "c.d", "a\\b", "x\0", "x\ny", "%"])
_path = st.lists(_part, min_size=1, max_size=4).map(lambda p: "/".join(["data", *p]))
_prefixed = st.one_of(
    _path, _path.map(lambda p: p.removeprefix("data/")), st.sampled_from(["/data/a", "data"])
)
_entry = st.tuples(
    _prefixed, st.sampled_from([0o644, 0o755, 0o600, 0o666, 0o4755]), st.booleans()
).map(
    lambda t: FileEntry.model_construct(
        path=t[0], sha256="0" * 64, size=0, mode=t[1], role="data", link="a" if t[2] else None
    )
)


@settings(max_examples=400, deadline=None)
@given(st.lists(_entry, max_size=6))
def test_the_set_check_accepts_only_what_the_tree_walk_accepts(files: list[FileEntry]) -> None:
    paths = {f.path for f in files}
    folders = reader._plain_folders(files, paths)
    if folders is None:
        return
    root = reader._file_tree(files)  # must not raise
    for candidate in {p.rpartition("/")[0] for p in paths} | paths | {"data", "data/a/b", ""}:
        node = root.find(candidate)
        in_tree = node is not None and bool(node.children) and node.entry is None
        assert (candidate in folders) == in_tree, candidate


def test_the_set_check_defers_every_refusal_to_the_tree_walk() -> None:
    def entry(path: str, mode: int = 0o644, link: str | None = None) -> FileEntry:
        return FileEntry.model_construct(
            path=path, sha256="0" * 64, size=0, mode=mode, role="data", link=link
        )

    for files in (
        [entry("data/a"), entry("data/a")],
        [entry("data/a"), entry("data/a/b")],
        [entry("data/./a")],
        [entry("data/a/../b")],
        [entry("data//a")],
        [entry("data/a/")],
        [entry("data/a\\b")],
        [entry("etc/passwd")],
        [entry("data")],
        [entry("data/a\nb")],
        [entry("data/a"), entry("x\ndata/b")],
        [entry("data/a", mode=0o4755)],
        [entry("data/a", mode=0o666)],
        [entry("data/l", mode=0o777, link="a")],
    ):
        assert reader._plain_folders(files, {f.path for f in files}) is None, files
    for files in ([entry("data/a"), entry("data/a")], [entry("data/a"), entry("data/a/b")]):
        with pytest.raises(ReproError):
            reader._file_tree(files)


def test_the_manifest_cap_fits_the_member_limit() -> None:
    # The bug: 64 MiB in all held ~390,000 files of the benchmark's ~173 bytes, while the
    # member limit is 1,000,000. A million such files fit now, as do 100-byte capsule paths.
    entry = FileEntry(
        path="data/project/data/d0000/f0000000.csv",
        sha256="a" * 64,
        size=8192,
        mode=0o644,
        role="data",
    )
    per_file = len(canonical_json(entry.model_dump(mode="json"))) + 1
    assert 170 <= per_file <= 180
    assert HARD_MAX_MEMBERS * per_file < MAX_MANIFEST_BYTES
    check_capsule_size(HARD_MAX_MEMBERS, HARD_MAX_MEMBERS * 100)
    # The floor is one: never more than the bytes an entry takes.
    for path in ("data/a", "data/" + "é" * 50, 'data/"quoted"\n'):
        small = FileEntry(path=path, sha256="0" * 64, size=0, mode=0, role="env")
        exact = len(canonical_json(small.model_dump(mode="json"))) + 1
        assert manifest_floor(1, len(path.encode())) <= exact
    assert manifest_floor(1, 6) == len(
        canonical_json(
            FileEntry(path="data/a", sha256="0" * 64, size=0, mode=0, role="env").model_dump(
                mode="json"
            )
        )
    ) + len(",")


def test_capture_refuses_what_the_reader_would_refuse_with_one_line_and_a_hint() -> None:
    with pytest.raises(CapsuleTooLargeError) as too_many:
        check_capsule_size(HARD_MAX_MEMBERS + 1, 0)
    assert "1,000,001 files; repro reads at most 1,000,000" in str(too_many.value)
    with pytest.raises(CapsuleTooLargeError) as too_long:
        check_project_listing(["x" * 300] * 600_000)
    message = str(too_long.value)
    assert "\n" not in message and "MiB" in message and "600,000 files" in message
    assert ".reproignore" in too_long.value.hint
    with pytest.raises(CapsuleTooLargeError, match="repro.json is 300.0 MiB"):
        check_manifest_size(300 << 20)
    check_manifest_size(MAX_MANIFEST_BYTES)


def test_capture_stops_before_hashing_when_the_reader_could_not_read_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = tmp_path / "study"
    (project / "data").mkdir(parents=True)
    for i in range(5):
        (project / "data" / f"f{i}.csv").write_text("1\n")
    (project / "repro.toml").write_text('[capsule]\ntitle = "T"\n[[data]]\npath = "data"\n')
    monkeypatch.setenv("REPRO_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(layout, "HARD_MAX_MEMBERS", 3)  # a small limit, the same code path
    hashed: list[object] = []
    from repro.capture import snapshot

    monkeypatch.setattr(snapshot, "digest_files", lambda *a, **k: hashed.append(a))
    with pytest.raises(CapsuleTooLargeError, match="repro reads at most 3"):
        capture(CaptureOptions(project=project, output=tmp_path / "c.tgz", execute=False))
    assert hashed == [] and not (tmp_path / "c.tgz").exists()
    # And the exact check on the manifest's bytes, before anything is written.
    monkeypatch.undo()
    monkeypatch.setenv("REPRO_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(layout, "MAX_MANIFEST_BYTES", 2000)
    with pytest.raises(
        CapsuleTooLargeError, match=r"repro.json is 0.0 MiB; repro reads at most 0.0 MiB"
    ):
        capture(CaptureOptions(project=project, output=tmp_path / "c.tgz", execute=False))
    assert not (tmp_path / "c.tgz").exists()


def test_a_manifest_denser_in_objects_than_a_real_one_is_refused_unparsed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from repro.errors import MalformedCapsuleError

    # Hostile: [{},{},...] takes ~21 bytes of memory per byte once parsed (a real manifest
    # ~13). A small threshold here, the same code as at 64 MiB.
    monkeypatch.setattr(layout, "DENSE_ABOVE", 1 << 16)
    hostile = b'{"files":[' + b"{}," * 30_000 + b'{}],"format":"x"}'
    assert layout.manifest_too_dense(hostile)
    with pytest.raises(MalformedCapsuleError, match="more JSON objects and arrays"):
        reader.parse_manifest(hostile)
    with pytest.raises(CapsuleTooLargeError, match="more JSON objects and arrays"):
        layout.check_manifest(hostile)  # capture refuses what the reader would

    def listing(path: str, n: int) -> bytes:
        entry = canonical_json(
            FileEntry(path=path, sha256="0" * 64, size=1, mode=0o644, role="data").model_dump()
        )
        return b'{"files":[' + b",".join([entry] * n) + b"]}"

    real = listing("data/" + "p" * 60, 1000)  # one object in ~190 bytes
    assert len(real) > layout.DENSE_ABOVE
    assert not layout.manifest_too_dense(real)
    # Brackets in paths hold no memory: 4 per entry of ~190 bytes are not counted.
    paths = listing("data/r[1]/p[2]/q[3]" + "p" * 40, 1000)
    assert paths.count(b"{") + paths.count(b"[") > len(paths) // layout.MIN_BYTES_PER_CONTAINER
    assert not layout.manifest_too_dense(paths)
    layout.check_manifest(paths)
    # At or below the threshold, density is not looked at (the parser's own checks decide).
    assert not layout.manifest_too_dense(b"[" + b"{}," * 1000 + b"{}]")


@pytest.fixture(scope="module")
def plain_manifest(capsule: Path) -> bytes:
    """The capsule's manifest without its link: what the canonical parse takes."""
    manifest = reader.peek_manifest(capsule)
    files = [f for f in manifest.files if f.link is None]
    return manifest.model_copy(update={"files": files}).canonical_json()


def test_the_canonical_parse_gives_the_strict_parses_manifest(
    capsule: Path, plain_manifest: bytes
) -> None:
    fast = reader._parse_canonical(plain_manifest)
    strict = reader._parse_strict(plain_manifest)
    assert fast is not None
    assert fast == strict
    assert fast.model_fields_set == strict.model_fields_set
    assert [f.model_fields_set for f in fast.files] == [f.model_fields_set for f in strict.files]
    assert fast.canonical_json() == plain_manifest
    assert reader.parse_manifest(plain_manifest) == strict
    # A link anywhere: the plain way (and the same verdict as ever).
    linked = reader.peek_manifest(capsule).canonical_json()
    assert reader._parse_canonical(linked) is None
    assert reader.parse_manifest(linked) == reader._parse_strict(linked)


def _edited(data: bytes, old: bytes, new: bytes) -> bytes:
    assert old in data
    return data.replace(old, new, 1)


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (b'"mode":420', b'"mode":0420'),  # not the one decimal form
        (b'"mode":420', b'"mode": 420'),  # whitespace
        (b'"mode":420', b'"mode":420.0'),  # a float
        (b'"size":', b'"size":-'),  # negative
        (b'"path":"data/', b'"path":"\\u0064ata/'),  # an escape json.dumps would not write
        (b'"role":"data"', b'"role":"Data"'),  # not a role
        (b'"files":[{', b'"files":[{"extra":1,'),  # an unknown key
        (b'"environment":{', b'"environment":{"files":[],'),  # "files" below the top level
        (b'"format":', b'"files":[],"format":'),  # "files" twice
        (b'"created":', b'"created" :'),  # the rest not canonical
    ],
)
def test_the_canonical_parse_leaves_everything_else_to_the_strict_one(
    plain_manifest: bytes, old: bytes, new: bytes
) -> None:
    data = _edited(plain_manifest, old, new)
    assert reader._parse_canonical(data) is None
    with pytest.raises(ReproError):
        reader.parse_manifest(data)


def test_a_valid_manifest_in_another_form_is_read_the_strict_way(plain_manifest: bytes) -> None:
    data = _edited(plain_manifest, b'"link":null,', b"")  # valid: link defaults to none
    assert reader._parse_canonical(data) is None
    assert reader.parse_manifest(data) == reader._parse_strict(data)


_BYTES = [b'"', b"\\", b"0", b"9", b" ", b",", b"}", b"]", b"a", b"\0", b"\n", "é".encode(), b"%"]


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 2), st.sampled_from(_BYTES)),
        min_size=1,
        max_size=3,
    )
)
def test_the_canonical_parse_accepts_only_what_the_strict_one_accepts(
    plain_manifest: bytes, edits: list[tuple[float, int, bytes]]
) -> None:
    """Bytes replaced, inserted or removed anywhere (mostly in the file list, the bulk):
    whatever the canonical parse accepts, the strict parse accepts, as the same manifest."""
    data = plain_manifest
    for where, how, byte in edits:
        at = int(where * len(data))
        kept = data[at + 1 :] if how != 1 else data[at:]  # 0 replaces, 1 inserts, 2 removes
        data = data[:at] + (byte if how != 2 else b"") + kept
    fast = reader._parse_canonical(data)
    if fast is not None:
        assert fast == reader._parse_strict(data)


@settings(max_examples=500, deadline=None)
@given(
    st.text(alphabet=st.sampled_from("ab/.é%\n"), max_size=120),
    st.one_of(st.integers(0, 9000), st.integers(0, 8**11 + 10)),
    st.sampled_from([0o644, 0o755, 0o600, 0o777, 0o4755, 0]),
    st.sampled_from([0, 1700000000, 8**11 - 1]),
)
def test_file_headers_are_member_headers(name: str, size: int, mode: int, mtime: int) -> None:
    assert reader._FileHeaders(mtime).header(name, size, mode) == member_header(
        name, size, mode, mtime
    )


def test_tag_files_without_links_escape_as_bagit_does(plain_manifest: bytes) -> None:
    manifest = reader._parse_strict(plain_manifest)
    odd = [
        FileEntry.model_construct(
            path=path, sha256=f"{i:064x}", size=i, mode=0o644, role="data", link=None
        )
        for i, path in enumerate(["data/b%c", "data/a\nb", "data/é", "data/a\rb"])
    ]
    tags = layout.tag_files(manifest.model_copy(update={"files": odd}), plain_manifest)
    assert (
        tags["manifest-sha256.txt"]
        == (
            f"{1:064x}  data/a%0Ab\n{3:064x}  data/a%0Db\n{0:064x}  data/b%25c\n{2:064x}  data/é\n"
        ).encode()
    )
    assert b"Payload-Oxum: 6.4\n" in tags["bag-info.txt"]
