"""Measure one run: its process tree sampled with psutil (memory, CPU, I/O, processes), its
cgroup read where it has one, wait4's rusage when repro is its parent, GPUs via nvidia-smi.

`supervise` runs a started child to its end (its timeout included) and returns its wait
status with the ResourceUsage; `Sampler` is the part every target shares (docker samples a
container's processes from the host with it). How each figure is obtained and how accurate it
is: docs/resources.md.
"""

from __future__ import annotations

import contextlib
import functools
import os
import resource
import select
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from repro.execution.cgroups import Cgroup, Figures
from repro.resource_usage import Ending, Method, ResourceUsage, ending_of

FIRST_INTERVAL_S = 0.005
INTERVAL_S = 0.05
"""Sampling starts at 5 ms and doubles up to 50 ms: a run under a second still gets a
handful of samples, a long one costs ~20 tree walks a second."""
GPU_INTERVAL_S = 1.0
CGROUP_INTERVAL_S = 1.0
CGROUP_FIRST_SAMPLE_S = 0.02
"""A run in a cgroup of its own is first sampled after this long: its CPU, memory peak and
I/O come from the cgroup exactly; a run that ends sooner (a trivial sweep point) is not
sampled at all, and its peak memory is the cgroup's (docs/resources.md)."""


_OWN_RSS = psutil.Process().memory_info().rss * 2
"""What a forked child's ru_maxrss may count of repro's own memory (with room to grow)."""


def _own_peak_rss() -> int:
    """repro's own peak RSS so far: a child's ru_maxrss starts from it (the high-water mark
    of the memory it was forked from is carried across exec), so a figure at or under it
    says nothing about the child."""
    return max(_OWN_RSS, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)


def _descendants(root: int) -> list[int] | None:
    """`root` and its descendants from the kernel's per-thread children lists (a few small
    reads, where psutil's children() reads every process's stat: ~30 ms on a busy machine);
    None where the kernel has no such lists. Plain os calls: this runs every sample."""
    if not _HAS_CHILDREN:
        return None
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        try:
            tasks = os.listdir(f"/proc/{pid}/task")  # noqa: PTH208 - every sample: cheap calls
        except OSError:
            continue  # gone
        out.append(pid)
        for task in tasks:
            try:
                with open(f"/proc/{pid}/task/{task}/children", "rb") as fh:  # noqa: PTH123
                    text = fh.read()
            except OSError:
                continue
            todo += [int(c) for c in text.split()]
    return out


_HAS_CHILDREN = Path(f"/proc/{os.getpid()}/task/{os.getpid()}/children").exists()


@functools.lru_cache(maxsize=8)
def _has_gpu_tool(path: str | None) -> bool:
    """Whether nvidia-smi is on `path` (looked up once per PATH, not once per run)."""
    return shutil.which("nvidia-smi", path=path) is not None


