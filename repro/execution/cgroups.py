"""Control groups, v1 (one hierarchy per controller, hybrid setups) and v2 (unified): read a
cgroup's CPU, memory, I/O and OOM figures, and make a cgroup of its own for one run.

A run's own cgroup is made *below* the cgroup repro itself is in (never beside it), so every
limit that applies to repro still applies to the run; where that is not allowed (no
permission, no delegation), `own_cgroup` returns None and measurement falls back to rusage
plus sampling. Parsing is kept in pure functions so it is tested on real file samples.
"""

from __future__ import annotations

import atexit
import functools
import os
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

CGROUP_ROOT = Path("/sys/fs/cgroup")
V1_CONTROLLERS = ("memory", "cpuacct", "blkio")
"""The v1 hierarchies a run's cgroup is made in: those whose figures are read (pids was made
too until issue 20 and never read; each hierarchy costs a mkdir, a join and an rmdir)."""
USER_HZ = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
REMOVE_WAIT_S = 10.0
"""How long a cgroup that is still busy after its run is retried before it is left (a
daemon that escaped the run keeps it: as with `remove`)."""


@dataclass(frozen=True)
class Figures:
    """One reading of a cgroup; None where the file is not there (a controller not enabled)."""

    cpu_user_s: float | None = None
    cpu_system_s: float | None = None
    cpu_total_s: float | None = None
    memory_peak: int | None = None
    memory_current: int | None = None
    oom_kills: int = 0
    read_bytes: int | None = None
    written_bytes: int | None = None


def parse_keyed(text: str) -> dict[str, int]:
    """'key value' lines (cpu.stat, memory.events, cpuacct.stat, memory.oom_control)."""
    out: dict[str, int] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].lstrip("-").isdigit():
            out[parts[0]] = int(parts[1])
    return out


def parse_io_stat_v2(text: str) -> tuple[int, int]:
    """io.stat: '8:0 rbytes=N wbytes=N rios=N wios=N dbytes=N dios=N' per device, summed."""
    read = written = 0
    for line in text.splitlines():
        for field in line.split()[1:]:
            key, _, value = field.partition("=")
            if key == "rbytes":
                read += int(value)
            elif key == "wbytes":
                written += int(value)
    return read, written


def parse_blkio_v1(text: str) -> tuple[int, int]:
    """blkio.throttle.io_service_bytes: '8:0 Read N' / '8:0 Write N' per device, 'Total N'."""
    read = written = 0
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[1] == "Read":
            read += int(parts[2])
        elif len(parts) == 3 and parts[1] == "Write":
            written += int(parts[2])
    return read, written


