"""Issue 20: a second capture of unchanged data copies the compressed blocks of the first
(no file opened or read), and the capsule is byte for byte the one a cold capture makes."""

from __future__ import annotations

import builtins
import gzip
import io
import os
import random
import signal
import struct
import zlib
from pathlib import Path
from typing import Any

import pytest
from isal import isal_zlib

from repro import hashing
from repro.capsule import writer
from repro.capsule.blockcache import BLOCK_CACHE_ENV, BLOCK_CACHE_MAX_ENV
from repro.capsule.reader import read_capsule
from repro.capture.pipeline import CaptureOptions, capture
from repro.errors import FileChangedError, WorkerDiedError

EPOCH = "1700000000"
N_FILES = 3000


def study(root: Path) -> Path:
    rng = random.Random(7)  # noqa: S311 (test data)
    for i in range(N_FILES):
        folder = root / "data" / f"d{i // 300:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        size = rng.randint(200, 2400)
        (folder / f"f{i:05d}.csv").write_bytes(rng.randbytes(size // 2).hex().encode()[:size])
    (root / "data" / "blob.bin").write_bytes(rng.randbytes(3 << 20))  # spans blocks
    (root / "run.py").write_text("print('hi')\n")
    (root / "repro.toml").write_text('[capsule]\ntitle = "Reuse"\n[[data]]\npath = "data"\n')
    return root


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", EPOCH)
    monkeypatch.setenv("REPRO_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(hashing, "RACY_WINDOW_S", -1e12)  # files written just now: cacheable
    return tmp_path


def run(project: Path, out: Path, monkeypatch: pytest.MonkeyPatch, cold: bool = False) -> bytes:
    with monkeypatch.context() as m:
        if cold:
            m.setenv(BLOCK_CACHE_ENV, "0")
            m.setenv("REPRO_CACHE_DIR", str(out.parent / f"cold-cache-{out.name}"))
        capture(CaptureOptions(project=project, output=out, execute=False))
    return out.read_bytes()


def _manifest_of(tar: bytes) -> dict[str, Any]:
    import json
    import tarfile

    with tarfile.open(fileobj=io.BytesIO(tar)) as archive:
        member = archive.extractfile("repro.json")
        assert member is not None
        manifest: dict[str, Any] = json.loads(member.read())
        return manifest


def assert_same_capsule(a: bytes, b: bytes) -> None:
    """a == b, or a failure that says where they differ: the gzip layer only, or the tar
    stream (and then which fields of the two manifests)."""
    if a == b:
        return
    tar_a, tar_b = gzip.decompress(a), gzip.decompress(b)
    if tar_a == tar_b:
        raise AssertionError("the same tar stream, compressed to other gzip bytes")
    x, y = _manifest_of(tar_a), _manifest_of(tar_b)
    differ = {k: (x.get(k), y.get(k)) for k in sorted(set(x) | set(y)) if x.get(k) != y.get(k)}
    raise AssertionError(f"other tar streams; the manifests differ in: {differ}"[:4000])


def store(tmp_path: Path) -> dict[str, float]:
    folder = tmp_path / "cache" / "blocks" / "store"
    return {p.name: p.stat().st_mtime for p in folder.iterdir() if p.suffix != ".plan"}


class Opened:
    """Every open (os.open, open) of a path under the project."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, project: Path) -> None:
        self.paths: list[str] = []
        root = str(project)
        real_os_open, real_open = os.open, builtins.open

        def os_open(path: Any, *a: Any, **k: Any) -> int:
            if str(path).startswith(root):
                self.paths.append(str(path))
            return real_os_open(path, *a, **k)

        def py_open(path: Any, *a: Any, **k: Any) -> Any:
            if isinstance(path, (str, Path)) and str(path).startswith(root):
                self.paths.append(str(path))
            return real_open(path, *a, **k)

        monkeypatch.setattr(os, "open", os_open)
        monkeypatch.setattr(builtins, "open", py_open)
        monkeypatch.setattr(io, "open", py_open)


def test_blocks_are_one_standard_gzip_member_each_block_decodable_on_its_own() -> None:
    """The gzip member the writer assembles from public calls (compressobj primed with the
    previous block's last 32 KiB, sync flush, crc32_combine) is standard gzip, and each
    block decodes alone given that dictionary: what lets a block be built anywhere."""
    rng = random.Random(3)  # noqa: S311 (test data)
    stream = b"".join(
        rng.randbytes(50_000) if i % 3 == 0 else bytes(rng.choices(b"abc,\n0123", k=200_000))
        for i in range(25)
    )  # ~3.3 blocks, mixed
    member = bytearray(writer.GZIP_HEADER)
    crc, prev = 0, b""
    for at in range(0, len(stream), writer.BLOCK):
        block = stream[at : at + writer.BLOCK]
        deflated = writer.deflate_block(block, prev[-writer.WINDOW :])
        assert deflated == writer.deflate_block(block, prev[-writer.WINDOW :])  # deterministic
        alone = zlib.decompressobj(-15, zdict=prev[-writer.WINDOW :]) if prev else None
        assert (alone or zlib.decompressobj(-15)).decompress(deflated) == block
        member += deflated
        crc = isal_zlib.crc32_combine(crc, isal_zlib.crc32(block), len(block))
        prev = block
    member += writer.EMPTY_FINAL_BLOCK + struct.pack("<II", crc, len(stream))
    assert gzip.decompress(bytes(member)) == stream
    assert crc == zlib.crc32(stream)


@pytest.mark.slow
def test_warm_capture_reads_no_file_and_equals_a_cold_one(
    env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = study(env / "study")
    cold = run(project, env / "cold.tgz", monkeypatch, cold=True)
    first = run(project, env / "first.tgz", monkeypatch)
    assert first == cold
    entries = store(env)
    assert len(entries) >= len(cold) // (1 << 20)  # every block stored

    opened = Opened(monkeypatch, project)
    second = run(project, env / "second.tgz", monkeypatch)
    assert second == cold
    # Listing, stat cache, scan and writer: no file of the project opened.
    assert [p for p in opened.paths if not p.endswith(("repro.toml", ".reproignore"))] == []
    assert set(store(env)) == set(entries)
    read_capsule(env / "second.tgz")  # the reader's own checks

    # A file changed after it was hashed, though its blocks are cached (so not opened), is
    # refused as when it is read: its stat is checked.
    victim = project / "data" / "d01" / "f00400.csv"
    real = writer._write_blocks

    def change_then_write(*args: Any, **kwargs: Any) -> None:
        victim.write_bytes(victim.read_bytes()[::-1])  # same size, other bytes and ctime
        real(*args, **kwargs)

    monkeypatch.setattr(writer, "_write_blocks", change_then_write)
    with pytest.raises(FileChangedError, match="f00400.csv changed while it was captured"):
        run(project, env / "third.tgz", monkeypatch)
    assert not (env / "third.tgz").exists() and not list(env.glob(".repro-tmp-*"))


@pytest.mark.slow
def test_a_changed_file_redoes_only_its_blocks_and_a_damaged_entry_is_redone(
    env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = study(env / "study")
    run(project, env / "first.tgz", monkeypatch)
    before = store(env)

    target = project / "data" / "d05" / "f01500.csv"  # in the middle, same size
    size = target.stat().st_size
    target.write_bytes(b"z" * (size - 1) + b"\n")
    log = env / "opened.log"  # appended to by the writer's worker processes too
    real = writer._open_checked

    def counted(source: writer.Source) -> int:
        fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        os.write(fd, Path(source.path).name.encode() + b"\n")
        os.close(fd)
        return real(source)

    monkeypatch.setattr(writer, "_open_checked", counted)
    warm = run(project, env / "warm.tgz", monkeypatch)
    reads = log.read_text().split()
    # Only the open counter is put back: monkeypatch.undo() would also undo the conftest's
    # environment (REPRO_BASE_IMAGE), and the cold capture would record another base image.
    monkeypatch.setattr(writer, "_open_checked", real)
    assert_same_capsule(warm, run(project, env / "cold.tgz", monkeypatch, cold=True))
    # Its block and the next (keyed by the one before), and the manifest's block and the
    # next (the manifest holds its digest): the files of those only.
    new = set(store(env)) - set(before)
    assert "f01500.csv" in reads, reads
    assert 2 <= len(new) <= 4, len(new)
    assert len(reads) < N_FILES // 2, len(reads)

    # A damaged entry (one flipped byte) is detected by its hash and redone.
    victim = env / "cache" / "blocks" / "store" / sorted(new)[0]
    data = bytearray(victim.read_bytes())
    data[-10] ^= 0xFF
    victim.write_bytes(bytes(data))
    plans = list((env / "cache" / "blocks" / "store").glob("*.plan"))
    assert plans
    for plan in plans:  # the plans (block keys, member offsets) are checked the same way
        plan.write_bytes(plan.read_bytes()[:-1] + b"?")
    again = run(project, env / "again.tgz", monkeypatch)
    assert again == warm
    assert victim.read_bytes() != bytes(data)  # stored afresh


def test_lost_entry_between_plan_and_copy_rewrites_afresh(
    env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = env / "small"
    (project / "data").mkdir(parents=True)
    rng = random.Random(5)  # noqa: S311 (test data)
    for i in range(40):
        (project / "data" / f"{i}.bin").write_bytes(rng.randbytes(60_000))
    (project / "repro.toml").write_text('[capsule]\ntitle = "Lost"\n[[data]]\npath = "data"\n')
    cold = run(project, env / "cold.tgz", monkeypatch, cold=True)
    run(project, env / "first.tgz", monkeypatch)
    calls = {"n": 0}
    real = writer.BlockCache.get

    def flaky(self: writer.BlockCache, key: str) -> Any:
        calls["n"] += 1
        return None if calls["n"] == 2 else real(self, key)  # gone once it was planned

    monkeypatch.setattr(writer.BlockCache, "get", flaky)
    assert run(project, env / "second.tgz", monkeypatch) == cold


def test_cache_is_capped_least_recently_used_first(
    env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(BLOCK_CACHE_MAX_ENV, "1")
    rng = random.Random(9)  # noqa: S311 (test data)
    kept = []
    for name in ("a", "b"):
        project = env / name
        (project / "data").mkdir(parents=True)
        (project / "data" / "x.bin").write_bytes(rng.randbytes(2_500_000))
        (project / "repro.toml").write_text(f'[capsule]\ntitle = "{name}"\n')
        run(project, env / f"{name}.tgz", monkeypatch)
        kept.append(set(store(env)))
    assert kept[1] and not kept[1] & kept[0]  # a's blocks went; b's (in use) stayed


def test_cache_list_shows_the_blocks_and_prune_removes_them(
    env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from repro import paths
    from repro.cache import list_cache, prune_cache

    project = env / "p"
    (project / "data").mkdir(parents=True)
    (project / "data" / "x.bin").write_bytes(random.Random(1).randbytes(1_500_000))  # noqa: S311
    (project / "repro.toml").write_text('[capsule]\ntitle = "p"\n')
    first = run(project, env / "a.tgz", monkeypatch)
    [entry] = list_cache(["blocks"]).entries
    assert entry.name == "store" and entry.size > len(first) and entry.in_use  # by this capture
    for stamp, fd in list(paths._HELD.items()):  # as if that capture had ended
        if stamp.parent.name == "blocks":
            os.close(fd)
            del paths._HELD[stamp]
    assert [e.name for e in prune_cache(everything=True, kinds=["blocks"]).removed] == ["store"]
    assert not (env / "cache" / "blocks" / "store").exists()
    assert run(project, env / "b.tgz", monkeypatch) == first


def test_worker_processes_write_the_bytes_one_process_does_and_refuse_a_changed_file(
    env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Blocks built by forked workers (tiny tasks: every task's first block primed from
    bytes the worker rebuilds), around big files read by the writing process, give the
    bytes one process gives; a file changed since it was hashed is refused from a worker."""
    project = study(env / "study")
    big = random.Random(11).randbytes(2_500_000)  # noqa: S311 (test data)
    (project / "data" / "d04" / "m-big.bin").write_bytes(big)  # in the middle
    (project / "data" / "d07" / ("é-long" * 30 + ".txt")).write_text("pax header\n")
    (project / "data" / "d08" / "link.csv").symlink_to("../d00/f00000.csv")
    captured = run(project, env / "captured.tgz", monkeypatch, cold=True)
    verified = read_capsule(env / "captured.tgz", env / "unpacked")
    sources: dict[str, writer.Source | bytes] = {}
    for f in verified.manifest.files:
        if f.link is None:
            path = verified.root / f.path
            st = path.stat()
            sources[f.path] = writer.Source(path, f.size, st.st_mtime_ns, st.st_ctime_ns)
    epoch = int(EPOCH)

    def write(name: str, threads: int) -> bytes:
        writer.write_capsule(env / name, verified.manifest, sources, mtime=epoch, threads=threads)
        return (env / name).read_bytes()

    one = write("one.tgz", threads=1)
    monkeypatch.setattr(writer, "POOL_MIN_BLOCKS", 1)
    monkeypatch.setattr(writer, "TASK_BLOCKS", 1)
    assert write("pool.tgz", threads=2) == one == captured

    victim = next(p for p in sources if p.endswith("f02345.csv"))
    path = verified.root / victim
    path.write_bytes(path.read_bytes()[::-1])  # same size, other bytes (and ctime)
    log = env / "opened.log"
    real = writer._open_checked

    def logged(source: writer.Source) -> int:
        fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        os.write(fd, b"%d %s\n" % (os.getpid(), source.path.name.encode()))
        os.close(fd)
        return real(source)

    monkeypatch.setattr(writer, "_open_checked", logged)
    with pytest.raises(FileChangedError) as caught:
        write("changed.tgz", threads=2)
    assert caught.value.path == path
    pids = {line.split()[0] for line in log.read_text().splitlines() if "f02345" in line}
    assert pids and str(os.getpid()) not in pids  # refused in a worker process
    assert not (env / "changed.tgz").exists() and not list(env.glob(".repro-tmp-*"))

    # A worker killed (as the OOM killer does) is one line, not a hang or a traceback.
    parent = os.getpid()

    def killed(source: writer.Source) -> int:
        if os.getpid() != parent:
            os.kill(os.getpid(), signal.SIGKILL)
        return real(source)

    monkeypatch.setattr(writer, "_open_checked", killed)
    with pytest.raises(WorkerDiedError, match="a worker process died while writing"):
        write("killed.tgz", threads=2)
    assert not (env / "killed.tgz").exists() and not list(env.glob(".repro-tmp-*"))


def test_the_writers_file_headers_are_member_headers() -> None:
    from repro.capsule.tarheader import member_header

    for mtime in (0, 1700000000, 8**11):
        headers = writer._FileHeaders(mtime)
        for name in ("a", "data/x.csv", "d" * 100, "d" * 101, "é.txt", "sp ace/\\x"):
            for size in (0, 1, 511, 512, 4097, 8**11 - 1, 8**11):
                for mode in (0o644, 0o755, 0o600):
                    assert headers(name, size, mode) == member_header(name, size, mode, mtime)


@pytest.mark.slow
def test_two_captures_writing_at_once_in_threads_keep_to_their_own_files(
    env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The job a forked worker inherits is set only while the pool forks, under a lock; a
    write without a pool passes its own job: two writes in threads never mix their files."""
    import threading
    import time

    jobs = []
    for name in ("a", "b"):
        project = study(env / name)
        if name == "b":  # other bytes all along the stream, at the same offsets
            for path in sorted((project / "data").rglob("f*.csv")):
                path.write_bytes(path.read_bytes()[::-1])
        capsule = env / f"{name}.tgz"
        expected = run(project, capsule, monkeypatch, cold=True)
        verified = read_capsule(capsule, env / f"unpacked-{name}")
        sources: dict[str, writer.Source | bytes] = {}
        for f in verified.manifest.files:
            if f.link is None:
                st = (verified.root / f.path).stat()
                sources[f.path] = writer.Source(
                    verified.root / f.path, f.size, st.st_mtime_ns, st.st_ctime_ns
                )
        jobs.append((name, verified.manifest, sources, expected))
    monkeypatch.setattr(writer, "POOL_MIN_BLOCKS", 1)
    monkeypatch.setattr(writer, "TASK_BLOCKS", 1)
    build = writer._build

    def slow_build(data: Any, zdict: Any) -> Any:
        time.sleep(0.005)  # the two writes overlap for sure
        return build(data, zdict)

    monkeypatch.setattr(writer, "_build", slow_build)
    written: dict[str, bytes] = {}
    errors: list[BaseException] = []

    def write(name: str, manifest: Any, sources: Any, threads: int) -> None:
        try:
            out = env / f"{name}-{threads}.tgz"
            writer.write_capsule(out, manifest, sources, mtime=int(EPOCH), threads=threads)
            written[f"{name}-{threads}"] = out.read_bytes()
        except BaseException as exc:
            errors.append(exc)

    for threads in (1, 2):  # without a pool, then with forked workers
        pair = [
            threading.Thread(target=write, args=(name, m, s, threads)) for name, m, s, _ in jobs
        ]
        for t in pair:
            t.start()
        for t in pair:
            t.join()
    assert errors == []
    for name, _m, _s, expected in jobs:
        assert written[f"{name}-1"] == written[f"{name}-2"] == expected
