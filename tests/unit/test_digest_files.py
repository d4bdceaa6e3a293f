"""The snapshot's hashing of many files (issue 20): worker processes give what threads give,
the stat cache is read and written in bulk, and a touched file is never taken from it."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from repro import hashing
from repro.errors import FileChangedError
from repro.hashing import FileStat, StatCache, digest_files

OLD_NS = 1_000_000_000


def stat_of(path: Path) -> FileStat:
    st = path.lstat()
    return FileStat(st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns)


def tree(root: Path, n: int = 60) -> list[str]:
    rels = []
    for i in range(n):
        rel = f"d{i % 3}/f{i:03d}.txt"
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(b"line %d\n" % i * (i * 7 % 300))
        rels.append(rel)
    (root / "big.bin").write_bytes(os.urandom((1 << 20) + 5))  # streamed, not read whole
    (root / "empty").write_bytes(b"")
    rels += ["big.bin", "empty"]
    for rel in rels:
        os.utime(root / rel, ns=(OLD_NS, OLD_NS))
    return rels


def inspect(index: int, sha: str, data: bytes) -> tuple[int, str, int] | None:
    return (index, sha, len(data)) if index % 2 == 0 else None


def test_worker_processes_give_what_threads_give(tmp_path: Path) -> None:
    rels = tree(tmp_path)
    stats = [stat_of(tmp_path / r) for r in rels]
    prefix = f"{tmp_path}/"
    done: list[int] = []
    serial = digest_files(prefix, rels, stats, inspect=inspect, processes=False)
    pooled = digest_files(
        prefix, rels, stats, inspect=inspect, processes=True, progress=done.append
    )
    assert pooled == serial
    assert sum(done) == len(rels)  # progress counts every file, chunk by chunk
    for i, rel in enumerate(rels):
        data = (tmp_path / rel).read_bytes()
        assert serial.sha256[i] == hashlib.sha256(data).hexdigest()
        assert serial.sizes[i] == len(data)
    # Inspected: the small files read whole whose verdict was not None; never the big one.
    big = rels.index("big.bin")
    assert set(serial.found) == {i for i in range(len(rels)) if i % 2 == 0 and i != big}
    assert all(serial.found[i] == (i, serial.sha256[i], serial.sizes[i]) for i in serial.found)


def test_a_file_gone_between_listing_and_hashing_fails_in_the_pool_too(tmp_path: Path) -> None:
    rels = tree(tmp_path, 10)
    stats = [stat_of(tmp_path / r) for r in rels]
    (tmp_path / rels[3]).unlink()
    for processes in (False, True):
        with pytest.raises(FileChangedError, match="file vanished during capture") as caught:
            digest_files(f"{tmp_path}/", rels, stats, processes=processes)
        assert str(caught.value.path) == f"{tmp_path}/{rels[3]}"


def test_stat_cache_in_bulk_reuses_only_what_cannot_have_changed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "proj"
    rels = tree(root, 20)
    cache = StatCache(tmp_path / "hashes.sqlite")
    reads: list[str] = []
    real_small = hashing.read_small

    def counting_small(path: Path | str, size: int) -> bytes | None:
        reads.append(str(path))
        return real_small(path, size)

    monkeypatch.setattr(hashing, "read_small", counting_small)
    # utime sets the ctime to now, so every file is "racily clean": pretend time has passed.
    monkeypatch.setattr(hashing, "RACY_WINDOW_S", -1e12)

    def run() -> hashing.Hashed[object]:
        stats = [stat_of(root / r) for r in rels]
        return digest_files(f"{root}/", rels, stats, cache=cache, processes=False)

    first = run()
    assert first.from_cache == 0
    rows = cache.rows_under(f"{root}/")
    assert len(rows) == len(rels)  # written in one transaction
    assert rows[f"{root}/{rels[0]}"][5] == first.sha256[0]
    reads.clear()
    second = run()
    assert (second.sha256, second.sizes, second.from_cache) == (
        first.sha256,
        first.sizes,
        len(rels),
    )
    assert reads == []  # nothing re-read
    # Touched: same size and mtime put back, so only the ctime (and the content) differs.
    with (root / rels[4]).open("r+b") as fh:
        fh.write(b"X")
    os.utime(root / rels[4], ns=(OLD_NS, OLD_NS))
    # Replaced by another file of the same size and times: another inode.
    replacement = root / "other"
    replacement.write_bytes(b"Y" * (root / rels[5]).stat().st_size)
    os.utime(replacement, ns=(OLD_NS, OLD_NS))
    replacement.replace(root / rels[5])
    third = run()
    assert sorted(reads) == sorted([f"{root}/{rels[4]}", f"{root}/{rels[5]}"])
    assert third.from_cache == len(rels) - 2
    for i in (4, 5):
        assert third.sha256[i] == hashlib.sha256((root / rels[i]).read_bytes()).hexdigest()
        assert third.sha256[i] != first.sha256[i]


def test_recently_written_files_are_not_cached(tmp_path: Path) -> None:
    (tmp_path / "fresh.txt").write_text("new")
    cache = StatCache(tmp_path / "hashes.sqlite")
    rels = ["fresh.txt"]
    digest_files(f"{tmp_path}/", rels, [stat_of(tmp_path / "fresh.txt")], cache=cache)
    assert cache.rows_under(f"{tmp_path}/") == {}


def test_the_secret_scan_in_worker_processes_finds_what_it_finds_in_threads(
    tmp_path: Path,
) -> None:
    from repro.capture.secret_scan import SecretScanner

    rels = tree(tmp_path, 20)
    token = "ghp_" + "A1b2C3d4E5f6G7h8I9j0" * 2
    (tmp_path / rels[7]).write_text(f"x = 1\ntoken = {token}\n")
    stats = [stat_of(tmp_path / r) for r in rels]
    scanner = SecretScanner(environ={})

    def scan(index: int, sha: str, data: bytes) -> object:
        return scanner.scan_content(data, rels[index]) or None

    pooled = digest_files(f"{tmp_path}/", rels, stats, inspect=scan, processes=True)
    serial = digest_files(f"{tmp_path}/", rels, stats, inspect=scan, processes=False)
    assert pooled.found == serial.found
    assert list(pooled.found) == [7]
    assert [h.kind for h in pooled.found[7]] == ["GitHub token"]


def test_a_small_project_starts_no_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import multiprocessing

    def no_pool(_method: str) -> None:
        raise AssertionError("a process pool for a few files")

    monkeypatch.setattr(multiprocessing, "get_context", no_pool)
    rels = tree(tmp_path, 30)
    stats = [stat_of(tmp_path / r) for r in rels]
    assert len(digest_files(f"{tmp_path}/", rels, stats).sha256) == len(rels)


def test_two_hashings_at_once_in_threads_keep_to_their_own_files(tmp_path: Path) -> None:
    import threading

    trees = []
    for name, processes in (("a", True), ("b", False), ("c", True)):
        root = tmp_path / name
        rels = tree(root, 40)
        for rel in rels:  # each tree's files differ from the others'
            with (root / rel).open("ab") as fh:
                fh.write(name.encode())
        trees.append((root, rels, [stat_of(root / r) for r in rels], processes))
    results: dict[str, list[str]] = {}

    def run(root: Path, rels: list[str], stats: list[FileStat], processes: bool) -> None:
        results[root.name] = digest_files(f"{root}/", rels, stats, processes=processes).sha256

    threads = [threading.Thread(target=run, args=t) for t in trees]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for root, rels, _stats, _processes in trees:
        expected = [hashlib.sha256((root / r).read_bytes()).hexdigest() for r in rels]
        assert results[root.name] == expected


def test_a_killed_worker_is_one_line_not_a_hang(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import signal

    from repro.errors import WorkerDiedError

    rels = tree(tmp_path, 40)
    stats = [stat_of(tmp_path / r) for r in rels]
    parent, real = os.getpid(), hashing.read_small

    def killed(path: str, size: int) -> bytes | None:
        if os.getpid() != parent:  # in a worker: what the OOM killer does
            os.kill(os.getpid(), signal.SIGKILL)
        return real(path, size)

    monkeypatch.setattr(hashing, "read_small", killed)

    def hung(_signum: int, _frame: object) -> None:
        raise TimeoutError("the hashing hung on its dead worker")

    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(60)
    try:
        with pytest.raises(WorkerDiedError, match="a worker process died while hashing files"):
            digest_files(f"{tmp_path}/", rels, stats, processes=True)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
