"""A sweep of N trivial points (default 1,000): repro's overhead per point against running
the same commands directly with `xargs -P 2`.

    python benchmarks/bench_sweep.py [--points 1000] [--rounds 2] [--jobs 2]

1. A study whose one run is `echo {i} > out/{i}.txt` over N values of i, one output each.
   It is captured once with `repro capture -j 2` (which runs every point, sandboxed as a
   replay is: timed, as the capture row), and replayed once on one point to build the cached
   environment (not counted).
2. Then, interleaved, `--rounds` times: `xargs -P 2` over the N rendered commands
   (`/bin/sh -c CMD` each, in a fresh folder), `repro replay --target local -j 2` (the
   bubblewrap sandbox, the default for an unsigned capsule) and the same with
   `--no-sandbox` (a reference). Each is timed (wall) with its CPU seconds (its own and its
   children's, from getrusage) and the share of the machine other processes used meanwhile.
3. Overhead per point = (repro wall - xargs wall of the same round) / N, in ms; the median
   over rounds is reported, with CPU seconds, which are steadier on a shared machine.
   With `--before SRC` (a source tree of an older repro, e.g. `git archive 483daaf | tar -x
   -C SRC`), that repro's sandboxed replay of the same capsule is run in each round too.
4. The report at N points: the HTML report's size and the time to write it (replay with
   --report vs without), and the terminal output's lines and bytes.
Writes benchmarks/results/sweep.json.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from measure import cpu_snapshot, foreign_cpu_pct, git_state, med, table

HERE = Path(__file__).resolve().parent
COMMAND = "echo {i} > out/{i}.txt"


def study(root: Path, points: int) -> Path:
    project = root / "sweep"
    (project / "out").mkdir(parents=True)
    (project / "out" / ".keep").write_text("")
    (project / "repro.toml").write_text(
        f'[[runs]]\nname = "tiny"\ncommand = "{COMMAND}"\noutputs = ["out/{{i}}.txt"]\n'
        f"[runs.sweep]\ni = {list(range(points))}\n"
    )
    return project


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def timed(argv: list[str], env: dict[str, str], cwd: Path | None = None) -> dict[str, object]:
    """Wall and CPU seconds of one command (its process tree, waited for)."""
    before, cpu0 = cpu_snapshot(), _children_cpu()
    t0 = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=cwd, check=False)
    wall = time.perf_counter() - t0
    cpu = _children_cpu() - cpu0
    if proc.returncode != 0:
        tail = " | ".join((proc.stderr or proc.stdout).strip().splitlines()[-4:])
        raise SystemExit(f"{argv[:4]} exited {proc.returncode}: {tail}")
    return {
        "wall_s": round(wall, 3),
        "cpu_s": round(cpu, 3),
        "other_cpu_pct": round(foreign_cpu_pct(before, cpu_snapshot()), 1),
        "stdout": proc.stdout,
        "stderr": proc.stderr,
    }


def xargs(points: int, root: Path, jobs: int, env: dict[str, str]) -> dict[str, object]:
    work = root / "xargs"
    shutil.rmtree(work, ignore_errors=True)
    (work / "out").mkdir(parents=True)
    commands = root / "commands.txt"
    commands.write_text("".join(COMMAND.replace("{i}", str(i)) + "\n" for i in range(points)))
    argv = ["xargs", "-a", str(commands), "-d", "\n", "-n", "1", "-P", str(jobs), "/bin/sh", "-c"]
    result = timed(argv, env, cwd=work)
    produced = len(list((work / "out").iterdir()))
    assert produced == points, f"xargs produced {produced} of {points}"
    return result


def repro(*args: str, env: dict[str, str]) -> dict[str, object]:
    return timed([sys.executable, "-m", "repro", *args], env)


def strip(result: dict[str, object]) -> dict[str, object]:
    return {k: v for k, v in result.items() if k not in ("stdout", "stderr")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--points", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.add_argument("--before", type=Path, help="an older repro's source tree, run too")
    args = parser.parse_args()
    n, jobs = args.points, str(args.jobs)
    root = Path(tempfile.mkdtemp(prefix="bench-sweep-"))
    env = {**os.environ, "REPRO_CACHE_DIR": str(root / "cache"), "REPRO_PROGRESS": "0"}
    results: dict[str, object] = {
        "machine": {"cpus": os.cpu_count(), "load_avg_at_start": os.getloadavg()[0]},
        "points": n,
        "jobs": args.jobs,
        "command": COMMAND,
        "git": git_state(HERE.parent),
    }
    try:
        capsule = root / "sweep.capsule.tgz"
        project = study(root, n)
        first_xargs = xargs(n, root, args.jobs, env)
        capture = repro(
            "capture", str(project), "-o", str(capsule), "--no-sign", "-j", jobs, env=env
        )
        repro("replay", str(capsule), "--target", "local", "--point", "i=0", env=env)  # warm
        rounds = []
        for _ in range(args.rounds):
            x = xargs(n, root, args.jobs, env)
            sandboxed = repro("replay", str(capsule), "--target", "local", "-j", jobs, env=env)
            unsandboxed = repro(
                "replay", str(capsule), "--target", "local", "-j", jobs, "--no-sandbox", env=env
            )
            if args.before is not None:
                old_env = {**env, "PYTHONPATH": str(args.before.resolve())}
                before = repro("replay", str(capsule), "--target", "local", "-j", jobs, env=old_env)
                assert f"{n} identical" in str(before["stdout"]), before["stdout"]
            assert f"{n} identical" in str(sandboxed["stdout"]), sandboxed["stdout"]
            assert "isolation: bubblewrap" in str(sandboxed["stdout"]), "not sandboxed"
            assert f"{n} identical" in str(unsandboxed["stdout"]), unsandboxed["stdout"]
            rounds.append(
                {
                    "xargs": strip(x),
                    "replay_sandboxed": strip(sandboxed),
                    "replay_no_sandbox": strip(unsandboxed),
                    **({"before_replay_sandboxed": strip(before)} if args.before else {}),
                }
            )
        html = root / "report.html"
        with_report = repro(
            "replay", str(capsule), "--target", "local", "-j", jobs, "--report", str(html), env=env
        )
        terminal = str(with_report["stdout"]) + str(with_report["stderr"])
        html_bytes = html.stat().st_size
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)

    def per_point(key: str, field: str = "wall_s") -> float:
        return med(
            [
                (float(r[key][field]) - float(r["xargs"][field])) / n * 1000  # type: ignore[index]
                for r in rounds
            ]
        )

    capture_overhead = (float(capture["wall_s"]) - float(first_xargs["wall_s"])) / n * 1000  # type: ignore[arg-type]
    results["rounds"] = rounds
    results["capture"] = {**strip(capture), "xargs": strip(first_xargs)}
    results["summary"] = {
        "xargs_wall_s": med([float(r["xargs"]["wall_s"]) for r in rounds]),  # type: ignore[index]
        "replay_sandboxed_overhead_ms_per_point": round(per_point("replay_sandboxed"), 2),
        "replay_sandboxed_cpu_ms_per_point": round(per_point("replay_sandboxed", "cpu_s"), 2),
        "replay_no_sandbox_overhead_ms_per_point": round(per_point("replay_no_sandbox"), 2),
        "replay_no_sandbox_cpu_ms_per_point": round(per_point("replay_no_sandbox", "cpu_s"), 2),
        "capture_overhead_ms_per_point": round(capture_overhead, 2),
        **(
            {
                "before_replay_sandboxed_overhead_ms_per_point": round(
                    per_point("before_replay_sandboxed"), 2
                ),
                "before_replay_sandboxed_cpu_ms_per_point": round(
                    per_point("before_replay_sandboxed", "cpu_s"), 2
                ),
            }
            if args.before
            else {}
        ),
        "target_ms_per_point": 10,
        "pass": per_point("replay_sandboxed") < 10,
    }
    results["report"] = {
        "html_bytes": html_bytes,
        "replay_with_report_wall_s": with_report["wall_s"],
        "terminal_lines": len(terminal.splitlines()),
        "terminal_bytes": len(terminal.encode()),
    }
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "sweep.json").write_text(json.dumps(results, indent=2) + "\n")
    rows = [
        [
            what,
            f"{med([float(r[key]['wall_s']) for r in rounds]):.2f}",  # type: ignore[index]
            f"{med([float(r[key]['cpu_s']) for r in rounds]):.2f}",  # type: ignore[index]
            "-" if key == "xargs" else f"{per_point(key):.1f}",
            "-" if key == "xargs" else f"{per_point(key, 'cpu_s'):.1f}",
        ]
        for what, key in (
            (f"xargs -P {jobs}", "xargs"),
            ("replay, bubblewrap", "replay_sandboxed"),
            ("replay, --no-sandbox", "replay_no_sandbox"),
            *((("before: replay, bubblewrap", "before_replay_sandboxed"),) if args.before else ()),
        )
    ]
    print(table(rows, ["", "wall s", "CPU s", "overhead ms/pt", "CPU ms/pt"]))
    print(f"capture -j {jobs}: {capture['wall_s']} s, {capture_overhead:.1f} ms/point over xargs")
    print(json.dumps(results["report"]))


if __name__ == "__main__":
    main()
