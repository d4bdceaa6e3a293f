"""Resource usage: cgroup v1 and v2 files parsed from real samples, endings in words,
requested-vs-used efficiency and its warnings, and the report's resource parts."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from repro.execution.cgroups import (
    Cgroup,
    parse_blkio_v1,
    parse_io_stat_v2,
    parse_proc_cgroup,
    read_v1,
    read_v2,
)
from repro.execution.measure import supervise
from repro.report.replay import PointReplay, ReplayReport
from repro.report.resources_page import point_resources, resources_section
from repro.resource_usage import (
    Ending,
    ResourceUsage,
    efficiency,
    efficiency_warnings,
    ending_of,
    memory_bytes,
    side_by_side,
    walltime_s,
)

# Real files: cpu.stat from a cgroup v2 hierarchy (kernel 6.18, hybrid setup); memory.* and
# io.stat as a v2 kernel writes them (Debian 12, kernel 6.1, a docker container's cgroup).
V2_CPU_STAT = (
    "usage_usec 30910689632\nuser_usec 23306829776\nsystem_usec 7603859855\n"
    "nice_usec 7684698\nnr_periods 0\nnr_throttled 0\nthrottled_usec 0\n"
    "nr_bursts 0\nburst_usec 0\n"
)
V2_MEMORY_EVENTS = "low 0\nhigh 0\nmax 27\noom 1\noom_kill 1\noom_group_kill 0\n"
V2_IO_STAT = (
    "254:0 rbytes=1175552 wbytes=52510720 rios=52 wios=420 dbytes=0 dios=0\n"
    "7:0 rbytes=4096 wbytes=0 rios=1 wios=0 dbytes=0 dios=0\n"
)
# This machine's /proc/self/cgroup (v1 hybrid) and a systemd v2 one.
HYBRID = (
    "9:name=systemd:/\n8:pids:/\n7:blkio:/\n6:freezer:/\n5:devices:/\n"
    "4:memory:/process_api/6ca850b4918dcb5ace1751f08012a7a1\n3:cpuset:/\n2:cpuacct:/\n"
    "1:cpu:/\n0::/\n"
)
UNIFIED = "0::/user.slice/user-1000.slice/session-2.scope\n"
V1_BLKIO = "8:0 Read 4096\n8:0 Write 52428800\n8:0 Sync 0\n8:0 Async 52432896\n8:0 Total 52432896\nTotal 52432896\n"


def test_v2_files_are_read(tmp_path: Path) -> None:
    (tmp_path / "cpu.stat").write_text(V2_CPU_STAT)
    (tmp_path / "memory.peak").write_text("314572800\n")
    (tmp_path / "memory.current").write_text("1048576\n")
    (tmp_path / "memory.events").write_text(V2_MEMORY_EVENTS)
    (tmp_path / "io.stat").write_text(V2_IO_STAT)
    f = read_v2(tmp_path)
    assert f.cpu_total_s == 30910.689632 and f.cpu_user_s == 23306.829776
    assert f.cpu_system_s == 7603.859855
    assert f.memory_peak == 314572800 and f.memory_current == 1048576
    assert f.oom_kills == 1
    assert (f.read_bytes, f.written_bytes) == (1179648, 52510720)
    assert parse_io_stat_v2(V2_IO_STAT) == (1179648, 52510720)


def test_v2_without_the_memory_controller_gives_no_memory_figures(tmp_path: Path) -> None:
    (tmp_path / "cpu.stat").write_text(V2_CPU_STAT)
    f = read_v2(tmp_path)
    assert f.cpu_total_s is not None and f.memory_peak is None and f.read_bytes is None


def test_v1_files_are_read(tmp_path: Path) -> None:
    acct, mem, blk = (tmp_path / n for n in ("cpuacct", "memory", "blkio"))
    for d in (acct, mem, blk):
        d.mkdir()
    (acct / "cpuacct.stat").write_text("user 300\nsystem 100\n")
    (acct / "cpuacct.usage").write_text("4100000000\n")
    (mem / "memory.max_usage_in_bytes").write_text("322854912\n")
    (mem / "memory.usage_in_bytes").write_text("262144\n")
    (mem / "memory.oom_control").write_text("oom_kill_disable 0\nunder_oom 0\noom_kill 2\n")
    (blk / "blkio.throttle.io_service_bytes").write_text(V1_BLKIO)
    f = read_v1({"cpuacct": acct, "memory": mem, "blkio": blk})
    assert f.cpu_total_s is not None and abs(f.cpu_total_s - 4.1) < 1e-9
    assert f.memory_peak == 322854912 and f.oom_kills == 2
    assert parse_blkio_v1(V1_BLKIO) == (4096, 52428800)
    assert Cgroup("v1", {"memory": mem}).pids() == []


def test_proc_cgroup_lines_are_parsed() -> None:
    hybrid = parse_proc_cgroup(HYBRID)
    assert hybrid["memory"] == "/process_api/6ca850b4918dcb5ace1751f08012a7a1"
    assert hybrid["systemd"] == "/" and hybrid[""] == "/"
    assert parse_proc_cgroup(UNIFIED) == {"": "/user.slice/user-1000.slice/session-2.scope"}
    assert parse_proc_cgroup("12:cpu,cpuacct:/slurm/uid_0/job_7\n")["cpuacct"] == (
        "/slurm/uid_0/job_7"
    )


def test_endings_are_said_in_words() -> None:
    assert ending_of(0).words == "exited with code 0"
    assert ending_of(3).words == "failed with exit code 3"
    assert ending_of(None, signal_number=9).signal == "SIGKILL"
    assert "killed by SIGSEGV" in ending_of(139).words
    oom = ending_of(137, oom_killed=True, memory_limit="100M")
    assert oom.kind == "killed_for_memory" and oom.words.startswith(
        "killed for memory (the limit 100M)"
    )
    assert ending_of(None, scheduler_state="OUT_OF_MEMORY").kind == "killed_for_memory"
    assert ending_of(None, timed_out_after=2.5).words == "timed out after 2.5 s: repro stopped it"
    assert "Slurm" in ending_of(None, scheduler_state="TIMEOUT").words


def _usage(**kw: object) -> ResourceUsage:
    base: dict[str, object] = {
        "method": "cgroup-v1",
        "wall_s": 10.0,
        "cpu_user_s": 9.0,
        "cpu_system_s": 1.0,
        "cores_mean": 1.0,
        "cores_peak": 1.0,
        "peak_rss_bytes": 2_100_000_000,
        "read_bytes": 0,
        "written_bytes": 0,
        "processes": 1,
        "samples": 10,
        "started_at": 1000.0,
        "ending": Ending(kind="exited", exit_code=0, words="exited with code 0"),
    }
    return ResourceUsage.model_validate({**base, **kw})


def test_efficiency_and_its_warnings() -> None:
    assert memory_bytes("1.5G") == 3 << 29 and memory_bytes("300M") == 300 << 20
    assert walltime_s("1-00:00:10") == 86410
    usage = _usage()
    eff = efficiency(usage, 8, "2G", None)
    assert eff.cpu == 0.125 and eff.memory is not None and eff.memory > 0.9
    warnings = efficiency_warnings("sim", usage, eff, 8)
    assert any("1.0 of the 8 cores" in w for w in warnings)
    assert any("within 10 % of its memory limit" in w for w in warnings)
    low = efficiency(_usage(peak_rss_bytes=100_000_000), 1, "4G", 100)
    assert efficiency_warnings("sim", _usage(), low, 1) == [
        "run sim used 2.1 GB of the memory it requests (2%): request less memory"
    ]
    fine = efficiency(usage, 1, None, 3600)
    assert efficiency_warnings("sim", usage, fine, 1) == []


def test_both_sides_are_said() -> None:
    text = side_by_side(_usage(), _usage(peak_rss_bytes=2_300_000_000))
    assert text == "captured: 2.1 GB peak, 1.0 cores; replayed: 2.3 GB peak, 1.0 cores"
    assert side_by_side(None, _usage()).startswith("captured: not measured;")


def _point(pid: str, usage: ResourceUsage | None) -> PointReplay:
    return PointReplay(
        run="sim",
        point_id=pid,
        command="python sim.py",
        status="ok",
        exit_code=0,
        duration_s=1.0,
        usage=usage,
        captured_usage=_usage(),
    )


def test_the_report_compares_each_point_and_draws_a_timeline() -> None:
    one = point_resources(_point("seed=1", _usage(peak_rss_bytes=5_000_000)))
    assert "<th>captured</th><th>replayed</th>" in one
    assert "2.1 GB" in one and "5.0 MB" in one and "exited with code 0" in one
    assert point_resources(_point("seed=1", None).model_copy(update={"captured_usage": None})) == ""
    report = ReplayReport(
        capsule="c.tgz",
        capsule_id="0" * 64,
        title="t",
        signature="unsigned",
        target="slurm",
        reproduced=True,
        counts={},
        points=[
            _point("seed=1", _usage(started_at=1000.0, queue_wait_s=2.0)),
            _point("seed=2", _usage(started_at=1005.0, queue_wait_s=7.0, wall_s=5.0)),
        ],
        started="2026-01-01T00:00:00Z",
        duration_s=20.0,
    )
    html = resources_section(report)
    assert html.count('class="tl-row"') == 2 and html.count('class="tl-wait"') == 2
    # The origin is the first submission (998 s): seed=2 waited from 998 to 1005 of 1010.
    assert 'left:58.33%;width:41.67%"' in html
    assert resources_section(report.model_copy(update={"points": report.points[:1]})) == ""


def test_a_trivial_run_is_measured_in_well_under_50_ms() -> None:
    start = time.monotonic()
    proc = subprocess.Popen(["/bin/true"], start_new_session=True)
    done = supervise(proc, 10)
    assert time.monotonic() - start < 0.05 + 0.05  # spawning itself takes some ms
    assert done.exit_code == 0 and done.usage.ending.words == "exited with code 0"
    assert done.usage.samples >= 1


def test_a_large_sweep_has_one_resources_line_and_one_per_point_that_failed() -> None:
    from repro.report.terminal import _resource_lines
    from repro.resource_usage import ending_of

    points = [_point(f"i={i}", _usage(peak_rss_bytes=(i + 1) * 1_000_000)) for i in range(30)]
    failed = _usage(peak_rss_bytes=1_000_000, ending=ending_of(3))
    points[4] = points[4].model_copy(update={"usage": failed})
    report = ReplayReport(
        capsule="c.tgz",
        capsule_id="0" * 64,
        title="t",
        signature="unsigned",
        target="local",
        reproduced=False,
        counts={},
        points=points,
        started="2026-01-01T00:00:00Z",
        duration_s=20.0,
    )
    lines = _resource_lines(report)
    assert lines == [
        "resources sim (30 points): captured: median 2.1 GB peak, 1.0 cores, largest 2.1 GB, "
        "1.0 cores; replayed: median 16.0 MB peak, 1.0 cores, largest 30.0 MB, 1.0 cores",
        "resources sim [i=4]: captured: 2.1 GB peak, 1.0 cores; replayed: 1.0 MB peak, "
        "1.0 cores; failed with exit code 3",
    ]
    # a small sweep keeps a line per point
    few = _resource_lines(report.model_copy(update={"points": points[:3]}))
    assert len(few) == 3 and few[0].startswith("resources sim [i=0]: captured: 2.1 GB")


def test_ru_maxrss_of_a_small_child_is_not_taken_for_repros_own_memory() -> None:
    """A forked child's ru_maxrss starts from the high-water mark of the memory it was forked
    from: a 3 MB `true` run from a 300 MB repro must not be said to have peaked at 300 MB."""
    ballast = bytearray(300 << 20)
    for i in range(0, len(ballast), 4096):
        ballast[i] = 1
    proc = subprocess.Popen(["/bin/true"], start_new_session=True)
    done = supervise(proc, 10)
    del ballast
    assert done.usage.peak_rss_bytes < 100 << 20, done.usage


def test_the_wait_ends_when_the_process_ends_not_at_the_next_tick() -> None:
    from repro.execution.measure import _ExitWaiter

    proc = subprocess.Popen(["/bin/sleep", "0.05"])
    waiter = _ExitWaiter(proc.pid)
    start = time.monotonic()
    try:
        assert waiter.wait(30.0) is True  # a pidfd: woken by the exit, not after 30 s
    finally:
        waiter.close()
        proc.wait()
    assert time.monotonic() - start < 5
