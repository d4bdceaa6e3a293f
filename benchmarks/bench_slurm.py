"""Slurm replay overhead, side by side with running the same tasks directly.

    python benchmarks/bench_slurm.py [--points 100] [--big 500]

1. A sweep of N trivial points (default 100): the same commands run directly (sequentially
   and 2 at a time, like the 2-CPU node) vs `repro replay --target slurm` (one sbatch array,
   polled, gathered, compared). Reports the time from submit to all results compared and
   the overhead ratio.
2. A sweep of 500 points: counts sbatch invocations through a PATH shim (must be 1).
Writes benchmarks/results/slurm.json. Needs a Slurm cluster (scripts/ci/setup-slurm.sh).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent


def study(root: Path, points: int) -> Path:
    project = root / f"sweep{points}"
    project.mkdir()
    (project / "repro.toml").write_text(
        '[[runs]]\nname = "tiny"\ncommand = "mkdir -p out && echo {i} > out/{i}.txt"\n'
        f'outputs = ["out/{{i}}.txt"]\n[runs.sweep]\ni = {list(range(points))}\n'
    )
    return project


def repro(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "repro", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        check=False,
    )


def direct(points: int, workdir: Path, parallel: int) -> float:
    workdir.mkdir()
    commands = [f"mkdir -p out && echo {i} > out/{i}.txt" for i in range(points)]
    start = time.perf_counter()
    with ThreadPoolExecutor(parallel) as pool:
        list(
            pool.map(
                lambda c: subprocess.run(["/bin/sh", "-c", c], cwd=workdir, check=True), commands
            )
        )
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--points", type=int, default=100)
    parser.add_argument("--big", type=int, default=500)
    args = parser.parse_args()
    if shutil.which("sbatch") is None:
        sys.exit("no Slurm here: run scripts/ci/setup-slurm.sh first")
    root = Path(tempfile.mkdtemp(prefix="repro-bench-slurm-"))
    env = {"REPRO_CACHE_DIR": str(root / "cache")}
    results: dict[str, object] = {"machine": {"cpus": os.cpu_count()}}
    try:
        capsule = root / "s.tgz"
        captured = repro(
            "capture",
            str(study(root, args.points)),
            "-o",
            str(capsule),
            "--no-run",
            "--no-sign",
            env=env,
        )
        assert captured.returncode == 0, captured.stderr
        # Capture without running: every point is "not verified"; what we time is submission,
        # scheduling, polling and gathering. Warm the venv first so it is not counted.
        repro(
            "replay", str(capsule), "--target", "local", "--run", "tiny", "--point", "i=0", env=env
        )
        seq = direct(args.points, root / "direct-seq", 1)
        par = direct(args.points, root / "direct-par", 2)
        start = time.perf_counter()
        replay = repro("replay", str(capsule), "--target", "slurm", "--json", env=env)
        wall = time.perf_counter() - start
        assert replay.returncode == 0, replay.stderr
        report = json.loads(replay.stdout)
        assert len(report["points"]) == args.points
        results["array"] = {
            "points": args.points,
            "direct_sequential_s": round(seq, 3),
            "direct_2_parallel_s": round(par, 3),
            "slurm_replay_wall_s": round(wall, 3),
            "overhead_vs_direct_2_parallel_s": round(wall - par, 3),
            "per_task_overhead_ms": round((wall - par) / args.points * 1000, 1),
        }

        shim = root / "shim"
        shim.mkdir()
        log = root / "sbatch-calls.log"
        real = shutil.which("sbatch")
        (shim / "sbatch").write_text(f'#!/bin/sh\necho "$@" >> {log}\nexec {real} "$@"\n')
        (shim / "sbatch").chmod(0o755)
        big = root / "big.tgz"
        captured = repro(
            "capture", str(study(root, args.big)), "-o", str(big), "--no-run", "--no-sign", env=env
        )
        assert captured.returncode == 0, captured.stderr
        start = time.perf_counter()
        replay = repro(
            "replay",
            str(big),
            "--target",
            "slurm",
            "--json",
            env={**env, "PATH": f"{shim}:{os.environ['PATH']}"},
        )
        big_wall = time.perf_counter() - start
        assert replay.returncode == 0, replay.stderr
        calls = log.read_text().splitlines()
        results["big_sweep"] = {
            "points": args.big,
            "sbatch_calls": len(calls),
            "array_arg": re.findall(r"--array=\S+", calls[0])[0] if calls else None,
            "replay_wall_s": round(big_wall, 3),
            "pass": len(calls) == 1,
        }
    finally:
        shutil.rmtree(root, ignore_errors=True)
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "slurm.json").write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
