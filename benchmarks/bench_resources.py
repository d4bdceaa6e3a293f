#!/usr/bin/env python3
"""Benchmark what measuring a run costs: the same command unmeasured (Popen + wait) beside
measured as the local target measures it (a cgroup of its own + psutil sampling + wait4),
and measured without a cgroup (rusage + sampling), interleaved, in one invocation.

Workloads: a trivial command (`true`, many times) and a CPU-bound Python loop of fixed work
(~10 s on an idle core). Reported per workload and mode: median wall time, the measuring
process's own CPU time (what the sampling costs the machine), and the ratios to unmeasured.

Usage:  python benchmarks/bench_resources.py [--trivial 30] [--cpu-repeat 2] [--cpu-seconds 10]
Writes benchmarks/results/resources.json. See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from measure import cpu_snapshot, foreign_cpu_pct, git_state, med, r3, table  # noqa: E402

from repro.execution.cgroups import enter_prefix, own_cgroup  # noqa: E402
from repro.execution.measure import supervise  # noqa: E402

Mode = Callable[[list[str]], tuple[float, float, dict[str, object]]]


def _self_cpu() -> float:
    t = os.times()
    return t.user + t.system


def unmeasured(argv: list[str]) -> tuple[float, float, dict[str, object]]:
    c0, t0 = _self_cpu(), time.monotonic()
    proc = subprocess.Popen(argv, start_new_session=True)
    proc.wait()
    return time.monotonic() - t0, _self_cpu() - c0, {}


def measured_cgroup(argv: list[str]) -> tuple[float, float, dict[str, object]]:
    c0, t0 = _self_cpu(), time.monotonic()
    cgroup = own_cgroup()
    full = [*enter_prefix(cgroup), *argv] if cgroup is not None else argv
    proc = subprocess.Popen(full, start_new_session=True)
    done = supervise(proc, 3600, cgroup=cgroup, started=t0)
    if cgroup is not None:
        cgroup.remove()
    wall, cpu = time.monotonic() - t0, _self_cpu() - c0
    u = done.usage
    return wall, cpu, {"method": u.method, "samples": u.samples, "cpu_s": u.cpu_s}


def measured_rusage(argv: list[str]) -> tuple[float, float, dict[str, object]]:
    c0, t0 = _self_cpu(), time.monotonic()
    proc = subprocess.Popen(argv, start_new_session=True)
    done = supervise(proc, 3600, started=t0)
    wall, cpu = time.monotonic() - t0, _self_cpu() - c0
    u = done.usage
    return wall, cpu, {"method": u.method, "samples": u.samples, "cpu_s": u.cpu_s}


MODES: dict[str, Mode] = {
    "unmeasured": unmeasured,
    "cgroup+sampling": measured_cgroup,
    "rusage+sampling": measured_rusage,
}


def calibrate(seconds: float) -> int:
    """Loop iterations that take about `seconds` of one core here."""
    n = 2_000_000
    t0 = time.process_time()
    x = 0
    for i in range(n):
        x += i
    per = (time.process_time() - t0) / n
    return int(seconds / max(per, 1e-9))


def run(workload: str, argv: list[str], repeat: int) -> dict[str, object]:
    rows: dict[str, list[tuple[float, float, dict[str, object]]]] = {m: [] for m in MODES}
    before = cpu_snapshot()
    for _ in range(repeat):
        for name, mode in MODES.items():  # interleaved: the machine's load hits each alike
            rows[name].append(mode(argv))
    foreign = foreign_cpu_pct(before, cpu_snapshot())
    out: dict[str, object] = {"workload": workload, "repeat": repeat, "foreign_cpu_pct": foreign}
    base = med([w for w, _, _ in rows["unmeasured"]])
    for name, results in rows.items():
        wall = med([w for w, _, _ in results])
        cpu = med([c for _, c, _ in results])
        out[name] = {
            "wall_s": [r3(w) for w, _, _ in results],
            "median_wall_s": r3(wall),
            "median_self_cpu_s": r3(cpu),
            "wall_ratio": r3(wall / base) if base else None,
            "overhead_ms": round(1000 * (wall - base), 1),
            "self_cpu_pct_of_wall": round(100 * cpu / wall, 2) if wall else None,
            "last": results[-1][2],
        }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--trivial", type=int, default=30, help="repeats of the trivial run")
    ap.add_argument("--cpu-repeat", type=int, default=2, help="repeats of the CPU-bound run")
    ap.add_argument("--cpu-seconds", type=float, default=10.0)
    ap.add_argument("--json", type=Path, default=HERE / "results" / "resources.json")
    args = ap.parse_args()
    n = calibrate(args.cpu_seconds)
    burn = [
        sys.executable,
        "-c",
        f"def f():\n    x = 0\n    for i in range({n}):\n        x += i\nf()\n",
    ]
    results = [
        run("trivial (/bin/true)", ["/bin/true"], args.trivial),
        run(f"CPU-bound (~{args.cpu_seconds:g} s, fixed work)", burn, args.cpu_repeat),
    ]
    rows = []
    for r in results:
        for name in MODES:
            m = r[name]
            assert isinstance(m, dict)
            rows.append(
                [
                    str(r["workload"]),
                    name,
                    f"{m['median_wall_s']:.3f}",
                    f"{m['wall_ratio']:.3f}",
                    f"{m['overhead_ms']:+.1f}",
                    f"{m['median_self_cpu_s']:.3f}",
                    f"{m['self_cpu_pct_of_wall']:.2f}",
                ]
            )
    print(
        table(
            rows,
            [
                "workload",
                "mode",
                "wall s (median)",
                "ratio",
                "overhead ms",
                "measurer CPU s",
                "measurer CPU % of wall",
            ],
        )
    )
    for r in results:
        print(f"{r['workload']}: other processes used {r['foreign_cpu_pct']:.0f} % of the machine")
    doc = {
        "benchmark": "resources",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "git": git_state(HERE.parent),
        "results": results,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
