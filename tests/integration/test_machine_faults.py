"""Machine faults and signals end in one line and the right exit code, never a traceback and
never a capsule that fails verify (issue 16, defects 5, 8 and 9). Real processes, real
SQLite files, real file systems (small tmpfs mounts, as root)."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest

from repro.hashing import listing_checksum
from tests.conftest import require_service, run_cli

SLEEP_TOML = """\
[[runs]]
name = "main"
command = "sleep 300; echo done > out.txt"
outputs = ["out.txt"]
"""


def _study(root: Path, toml: str = "", files: dict[str, bytes] | None = None) -> Path:
    project = root / "study"
    project.mkdir()
    (project / "run.py").write_text("open('out.txt', 'w').write('1')\n")
    (project / "out.txt").write_text("1")  # for --no-run
    (project / "repro.toml").write_text(
        toml or '[[runs]]\nname = "main"\ncommand = "python run.py"\noutputs = ["out.txt"]\n'
    )
    for name, data in (files or {}).items():
        (project / name).write_bytes(data)
    return project


def _no_traceback(result: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in result.stderr, result.stderr


# --- capture writes what it hashed, or nothing (defect 5) -----------------------------------


def test_a_file_rewritten_during_the_write_phase_fails_the_capture(tmp_path: Path) -> None:
    big = os.urandom(1 << 20) * 96  # 96 MiB: the write phase takes a while
    project = _study(tmp_path, files={"big.bin": big})
    out = tmp_path / "c.tgz"
    proc = subprocess.Popen(
        [sys.executable, "-m", "repro", "capture", str(project), "-o", str(out), "--no-run"],
        stderr=subprocess.PIPE,
        text=True,
        env=os.environ.copy(),
    )
    assert proc.stderr is not None
    stop = threading.Event()

    def rewrite_in_place() -> None:  # same size, new bytes, as an editor or a sync tool does
        fd = os.open(project / "big.bin", os.O_WRONLY)
        try:
            while not stop.is_set():
                os.pwrite(fd, os.urandom(4096), len(big) - 4096)
        finally:
            os.close(fd)

    writer = threading.Thread(target=rewrite_in_place)
    lines = []
    for line in proc.stderr:
        lines.append(line)
        if "writing c.tgz" in line and not writer.is_alive():
            writer.start()
    proc.wait(timeout=300)
    proc.stderr.close()
    stop.set()
    writer.join()
    stderr = "".join(lines)
    assert proc.returncode == 1, stderr
    assert f"{project / 'big.bin'} changed while it was captured" in stderr
    assert "Traceback" not in stderr and "captured" not in stderr.replace("was captured", "")
    assert not out.exists() and not list(tmp_path.glob(".repro-tmp-*"))


@pytest.mark.parametrize("where", ["file row", "listing record"])
def test_a_wrong_digest_in_the_stat_cache_fails_the_capture_once(
    tmp_path: Path, where: str
) -> None:
    project = _study(tmp_path, files={"data.csv": b"1,2,3\n" * 1000})
    time.sleep(2.2)  # older than the stat cache's racy window, so the digests are cached
    first = run_cli("capture", str(project), "-o", str(tmp_path / "a.tgz"), "--no-run")
    assert first.returncode == 0, first.stderr
    db = Path(os.environ["REPRO_CACHE_DIR"]) / "hashes.sqlite"
    with sqlite3.connect(db) as conn:
        if where == "file row":  # the listing's record gone: the per-file rows answer
            conn.execute("DELETE FROM listings")
            changed = conn.execute(
                "UPDATE hashes2 SET sha256 = ? WHERE path = ?",
                ("0" * 64, str(project / "data.csv")),
            ).rowcount
        else:  # the whole listing's record, wrong but intact (its checksum made to match)
            prefix = f"{project}/"
            ((fingerprint, shas, scanned),) = conn.execute(
                "SELECT fingerprint, shas, scanned FROM listings WHERE prefix = ?", (prefix,)
            ).fetchall()
            assert len(shas) == 32 * 3  # data.csv, repro.toml, run.py (out.txt: an output)
            bad = bytes(32) + shas[32:]  # data.csv's, the first in listing order
            check = listing_checksum(fingerprint, bad, scanned)
            changed = conn.execute(
                "UPDATE listings SET shas = ?, checksum = ? WHERE prefix = ?",
                (bad, check, prefix),
            ).rowcount
    assert changed == 1
    out = tmp_path / "b.tgz"
    poisoned = run_cli("capture", str(project), "-o", str(out), "--no-run")
    _no_traceback(poisoned)
    assert poisoned.returncode == 1
    assert f"{project / 'data.csv'} changed while it was captured" in poisoned.stderr
    assert not out.exists()
    # The entry was forgotten: the file is read again, and the capsule verifies.
    retry = run_cli("capture", str(project), "-o", str(out), "--no-run")
    assert retry.returncode == 0, retry.stderr
    assert run_cli("verify", str(out)).returncode == 0


# --- a corrupt stat cache is set aside and rebuilt (defect 8) -------------------------------


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_a_corrupt_stat_cache_is_set_aside_and_rebuilt(tmp_path: Path, damage: str) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    db = cache / "hashes.sqlite"
    if damage == "garbage":
        db.write_bytes(b"this is not a database\n" * 200)
    else:
        with sqlite3.connect(db) as conn:
            conn.execute("CREATE TABLE hashes2 (path TEXT PRIMARY KEY, sha256 TEXT)")
            conn.executemany(
                "INSERT INTO hashes2 VALUES (?, ?)",
                [(f"/p/{i}" * 20, "0" * 64) for i in range(5000)],
            )
        db.write_bytes(db.read_bytes()[: db.stat().st_size // 2])
    project = _study(tmp_path)
    env = {"REPRO_CACHE_DIR": str(cache)}
    said = []
    for name in ("a.tgz", "b.tgz"):  # the first sets it aside, the second uses the new one
        result = run_cli("capture", str(project), "-o", str(tmp_path / name), env=env)
        _no_traceback(result)
        assert result.returncode == 0, result.stderr
        said.append(result.stderr)
    (aside,) = cache.glob("hashes.sqlite.corrupt-*")
    assert f"was corrupt: set aside as {aside.name}, rebuilt" in said[0]
    assert "corrupt" not in said[1]
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert aside.stat().st_size > 0


# --- full disks and read-only folders (defect 8) --------------------------------------------


@pytest.fixture
def small_mount(tmp_path: Path) -> Iterator[Callable[[str], Path]]:
    """Mount a tmpfs of a given size and options (root only) and unmount it afterwards."""
    mounted: list[Path] = []

    def mount(options: str) -> Path:
        point = tmp_path / f"mnt{len(mounted)}"
        point.mkdir()
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(point)],
            capture_output=True,
            check=False,
        )
        require_service(done.returncode == 0, "mounting a tmpfs (root)")
        mounted.append(point)
        return point

    yield mount
    for point in mounted:
        subprocess.run(["umount", "-l", str(point)], check=False)


def test_a_read_only_destination_is_one_line(
    tmp_path: Path, small_mount: Callable[[str], Path]
) -> None:
    folder = small_mount("size=1m,ro")
    result = run_cli("capture", str(_study(tmp_path)), "-o", str(folder / "c.tgz"))
    _no_traceback(result)
    assert result.returncode == 1
    assert "read-only file system" in result.stderr and "hint:" in result.stderr


def test_a_full_disk_while_capture_writes_is_one_line(
    tmp_path: Path, small_mount: Callable[[str], Path]
) -> None:
    folder = small_mount("size=256k")
    project = _study(tmp_path, files={"noise.bin": os.urandom(1 << 20)})
    result = run_cli("capture", str(project), "-o", str(folder / "c.tgz"))
    _no_traceback(result)
    assert result.returncode == 1
    assert "no space left writing" in result.stderr and "hint:" in result.stderr
    assert list(folder.iterdir()) == []


def test_a_full_disk_while_replay_unpacks_is_one_line(
    tmp_path: Path, small_mount: Callable[[str], Path]
) -> None:
    project = _study(tmp_path, files={"noise.bin": os.urandom(2 << 20)})
    capsule = tmp_path / "c.tgz"
    assert run_cli("capture", str(project), "-o", str(capsule)).returncode == 0
    folder = small_mount("size=1m")
    result = run_cli("replay", str(capsule), "--target", "local", "--workdir", str(folder))
    _no_traceback(result)
    assert result.returncode == 1
    assert "no space left on the device while unpacking the capsule" in result.stderr
    assert "hint:" in result.stderr


# --- SIGTERM is handled like Ctrl-C (defect 9) ----------------------------------------------


def _terminate_during_run(args: list[str], tmp: Path) -> tuple[int, str, list[psutil.Process]]:
    """Start repro, wait until its run's `sleep` is up, SIGTERM repro alone (as `timeout`
    does); its exit code, stderr, and the processes it had started."""
    env = {**os.environ, "TMPDIR": str(tmp)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "repro", *args], stderr=subprocess.PIPE, text=True, env=env
    )
    me = psutil.Process(proc.pid)
    deadline = time.monotonic() + 300
    children: list[psutil.Process] = []
    while time.monotonic() < deadline:
        children = me.children(recursive=True)
        if any(c.name() == "sleep" for c in children):
            break
        assert proc.poll() is None, proc.communicate()[1]
        time.sleep(0.2)
    else:
        pytest.fail("the run's sleep never started")
    assert list(tmp.glob("repro-*.p*"))  # it has temporary folders now
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)
    return proc.returncode, stderr, children


def _gone(processes: list[psutil.Process]) -> bool:
    def alive(p: psutil.Process) -> bool:
        try:
            return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return False

    return not any(alive(p) for p in processes)


def test_sigterm_stops_a_capture_and_its_run_and_leaves_no_temporary_folder(
    tmp_path: Path,
) -> None:
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    project = _study(tmp_path, SLEEP_TOML)
    out = tmp_path / "c.tgz"
    code, stderr, children = _terminate_during_run(["capture", str(project), "-o", str(out)], tmp)
    assert code == 143, stderr
    assert "terminated" in stderr and "Traceback" not in stderr
    assert _gone(children), [c.cmdline() for c in children if c.is_running()]
    assert list(tmp.iterdir()) == [] and not out.exists()


def test_sigterm_stops_a_replay_and_its_run_and_leaves_no_temporary_folder(
    tmp_path: Path,
) -> None:
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    project = _study(tmp_path, SLEEP_TOML, files={"out.txt": b"done\n"})
    capsule = tmp_path / "c.tgz"
    assert run_cli("capture", str(project), "-o", str(capsule), "--no-run").returncode == 0
    code, stderr, children = _terminate_during_run(
        ["replay", str(capsule), "--target", "local"], tmp
    )
    assert code == 143, stderr
    assert "terminated" in stderr and "Traceback" not in stderr
    assert _gone(children), [c.cmdline() for c in children if c.is_running()]
    assert list(tmp.iterdir()) == []


def test_the_next_repro_sweeps_what_a_killed_one_left(tmp_path: Path) -> None:
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    project = _study(tmp_path, SLEEP_TOML)
    env = {**os.environ, "TMPDIR": str(tmp)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "repro", "capture", str(project), "-o", str(tmp_path / "c.tgz")],
        stderr=subprocess.DEVNULL,
        env=env,
    )
    me = psutil.Process(proc.pid)
    while not any(c.name() == "sleep" for c in me.children(recursive=True)):
        assert proc.poll() is None
        time.sleep(0.2)
    children = me.children(recursive=True)
    proc.kill()  # SIGKILL: no cleanup can run
    proc.wait()
    for child in children:  # the study's own processes; not what this test is about
        child.kill()
    left = list(tmp.glob(f"repro-*.p{proc.pid}.*"))
    assert left
    old = time.time() - 3600
    for path in left:
        os.utime(path, (old, old))
    mine = tmp / "repro-replay-kept"  # a --keep folder (no pid): never swept
    mine.mkdir()
    os.utime(mine, (old, old))
    assert run_cli("keys", "list", env={"TMPDIR": str(tmp)}).returncode == 0
    assert list(tmp.iterdir()) == [mine]


def test_sigterm_stops_a_docker_replay_and_its_container(
    tmp_path: Path, docker_engine: str
) -> None:
    import docker

    tmp = tmp_path / "tmp"
    tmp.mkdir()
    token = f"repro-sigterm-{os.getpid()}-{time.monotonic_ns()}"
    toml = SLEEP_TOML.replace("sleep 300;", f"sleep 300; echo {token};")
    project = _study(tmp_path, toml, files={"out.txt": b"done\n"})
    capsule = tmp_path / "c.tgz"
    assert run_cli("capture", str(project), "-o", str(capsule), "--no-run").returncode == 0
    client = docker.from_env()

    def containers() -> list[object]:
        return [
            c
            for c in client.containers.list(all=True, ignore_removed=True)
            if token in " ".join(c.attrs["Args"])
        ]

    env = {**os.environ, "TMPDIR": str(tmp)}
    args = ["replay", str(capsule), "--target", "docker", "--base-image", docker_engine]
    with subprocess.Popen(
        [sys.executable, "-m", "repro", *args], stderr=subprocess.PIPE, text=True, env=env
    ) as proc:
        deadline = time.monotonic() + 600
        while not containers():
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.5)
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 143, stderr
    assert containers() == []  # killed and removed, not left running
    assert list(tmp.iterdir()) == []
