"""What runs used, measured on real runs with known behaviour: on this machine (capture and
the local runner), in Docker containers, and in Slurm tasks (docs/resources.md)."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import pytest

from repro.config.models import Resources, Run
from repro.execution.container import DockerRunner
from repro.execution.runs import InFlight, LocalRunner
from repro.resource_usage import ResourceUsage
from tests.conftest import run_cli

MiB = 1 << 20
HOLD = 300 * MiB

WORK = """\
import os, sys, time
what = sys.argv[1]
os.makedirs("out", exist_ok=True)
if what == "hold":
    b = bytearray(300 << 20)
    for i in range(0, len(b), 4096):
        b[i] = 1
    time.sleep(0.6)
elif what == "burn":
    import multiprocessing as mp
    def spin():
        t = time.process_time()
        while time.process_time() - t < 2.0:
            pass
    ps = [mp.get_context("fork").Process(target=spin) for _ in range(2)]
    [p.start() for p in ps]
    [p.join() for p in ps]
elif what == "fork":
    import subprocess
    ps = [subprocess.Popen([sys.executable, "-c", "sum(range(2000000))"]) for _ in range(4)]
    [p.wait() for p in ps]
elif what == "write":
    with open("out/big.bin", "wb") as f:
        for _ in range(50):
            f.write(os.urandom(1 << 20))
        f.flush()
        os.fsync(f.fileno())
    os.remove("out/big.bin")
