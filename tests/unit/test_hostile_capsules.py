"""Capsules from strangers: golden hostile inputs (one failure each) and mutation properties."""

from __future__ import annotations

import json
import os
import shutil
import tarfile
import tempfile
import zlib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from repro import errors
from repro.capsule.manifest import canonical_json
from repro.capsule.reader import read_capsule
from repro.capture.pipeline import CaptureOptions, capture
from repro.errors import CapsuleError, ExitCode, ReproError
from tests.capsules import Members, members_of, pack
from tests.conftest import run_cli

HOSTILE = Path(__file__).resolve().parent.parent / "assets" / "hostile"
EXPECTED = json.loads((HOSTILE / "expected.json").read_text())


def test_every_golden_file_has_an_expectation() -> None:
    assert sorted(p.name for p in HOSTILE.glob("*.tgz")) == sorted(EXPECTED)
    assert len(EXPECTED) >= 20


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_golden_hostile_capsule_is_refused_and_nothing_is_left(name: str, tmp_path: Path) -> None:
    expected = EXPECTED[name]
    outside = tmp_path / "outside"
    outside.mkdir()
    dest_parent = tmp_path / "unpack"
    dest_parent.mkdir()
    with pytest.raises(getattr(errors, expected["error"])) as info:
        read_capsule(HOSTILE / name, dest_parent / "capsule")
    assert expected["message"] in info.value.message
    assert info.value.exit_code == ExitCode.INVALID_CAPSULE
    assert list(dest_parent.iterdir()) == []
    assert list(outside.iterdir()) == []
    assert not Path("/tmp/evil.sh").exists()


@pytest.mark.parametrize("name", ["traversal.tgz", "bomb.tgz", "symlink-escape.tgz"])
def test_cli_exit_4_with_a_one_line_error(name: str) -> None:
    result = run_cli("verify", str(HOSTILE / name))
    assert result.returncode == 4
    assert [ln for ln in result.stderr.splitlines() if ln.startswith("error:")]
    assert "Traceback" not in result.stderr


# --- property: no mutation passes, crashes or writes outside ------------------------------


@pytest.fixture(scope="module")
def valid_capsule(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    tmp = tmp_path_factory.mktemp("valid")
    project = tmp / "p"
    (project / "data").mkdir(parents=True)
    (project / "a.py").write_text("print('a')\n")
    (project / "data" / "x.csv").write_text("1,2\n3,4\n")
    (project / "link.csv").symlink_to("data/x.csv")
    (project / "repro.toml").write_text('[[data]]\npath = "data"\n')
    old = os.environ.get("REPRO_CACHE_DIR")
    os.environ["REPRO_CACHE_DIR"] = str(tmp / "cache")
    try:
        capture(CaptureOptions(project=project, output=tmp / "c.tgz", execute=False, sign=False))
    finally:
        if old is not None:
            os.environ["REPRO_CACHE_DIR"] = old
    return (tmp / "c.tgz").read_bytes()


def _rename(members: Members, index: int, name: str) -> None:
    info, data = members[index % len(members)]
    info.name = name
    members[index % len(members)] = (info, data)


member_mutations = st.one_of(
    st.tuples(st.just("swap"), st.integers(0, 50), st.integers(0, 50)),
    st.tuples(
        st.just("rename"),
        st.integers(0, 50),
        st.sampled_from(
            [
                "../escape",
                "/abs",
                "data/project/a.py",
                "data/x",
                "a/../../b",
                "data/project/link.csv",
                "repro.json",
                "data/project//a.py",
            ]
        ),
    ),
    st.tuples(st.just("add"), st.integers(0, 50), st.binary(max_size=64)),
    st.tuples(st.just("remove"), st.integers(0, 50)),
    st.tuples(st.just("content"), st.integers(0, 50), st.binary(max_size=64)),
    st.tuples(st.just("manifest"), st.sampled_from(["title", "python", "sha", "size", "created"])),
)


def _mutate_members(members: Members, mutation: tuple) -> None:  # type: ignore[type-arg]
    kind = mutation[0]
    n = len(members)
    if kind == "swap":
        i, j = mutation[1] % n, mutation[2] % n
        members[i], members[j] = members[j], members[i]
    elif kind == "rename":
        _rename(members, mutation[1], mutation[2])
    elif kind == "add":
        info = tarfile.TarInfo("data/project/added.bin")
        info.mtime = members[0][0].mtime
        members.insert(mutation[1] % (n + 1), (info, mutation[2]))
    elif kind == "remove":
        del members[mutation[1] % n]
    elif kind == "content":
        i = mutation[1] % n
        if members[i][0].isfile():
            members[i] = (members[i][0], mutation[2])
    elif kind == "manifest":
        if members[0][0].name != "repro.json":
            return  # already removed or moved by an earlier mutation
        try:
            doc = json.loads(members[0][1])
            field = mutation[1]
            if field == "title":
                doc["metadata"]["title"] = "changed"
            elif field == "python":
                doc["environment"]["python_version"] = "2.7"
            elif field == "sha":
                doc["files"][0]["sha256"] = "0" * 64
            elif field == "size":
                doc["files"][0]["size"] += 1
            else:
                doc["created"] = "2001-01-01T00:00:00Z"
        except (ValueError, TypeError, KeyError, IndexError):
            return  # an earlier mutation already broke repro.json
        members[0] = (members[0][0], canonical_json(doc))


def _inflate(data: bytes) -> bytes | None:
    try:
        d = zlib.decompressobj(wbits=31)
        out = d.decompress(data) + d.flush()
    except zlib.error:
        return None
    return out if d.eof and not d.unused_data else None


def _check_refused(data: bytes, original: bytes) -> None:
    assume(data != original)
    # Deflate has slack: some bits (block-header and final-byte padding) can flip without
    # changing one decompressed byte. Such a file is the same capsule, byte for byte once
    # unpacked, so it may pass; any change to the content itself must not.
    assume(_inflate(data) != _inflate(original))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        capsule = root / "c.tgz"
        capsule.write_bytes(data)
        try:
            read_capsule(capsule, root / "out" / "capsule")
        except CapsuleError:
            pass
        except ReproError as exc:  # any other expected error must still mean "invalid"
            pytest.fail(f"changed capsule gave {type(exc).__name__} (exit {exc.exit_code})")
        else:
            pytest.fail("a changed capsule passed verification")
        left = sorted(str(p.relative_to(root)) for p in root.rglob("*"))
        assert left in (["c.tgz"], ["c.tgz", "out"]), left
    shutil.rmtree(Path("/tmp/escape"), ignore_errors=True)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(position=st.integers(min_value=0), xor=st.integers(min_value=1, max_value=255))
def test_flipped_byte_never_passes(valid_capsule: bytes, position: int, xor: int) -> None:
    data = bytearray(valid_capsule)
    data[position % len(data)] ^= xor
    _check_refused(bytes(data), valid_capsule)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(cut=st.integers(min_value=0))
def test_truncation_never_passes(valid_capsule: bytes, cut: int) -> None:
    _check_refused(valid_capsule[: cut % len(valid_capsule)], valid_capsule)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(mutations=st.lists(member_mutations, min_size=1, max_size=3))
def test_member_level_changes_never_pass(
    valid_capsule: bytes,
    mutations: list[tuple],
    tmp_path: Path,  # type: ignore[type-arg]
) -> None:
    source = tmp_path / "valid.tgz"
    source.write_bytes(valid_capsule)
    members = members_of(source)
    for mutation in mutations:
        _mutate_members(members, mutation)
    _check_refused(pack(members), valid_capsule)
