"""Studies of many small files (issue 20), at a modest scale: the fast listing, hashing,
scanning, writing and reading give what the slow ones gave, byte for byte, and the caches
never hide a change."""

from __future__ import annotations

import io
import os
import random
import subprocess
import tarfile
from pathlib import Path

import pathspec
import pytest

from repro import hashing
from repro.capsule import reader
from repro.capsule.layout import member_order, tag_files
from repro.capsule.reader import read_capsule
from repro.capsule.writer import Source, write_capsule
from repro.capture.files import BUILTIN_IGNORES, ignore_matcher, walk_listing
from repro.capture.pipeline import CaptureOptions, capture
from repro.errors import SecretFoundError

N_FILES = 5000
EPOCH = "1700000000"


def many_files(root: Path, n: int = N_FILES) -> Path:
    rng = random.Random(20)  # noqa: S311 (test data)
    (root / "data").mkdir(parents=True)
    for i in range(n):
        folder = root / "data" / f"d{i // 500:02d}"
        folder.mkdir(exist_ok=True)
        size = rng.randint(20, 400)
        (folder / f"f{i:05d}.csv").write_bytes(rng.randbytes(size // 2).hex().encode()[:size])
    (root / "data" / "é non-ascii name.txt").write_text("x\n")
    (root / "data" / ("long" * 40 + ".txt")).write_text("long name\n")
    (root / "data" / "blob.bin").write_bytes(b"\0" + os.urandom(2 << 20))  # > one read
    (root / "data" / "link.csv").symlink_to("d00/f00000.csv")
    (root / "run.py").write_text("print('hi')\n")
    (root / "repro.toml").write_text('[capsule]\ntitle = "Scale"\n[[data]]\npath = "data"\n')
    return root


def old_tar_stream(capsule: Path) -> bytes:
    """The tar stream the writer made before issue 20 (tarfile, PAX, one addfile per
    member), rebuilt from an unpacked capsule: the new writer must emit the same bytes."""
    verified = read_capsule(capsule)
    manifest, epoch = verified.manifest, reader._epoch(verified.manifest.created)
    tags = tag_files(manifest, verified.manifest_bytes)
    entries = {f.path: f for f in manifest.files}
    out = io.BytesIO()
    with (
        tarfile.TarFile(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar,
        tarfile.open(capsule) as src,
    ):
        for name in member_order(manifest, verified.signature is not None):
            info = tarfile.TarInfo(name)
            info.mtime, info.uid, info.gid, info.uname, info.gname = epoch, 0, 0, "", ""
            entry = entries.get(name)
            if entry is not None and entry.link is not None:
                info.type, info.linkname, info.mode = tarfile.SYMTYPE, entry.link, 0o777
                tar.addfile(info)
                continue
            if name in tags:
                data = tags[name]
            else:
                fh = src.extractfile(name)
                assert fh is not None
                data = fh.read()
            info.size, info.mode = len(data), entry.mode if entry else 0o644
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


@pytest.mark.slow
def test_many_files_capture_is_deterministic_cached_and_the_same_tar_as_before(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", EPOCH)
    monkeypatch.setenv("REPRO_CACHE_DIR", str(tmp_path / "cache"))
    # Files written just now are "racily clean" and not cached; pretend time has passed.
    monkeypatch.setattr(hashing, "RACY_WINDOW_S", -1e12)
    project = many_files(tmp_path / "study")
    first = capture(CaptureOptions(project=project, output=tmp_path / "a.tgz", execute=False))
    assert first.manifest.payload_size > 2 << 20
    assert len(first.manifest.files) > N_FILES

    reads: list[str] = []
    real = hashing.read_small
    monkeypatch.setattr(hashing, "read_small", lambda p, n: reads.append(str(p)) or real(p, n))
    second = capture(CaptureOptions(project=project, output=tmp_path / "b.tgz", execute=False))
    assert reads == []  # every digest came from the stat cache, every scan from the clean set
    assert (tmp_path / "a.tgz").read_bytes() == (tmp_path / "b.tgz").read_bytes()
    assert second.capsule.sha256 == first.capsule.sha256

    # Readable by tarfile and by tar itself, and the tar stream is the old writer's.
    with tarfile.open(tmp_path / "a.tgz") as tar:
        names = tar.getnames()
    listed = subprocess.run(
        ["tar", "tzf", str(tmp_path / "a.tgz")], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert listed == names and len(names) == len(first.manifest.files) + 1 + 4
    import gzip

    assert gzip.decompress((tmp_path / "a.tgz").read_bytes()) == old_tar_stream(tmp_path / "a.tgz")
    # The fast reader accepts it; its unpacked tree is tar's.
    verified = reader._stream_canonical(tmp_path / "a.tgz", None, None)
    assert verified.capsule_id == first.capsule.capsule_id
    unpacked = read_capsule(tmp_path / "a.tgz", tmp_path / "out").root
    assert unpacked is not None
    (tmp_path / "by-tar").mkdir()
    subprocess.run(["tar", "xzf", str(tmp_path / "a.tgz"), "-C", str(tmp_path / "by-tar")])
    assert subprocess.run(["diff", "-r", str(unpacked), str(tmp_path / "by-tar")]).returncode == 0
    # Signed, it takes the fast path too (and the strict reader agrees).
    manifest = verified.manifest
    sources: dict[str, Source | bytes] = {
        f.path: Source(unpacked / f.path, f.size) for f in manifest.files if f.link is None
    }
    signed = tmp_path / "signed.tgz"
    write_capsule(signed, manifest, sources, signature=b"\1" * 64, mtime=int(EPOCH))
    fast = reader._stream_canonical(signed, None, None)
    assert fast.signature == b"\1" * 64
    assert reader._stream(signed, None, None).archive_sha256 == fast.archive_sha256

    # Rewritten with the same size (new mtime/ctime): re-hashed, and re-scanned.
    target = project / "data" / "d03" / "f01700.csv"
    size = target.stat().st_size
    target.write_bytes(("b" * (size - 1) + "\n").encode())
    reads.clear()
    third = capture(CaptureOptions(project=project, output=tmp_path / "c.tgz", execute=False))
    assert reads == [str(target)]
    changed = {f.path: f.sha256 for f in third.manifest.files}
    assert changed != {f.path: f.sha256 for f in first.manifest.files}
    token = "ghp_" + "A1b2C3d4E5f6G7h8I9j0" * 2
    target.write_bytes(("x=" + token).ljust(size - 1, " ").encode() + b"\n")
    assert target.stat().st_size == size
    with pytest.raises(SecretFoundError, match="f01700.csv"):
        capture(CaptureOptions(project=project, output=tmp_path / "d.tgz", execute=False))
    assert not (tmp_path / "d.tgz").exists()


def test_one_ignore_regex_agrees_with_pathspec() -> None:
    names = [
        "a.py",
        "a.pyc",
        "x/__pycache__/m.pyc",
        "x/.git/config",
        ".venv/lib/site.py",
        "deep/.ipynb_checkpoints/n.ipynb",
        ".repro-tmp-123",
        "keep.log",
        "logs/keep.log",
        "build/out.o",
        "src/build.py",
        ".DS_Store",
        "data/d.csv",
    ]
    for extra in ([], ["*.log", "build/"], ["*.log", "!keep.log"], ["/data/*.csv"]):
        spec = pathspec.GitIgnoreSpec.from_lines([*BUILTIN_IGNORES, *extra])
        fast = ignore_matcher(spec)
        assert [fast(n) for n in names] == [spec.match_file(n) for n in names], extra


def test_scandir_listing_names_files_links_and_refuses_bad_names(tmp_path: Path) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "b" / "f.txt").write_text("x")
    (tmp_path / "top.txt").write_text("y")
    (tmp_path / "a" / "to-b").symlink_to("b")
    assert sorted(walk_listing(tmp_path, tmp_path)) == ["a/b/f.txt", "a/to-b", "top.txt"]
    assert sorted(walk_listing(tmp_path / "a", tmp_path)) == ["a/b/f.txt", "a/to-b"]
    os.mkdir(os.fsencode(tmp_path / "a") + b"/bad\xff")  # noqa: PTH102 (a bytes name)
    with pytest.raises(Exception, match="not valid UTF-8"):
        walk_listing(tmp_path, tmp_path)


def test_progress_lines_count_rate_and_eta_off_a_terminal(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import time

    from rich.console import Console

    from repro import progress
    from repro.report import terminal

    buffer = io.StringIO()
    monkeypatch.setattr(terminal, "err", Console(file=buffer, width=200))
    monkeypatch.setattr(terminal, "PROGRESS_DELAY_S", 0.0)
    monkeypatch.setenv("REPRO_PROGRESS_INTERVAL", "0.05")
    try:
        terminal.enable_progress(True)
        with progress.meter("hashing", total=1000) as m:
            for _ in range(10):
                m.advance(50)
                time.sleep(0.03)
        terminal.enable_progress(False)
        with progress.meter("quiet", total=10) as m:
            m.advance()
    finally:
        progress.set_display(None)
    lines = buffer.getvalue().splitlines()
    assert lines, "a stage longer than the interval prints lines"
    assert all(line.startswith("hashing: ") for line in lines)
    assert "/1,000 files" in lines[-1] and "files/s" in lines[-1] and "ETA " in lines[-1]