open(f"out/{what}.txt", "w").write("done\\n")
"""

TOML = """\
[[runs]]
name = "w"
command = "python work.py {what}"
outputs = ["out/{what}.txt"]
timeout = 120
[runs.sweep]
what = ["hold", "burn", "fork", "write"]
"""


def study(tmp_path: Path, extra: str = "") -> Path:
    project = tmp_path / "measured"
    project.mkdir()
    (project / "work.py").write_text(WORK)
    (project / "repro.toml").write_text(TOML + extra)
    return project


def check_known(usage: dict[str, ResourceUsage], where: str, load: float) -> None:
    """The figures each known run must give, on every target; `load`: the machine's load
    average before the runs (on a busy shared machine two cores are not there to be used)."""
    hold = usage["what=hold"]
    assert abs(hold.peak_rss_bytes - HOLD) <= 0.1 * HOLD, (where, hold)
    burn = usage["what=burn"]
    assert 3.6 <= burn.cpu_s <= 4.8, (where, burn)
    assert burn.cores_peak >= burn.cores_mean > 0, (where, burn)
    assert abs(burn.cores_mean - burn.cpu_s / burn.wall_s) < 0.02, (where, burn)
    if load < 0.5 * (os.cpu_count() or 1):
        # Two cores busy at once, where the machine has them to give.
        assert burn.cores_peak >= 1.5, (where, burn, load)
    assert burn.processes >= 3, (where, burn)  # the python, its two workers
    fork = usage["what=fork"]
    assert fork.processes >= 5, (where, fork)  # the parent and its four children
    write = usage["what=write"]
    assert write.written_bytes >= 50 * MiB, (where, write)
    for u in usage.values():
        assert u.ending.kind == "exited" and u.ending.exit_code == 0, (where, u)


@pytest.mark.slow
def test_capture_records_what_each_run_used_and_a_reproducible_capsule_does_not(
    tmp_path: Path,
) -> None:
    project = study(tmp_path)
    load = os.getloadavg()[0]
    out = tmp_path / "m.tgz"
    result = run_cli("capture", str(project), "-o", str(out), "-j", "1")
    assert result.returncode == 0, result.stderr
    inspected = json.loads(run_cli("inspect", str(out), "--json").stdout)
    usage = {
        r["point_id"]: ResourceUsage.model_validate(r["usage"])
        for r in inspected["manifest"]["results"]
    }
    check_known(usage, "capture (local)", load)
    assert {u.method for u in usage.values()} <= {"cgroup-v1", "cgroup-v2", "rusage+sampling"}
    shown = run_cli("inspect", str(out))
    assert "MB peak" in shown.stdout and "exited with code 0" in shown.stdout
    # Under SOURCE_DATE_EPOCH the figures, like durations, stay out of the capsule.
    (project / "repro.toml").write_text(TOML.replace('"burn", "fork", "write"', '"fork"'))
    again = tmp_path / "r.tgz"
    result = run_cli(
        "capture", str(project), "-o", str(again), env={"SOURCE_DATE_EPOCH": "1700000000"}
    )
    assert result.returncode == 0, result.stderr
    manifest = json.loads(run_cli("inspect", str(again), "--json").stdout)["manifest"]
    assert all(r["usage"] is None for r in manifest["results"])


def _local(command: str, tmp: Path, timeout: float = 60) -> ResourceUsage:
    runner = LocalRunner(Path("/usr/bin"), None)
    result = runner.run(command, tmp, {}, timeout, Run(name="x", command=command), InFlight())
    assert result.usage is not None
    return result.usage


def test_a_run_past_its_timeout_is_said_to_have_timed_out(tmp_path: Path) -> None:
    usage = _local("sleep 30", tmp_path, timeout=0.5)
    assert usage.ending.kind == "timed_out" and "timed out after 0.5 s" in usage.ending.words
    assert usage.wall_s < 5


def test_a_trivial_run_is_measured_quickly(tmp_path: Path) -> None:
    usage = _local("true", tmp_path)
    assert usage.ending.words == "exited with code 0"
    assert usage.wall_s < 0.1


def test_a_signal_is_named(tmp_path: Path) -> None:
    usage = _local("kill -9 $$", tmp_path)
    assert usage.ending.kind == "signal" and usage.ending.signal == "SIGKILL"


# --- docker ----------------------------------------------------------------------------


@pytest.fixture
def container_runner(docker_engine: str) -> DockerRunner:
    from repro.engines.docker_engine import DockerEngine

    engine = DockerEngine()
    yield DockerRunner(engine, docker_engine)  # type: ignore[misc]
    engine.close()


def _in_container(
    runner: DockerRunner, command: str, resources: Resources, timeout: float = 60
) -> ResourceUsage:
    work = Path(tempfile.mkdtemp(prefix="repro-test-measure-"))
    (work / "work.py").write_text(WORK)
    if os.getuid() == 0:
        for p in (work, work / "work.py"):
            os.chown(p, 1000, 1000)
    run = Run(name="x", command=command, resources=resources)
    result = runner.run(command, work, {}, timeout, run, InFlight())
    assert result.usage is not None
    return result.usage


@pytest.mark.slow
def test_docker_runs_are_measured_from_the_container_cgroup(
    container_runner: DockerRunner,
) -> None:
    load = os.getloadavg()[0]
    usage = {
        f"what={w}": _in_container(container_runner, f"python3 work.py {w}", Resources(cpus=2))
        for w in ("hold", "burn", "fork", "write")
    }
    check_known(usage, "docker", load)
    assert usage["what=hold"].method == "docker-cgroup"
    assert usage["what=hold"].memory_peak_bytes is not None


def test_a_container_over_its_memory_limit_is_killed_for_memory(
    container_runner: DockerRunner,
) -> None:
    usage = _in_container(container_runner, "python3 work.py hold", Resources(memory="100M"))
    assert usage.ending.kind == "killed_for_memory", usage
    assert usage.ending.words.startswith("killed for memory (the limit 100M)")


# --- slurm -----------------------------------------------------------------------------


@pytest.mark.slow
def test_slurm_tasks_measure_themselves_and_a_memory_request_is_a_limit(
    tmp_path: Path, slurm: None
) -> None:
    limited = (
        '[[runs]]\nname = "tight"\ncommand = "python work.py hold"\n'
        'outputs = ["out/hold.txt"]\n[runs.resources]\nmemory = "150M"\n'
    )
    project = study(tmp_path, limited)
    load = os.getloadavg()[0]
    capsule = tmp_path / "s.tgz"
    result = run_cli("capture", str(project), "-o", str(capsule))
    assert result.returncode == 0, result.stderr
    result = run_cli(
        "replay",
        str(capsule),
        "--target",
        "slurm",
        "--no-sandbox",
        "--workdir",
        str(tmp_path / "shared"),
        "--json",
        timeout=600,
    )
    report = json.loads(result.stdout)
    points = {(p["run"], p["point_id"]): p for p in report["points"]}
    usage = {
        pid: ResourceUsage.model_validate(p["usage"])
        for (run, pid), p in points.items()
        if run == "w"
    }
    check_known(usage, "slurm", load)
    captured = points[("w", "what=hold")]["captured_usage"]
    assert captured is not None and captured["peak_rss_bytes"] > 0.9 * HOLD
    tight_point = next(p for (run, _), p in points.items() if run == "tight")
    tight = ResourceUsage.model_validate(tight_point["usage"])
    assert tight.ending.kind == "killed_for_memory", tight
    assert result.returncode == 3  # the memory-limited run did not reproduce
    assert any("memory limit" in w for w in report["warnings"]), report["warnings"]
