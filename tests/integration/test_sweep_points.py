"""Many short sweep points on this machine (issue 20): each is still sandboxed and measured
on its own, what the terminal says stays short, and a point's cgroup goes away once its
last process has left it, without the point waiting for that."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from repro.config.models import Run
from repro.execution.cgroups import enter_prefix, own_cgroup
from repro.execution.runs import LocalRunner, PointLines, execute_runs
from repro.execution.sandbox import available_sandbox
from tests.conftest import require_service
from tests.integration.test_isolation import bwrap_works


def test_a_sweep_of_sandboxed_points_each_measured_and_private(tmp_path: Path) -> None:
    """40 points, 2 at a time, in bubblewrap: every point gets its own cgroup figures and a
    HOME and /tmp nobody else sees (the first point's files are not there for the others),
    and the terminal says the run in one line with the failed point on a line of its own."""
    require_service(bwrap_works(), "bubblewrap (bwrap) able to unshare every namespace")
    (tmp_path / "out").mkdir()
    command = (
        'ls -AR "$HOME" /tmp > out/{i}.seen; touch "$HOME/mine-{i}" /tmp/mine-{i}; test {i} -ne 13'
    )
    run = Run(name="tiny", command=command, outputs=["out/{i}.seen"], sweep={"i": list(range(40))})
    runner = LocalRunner(Path("/usr/bin"), None, sandbox=available_sandbox())
    said: list[str] = []
    lines = PointLines(said.append)
    outcomes = execute_runs([run], tmp_path, runner, jobs=2, on_point=lines)
    lines.flush()
    assert len(outcomes) == 40
    for o in outcomes:
        assert not o.missing, o
        seen = (tmp_path / "out" / f"{o.point['i']}.seen").read_text()
        assert "mine-" not in seen, (o.point, seen)  # no other point's HOME or /tmp files
        usage = o.result.usage
        assert usage is not None and usage.ending.exit_code == (1 if o.point["i"] == 13 else 0)
        if own_cgroup_works():
            assert usage.method in ("cgroup-v1", "cgroup-v2"), usage
            assert usage.peak_rss_bytes < 100 << 20, usage  # not repro's own memory
    assert said[-1].startswith("ran 40 points of tiny: 39 exited 0, 1 did not; median ")
    assert said[:-1] == [said[0]] and said[0].startswith("ran tiny [i=13] in ")


def own_cgroup_works() -> bool:
    cgroup = own_cgroup()
    if cgroup is None:
        return False
    cgroup.remove()
    return True


def test_a_busy_cgroup_is_removed_in_the_background_once_empty() -> None:
    cgroup = own_cgroup()
    require_service(cgroup is not None, "a cgroup repro can make (cgroup v2, writable)")
    assert cgroup is not None
    proc = subprocess.Popen([*enter_prefix(cgroup), "sleep", "0.5"])
    try:
        deadline = time.monotonic() + 5
        while not cgroup.pids() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert cgroup.pids(), "the process never entered its cgroup"
        start = time.monotonic()
        cgroup.remove_later()
        assert time.monotonic() - start < 0.2  # the caller does not wait for it
        assert all(d.is_dir() for d in cgroup.dirs.values())  # still busy: kept for now
    finally:
        proc.wait()
    deadline = time.monotonic() + 5
    while any(d.exists() for d in cgroup.dirs.values()) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not any(d.exists() for d in cgroup.dirs.values())
