"""Start-up of the `repro` command: `--version`, `--help` and `verify` of a small capsule,
on the code before issue 19 (BASELINE, default 38e0f18, unpacked with `git archive`) beside
this checkout, side by side in one run.

hyperfine-like: a few warm-up runs of each, then ROUNDS rounds that run every (variant,
command) once, in an order that alternates per round, so a busy machine weighs on both
alike. Each run is `python -m repro ...` with PYTHONPATH pointing at one tree. Reported per
command and variant: median, min and mean wall time, and median CPU time (user + system of
the child: what the command itself costs, whatever else the machine does), and the ratio
baseline / new of the medians. `python -c pass` is the floor.

    python benchmarks/bench_startup.py [--rounds 20] [--baseline 38e0f18]

Writes benchmarks/results/startup.json and prints a markdown table (benchmarks/README.md).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results" / "startup.json"
TARGETS = {"--version": 0.15, "--help": 0.15, "verify": 0.5}


def unpack(commit: str, dest: Path) -> Path:
    """The tree of `commit`, unpacked (nothing in the repository changes)."""
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", "--format=tar", commit, "repro"],
        check=True,
        capture_output=True,
    ).stdout
    dest.mkdir(parents=True)
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    return dest


def env_for(tree: Path | None, home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REPRO_", "PYTHON", "UV_"))}
    env.update(HOME=str(home), REPRO_CONFIG_DIR=str(home / "config"), COLUMNS="80")
    if tree is not None:
        env["PYTHONPATH"] = str(tree)
    return env


def timed(argv: list[str], env: dict[str, str], cwd: Path) -> tuple[float, float]:
    """(wall seconds, child CPU seconds) of one run; it must succeed."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    done = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, check=False)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"{argv} failed ({done.returncode}): {done.stderr.decode()[-500:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def small_capsule(work: Path, env: dict[str, str]) -> Path:
    project = work / "study"
    project.mkdir()
    (project / "analyse.py").write_text("print(sum(range(10)))\n")
    (project / "data.csv").write_text("x\n1\n2\n")
    out = work / "study.capsule.tgz"
    subprocess.run(
        [sys.executable, "-m", "repro", "capture", str(project), "-o", str(out), "--no-run"],
        env=env,
        check=True,
        capture_output=True,
    )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--baseline", default="38e0f18")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-startup-"))
    try:
        home = work / "home"
        home.mkdir()
        baseline = unpack(args.baseline, work / "baseline")
        new_env = env_for(ROOT, home)
        capsule = small_capsule(work, new_env)
        commands = {
            "--version": ["--version"],
            "--help": ["--help"],
            "verify": ["verify", str(capsule)],
        }
        variants = {"baseline": env_for(baseline, home), "new": new_env}
        py = [sys.executable]
        cases = [("floor", "python -c pass", [*py, "-c", "pass"], new_env)]
        for name, cmd in commands.items():
            for variant, env in variants.items():
                cases.append((variant, name, [*py, "-m", "repro", *cmd], env))
        samples: dict[tuple[str, str], list[tuple[float, float]]] = {
            (v, c): [] for v, c, _, _ in cases
        }
        for _ in range(args.warmup):
            for _v, _c, argv, env in cases:
                timed(argv, env, work)
        for i in range(args.rounds):
            order = cases if i % 2 == 0 else list(reversed(cases))
            for variant, name, argv, env in order:
                samples[(variant, name)].append(timed(argv, env, work))

        def stats(key: tuple[str, str]) -> dict[str, float]:
            walls = [w for w, _ in samples[key]]
            cpus = [c for _, c in samples[key]]
            return {
                "median_s": round(statistics.median(walls), 4),
                "min_s": round(min(walls), 4),
                "mean_s": round(statistics.fmean(walls), 4),
                "cpu_median_s": round(statistics.median(cpus), 4),
            }

        rows = []
        for name in commands:
            old, new = stats(("baseline", name)), stats(("new", name))
            rows.append(
                {
                    "command": f"repro {' '.join(commands[name][:1])}",
                    "baseline": old,
                    "new": new,
                    "ratio_median": round(old["median_s"] / new["median_s"], 2),
                    "ratio_cpu": round(old["cpu_median_s"] / new["cpu_median_s"], 2),
                    "target_s": TARGETS[name],
                }
            )
        load = os.getloadavg()
        result = {
            "baseline_commit": args.baseline,
            "new_commit": subprocess.run(
                ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                capture_output=True,
                text=True,
                check=False,
            ).stdout.strip(),
            "rounds": args.rounds,
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "loadavg_at_end": [round(x, 2) for x in load],
            "floor_python_c_pass": stats(("floor", "python -c pass")),
            "commands": rows,
        }
        RESULTS.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
        print(
            "| command | baseline median (min) | new median (min) | ratio | "
            "CPU baseline | CPU new | CPU ratio | target |"
        )
        print("|---|---|---|---|---|---|---|---|")
        for r in rows:
            b, n = r["baseline"], r["new"]
            print(
                f"| `{r['command']}` | {b['median_s']:.3f} s ({b['min_s']:.3f}) | "
                f"{n['median_s']:.3f} s ({n['min_s']:.3f}) | {r['ratio_median']}x | "
                f"{b['cpu_median_s']:.3f} s | {n['cpu_median_s']:.3f} s | {r['ratio_cpu']}x | "
                f"< {r['target_s']} s |"
            )
        floor = result["floor_python_c_pass"]
        print(
            f"\nfloor `python -c pass`: {floor['median_s']:.3f} s (CPU {floor['cpu_median_s']:.3f}"
            f" s); load average at the end {result['loadavg_at_end']}; wrote {RESULTS}"
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
