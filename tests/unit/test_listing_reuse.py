"""A second capture of unchanged files takes their digests (and clean secret scan) from the
stat cache's record of the whole listing: reused only when every path and stat is the same,
never after a change of bytes, mode, file set, ignore rules, secret rules or allowed files."""

from __future__ import annotations

import hashlib
import os
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from repro import hashing
from repro.capture import snapshot as snapshot_stage
from repro.capture.options import CaptureOptions
from repro.capture.pipeline import capture
from repro.capture.plan import plan_capture
from repro.capture.snapshot import Snapshot, take_snapshot
from repro.errors import SecretFoundError

AWS = "AKIA" + "ABCDEFGHIJKLMNOP"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def study(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("REPRO_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    monkeypatch.setattr(hashing, "RACY_WINDOW_S", -1e12)  # files written just now: cacheable
    root = tmp_path / "study"
    (root / "data").mkdir(parents=True)
    for i in range(20):
        (root / "data" / f"f{i:02d}.csv").write_bytes(b"%d,1,2\n" % i * 50)
    (root / "run.py").write_text("print('hi')\n")
    (root / "notes.txt").write_text(f"key = {AWS}\n")
    (root / "repro.toml").write_text('[capsule]\ntitle = "t"\n[[data]]\npath = "data"\n')
    return root


class Hashing:
    """Counts the snapshot's calls of digest_files (none when the listing was reused)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls = 0
        real = snapshot_stage.digest_files

        def counted(*a: Any, **k: Any) -> Any:
            self.calls += 1
            return real(*a, **k)

        monkeypatch.setattr(snapshot_stage, "digest_files", counted)


def snap(root: Path, allow: tuple[str, ...] = ("notes.txt",)) -> Snapshot:
    opts = CaptureOptions(project=root, output=root.parent / "c.tgz", allow_secrets=list(allow))
    return take_snapshot(plan_capture(opts), lambda _m: None)


def digests(s: Snapshot) -> dict[str, str]:
    return dict(zip((f.rel for f in s.regular), s.sha256, strict=True))


def true_digests(root: Path, s: Snapshot) -> dict[str, str]:
    return {f.rel: sha((root / f.rel).read_bytes()) for f in s.regular}


def test_an_unchanged_listing_is_reused_whole(study: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = snap(study)
    hashing_ = Hashing(monkeypatch)
    second = snap(study)
    assert hashing_.calls == 0
    assert digests(second) == digests(first) == true_digests(study, second)
    assert second.sizes == first.sizes


def _same_size_new_bytes(root: Path) -> None:
    target = root / "data" / "f03.csv"
    st = target.stat()
    target.write_bytes(target.read_bytes().replace(b"3,1,2", b"3,9,2", 1))
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))  # even the mtime put back


def _touch(root: Path) -> None:
    target = root / "data" / "f04.csv"
    st = target.stat()
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))


def _chmod(root: Path) -> None:
    (root / "run.py").chmod(0o755)


def _add(root: Path) -> None:
    (root / "data" / "new.csv").write_text("a,b\n")


def _remove(root: Path) -> None:
    (root / "data" / "f05.csv").unlink()


def _ignore(root: Path) -> None:
    (root / ".reproignore").write_text("data/f06.csv\n")


@pytest.mark.parametrize(
    "change",
    [_same_size_new_bytes, _touch, _chmod, _add, _remove, _ignore],
    ids=lambda f: f.__name__,
)
def test_any_change_is_seen_and_hashed_again(
    study: Path, monkeypatch: pytest.MonkeyPatch, change: Any
) -> None:
    snap(study)
    change(study)
    hashing_ = Hashing(monkeypatch)
    second = snap(study)
    assert hashing_.calls == 1
    assert digests(second) == true_digests(study, second)
    rels = {f.rel for f in second.regular}
    executable = {f.rel for f in second.listing.files if f.executable}
    assert ("data/new.csv" in rels) == (change is _add)
    assert ("data/f05.csv" in rels) == (change is not _remove)
    assert ("data/f06.csv" in rels) == (change is not _ignore)
    assert ("run.py" in executable) == (change is _chmod)
    third = snap(study)  # and the new listing is the one recorded
    assert digests(third) == digests(second)


def test_a_file_no_longer_allowed_is_scanned_again(study: Path) -> None:
    snap(study)  # notes.txt allowed: its secret passes, the listing is recorded clean
    with pytest.raises(SecretFoundError):
        snap(study, allow=())


def test_new_secret_rules_scan_the_reused_listing_again(
    study: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (study / "run.py").write_text("greeting = 'zebra-quokka-7731'\n")
    snap(study)
    monkeypatch.setenv("PGPASSWORD", "zebra-quokka-7731")  # its value becomes a rule
    hashing_ = Hashing(monkeypatch)
    with pytest.raises(SecretFoundError):
        snap(study)
    assert hashing_.calls == 0  # the digests reused, the scan not


def test_a_damaged_or_foreign_record_is_not_used(
    study: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = snap(study)
    db = study.parent / "cache" / "hashes.sqlite"
    with sqlite3.connect(db) as conn:
        (shas,) = conn.execute("SELECT shas FROM listings").fetchone()
        conn.execute("UPDATE listings SET shas = ?", (bytes(32) + shas[32:],))  # checksum off
    hashing_ = Hashing(monkeypatch)
    assert digests(snap(study)) == digests(first)
    assert hashing_.calls == 1
    monkeypatch.setattr("repro.__version__", "0.0.0-other")  # another repro's listing
    snap(study)
    assert hashing_.calls == 2
    snap(study)
    assert hashing_.calls == 2  # that record is used
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE listings SET scanned = 'other'")  # the checksum covers it too
    snap(study)
    assert hashing_.calls == 3


def test_a_listing_with_a_recent_change_is_not_recorded(
    study: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(hashing, "RACY_WINDOW_S", 3600.0)  # every file "just changed"
    snap(study)
    hashing_ = Hashing(monkeypatch)
    snap(study)
    assert hashing_.calls == 1


def test_a_reused_capture_is_byte_identical_to_a_cold_one(
    study: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tmp = study.parent
    allow = ["notes.txt"]
    capture(CaptureOptions(project=study, output=tmp / "a.tgz", execute=False, allow_secrets=allow))
    hashing_ = Hashing(monkeypatch)
    capture(CaptureOptions(project=study, output=tmp / "b.tgz", execute=False, allow_secrets=allow))
    assert hashing_.calls == 0
    monkeypatch.setenv("REPRO_BLOCK_CACHE", "0")
    monkeypatch.setenv("REPRO_CACHE_DIR", str(tmp / "cold-cache"))
    capture(CaptureOptions(project=study, output=tmp / "c.tgz", execute=False, allow_secrets=allow))
    assert hashing_.calls == 1
    assert (tmp / "b.tgz").read_bytes() == (tmp / "c.tgz").read_bytes()
    assert (tmp / "a.tgz").read_bytes() == (tmp / "c.tgz").read_bytes()