def parse_proc_cgroup(text: str) -> dict[str, str]:
    """/proc/PID/cgroup -> {controller: path}; the v2 (unified) entry is under ''."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        for name in parts[1].split(",") if parts[1] else [""]:
            out[name.removeprefix("name=")] = parts[2]
    return out


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:
        return None


def _int(path: Path) -> int | None:
    text = _read(path)
    try:
        return int(text.split()[0]) if text else None
    except ValueError:
        return None  # "max"


def read_v2(directory: Path) -> Figures:
    cpu = parse_keyed(_read(directory / "cpu.stat") or "")
    events = parse_keyed(_read(directory / "memory.events") or "")
    io = _read(directory / "io.stat")
    read, written = parse_io_stat_v2(io) if io is not None else (None, None)
    usec = 1e6
    return Figures(
        cpu_user_s=cpu["user_usec"] / usec if "user_usec" in cpu else None,
        cpu_system_s=cpu["system_usec"] / usec if "system_usec" in cpu else None,
        cpu_total_s=cpu["usage_usec"] / usec if "usage_usec" in cpu else None,
        memory_peak=_int(directory / "memory.peak"),
        memory_current=_int(directory / "memory.current"),
        oom_kills=events.get("oom_kill", 0),
        read_bytes=read,
        written_bytes=written,
    )


def read_v1(dirs: dict[str, Path]) -> Figures:
    acct, mem, blk = dirs.get("cpuacct"), dirs.get("memory"), dirs.get("blkio")
    stat = parse_keyed(_read(acct / "cpuacct.stat") or "") if acct else {}
    usage = _int(acct / "cpuacct.usage") if acct else None
    oom = parse_keyed(_read(mem / "memory.oom_control") or "") if mem else {}
    io = _read(blk / "blkio.throttle.io_service_bytes") if blk else None
    read, written = parse_blkio_v1(io) if io is not None else (None, None)
    return Figures(
        cpu_user_s=stat["user"] / USER_HZ if "user" in stat else None,
        cpu_system_s=stat["system"] / USER_HZ if "system" in stat else None,
        cpu_total_s=usage * 1e-9 if usage is not None else None,
        memory_peak=_int(mem / "memory.max_usage_in_bytes") if mem else None,
        memory_current=_int(mem / "memory.usage_in_bytes") if mem else None,
        oom_kills=oom.get("oom_kill", 0),
        read_bytes=read,
        written_bytes=written,
    )


@dataclass(frozen=True)
class Cgroup:
    """A cgroup: its directory per controller (v1) or its one directory (under '', v2)."""

    version: Literal["v1", "v2"]
    dirs: dict[str, Path]
    owned: bool = False
    """Made by repro for one run (removed after it)."""

    def read(self) -> Figures:
        return read_v2(self.dirs[""]) if self.version == "v2" else read_v1(self.dirs)

    def pids(self) -> list[int]:
        """The processes in it now (from the memory hierarchy on v1)."""
        where = self.dirs.get("") or self.dirs.get("memory") or next(iter(self.dirs.values()))
        text = _read(where / "cgroup.procs") or ""
        return [int(p) for p in text.split() if p.isdigit()]

    def join_files(self) -> list[Path]:
        """The cgroup.procs files a process writes its pid to, to enter it."""
        return [d / "cgroup.procs" for d in self.dirs.values()]

    def limit_memory(self, limit: int) -> bool:
        """Cap the cgroup's memory (what Slurm's --mem means under task/cgroup); False when
        the controller is not there or refuses."""
        target = (
            self.dirs[""] / "memory.max"
            if self.version == "v2"
            else self.dirs.get("memory", Path("/nonexistent")) / "memory.limit_in_bytes"
        )
        try:
            target.write_text(str(limit))
        except OSError:
            return False
        return True

    def remove(self, wait: float = 1.0) -> None:
        """Remove a cgroup repro made, once empty: processes killed a moment ago (at a
        timeout) are given `wait` seconds to go; one still busy after that (a daemon that
        escaped the run) is left."""
        deadline = time.monotonic() + wait
        while not self.try_remove():
            if time.monotonic() >= deadline:
                return
            time.sleep(0.02)

    def try_remove(self) -> bool:
        """One attempt at removing a cgroup repro made: True once it is gone (or was never
        repro's to remove), False while a process is still in it."""
        if not self.owned:
            return True
        gone = True
        for d in self.dirs.values():
            try:
                d.rmdir()
            except FileNotFoundError:
                continue
            except OSError:
                gone = False
        return gone

    def remove_later(self, wait: float = REMOVE_WAIT_S) -> None:
        """Remove it once empty, in the background (`_Remover`): a sandbox's last process
        can still be exiting when the run's own process has been reaped (bubblewrap's
        PID-namespace init), and a run must not wait ~20 ms for that."""
        if self.owned and not self.try_remove():
            _REMOVER.add(self, time.monotonic() + wait)


class _Remover:
    """Removes the cgroups handed to it once they are empty: one daemon thread, started on
    first use, retrying every 20 ms; what is left at exit is tried once more then."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: list[tuple[Cgroup, float]] = []
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def add(self, cgroup: Cgroup, deadline: float) -> None:
        with self._lock:
            self._pending.append((cgroup, deadline))
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._loop, name="repro-cgroup-remover", daemon=True
                )
                self._thread.start()
                atexit.register(self.flush)
        self._wake.set()

    def flush(self, wait: float = 1.0) -> None:
        """Try what is pending until `wait` seconds have passed (at exit)."""
        deadline = time.monotonic() + wait
        while self._sweep() and time.monotonic() < deadline:
            time.sleep(0.02)

    def _sweep(self) -> bool:
        """One attempt at each pending cgroup; True while some are still pending."""
        with self._lock:
            pending, self._pending = self._pending, []
        now = time.monotonic()
        kept = [(c, d) for c, d in pending if not c.try_remove() and now < d]
        with self._lock:
            self._pending += kept
            return bool(self._pending)

    def _loop(self) -> None:
        while True:
            self._wake.wait()
            while self._sweep():
                time.sleep(0.02)
            with self._lock:
                if not self._pending:
                    self._wake.clear()


_REMOVER = _Remover()


def _v1_mount(controller: str, root: Path) -> Path | None:
    path = root / controller
    return path if (path / "cgroup.procs").is_file() else None


def cgroup_of(pid: int | str = "self", root: Path = CGROUP_ROOT) -> Cgroup | None:
    """The cgroup a process is in: v1 when the memory controller is on a v1 hierarchy
    (hybrid setups put nothing useful on the unified one), else v2."""
    text = _read(Path(f"/proc/{pid}/cgroup"))
    if text is None:
        return None
    paths = parse_proc_cgroup(text)
    if "memory" in paths and _v1_mount("memory", root) is not None:
        dirs = {}
        for controller in V1_CONTROLLERS:
            mount = _v1_mount(controller, root)
            if controller in paths and mount is not None:
                dirs[controller] = mount / paths[controller].lstrip("/")
        return Cgroup("v1", dirs)
    if "" in paths and (root / "cgroup.controllers").is_file():
        return Cgroup("v2", {"": root / paths[""].lstrip("/")})
    return None


@functools.lru_cache(maxsize=4)
def _parent_for(proc_cgroup: str, root: Path) -> Cgroup | None:
    """cgroup_of this process, worked out once per /proc/self/cgroup text (re-read for every
    run, so a process moved to another cgroup makes its runs' cgroups below the new one)."""
    del proc_cgroup  # the cache key
    return cgroup_of("self", root)


def own_cgroup(root: Path = CGROUP_ROOT) -> Cgroup | None:
    """A fresh cgroup for one run, below the one this process is in; None where it cannot be
    made (read-only cgroupfs, no permission or delegation)."""
    text = _read(Path("/proc/self/cgroup"))
    mine = _parent_for(text, root) if text is not None else None
    if mine is None:
        return None
    name = f"repro-run-{uuid.uuid4().hex[:12]}"
    made: dict[str, Path] = {}
    try:
        for controller, parent in mine.dirs.items():
            child = parent / name
            child.mkdir()
            made[controller] = child
            # Once per parent: a cgroupfs makes the control files with the folder.
            if not _is_cgroup(child):
                raise OSError("not a cgroup")
    except OSError:
        Cgroup(mine.version, made, owned=True).remove()
        return None
    return Cgroup(mine.version, made, owned=True)


_CHECKED: set[Path] = set()


def _is_cgroup(child: Path) -> bool:
    if child.parent in _CHECKED:
        return True
    if (child / "cgroup.procs").is_file():
        _CHECKED.add(child.parent)
        return True
    return False


def enter_prefix(cgroup: Cgroup) -> list[str]:
    """argv that puts the starting process into `cgroup` and then execs the rest: a shell
    writes its own pid to each cgroup.procs (before anything forks, so every descendant is
    inside) and execs. A write that fails is let go: that run is measured without it."""
    writes = " ".join(f'echo $$ > "{f}";' for f in cgroup.join_files())
    return ["/bin/sh", "-c", f'{{ {writes} }} 2>/dev/null; exec "$@"', "repro-enter"]
