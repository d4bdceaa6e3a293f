#!/usr/bin/env python3
"""Benchmark the overhead repro adds around executing a notebook at replay, side by side
with its baseline, all in one invocation.

  0. capture:   `python -m repro capture COPY -o X.tgz --no-sign --json` of a copy of
                sample_papers/notebook-study (without its results/), once: the cold path
                (resolving the lock with ipykernel + nbclient added, building the venv, running
                the script and executing the notebook). Its wall time and its `timings`.
  1. replay:    `python -m repro replay X.tgz --target local --run analysis.ipynb --json`, the
                environment cached (one untimed replay first warms the venv and its bytecode),
                N times. Whole-process wall clock; from the report, notebooks[0].duration_s
                (the notebook run's own wall time inside repro: the driver
                .repro-notebooks/run_notebook.py in the cached venv) and its verdict, which
                must be "identical".
  2. baseline:  alternating with (1), the same notebook executed directly by nbclient's own
                CLI in the same cached venv, in a fresh copy of the captured project:
                `VENV/bin/jupyter-execute analysis.ipynb` (fallback when the script is
                missing: `VENV/bin/python -c "...NotebookClient(nb).execute()"`). VENV is found
                by listing REPRO_CACHE_DIR/venvs for the complete venv with nbclient installed.
                Its environment is the one repro gives a run (LocalRunner.environment: VIRTUAL_ENV,
                the venv first on PATH, PYTHONDONTWRITEBYTECODE dropped), with IPython's,
                Jupyter's and matplotlib's per-user folders in the temp folder, kept across
                repetitions (a user's warm caches; the home folder is not touched).

  overhead        = replay wall - baseline wall (paired per repetition, median), and the ratio
                    of the medians replay / baseline;
  driver overhead = notebooks[0].duration_s - baseline wall: repro's driver vs jupyter-execute,
                    both timed from process start to exit.
  Always measured as context (cheap): interpreter start, `python -m repro --version` and
  `--help` (as is and with bytecode cached, since PYTHONDONTWRITEBYTECODE=1 keeps repro's own
  modules uncompiled on some machines), `python -m repro verify X.tgz`, and importing
  matplotlib in the venv with an empty vs a warm font cache (what the driver's keeping the
  cache in the cached venv saves). When the overhead is above 2 s (or with --profile):
  a breakdown of one replay with -X importtime and cProfile (verify + unpack, the
  environment check, the notebook run, the comparison).

Usage:  python benchmarks/bench_notebooks.py [--quick] [--repeat N] [--profile] [--keep-tmp]

Everything (the copy of the paper, the capsule, REPRO_CACHE_DIR, REPRO_CONFIG_DIR,
UV_CACHE_DIR, PIP_CACHE_DIR, TMPDIR, the baseline's Jupyter/IPython/matplotlib folders) lives
in one temporary folder, deleted at the end (--keep-tmp keeps it): the user's caches are not
touched. Results are printed as a table and written to benchmarks/results/notebooks.json.
There is no target: the figures are reported as measured. See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))  # this checkout's repro (LocalRunner, env_key) in process
RESULTS = HERE / "results"

from measure import (  # noqa: E402  (benchmarks/measure.py, beside this script)
    NCPU,
    BenchError,
    Timed,
    check,
    git_state,
    import_rows,
    med,
    profiled_seconds,
    r3,
    table,
    timed,
    wait_for_quiet,
)

PAPER = "notebook-study"
NOTEBOOK = "analysis.ipynb"
BREAKDOWN_ABOVE_S = 2.0
NBCLIENT_SNIPPET = (
    "import nbformat, nbclient; nb = nbformat.read('analysis.ipynb', 4); "
    "nbclient.NotebookClient(nb, timeout=600, kernel_name='python3').execute()"
)


# --- measuring ------------------------------------------------------------------------------


def median_of(
    cmd: list[str], n: int, what: str, before: Callable[[], object] | None = None, **kw: object
) -> float:
    xs = []
    for _ in range(n):
        if before:
            before()
        t = timed(cmd, **kw)
        check(t, what)
        xs.append(t.seconds)
    return r3(med(xs))


# --- capture, the cached venv ---------------------------------------------------------------


@dataclass
class Captured:
    project: Path
    capsule: Path
    unpacked: Path
    manifest: dict
    wall_s: float
    report: dict

    @property
    def lock_text(self) -> str:
        return (self.unpacked / self.manifest["environment"]["lock"]).read_text(encoding="utf-8")

    @property
    def python_mm(self) -> str:
        return ".".join(self.manifest["environment"]["python_version"].split(".")[:2])


def capture(repro: list[str], tmp: Path) -> Captured:
    project = tmp / "papers" / PAPER
    shutil.copytree(
        REPO / "sample_papers" / PAPER,
        project,
        ignore=shutil.ignore_patterns(
            "__pycache__", "results", ".venv", ".ipynb_checkpoints", ".repro-notebooks"
        ),
    )
    capsule = tmp / f"{PAPER}.capsule.tgz"
    t = timed([*repro, "capture", str(project), "-o", str(capsule), "--no-sign", "--json"], cwd=tmp)
    p = check(t, "repro capture")
    report = json.loads(p.stdout)
    unpacked = tmp / "unpacked"
    unpacked.mkdir()
    subprocess.run(["tar", "xzf", str(capsule), "-C", str(unpacked)], check=True)
    manifest = json.loads((unpacked / "repro.json").read_text(encoding="utf-8"))
    return Captured(project, capsule, unpacked, manifest, t.seconds, report)


def find_venv(cache: Path, c: Captured) -> tuple[Path, dict]:
    """The complete venv under REPRO_CACHE_DIR/venvs with nbclient installed, found by listing
    the folder (not by recomputing repro's key); the key is checked against it afterwards."""
    venvs = cache / "venvs"
    listing = []
    with_nbclient = []
    for d in sorted(p for p in venvs.iterdir() if p.is_dir()) if venvs.is_dir() else []:
        complete = (d / ".repro-complete").is_file()
        nbclient = [str(p.relative_to(d)) for p in d.glob("lib/python*/site-packages/nbclient")]
        listing.append(
            {
                "venv": d.name,
                "complete": complete,
                "nbclient": nbclient,
                "jupyter_execute": (d / "bin" / "jupyter-execute").is_file(),
            }
        )
        if complete and nbclient:
            with_nbclient.append(d)
    if len(with_nbclient) != 1:
        raise BenchError(
            f"expected one complete venv with nbclient under {venvs}, found "
            f"{[d.name for d in with_nbclient]} (listing: {listing})"
        )
    venv = with_nbclient[0]
    from repro.env.virtualenv import env_key

    expected = env_key(c.lock_text, c.python_mm)
    return venv, {
        "listing": listing,
        "found": venv.name,
        "repro_env_key": expected,
        "matches_repro_env_key": venv.name == expected,
    }


def fresh_project(c: Captured, dest: Path) -> Path:
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(c.unpacked / "data" / "project", dest, symlinks=True)
    return dest


def baseline_env(venv: Path, home: Path) -> dict[str, str]:
    """What repro gives a run (LocalRunner.environment) plus per-user folders in the temp."""
    from repro.execution.runs import LocalRunner

    env = dict(LocalRunner(venv / "bin", venv).environment({}))
    for name, sub in (
        ("IPYTHONDIR", "ipython"),
        ("MPLCONFIGDIR", "matplotlib"),
        ("JUPYTER_RUNTIME_DIR", "jupyter-runtime"),
        ("JUPYTER_DATA_DIR", "jupyter-data"),
        ("JUPYTER_CONFIG_DIR", "jupyter-config"),
    ):
        (home / sub).mkdir(parents=True, exist_ok=True)
        env[name] = str(home / sub)
    return env


def kernel_resolved(venv: Path, env: dict[str, str], cwd: Path) -> dict:
    """Which kernelspec the baseline's `python3` is, and the interpreter it starts."""
    code = (
        "import json, sys; from jupyter_client.kernelspec import KernelSpecManager as K; "
        "from jupyter_client.manager import KernelManager as M; "
        "s = K().get_kernel_spec('python3'); m = M(kernel_name='python3'); "
        "print(json.dumps({'resource_dir': s.resource_dir, 'argv': s.argv, "
        "'command': m.format_kernel_cmd()[:3]}))"
    )
    r = subprocess.run(
        [str(venv / "bin" / "python"), "-c", code],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        check=False,
    )
    if r.returncode != 0:
        return {"error": (r.stderr or r.stdout).strip().splitlines()[-1:]}
    info = json.loads(r.stdout)
    info["uses_venv_python"] = bool(info["command"]) and info["command"][0].startswith(str(venv))
    return info


# --- replay vs baseline ---------------------------------------------------------------------


def replay_cmd(repro: list[str], c: Captured) -> list[str]:
    return [*repro, "replay", str(c.capsule), "--target", "local", "--run", NOTEBOOK, "--json"]


def parse_replay(t: Timed, what: str) -> dict:
    p = check(t, what)
    r = json.loads(p.stdout)
    if len(r.get("notebooks") or []) != 1:
        raise BenchError(f"{what}: expected one notebook in the report, got {r.get('notebooks')}")
    nb = r["notebooks"][0]
    if nb["verdict"] != "identical":
        raise BenchError(f"{what}: notebook verdict {nb['verdict']!r}: {nb.get('detail')}")
    return {
        "replay_wall_s": r3(t.seconds),
        "replay_other_cpu_pct": round(t.other_cpu_pct, 1),
        "notebook_duration_s": nb["duration_s"],
        "report_duration_s": r["duration_s"],
        "verdict": nb["verdict"],
        "reproduced": r["reproduced"],
        "points": len(r["points"]),
        "reused_env": "reusing the cached environment" in p.stderr,
    }


def bench(
    repro: list[str],
    c: Captured,
    venv: Path,
    baseline: list[str],
    env: dict[str, str],
    repeat: int,
    tmp: Path,
    idle_wait: float,
) -> dict:
    cmd = replay_cmd(repro, c)
    warm_t = timed(cmd, cwd=tmp)
    warm = parse_replay(warm_t, "warm-up replay")
    # One untimed baseline too: jupyter-execute imports modules the driver does not (its
    # traitlets application), whose bytecode the first run writes; matplotlib's font cache.
    work = fresh_project(c, tmp / "direct" / "warm-up")
    base_warm = timed(baseline, cwd=work, env=env)
    check(base_warm, "warm-up baseline")
    shutil.rmtree(work)
    reps = []
    for i in range(repeat):
        rep: dict = {}

        def replay_once(rep: dict = rep, i: int = i) -> None:
            wait_for_quiet(idle_wait)
            rep.update(parse_replay(timed(cmd, cwd=tmp), f"replay {i + 1}"))

        def baseline_once(rep: dict = rep, i: int = i) -> None:
            work = fresh_project(c, tmp / "direct" / str(i))
            wait_for_quiet(idle_wait)
            t = timed(baseline, cwd=work, env=env)
            check(t, f"baseline {i + 1}")
            rep.update(baseline_s=r3(t.seconds), baseline_other_cpu_pct=round(t.other_cpu_pct, 1))
            shutil.rmtree(work)

        # Alternate the order so slow drift on a shared machine hits both sides alike.
        for step in (replay_once, baseline_once) if i % 2 == 0 else (baseline_once, replay_once):
            step()
        rep["overhead_s"] = r3(rep["replay_wall_s"] - rep["baseline_s"])
        rep["driver_overhead_s"] = r3(rep["notebook_duration_s"] - rep["baseline_s"])
        rep["outside_replay_fn_s"] = r3(rep["replay_wall_s"] - rep["report_duration_s"])
        rep["replay_fn_minus_notebook_s"] = r3(
            rep["report_duration_s"] - rep["notebook_duration_s"]
        )
        reps.append(rep)

    def m(key: str) -> float:
        return r3(med([r[key] for r in reps]))

    keys = (
        "replay_wall_s",
        "baseline_s",
        "notebook_duration_s",
        "report_duration_s",
        "overhead_s",
        "driver_overhead_s",
        "outside_replay_fn_s",
        "replay_fn_minus_notebook_s",
    )
    return {
        "replay_command": " ".join(["python -m repro", *cmd[3:]]),
        "baseline_command": " ".join(["VENV/bin/" + Path(baseline[0]).name, *baseline[1:]]),
        "warmup": {
            "replay_wall_s": warm["replay_wall_s"],
            "reused_env": warm["reused_env"],
            "notebook_duration_s": warm["notebook_duration_s"],
            "baseline_s": r3(base_warm.seconds),
        },
        "repetitions": reps,
        "median": {k: m(k) for k in keys},
        "ratio_replay_over_baseline": r3(m("replay_wall_s") / m("baseline_s")),
        "ratio_notebook_run_over_baseline": r3(m("notebook_duration_s") / m("baseline_s")),
        "all_identical": all(r["verdict"] == "identical" for r in reps),
        "all_reproduced": all(r["reproduced"] for r in reps),
        "all_reused_env": all(r["reused_env"] for r in reps),
    }


# --- context and breakdown ------------------------------------------------------------------


def startup(repro: list[str], c: Captured, venv: Path, tmp: Path, n: int) -> dict:
    py = sys.executable
    out: dict = {
        "python_startup_s": median_of([py, "-c", "pass"], n, "python -c pass", cwd=tmp),
        "repro_version_s": median_of([*repro, "--version"], n, "repro --version", cwd=tmp),
        "repro_help_s": median_of([*repro, "--help"], n, "repro --help", cwd=tmp),
    }
    # With bytecode cached (a private PYTHONPYCACHEPREFIX, primed once): what compiling
    # repro's own modules from source costs each invocation when PYTHONDONTWRITEBYTECODE=1.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(tmp / "pycache-prefix")
    check(timed([*repro, "--help"], cwd=tmp, env=env), "priming the bytecode prefix")
    out["repro_help_bytecode_cached_s"] = median_of(
        [*repro, "--help"], n, "repro --help", cwd=tmp, env=env
    )
    out["repro_verify_s"] = median_of(
        [*repro, "verify", str(c.capsule), "--json"], n, "repro verify", cwd=tmp
    )
    # The driver gives every notebook an empty MPLCONFIGDIR: matplotlib's font cache is
    # rebuilt each time. Importing pyplot in the venv with an empty vs a warm folder.
    vpy = str(venv / "bin" / "python")
    mpl = tmp / "mpl"
    counter = iter(range(10_000))
    cold_env: dict[str, str] = {}

    def fresh_mpl() -> None:
        d = mpl / f"cold-{next(counter)}"
        d.mkdir(parents=True)
        cold_env.clear()
        cold_env.update(os.environ, MPLCONFIGDIR=str(d))

    imp = [vpy, "-c", "import matplotlib.pyplot"]
    out["import_pyplot_empty_mplconfigdir_s"] = median_of(
        imp, n, "import matplotlib", before=fresh_mpl, env=cold_env
    )
    warm_dir = mpl / "warm"
    warm_dir.mkdir(parents=True)
    warm_env = {**os.environ, "MPLCONFIGDIR": str(warm_dir)}
    check(timed(imp, env=warm_env), "import matplotlib (priming)")
    out["import_pyplot_warm_mplconfigdir_s"] = median_of(imp, n, "import matplotlib", env=warm_env)
    out["font_cache_rebuild_s"] = r3(
        out["import_pyplot_empty_mplconfigdir_s"] - out["import_pyplot_warm_mplconfigdir_s"]
    )
    out["compiling_repro_per_invocation_s"] = r3(
        out["repro_help_s"] - out["repro_help_bytecode_cached_s"]
    )
    return out


PROFILE_FUNCS = {  # label -> (file suffix, function name)
    "imports (all, incl. lazy)": ("<frozen importlib._bootstrap>", "_find_and_load"),
    "compiling source (no .pyc)": ("~", "<built-in method builtins.compile>"),
    "cli command replay()": ("repro/replay/pipeline.py", "replay"),
    "  verify + unpack": ("repro/verify.py", "open_capsule"),
    "  install the driver": ("repro/replay/open.py", "_notebook_runs"),
    "  prepare target": ("repro/replay/prepare.py", "prepare"),
    "    build_venv (reuse)": ("repro/env/venv.py", "build_venv"),
    "    uv pip freeze": ("repro/replay/environment.py", "installed_packages"),
    "    python version probe": ("repro/replay/targets/local.py", "python_version"),
    "  execute (the notebook run)": ("repro/execution/runs.py", "execute_runs"),
    "  compare the notebook": ("repro/replay/judge.py", "_notebook_verdicts"),
    "  platform fingerprint": ("repro/capture/platform.py", "fingerprint"),
    "  environment differences": ("repro/replay/environment.py", "differences"),
}


def breakdown(c: Captured, tmp: Path) -> dict:
    py = sys.executable
    args = ["replay", str(c.capsule), "--target", "local", "--run", NOTEBOOK, "--json"]
    out: dict = {}
    t = timed([py, "-X", "importtime", "-m", "repro", *args], cwd=tmp)
    check(t, "importtime replay")
    rows = import_rows(t.proc.stderr)
    out["importtime"] = {
        "wall_s": r3(t.seconds),
        "total_import_s": r3(sum(r[1] for r in rows if r[2] == 0) / 1e6),
        "heaviest (depth<=1, cumulative>=20ms)": [
            {"module": name, "cumulative_ms": round(cum / 1000, 1)}
            for _s, cum, depth, name in rows
            if depth <= 1 and cum >= 20_000
        ],
    }
    prof = tmp / "replay.prof"
    t = timed([py, "-m", "cProfile", "-o", str(prof), "-m", "repro", *args], cwd=tmp)
    p = check(t, "cProfile replay")
    report = json.loads(p.stdout[p.stdout.index("{") : p.stdout.rindex("}") + 1])
    found, total_profiled = profiled_seconds(prof, PROFILE_FUNCS)
    nb_own = report["notebooks"][0]["duration_s"]
    seconds = {k: r3(v) for k, v in found.items()}
    if "  execute (the notebook run)" in found:
        seconds["  execute minus the notebook run's own time"] = r3(
            found["  execute (the notebook run)"] - nb_own
        )
    out["cprofile"] = {
        "wall_s (profiler slows Python code)": r3(t.seconds),
        "profiled_total_s": r3(total_profiled),
        "notebook_run_own_time_s (report)": nb_own,
        "seconds": seconds,
    }
    return out


# --- report ---------------------------------------------------------------------------------


def machine_info(repro: list[str], tmp: Path) -> dict:
    cpu = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / (1 << 30)
    r = subprocess.run(
        [*repro[:1], "-c", "import repro; print(repro.__file__, repro.__version__)"],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp,
    )
    imported = r.stdout.split()
    return {
        "cpu": cpu,
        "cpus": NCPU,
        "mem_gib": round(mem, 1),
        "os": platform.platform(),
        "python": platform.python_version(),
        "python_executable": sys.executable,
        "repro_imported_from": imported[0] if imported else None,
        "repro": imported[1] if len(imported) > 1 else None,
        "PYTHONDONTWRITEBYTECODE": os.environ.get("PYTHONDONTWRITEBYTECODE"),
        "loadavg": list(os.getloadavg()),
        "timed_command": repro,
    }


def print_report(res: dict) -> None:
    cap, b, st = res["capture"], res["replay_vs_baseline"], res["startup"]
    mm = b["median"]
    rows = [
        ["capture (cold: lock + venv + runs + notebook)", f"{cap['wall_s']:.2f} s", "", "", ""],
        [
            "replay --run analysis.ipynb (whole process)",
            f"{mm['replay_wall_s']:.2f} s",
            f"{mm['baseline_s']:.2f} s",
            f"{mm['overhead_s']:+.2f} s",
            f"x{b['ratio_replay_over_baseline']:.2f}",
        ],
        [
            "  notebook run inside repro (driver)",
            f"{mm['notebook_duration_s']:.2f} s",
            f"{mm['baseline_s']:.2f} s",
            f"{mm['driver_overhead_s']:+.2f} s",
            f"x{b['ratio_notebook_run_over_baseline']:.2f}",
        ],
    ]
    print()
    print(table(rows, ["measure (medians)", "repro", "jupyter-execute", "overhead", "ratio"]))
    print(
        "  capture timings: "
        + ", ".join(f"{k} {v:.2f} s" for k, v in cap["timings"].items())
        + (
            f"; notebook executed in {cap['notebook_duration_s']:.2f} s"
            if cap.get("notebook_duration_s") is not None
            else ""
        )
    )
    reps = b["repetitions"]
    print(
        f"  replays {[r['replay_wall_s'] for r in reps]} s (notebook run "
        f"{[r['notebook_duration_s'] for r in reps]} s), baseline "
        f"{[r['baseline_s'] for r in reps]} s; other CPU "
        f"{[r['replay_other_cpu_pct'] for r in reps]} / "
        f"{[r['baseline_other_cpu_pct'] for r in reps]} %"
    )
    print(f"  verdicts identical: {b['all_identical']}; environment reused: {b['all_reused_env']}")
    print(f"\nwhere the replay's {mm['replay_wall_s']:.2f} s go (medians):")
    print(f"    {'process start, imports, CLI, JSON out':<44} {mm['outside_replay_fn_s']:6.2f} s")
    print(
        f"    {'replay(): verify, unpack, env check, compare':<44} "
        f"{mm['replay_fn_minus_notebook_s']:6.2f} s"
    )
    print(
        f"    {'the notebook run (driver + kernel + cells)':<44} "
        f"{mm['notebook_duration_s']:6.2f} s   (jupyter-execute: {mm['baseline_s']:.2f} s)"
    )
    print(
        f"  context: python start {st['python_startup_s']:.2f} s; `repro --version` "
        f"{st['repro_version_s']:.2f} s; `repro --help` {st['repro_help_s']:.2f} s "
        f"({st['repro_help_bytecode_cached_s']:.2f} s with bytecode cached); `repro verify` "
        f"{st['repro_verify_s']:.2f} s; import pyplot in the venv "
        f"{st['import_pyplot_empty_mplconfigdir_s']:.2f} s with an empty MPLCONFIGDIR vs "
        f"{st['import_pyplot_warm_mplconfigdir_s']:.2f} s warm"
    )
    bd = res.get("breakdown")
    if bd:
        print(
            f"\nbreakdown of one replay: imports {bd['importtime']['total_import_s']} s "
            f"(-X importtime); cProfile:"
        )
        for k, v in bd["cprofile"]["seconds"].items():
            print(f"    {k:<44} {v:7.3f} s")
        print(
            "    heaviest imports: "
            + ", ".join(
                f"{d['module']} {d['cumulative_ms']:.0f} ms"
                for d in bd["importtime"]["heaviest (depth<=1, cumulative>=20ms)"]
            )[:600]
        )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer repetitions (about 1 minute)")
    ap.add_argument("--repeat", type=int, help="timed replays and baselines (default 5; quick 2)")
    ap.add_argument(
        "--profile",
        action="store_true",
        help=f"break the overhead down even if it is under {BREAKDOWN_ABOVE_S:g} s",
    )
    ap.add_argument(
        "--idle-wait",
        type=float,
        default=1.0,
        help="max seconds to wait for a quiet machine before each timed step",
    )
    ap.add_argument("--keep-tmp", action="store_true")
    ap.add_argument("--json", type=Path, default=RESULTS / "notebooks.json")
    args = ap.parse_args()
    repeat = args.repeat or (2 if args.quick else 5)
    n_ctx = 3 if args.quick else 5

    t_start = time.perf_counter()
    repro = [sys.executable, "-m", "repro"]
    tmp = Path(tempfile.mkdtemp(prefix="repro-bench-notebooks-"))
    isolated = {
        "REPRO_CACHE_DIR": tmp / "repro-cache",
        "REPRO_CONFIG_DIR": tmp / "repro-config",
        "UV_CACHE_DIR": tmp / "uv-cache",
        "PIP_CACHE_DIR": tmp / "pip-cache",
        # repro's replay folders and the driver's private Jupyter homes land here too
        # (the driver of repro <= 0ef129e left its home behind after every run).
        "TMPDIR": tmp / "tmp",
    }
    isolated["TMPDIR"].mkdir()
    for k, v in isolated.items():
        os.environ[k] = str(v)
    machine = machine_info(repro, tmp)
    if not str(machine["repro_imported_from"] or "").startswith(str(REPO)):
        print(
            f"warning: `python -m repro` imports {machine['repro_imported_from']}, not this "
            f"checkout ({REPO})",
            file=sys.stderr,
        )
    git_at_start = git_state(REPO)
    print(
        f"bench_notebooks: tmp {tmp}; {machine['cpus']} CPUs, load {machine['loadavg']}", flush=True
    )
    res: dict = {}
    try:
        c = capture(repro, tmp)
        nbr = (c.manifest.get("notebook_results") or [{}])[0]
        res["capture"] = {
            "command": "python -m repro capture COPY -o X.tgz --no-sign --json",
            "wall_s": r3(c.wall_s),
            "timings": {k: r3(v) for k, v in (c.report.get("timings") or {}).items()},
            "notes": c.report.get("notes"),
            "lock_packages": len(c.manifest["environment"]["packages"]),
            "notebook_duration_s": nbr.get("duration_s"),
            "runs_duration_s": {r["run"]: r["duration_s"] for r in c.manifest["results"]},
        }
        print(
            f"captured in {c.wall_s:.1f} s ({res['capture']['lock_packages']} packages; "
            f"notes: {'; '.join(c.report.get('notes') or [])})",
            flush=True,
        )

        # The warm-up replay (inside bench) builds nothing: capture's venv is reused. Find it.
        venv, venv_info = find_venv(isolated["REPRO_CACHE_DIR"], c)
        res["venv"] = venv_info
        script = venv / "bin" / "jupyter-execute"
        baseline = (
            [str(script), NOTEBOOK]
            if script.is_file()
            else [str(venv / "bin" / "python"), "-c", NBCLIENT_SNIPPET]
        )
        env = baseline_env(venv, tmp / "baseline-home")
        probe = fresh_project(c, tmp / "direct" / "probe")
        res["venv"]["baseline_kernel"] = kernel_resolved(venv, env, probe)
        shutil.rmtree(probe)
        print(
            f"venv {venv.name} (nbclient); baseline {Path(baseline[0]).name}; kernel "
            f"{res['venv']['baseline_kernel'].get('command', '?')}",
            flush=True,
        )

        res["replay_vs_baseline"] = bench(
            repro, c, venv, baseline, env, repeat, tmp, args.idle_wait
        )
        m = res["replay_vs_baseline"]["median"]
        print(
            f"replay {m['replay_wall_s']:.2f} s vs jupyter-execute {m['baseline_s']:.2f} s "
            f"(notebook run inside repro {m['notebook_duration_s']:.2f} s)",
            flush=True,
        )
        print("context: startup, verify, matplotlib font cache...", flush=True)
        res["startup"] = startup(repro, c, venv, tmp, n_ctx)
        if m["overhead_s"] > BREAKDOWN_ABOVE_S or args.profile:
            print(
                f"overhead {m['overhead_s']:.2f} s"
                + (f" > {BREAKDOWN_ABOVE_S:g} s" if m["overhead_s"] > BREAKDOWN_ABOVE_S else "")
                + ": breaking it down",
                flush=True,
            )
            res["breakdown"] = breakdown(c, tmp)
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        if args.keep_tmp:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)

    machine["loadavg_at_end"] = list(os.getloadavg())
    out = {
        "generated": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": " ".join(["python", "benchmarks/bench_notebooks.py", *sys.argv[1:]]),
        "machine": machine,
        "repro_git": git_state(REPO),
        "repro_git_at_start": git_at_start,
        "paper": PAPER,
        "notebook": NOTEBOOK,
        "method": {
            "replay": "N warm `python -m repro replay X.tgz --target local --run analysis.ipynb "
            "--json` (whole-process wall clock; one untimed first), each checked identical",
            "baseline": "`VENV/bin/jupyter-execute analysis.ipynb` in a fresh copy of the "
            "captured project, VENV the cached venv with nbclient (found by listing "
            "REPRO_CACHE_DIR/venvs), the environment repro gives runs plus IPython/Jupyter/"
            "matplotlib folders in the temp folder kept across runs; one untimed first",
            "pairing": "replay and baseline alternate (order flipped every repetition); "
            "overhead and driver overhead are paired differences, medians",
            "other_cpu_pct": "share of the machine's CPUs used by processes outside this "
            "benchmark's process tree during a measurement: the machine may be shared",
            "isolation": dict.fromkeys(isolated, "temp"),
        },
        "repetitions": {"timed": repeat, "context": n_ctx, "quick": args.quick},
        **res,
        "elapsed_s": r3(time.perf_counter() - t_start),
    }
    if out["repro_git"] != git_at_start:
        print(
            "warning: repro's code changed while the benchmark ran (see repro_git*)",
            file=sys.stderr,
        )
    print_report(out)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    tmp_json = args.json.with_suffix(".json.tmp")
    tmp_json.write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    tmp_json.replace(args.json)
    print(f"\nwrote {args.json} ({out['elapsed_s']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