def _gpu_reading() -> tuple[float, int] | None:
    """(utilisation %, memory used bytes), the largest over the devices; None without one."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return None
    try:
        out = subprocess.run(
            [smi, "--query-gpu=utilization.gpu,memory.used", "--format=csv,noheader,nounits"],
            capture_output=True,
            timeout=5,
            check=False,
            text=True,
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    util, mem = 0.0, 0
    seen = False
    for line in out.splitlines():
        parts = [p.strip() for p in line.split(",")]
        with contextlib.suppress(ValueError, IndexError):
            util, mem = max(util, float(parts[0])), max(mem, int(float(parts[1])) << 20)
            seen = True
    return (util, mem) if seen else None


@dataclass
class Sampler:
    """Samples the process tree under `root_pid` (or the processes of `cgroup`)."""

    root_pid: int
    cgroup: Cgroup | None = None
    started: float = field(default_factory=time.monotonic)
    samples: int = 0
    peak_rss: int = 0
    peak_cores: float = 0.0
    seen: set[tuple[int, float]] = field(default_factory=set)
    """(pid, start time) of every process seen in the tree."""
    io_max: list[int] = field(default_factory=lambda: [0, 0, 0, 0])
    user_max: float = 0.0
    system_max: float = 0.0
    last: Figures | None = None
    _prev: tuple[float, float] | None = None
    _cache: dict[int, psutil.Process] = field(default_factory=dict)
    _gpu: tuple[float, int] | None = None
    _gpu_next: float = 0.0
    _cgroup_next: float = 0.0
    _pids_next: float = 0.0
    _gpu_present: bool = field(default_factory=lambda: _has_gpu_tool(os.environ.get("PATH")))

    def __post_init__(self) -> None:
        if self.cgroup is not None and self.cgroup.owned:
            # Made empty for this run and read at its end: nothing to read at its start.
            self._cgroup_next = self._pids_next = self.started + CGROUP_INTERVAL_S

    def _tree(self) -> list[psutil.Process]:
        # A container's cgroup holds its processes, which repro did not start: listed every
        # sample. A run's own cgroup adds only what escaped the tree (a daemon reparented to
        # init): listed once a second (reading cgroup.procs costs more than walking the tree).
        if self.cgroup is not None and (
            not self.cgroup.owned or time.monotonic() >= self._pids_next
        ):
            self._pids_next = time.monotonic() + CGROUP_INTERVAL_S
            pids = self.cgroup.pids()
            if pids:
                procs = []
                for pid in pids:
                    proc = self._cache.get(pid)
                    if proc is None:
                        with contextlib.suppress(psutil.Error):
                            proc = self._cache[pid] = psutil.Process(pid)
                    if proc is not None:
                        procs.append(proc)
                return procs
        tree = _descendants(self.root_pid)
        if tree is None:  # no /proc/PID/task/TID/children (CONFIG_PROC_CHILDREN): psutil's scan
            try:
                root = self._cache.get(self.root_pid) or psutil.Process(self.root_pid)
                self._cache[self.root_pid] = root
                return [root, *root.children(recursive=True)]
            except psutil.Error:
                return []
        procs = []
        for pid in tree:
            proc = self._cache.get(pid)
            if proc is None:
                with contextlib.suppress(psutil.Error):
                    proc = self._cache[pid] = psutil.Process(pid)
            if proc is not None:
                procs.append(proc)
        return procs

    def sample(self) -> None:
        """One look at the tree. A process's counters (CPU, I/O) include those of the
        children it has reaped, so one sample's sum over the live processes counts every
        byte and second once; the largest sum over samples is kept."""
        now = time.monotonic()
        total_rss = 0
        user = system = 0.0
        io = [0, 0, 0, 0]
        for proc in self._tree():
            try:
                with proc.oneshot():
                    key = (proc.pid, proc.create_time())
                    mem = proc.memory_info().rss
                    times = proc.cpu_times()
                    try:
                        c = proc.io_counters()
                        counters = (c.read_bytes, c.write_bytes, c.read_chars, c.write_chars)
                    except (psutil.AccessDenied, AttributeError):
                        counters = (0, 0, 0, 0)
            except psutil.Error:
                continue
            self.seen.add(key)
            total_rss += mem
            user += times.user + times.children_user
            system += times.system + times.children_system
            io = [a + b for a, b in zip(io, counters, strict=True)]
        self.io_max = [max(a, b) for a, b in zip(self.io_max, io, strict=True)]
        self.user_max = max(self.user_max, user)
        self.system_max = max(self.system_max, system)
        tree_cpu = user + system
        # A cgroup repro made keeps its own peaks and totals and is read at the end: once a
        # second is enough for the timeline of cores. A container's vanishes when it stops:
        # every sample.
        if self.cgroup is not None and (not self.cgroup.owned or now >= self._cgroup_next):
            self._cgroup_next = now + CGROUP_INTERVAL_S
            reading = self.cgroup.read()
            # A cgroup removed under us (a container's, when it stops) reads as nothing: the
            # last reading that had figures stands.
            if reading.cpu_total_s is not None or reading.memory_peak is not None:
                self.last = reading
                if reading.cpu_total_s is not None and not self.cgroup.owned:
                    tree_cpu = reading.cpu_total_s  # read every sample: one consistent series
        self.peak_rss = max(self.peak_rss, total_rss)
        if self._prev is not None and now - self._prev[0] >= 0.02:
            cores = (tree_cpu - self._prev[1]) / (now - self._prev[0])
            self.peak_cores = max(self.peak_cores, cores)
        if self._prev is None or now - self._prev[0] >= 0.02:
            self._prev = (now, tree_cpu)
        if self._gpu_present and now >= self._gpu_next:
            self._gpu_next = now + GPU_INTERVAL_S
            gpu = _gpu_reading()
            if gpu is not None:
                old = self._gpu or (0.0, 0)
                self._gpu = (max(old[0], gpu[0]), max(old[1], gpu[1]))
        self.samples += 1

    def result(
        self,
        method: Method,
        ending: Ending,
        *,
        wall_s: float | None = None,
        rusage: object | None = None,
        final: Figures | None = None,
        own_io: tuple[int, int, int, int] | None = None,
    ) -> ResourceUsage:
        """The figures: exact ones (cgroup, rusage) where there are, sampled ones otherwise."""
        wall = wall_s if wall_s is not None else time.monotonic() - self.started
        figures = final or self.last
        user, system = self.user_max, self.system_max
        if rusage is not None:
            user = float(rusage.ru_utime)  # type: ignore[attr-defined]
            system = float(rusage.ru_stime)  # type: ignore[attr-defined]
        if figures is not None and figures.cpu_user_s is not None:
            # cpuacct.stat's split is in ticks; its total (cpuacct.usage) is in ns.
            user, system = figures.cpu_user_s, figures.cpu_system_s or 0.0
            total = figures.cpu_total_s
            if total is not None and user + system > 0:
                scale = total / (user + system)
                user, system = user * scale, system * scale
        # ru_maxrss (KiB) is the largest single process that was waited for; but a child's
        # counts the memory of repro itself, which it was forked from, so it is believed only
        # above that.
        max_single = int(rusage.ru_maxrss) * 1024 if rusage is not None else 0  # type: ignore[attr-defined]
        if max_single <= _own_peak_rss():
            max_single = 0
        io = list(self.io_max)
        if own_io is not None:
            # The run's own /proc/PID/io read as a zombie: it and every descendant it reaped.
            io = [max(a, b) for a, b in zip(io, own_io, strict=True)]
        if figures is not None:
            if figures.read_bytes is not None:
                io[0] = max(io[0], figures.read_bytes)
            if figures.written_bytes is not None:
                io[1] = max(io[1], figures.written_bytes)
        cpu = user + system
        cores_mean = cpu / wall if wall > 0 else 0.0
        peak = max(self.peak_rss, max_single)
        processes = len(self.seen)
        if self.samples == 0 and figures is not None and figures.memory_peak is not None:
            # Ended before its first sample (a run in its own cgroup, under 20 ms): the
            # cgroup's peak (page cache included) stands for the tree's, and it ran.
            peak = max(peak, figures.memory_peak)
            processes = max(processes, 1)
        return ResourceUsage(
            method=method,
            wall_s=round(wall, 3),
            cpu_user_s=round(user, 3),
            cpu_system_s=round(system, 3),
            cores_mean=round(cores_mean, 2),
            cores_peak=round(max(self.peak_cores, cores_mean), 2),
            peak_rss_bytes=peak,
            memory_peak_bytes=figures.memory_peak if figures is not None else None,
            read_bytes=io[0],
            written_bytes=io[1],
            read_chars=io[2],
            written_chars=io[3],
            processes=processes,
            gpu_util_peak=self._gpu[0] if self._gpu else None,
            gpu_mem_peak_bytes=self._gpu[1] if self._gpu else None,
            samples=self.samples,
            started_at=round(time.time() - (time.monotonic() - self.started), 3),
            ending=ending,
        )


def _zombie_io(pid: int) -> tuple[int, int, int, int] | None:
    """/proc/PID/io of an exited, not yet reaped process: its own I/O plus that of every
    descendant it reaped (the kernel adds a reaped child's counters to its parent's)."""
    try:
        text = Path(f"/proc/{pid}/io").read_text()
    except OSError:
        return None
    keys = {}
    for line in text.splitlines():
        name, _, value = line.partition(":")
        with contextlib.suppress(ValueError):
            keys[name.strip()] = int(value)
    return (
        keys.get("read_bytes", 0),
        keys.get("write_bytes", 0),
        keys.get("rchar", 0),
        keys.get("wchar", 0),
    )


class _ExitWaiter:
    """A wait of at most N seconds that ends as soon as `pid` exits: a pidfd polled, so a
    run of 8 ms is seen to end at 8 ms, not at the next sampling tick; a plain sleep where
    the kernel has no pidfd_open (Linux < 5.3)."""

    def __init__(self, pid: int) -> None:
        self._fd: int | None = None
        self._poller: select.poll | None = None
        with contextlib.suppress(OSError, AttributeError):
            self._fd = os.pidfd_open(pid)
            self._poller = select.poll()
            self._poller.register(self._fd, select.POLLIN)

    def wait(self, seconds: float) -> bool:
        """Wait; True when the process is known to have exited."""
        if self._poller is None:
            time.sleep(seconds)
            return False
        return bool(self._poller.poll(seconds * 1000))

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = self._poller = None


@dataclass(frozen=True)
class Supervised:
    exit_code: int | None
    """As Popen's returncode (-N for signal N); None when it was stopped at its timeout (or
    stopped from outside)."""
    usage: ResourceUsage


def _kill_group(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def supervise(
    proc: subprocess.Popen[bytes],
    timeout: float,
    *,
    cgroup: Cgroup | None = None,
    kill_grace: float = 5.0,
    memory_limit: str | None = None,
    started: float | None = None,
    tick: Callable[[], object] | None = None,
) -> Supervised:
    """Wait for `proc` (the leader of its own process group) while sampling it; at `timeout`
    stop its group (TERM, then KILL after `kill_grace`). It is reaped here with wait4, so its
    rusage (CPU of the whole tree that was waited for) is exact. `tick` is called after each
    wait (5 ms, then doubling up to 50 ms): the run's live output is read there, with no
    thread of its own."""
    start = started if started is not None else time.monotonic()
    sampler = Sampler(proc.pid, cgroup, started=start)
    interval = FIRST_INTERVAL_S
    deadline = start + timeout
    timed_out = False
    killed_at: float | None = None
    own_io = None
    final: Figures | None = None
    status: int | None = None
    rusage = None
    exited = _ExitWaiter(proc.pid)
    ended = False
    own = start + CGROUP_FIRST_SAMPLE_S if cgroup is not None and cgroup.owned else None
    try:
        while True:
            # A tree whose root has exited is not worth a look; a run in its own cgroup is
            # first looked at after CGROUP_FIRST_SAMPLE_S.
            if not ended and (own is None or time.monotonic() >= own):
                sampler.sample()
            try:
                info = os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
            except ChildProcessError:
                info = None
                status = None
                break  # reaped by someone else (InFlight.stop after Ctrl-C)
            if info is not None:
                own_io = _zombie_io(proc.pid)
                final = cgroup.read() if cgroup is not None else None
                try:
                    _, status, rusage = os.wait4(proc.pid, 0)
                except ChildProcessError:
                    status = None
                break
            now = time.monotonic()
            if now >= deadline and not timed_out:
                timed_out = True
                killed_at = now
                _kill_group(proc.pid, signal.SIGTERM)
            elif killed_at is not None and now >= killed_at + kill_grace:
                _kill_group(proc.pid, signal.SIGKILL)
                killed_at = float("inf")
            ended = exited.wait(interval)
            if tick is not None:
                tick()
            interval = min(interval * 2, INTERVAL_S)
    finally:
        exited.close()
    wall = time.monotonic() - start
    if status is not None:
        proc.returncode = os.waitstatus_to_exitcode(status)
    if timed_out:
        _kill_group(proc.pid, signal.SIGKILL)  # whatever of the group is left
    code = None if timed_out else (proc.returncode if status is not None else None)
    oom = final is not None and final.oom_kills > 0
    sig = -proc.returncode if status is not None and proc.returncode < 0 else None
    ending = ending_of(
        code if code is None or code >= 0 else None,
        signal_number=sig,
        timed_out_after=timeout if timed_out else None,
        oom_killed=oom,
        memory_limit=memory_limit,
    )
    method: Method = (
        ("cgroup-v2" if cgroup.version == "v2" else "cgroup-v1")
        if cgroup is not None and final is not None and final.cpu_total_s
        else "rusage+sampling"
    )
    usage = sampler.result(method, ending, wall_s=wall, rusage=rusage, final=final, own_io=own_io)
    return Supervised(code, usage)


@dataclass
class Watch:
    """Samples a process repro did not start (a container's init, seen from the host) in a
    thread, until `stop`."""

    sampler: Sampler
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> Watch:
        def loop() -> None:
            interval = FIRST_INTERVAL_S
            while not self._stop.is_set():
                self.sampler.sample()
                if not psutil.pid_exists(self.sampler.root_pid):
                    return
                self._stop.wait(interval)
                interval = min(interval * 2, INTERVAL_S)

        self._thread = threading.Thread(target=loop, name="repro-measure", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()


def watch(pid: int, cgroup_for: Callable[[int], Cgroup | None]) -> Watch:
    return Watch(Sampler(pid, cgroup_for(pid))).start()
