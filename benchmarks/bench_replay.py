#!/usr/bin/env python3
"""Benchmark `repro replay` side by side with its baselines, all in one invocation.

  1. warm replay:  `repro replay X.tgz --target local --json` with the environment cached, for
                   two sample papers (heat-sweep, anscombe-analysis), vs the runs' own time:
                   (a) the sum of the points' `duration_s` in the replay's own JSON report, and
                   (b) the same commands run directly, sequentially, with the cached venv first
                   on PATH, in a fresh copy of the captured project. Replays and direct runs
                   alternate. overhead = replay wall - runs' own time; goal < 1.5 s. When it is
                   above 1.0 s, a breakdown: startup, the pyenv shim, `-X importtime`, cProfile.
  2. cold env:     repro's builder (repro.env.virtualenv.build_venv: `uv venv` + `uv pip sync
                   --require-hashes`), a fresh REPRO_CACHE_DIR each time, vs `python -m venv D`
                   + `D/bin/pip install --require-hashes --no-deps -r LOCK`, same lock (anscombe:
                   numpy + matplotlib). Both download caches are warmed by one untimed build
                   first, so this measures installing, not downloading. Goal: >= 5x.
  3. docker reuse: two `repro replay --target docker --base-image repro-base:bookworm-py3.11`
                   of one capsule; the first is forced to build (this capsule's `repro-env` tag
                   is removed first), the second must print "reusing image", not "building".

Usage:  python benchmarks/bench_replay.py [--quick] [--repeat N] [--cold-repeat N]

Everything (copies of the papers, capsules, REPRO_CACHE_DIR, REPRO_CONFIG_DIR, UV_CACHE_DIR,
PIP_CACHE_DIR) lives in one temporary folder, deleted at the end (--keep-tmp keeps it): the
user's caches are not touched. Only the Docker engine's image store is shared. Results are
printed as a table and written to benchmarks/results/replay.json. See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import importlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))  # measure this checkout's repro (the editable install's too)
RESULTS = HERE / "results"

from measure import (  # noqa: E402  (benchmarks/measure.py, beside this script)
    NCPU,
    BenchError,
    Timed,
    check,
    cpu_snapshot,
    foreign_cpu_pct,
    git_state,
    import_rows,
    med,
    profiled_seconds,
    r3,
    table,
    timed,
    wait_for_quiet,
)

PAPERS = ("heat-sweep", "anscombe-analysis")
COLD_PAPER = "anscombe-analysis"
DOCKER_PAPER = "heat-sweep"
BASE_IMAGE = "repro-base:bookworm-py3.11"
GOAL_WARM_OVERHEAD_S = 1.5
GOAL_COLD_SPEEDUP = 5.0
BREAKDOWN_ABOVE_S = 1.0
SCRUB = ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")  # what build_venv drops for its tools


# --- measuring ------------------------------------------------------------------------------


def timed_fn(fn: Callable[[], object]) -> tuple[Timed, object]:
    before = cpu_snapshot()
    t0 = time.perf_counter()
    value = fn()
    seconds = time.perf_counter() - t0
    return Timed(seconds, foreign_cpu_pct(before, cpu_snapshot())), value


def clean_env(extra: dict[str, str] | None = None, drop: tuple[str, ...] = SCRUB) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env.update(extra or {})
    return env


@contextlib.contextmanager
def env_var(name: str, value: str) -> Iterator[None]:
    old = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = old


# --- the capsules ---------------------------------------------------------------------------


@dataclass
class Captured:
    paper: str
    project: Path
    capsule: Path
    unpacked: Path
    manifest: dict
    capture_s: float
    points: list[dict] | None = None
    """The replay report's points (command, point, point_id, outputs), in execution order."""

    @property
    def lock_text(self) -> str:
        return (self.unpacked / self.manifest["environment"]["lock"]).read_text(encoding="utf-8")

    @property
    def python_mm(self) -> str:
        return ".".join(self.manifest["environment"]["python_version"].split(".")[:2])

    @property
    def venv(self) -> Path:
        from repro.env.virtualenv import env_key
        from repro.paths import cache_dir

        return cache_dir() / "venvs" / env_key(self.lock_text, self.python_mm)


def capture_paper(repro: list[str], paper: str, tmp: Path) -> Captured:
    project = tmp / "papers" / paper
    shutil.copytree(
        REPO / "sample_papers" / paper,
        project,
        ignore=shutil.ignore_patterns("__pycache__", "results", ".venv"),
    )
    capsule = tmp / f"{paper}.capsule.tgz"
    t = timed([*repro, "capture", str(project), "-o", str(capsule), "--no-sign", "--json"], cwd=tmp)
    check(t, f"repro capture {paper}")
    unpacked = tmp / "unpacked" / paper
    unpacked.mkdir(parents=True)
    subprocess.run(["tar", "xzf", str(capsule), "-C", str(unpacked)], check=True)
    manifest = json.loads((unpacked / "repro.json").read_text(encoding="utf-8"))
    return Captured(paper, project, capsule, unpacked, manifest, t.seconds)


# --- 1. warm replay -------------------------------------------------------------------------


def run_direct(
    points: list[dict],
    workdir: Path,
    venv: Path,
    extra_env: dict[str, str] | None = None,
    drop: tuple[str, ...] = (),
) -> tuple[Timed, list[int]]:
    """The report's commands, in its order, as repro's LocalRunner would run them."""
    from repro.execution.runs import LocalRunner

    runner = LocalRunner(venv / "bin", venv)
    logs = workdir.with_name(workdir.name + ".logs")
    logs.mkdir(parents=True, exist_ok=True)
    envs = []
    for p in points:
        env = {k: v for k, v in runner.environment(point_variables(p)).items() if k not in drop}
        env.update(extra_env or {})
        envs.append(env)
    codes: list[int] = []

    def go() -> None:
        for k, (p, env) in enumerate(zip(points, envs, strict=True)):
            with (logs / f"{k}.out").open("wb") as out, (logs / f"{k}.err").open("wb") as err:
                proc = subprocess.run(
                    ["/bin/sh", "-c", p["command"]],
                    cwd=workdir,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=err,
                    check=False,
                    start_new_session=True,
                )
            codes.append(proc.returncode)

    t, _ = timed_fn(go)
    for p in points:
        for o in p["outputs"]:
            if not (workdir / o["path"]).is_file():
                codes.append(-1)
    shutil.rmtree(logs, ignore_errors=True)
    return t, codes


def point_variables(p: dict) -> dict[str, str]:
    """REPRO_POINT and REPRO_PARAM_<NAME>, as a replay sets them (from the report's point)."""
    try:
        from repro.config.models import format_value
    except ImportError:  # pragma: no cover - repro's internals move; str() is close enough
        format_value = str  # type: ignore[assignment]
    variables = {"REPRO_POINT": p["point_id"]}
    for key, value in p["point"].items():
        variables[f"REPRO_PARAM_{key.upper()}"] = format_value(value)
    return variables


def fresh_project(c: Captured, dest: Path) -> Path:
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(c.unpacked / "data" / "project", dest, symlinks=True)
    return dest


def bench_warm(repro: list[str], c: Captured, repeat: int, tmp: Path, idle_wait: float) -> dict:
    cmd = [*repro, "replay", str(c.capsule), "--target", "local", "--json"]
    warm = timed(cmd, cwd=tmp)
    proc = check(warm, f"warm-up replay of {c.paper}")
    report = json.loads(proc.stdout)
    if not report["reproduced"]:
        raise BenchError(f"warm-up replay of {c.paper} did not reproduce")
    points = c.points = report["points"]
    if not (c.venv / ".repro-complete").is_file():
        raise BenchError(f"cached venv not where expected: {c.venv}")
    reps = []
    for i in range(repeat):
        rep: dict = {}

        def replay_once(rep: dict = rep) -> None:
            wait_for_quiet(idle_wait)
            t = timed(cmd, cwd=tmp)
            p = check(t, f"replay of {c.paper}")
            r = json.loads(p.stdout)
            rep.update(
                replay_wall_s=r3(t.seconds),
                replay_other_cpu_pct=round(t.other_cpu_pct, 1),
                report_duration_s=r["duration_s"],
                runs_report_sum_s=r3(sum(pt["duration_s"] for pt in r["points"])),
                reproduced=r["reproduced"],
                reused_env="reusing the cached environment" in p.stderr,
            )

        def direct_once(rep: dict = rep, i: int = i) -> None:
            work = fresh_project(c, tmp / "direct" / f"{c.paper}-{i}")
            wait_for_quiet(idle_wait)
            t, codes = run_direct(points, work, c.venv)
            if any(codes):
                raise BenchError(f"direct run of {c.paper} failed: exit codes {codes}")
            rep.update(direct_s=r3(t.seconds), direct_other_cpu_pct=round(t.other_cpu_pct, 1))
            shutil.rmtree(work)

        # Alternate the order so slow drift on a shared machine hits both sides alike.
        for step in (replay_once, direct_once) if i % 2 == 0 else (direct_once, replay_once):
            step()
        rep["overhead_vs_report_s"] = r3(rep["replay_wall_s"] - rep["runs_report_sum_s"])
        rep["overhead_vs_direct_s"] = r3(rep["replay_wall_s"] - rep["direct_s"])
        rep["outside_replay_fn_s"] = r3(rep["replay_wall_s"] - rep["report_duration_s"])
        reps.append(rep)

    def m(key: str) -> float:
        return r3(med([r[key] for r in reps]))

    ov_report, ov_direct = m("overhead_vs_report_s"), m("overhead_vs_direct_s")
    worst = max(ov_report, ov_direct)
    return {
        "paper": c.paper,
        "command": " ".join(["repro", *cmd[1:]]),
        "points": [pt["command"] for pt in points],
        "packages": len(c.manifest["environment"]["packages"]),
        "warmup_wall_s": r3(warm.seconds),
        "warmup_reused_env": "reusing the cached environment" in proc.stderr,
        "repetitions": reps,
        "best_overhead_vs_report_s": r3(min(r["overhead_vs_report_s"] for r in reps)),
        "best_overhead_vs_direct_s": r3(min(r["overhead_vs_direct_s"] for r in reps)),
        "median": {
            k: m(k)
            for k in (
                "replay_wall_s",
                "runs_report_sum_s",
                "direct_s",
                "overhead_vs_report_s",
                "overhead_vs_direct_s",
                "outside_replay_fn_s",
                "report_duration_s",
            )
        },
        "ratio_replay_over_direct": r3(m("replay_wall_s") / m("direct_s")),
        "all_reused_env": all(r["reused_env"] for r in reps),
        "all_reproduced": all(r["reproduced"] for r in reps),
        "overhead_s": worst,
        "goal_s": GOAL_WARM_OVERHEAD_S,
        "pass": worst < GOAL_WARM_OVERHEAD_S and all(r["reused_env"] for r in reps),
    }


def bytecode_effect(c: Captured, repeat: int, tmp: Path, idle_wait: float) -> dict | None:
    """PYTHONDONTWRITEBYTECODE=1 and a venv installed without bytecode: every run compiles the
    packages it imports from source. The same commands with bytecode cached elsewhere
    (PYTHONPYCACHEPREFIX; the cached venv itself is not written to) show what that costs."""
    if not os.environ.get("PYTHONDONTWRITEBYTECODE"):
        return None
    site = next(c.venv.glob("lib/python*/site-packages"))
    pyc_in_venv = sum(1 for _ in site.rglob("*.pyc"))
    report_points = c.points or []
    prefix = tmp / "pycache-prefix"
    extra = {"PYTHONPYCACHEPREFIX": str(prefix)}
    drop = ("PYTHONDONTWRITEBYTECODE",)
    work = fresh_project(c, tmp / "bytecode" / c.paper)
    run_direct(report_points, work, c.venv, extra, drop)  # prime the prefix
    as_is, cached = [], []
    for i in range(repeat):
        for mode in ("as_is", "cached"):
            work = fresh_project(c, tmp / "bytecode" / f"{c.paper}-{mode}-{i}")
            wait_for_quiet(idle_wait)
            if mode == "as_is":
                t, codes = run_direct(report_points, work, c.venv)
                as_is.append(t.seconds)
            else:
                t, codes = run_direct(report_points, work, c.venv, extra, drop)
                cached.append(t.seconds)
            if any(codes):
                raise BenchError(f"bytecode check of {c.paper} failed: {codes}")
            shutil.rmtree(work)
    return {
        "paper": c.paper,
        "pyc_files_in_cached_venv": pyc_in_venv,
        "runs_own_time_as_is_s": [r3(x) for x in as_is],
        "runs_own_time_bytecode_cached_s": [r3(x) for x in cached],
        "median_as_is_s": r3(med(as_is)),
        "median_bytecode_cached_s": r3(med(cached)),
        "source_compilation_per_replay_s": r3(med(as_is) - med(cached)),
    }


# --- 1b. where the overhead goes ------------------------------------------------------------


PROFILE_FUNCS = {  # label -> (file suffix, function name)
    "imports (all, incl. lazy)": ("<frozen importlib._bootstrap>", "_find_and_load"),
    "compiling source (no .pyc)": ("~", "<built-in method builtins.compile>"),
    "cli command replay()": ("repro/replay/pipeline.py", "replay"),
    "  verify + unpack": ("repro/verify.py", "open_capsule"),
    "  prepare target": ("repro/replay/prepare.py", "prepare"),
    "    build_venv (reuse)": ("repro/env/venv.py", "build_venv"),
    "    uv pip freeze": ("repro/replay/environment.py", "installed_packages"),
    "    python version probe": ("repro/replay/targets/local.py", "python_version"),
    "  execute runs": ("repro/execution/runs.py", "execute_runs"),
    "  compare outputs": ("repro/replay/judge.py", "output_verdicts"),
    "  platform fingerprint": ("repro/capture/platform.py", "fingerprint"),
    "  environment differences": ("repro/replay/environment.py", "differences"),
}


def breakdown(repro: list[str], c: Captured, tmp: Path) -> dict:
    py = sys.executable
    replay_args = ["replay", str(c.capsule), "--target", "local", "--json"]
    out: dict = {"paper": c.paper}

    def median_of(cmd: list[str], n: int = 5) -> float:
        return r3(med([timed(cmd, cwd=tmp).seconds for _ in range(n)]))

    out["python_startup_s"] = median_of([py, "-c", "pass"])
    console = resolve_console_script()
    out["repro_version_via_path_s"] = median_of([*repro, "--version"])
    if console and console != repro[0]:
        out["repro_version_via_console_script_s"] = median_of([console, "--version"])
        out["pyenv_shim_s"] = r3(
            out["repro_version_via_path_s"] - out["repro_version_via_console_script_s"]
        )
    shim = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "shims" / "repro"
    if "pyenv_shim_s" not in out and shim.is_file() and str(shim) != repro[0]:
        # What an interactive shell runs for `repro`; not on this process's PATH first.
        out["repro_version_via_pyenv_shim_s"] = median_of([str(shim), "--version"])
        out["pyenv_shim_s (interactive shells only)"] = r3(
            out["repro_version_via_pyenv_shim_s"] - out["repro_version_via_path_s"]
        )
    out["python_m_repro_version_s"] = median_of([py, "-m", "repro", "--version"])

    # -X importtime: the import tree of one warm replay.
    t = timed([py, "-X", "importtime", "-m", "repro", *replay_args], cwd=tmp)
    check(t, "importtime replay")
    assert t.proc is not None
    rows = import_rows(t.proc.stderr)
    total_us = sum(r[1] for r in rows if r[2] == 0)
    out["importtime"] = {
        "wall_s": r3(t.seconds),
        "total_import_s": r3(total_us / 1e6),
        "heaviest (depth<=2, cumulative>=20ms)": [
            {
                "module": name,
                "depth": depth,
                "cumulative_ms": round(cum / 1000, 1),
                "self_ms": round(self_ / 1000, 1),
            }
            for self_, cum, depth, name in rows
            if depth <= 2 and cum >= 20_000
        ],
        "heaviest_self (self>=15ms)": sorted(
            (
                {"module": name, "self_ms": round(self_ / 1000, 1)}
                for self_, _c, _d, name in rows
                if self_ >= 15_000
            ),
            key=lambda d: -d["self_ms"],
        ),
    }

    # cProfile of one warm replay: where the time inside the process goes.
    prof = tmp / "replay.prof"
    t = timed([py, "-m", "cProfile", "-o", str(prof), "-m", "repro", *replay_args], cwd=tmp)
    p = check(t, "cProfile replay")
    report = json.loads(p.stdout[p.stdout.index("{") : p.stdout.rindex("}") + 1])
    found, total_profiled = profiled_seconds(prof, PROFILE_FUNCS)
    runs_own = sum(pt["duration_s"] for pt in report["points"])
    out["cprofile"] = {
        "wall_s (profiler slows Python code)": r3(t.seconds),
        "profiled_total_s": r3(total_profiled),
        "runs_own_time_s (report)": r3(runs_own),
        "seconds": {k: r3(v) for k, v in found.items()},
    }
    if "  execute runs" in found:
        out["cprofile"]["seconds"]["  execute runs minus runs' own time"] = r3(
            found["  execute runs"] - runs_own
        )
    return out


def resolve_console_script() -> str | None:
    """The real `repro` script behind a pyenv shim (None when it cannot be told)."""
    found = shutil.which("repro")
    if not found:
        return None
    if "/shims/" in found and shutil.which("pyenv"):
        r = subprocess.run(["pyenv", "which", "repro"], capture_output=True, text=True, check=False)
        if r.returncode == 0 and r.stdout.strip():
            return r.stdout.strip()
    return found


# --- 2. cold environment build --------------------------------------------------------------


def dist_infos(venv: Path) -> list[str]:
    site = next(venv.glob("lib/python*/site-packages"))
    skip = ("pip-", "setuptools-", "_virtualenv")
    return sorted(
        d.name.removesuffix(".dist-info").lower()
        for d in site.glob("*.dist-info")
        if not d.name.startswith(skip)
    )


def bench_cold(c: Captured, repeat: int, tmp: Path, idle_wait: float, no_compile: bool) -> dict:
    from repro.env.virtualenv import build_venv

    lock_text = c.lock_text
    lock_file = tmp / "cold.requirements.lock"
    lock_file.write_text(lock_text, encoding="utf-8")
    n_pkgs = sum(1 for ln in lock_text.splitlines() if re.match(r"^[A-Za-z0-9][^ ]*==", ln))
    base = tmp / "cold"
    base.mkdir()
    counter = iter(range(10_000))

    def uv_once() -> tuple[Timed, list[str]]:
        cache = base / f"repro-cache-{next(counter)}"
        wait_for_quiet(idle_wait)
        with env_var("REPRO_CACHE_DIR", str(cache)):
            t, venv = timed_fn(lambda: build_venv(lock_text, c.python_mm))
        assert not venv.reused  # type: ignore[attr-defined]
        pkgs = dist_infos(venv.root)  # type: ignore[attr-defined]
        shutil.rmtree(cache)
        return t, pkgs

    def pip_once(extra: list[str]) -> tuple[Timed, Timed, list[str]]:
        d = base / f"pip-venv-{next(counter)}"
        env = clean_env()
        wait_for_quiet(idle_wait)
        t_venv = timed([sys.executable, "-m", "venv", str(d)], env=env)
        check(t_venv, "python -m venv")
        t_pip = timed(
            [
                str(d / "bin" / "pip"),
                "install",
                "--quiet",
                "--require-hashes",
                "--no-deps",
                *extra,
                "-r",
                str(lock_file),
            ],
            env=env,
        )
        check(t_pip, "pip install --require-hashes")
        pkgs = dist_infos(d)
        shutil.rmtree(d)
        return t_venv, t_pip, pkgs

    # Warm both download caches (uv's and pip's, both private to this benchmark).
    uv_warm, uv_pkgs = uv_once()
    pv_warm, pp_warm, pip_pkgs = pip_once([])
    uv_t: list[Timed] = []
    pip_t: list[tuple[Timed, Timed]] = []
    pipnc_t: list[tuple[Timed, Timed]] = []
    for _ in range(repeat):
        uv_t.append(uv_once()[0])
        v, p, _ = pip_once([])
        pip_t.append((v, p))
    if no_compile:  # uv installs no bytecode, pip compiles it: the same work, once (time)
        v, p, _ = pip_once(["--no-compile"])
        pipnc_t.append((v, p))
    uv_med = med([t.seconds for t in uv_t])
    pip_tot = [v.seconds + p.seconds for v, p in pip_t]
    pip_med = med(pip_tot)
    speedup = pip_med / uv_med
    result = {
        "paper": c.paper,
        "lock_packages": n_pkgs,
        "python": c.python_mm,
        "same_packages_installed": uv_pkgs == pip_pkgs,
        "packages_installed": uv_pkgs,
        "warmup_s": {
            "repro_build_venv": r3(uv_warm.seconds),
            "venv_plus_pip": r3(pv_warm.seconds + pp_warm.seconds),
        },
        "repro_build_venv_s": [r3(t.seconds) for t in uv_t],
        "repro_build_venv_other_cpu_pct": [round(t.other_cpu_pct, 1) for t in uv_t],
        "venv_plus_pip_s": [r3(x) for x in pip_tot],
        "venv_plus_pip_parts_s": [
            {"python -m venv": r3(v.seconds), "pip install": r3(p.seconds)} for v, p in pip_t
        ],
        "venv_plus_pip_other_cpu_pct": [round(p.other_cpu_pct, 1) for _, p in pip_t],
        "median_repro_build_venv_s": r3(uv_med),
        "median_venv_plus_pip_s": r3(pip_med),
        "median_python_m_venv_s": r3(med([v.seconds for v, _ in pip_t])),
        "speedup": round(speedup, 2),
        "goal": GOAL_COLD_SPEEDUP,
        "pass": speedup >= GOAL_COLD_SPEEDUP and uv_pkgs == pip_pkgs,
    }
    if pipnc_t:
        nc = [v.seconds + p.seconds for v, p in pipnc_t]
        result["venv_plus_pip_no_compile_s"] = [r3(x) for x in nc]
        result["median_venv_plus_pip_no_compile_s"] = r3(med(nc))
        result["speedup_vs_pip_no_compile"] = round(med(nc) / uv_med, 2)
    return result


# --- 3. docker: the second replay reuses the image ------------------------------------------


def docker_tag(c: Captured, base_image: str) -> str:
    try:
        from repro.env.image import IMAGE_REPO, environment_digest
    except ImportError:  # before image building moved to repro/env/image.py
        from repro.replay.docker_target import (  # type: ignore[no-redef]
            IMAGE_REPO,
            environment_digest,
        )

    env = c.manifest["environment"]
    dockerfile = (c.unpacked / env["dockerfile"]).read_text(encoding="utf-8")
    return f"{IMAGE_REPO}:{environment_digest(dockerfile, c.lock_text, base_image)[:16]}"


def bench_docker(repro: list[str], c: Captured, tmp: Path) -> dict:
    if not shutil.which("docker"):
        return {"status": "skipped: no engine (no docker client)", "pass": None}
    info = subprocess.run(
        ["docker", "info"], capture_output=True, text=True, check=False, timeout=30
    )
    if info.returncode != 0:
        return {"status": "skipped: no engine", "pass": None}
    base = subprocess.run(
        ["docker", "image", "inspect", BASE_IMAGE], capture_output=True, check=False
    )
    if base.returncode != 0:
        return {"status": f"skipped: base image {BASE_IMAGE} not present", "pass": None}
    tag = docker_tag(c, BASE_IMAGE)
    present = subprocess.run(
        ["docker", "images", "repro-env", "--format", "{{.Repository}}:{{.Tag}}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    removed = None
    if tag in present:
        # Only this capsule's image: other repro-env images may be in use by someone else.
        rmi = subprocess.run(["docker", "rmi", tag], capture_output=True, text=True, check=False)
        removed = rmi.returncode == 0
        if not removed:
            print(f"warning: could not remove {tag}: {rmi.stderr.strip()}", file=sys.stderr)
    cmd = [
        *repro,
        "replay",
        str(c.capsule),
        "--target",
        "docker",
        "--base-image",
        BASE_IMAGE,
        "--json",
    ]
    runs = []
    for label in ("first", "second"):
        t = timed(cmd, cwd=tmp)
        p = check(t, f"docker replay ({label})")
        report = json.loads(p.stdout)
        runs.append(
            {
                "run": label,
                "wall_s": r3(t.seconds),
                "other_cpu_pct": round(t.other_cpu_pct, 1),
                "report_duration_s": report["duration_s"],
                "runs_report_sum_s": r3(sum(pt["duration_s"] for pt in report["points"])),
                "reproduced": report["reproduced"],
                "printed_building_image": "building image" in p.stderr,
                "printed_reusing_image": "reusing image" in p.stderr,
                "stderr": [ln for ln in p.stderr.splitlines() if ln.strip()],
            }
        )
    first, second = runs
    ok = (
        second["printed_reusing_image"]
        and not second["printed_building_image"]
        and second["reproduced"]
    )
    return {
        "status": "measured",
        "paper": c.paper,
        "base_image": BASE_IMAGE,
        "image": tag,
        "image_existed_before": tag in present,
        "image_removed_before_first": removed,
        "first_built": first["printed_building_image"],
        "runs": runs,
        "ratio_second_over_first": r3(second["wall_s"] / first["wall_s"]),
        "pass": ok,
    }


# --- report ---------------------------------------------------------------------------------


def machine_info(repro: list[str]) -> dict:
    cpu = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / (1 << 30)

    def version(cmd: list[str]) -> str:
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=30)
            return (r.stdout or r.stderr).splitlines()[0].strip()
        except (OSError, IndexError, subprocess.TimeoutExpired):
            return "n/a"

    from repro.env.lock import uv_bin

    console = resolve_console_script()
    imported_from = None
    if console:
        with contextlib.suppress(OSError, IndexError):
            shebang = Path(console).read_text(errors="replace").splitlines()[0]
            interp = shebang[2:].strip().split()[0] if shebang.startswith("#!") else sys.executable
            r = subprocess.run(
                [interp, "-c", "import repro; print(repro.__file__)"],
                capture_output=True,
                text=True,
                check=False,
                cwd="/",
            )
            imported_from = r.stdout.strip() or None
    return {
        "cpu": cpu,
        "cpus": NCPU,
        "mem_gib": round(mem, 1),
        "os": platform.platform(),
        "python": platform.python_version(),
        "python_executable": sys.executable,
        "repro": importlib.import_module("repro").__version__,
        "repro_on_path": shutil.which("repro"),
        "repro_console_script": console,
        "repro_imported_by_console_script": imported_from,
        "uv": version([uv_bin(), "--version"]),
        "pip": version([sys.executable, "-m", "pip", "--version"]),
        "docker": version(["docker", "version", "--format", "{{.Server.Version}}"])
        if shutil.which("docker")
        else "n/a",
        "PYTHONDONTWRITEBYTECODE": os.environ.get("PYTHONDONTWRITEBYTECODE"),
        "loadavg": list(os.getloadavg()),
        "timed_command": repro,
    }


def verdict(ok: bool | None) -> str:
    return "skipped" if ok is None else "PASS" if ok else "FAIL"


def print_report(res: dict) -> None:
    rows = []
    for w in res["warm_replay"]["papers"]:
        mm = w["median"]
        rows.append(
            [
                f"warm replay: {w['paper']} ({len(w['points'])} pt)",
                f"{mm['replay_wall_s']:.2f} s",
                f"{mm['direct_s']:.2f} s direct",
                f"{mm['runs_report_sum_s']:.2f} s in report",
                f"+{mm['overhead_vs_direct_s']:.2f} / +{mm['overhead_vs_report_s']:.2f} s",
                f"x{w['ratio_replay_over_direct']:.2f}",
                f"< {GOAL_WARM_OVERHEAD_S} s",
                verdict(w["pass"]),
            ]
        )
    cold = res["cold_env_build"]
    rows.append(
        [
            f"cold env: {cold['paper']} ({cold['lock_packages']} pkgs)",
            f"{cold['median_repro_build_venv_s']:.2f} s",
            f"{cold['median_venv_plus_pip_s']:.2f} s venv+pip",
            (
                f"{cold['median_venv_plus_pip_no_compile_s']:.2f} s --no-compile"
                if "median_venv_plus_pip_no_compile_s" in cold
                else ""
            ),
            "",
            f"{cold['speedup']:.1f}x faster",
            f">= {GOAL_COLD_SPEEDUP:g}x",
            verdict(cold["pass"]),
        ]
    )
    dk = res["docker_second_replay"]
    if dk.get("status") == "measured":
        first, second = dk["runs"]
        rows.append(
            [
                f"docker: {dk['paper']} 2nd replay",
                f"{second['wall_s']:.2f} s",
                f"{first['wall_s']:.2f} s 1st",
                "built 1st" if dk["first_built"] else "1st did NOT build",
                "reusing" if second["printed_reusing_image"] else "NOT reusing",
                f"x{dk['ratio_second_over_first']:.2f}",
                "no rebuild",
                verdict(dk["pass"]),
            ]
        )
    else:
        rows.append(["docker: 2nd replay", "", "", "", "", "", "no rebuild", dk["status"]])
    print()
    print(
        table(
            rows,
            [
                "target",
                "repro",
                "baseline",
                "baseline 2",
                "overhead dir/rep",
                "ratio",
                "goal",
                "result",
            ],
        )
    )
    for w in res["warm_replay"]["papers"]:
        print(
            f"  {w['paper']}: replays {[r['replay_wall_s'] for r in w['repetitions']]} s, "
            f"direct {[r['direct_s'] for r in w['repetitions']]} s, other CPU "
            f"{[r['replay_other_cpu_pct'] for r in w['repetitions']]} %"
        )
    print(
        f"  cold: repro {cold['repro_build_venv_s']} s, venv+pip {cold['venv_plus_pip_s']} s "
        f"(python -m venv alone: median {cold['median_python_m_venv_s']} s); same packages: "
        f"{cold['same_packages_installed']}"
    )
    bc = res["warm_replay"].get("bytecode")
    if bc:
        print(
            f"  bytecode: {bc['paper']} runs' own time {bc['median_as_is_s']} s as is "
            f"(PYTHONDONTWRITEBYTECODE=1, {bc['pyc_files_in_cached_venv']} .pyc in the venv) vs "
            f"{bc['median_bytecode_cached_s']} s with bytecode cached"
        )
    bd = res["warm_replay"].get("breakdown")
    if bd:
        print(
            f"\nbreakdown ({bd['paper']}): python startup {bd['python_startup_s']} s, "
            f"`repro --version` {bd['repro_version_via_path_s']} s via PATH"
            + "".join(f", {k} {v} s" for k, v in bd.items() if k.startswith("pyenv_shim"))
            + f"; imports during a replay {bd['importtime']['total_import_s']} s (-X importtime)"
        )
        for k, v in bd["cprofile"]["seconds"].items():
            print(f"    {k:<40} {v:7.3f} s")
        print(
            "    heaviest imports: "
            + ", ".join(
                f"{d['module']} {d['cumulative_ms']:.0f} ms"
                for d in bd["importtime"]["heaviest (depth<=2, cumulative>=20ms)"]
                if d["depth"] <= 1
            )[:600]
        )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer repetitions (about 2 minutes)")
    ap.add_argument("--repeat", type=int, help="warm replays per paper (default 5; quick 2)")
    ap.add_argument("--cold-repeat", type=int, help="cold builds per side (default 3; quick 1)")
    ap.add_argument("--no-docker", action="store_true", help="skip target 3")
    ap.add_argument("--profile", action="store_true", help="break the overhead down even if small")
    ap.add_argument(
        "--idle-wait",
        type=float,
        default=1.0,
        help="max seconds to wait for a quiet machine before each timed step",
    )
    ap.add_argument("--keep-tmp", action="store_true")
    ap.add_argument("--json", type=Path, default=RESULTS / "replay.json")
    args = ap.parse_args()
    repeat = args.repeat or (2 if args.quick else 5)
    cold_repeat = args.cold_repeat or (1 if args.quick else 3)

    t_start = time.perf_counter()
    found = shutil.which("repro")
    if not found:
        raise SystemExit("`repro` is not on PATH (pip install -e .)")
    repro = [found]
    tmp = Path(tempfile.mkdtemp(prefix="repro-bench-replay-"))
    isolated = {
        "REPRO_CACHE_DIR": tmp / "repro-cache",
        "REPRO_CONFIG_DIR": tmp / "repro-config",
        "UV_CACHE_DIR": tmp / "uv-cache",
        "PIP_CACHE_DIR": tmp / "pip-cache",
    }
    for k, v in isolated.items():
        os.environ[k] = str(v)
    machine = machine_info(repro)
    git_at_start = git_state(REPO)
    print(
        f"bench_replay: tmp {tmp}; {machine['cpus']} CPUs, load {machine['loadavg']}; "
        f"repro = {found}",
        flush=True,
    )
    res: dict = {}
    try:
        caps = {}
        for paper in PAPERS:
            caps[paper] = capture_paper(repro, paper, tmp)
            print(
                f"captured {paper} in {caps[paper].capture_s:.1f} s "
                "(first capture: downloads into the private uv cache, builds the venv)",
                flush=True,
            )

        warm = []
        for paper in PAPERS:
            warm.append(bench_warm(repro, caps[paper], repeat, tmp, args.idle_wait))
            m = warm[-1]["median"]
            print(
                f"warm replay {paper}: {m['replay_wall_s']:.2f} s vs {m['direct_s']:.2f} s "
                f"direct, {m['runs_report_sum_s']:.2f} s in report",
                flush=True,
            )
        res["warm_replay"] = {
            "papers": warm,
            "goal_s": GOAL_WARM_OVERHEAD_S,
            "pass": all(w["pass"] for w in warm),
        }
        worst = max(warm, key=lambda w: w["overhead_s"])
        if worst["overhead_s"] > BREAKDOWN_ABOVE_S or args.profile:
            print(
                f"overhead {worst['overhead_s']:.2f} s > {BREAKDOWN_ABOVE_S} s: breaking it "
                f"down on {worst['paper']}",
                flush=True,
            )
            res["warm_replay"]["breakdown"] = breakdown(repro, caps[worst["paper"]], tmp)
        bc = bytecode_effect(caps[COLD_PAPER], max(1, min(repeat, 2)), tmp, args.idle_wait)
        if bc:
            res["warm_replay"]["bytecode"] = bc

        print("cold environment builds...", flush=True)
        res["cold_env_build"] = bench_cold(
            caps[COLD_PAPER], cold_repeat, tmp, args.idle_wait, no_compile=not args.quick
        )

        if args.no_docker:
            res["docker_second_replay"] = {"status": "skipped: --no-docker", "pass": None}
        else:
            print("docker replays...", flush=True)
            res["docker_second_replay"] = bench_docker(repro, caps[DOCKER_PAPER], tmp)
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        if not args.keep_tmp:
            shutil.rmtree(tmp, ignore_errors=True)

    machine["loadavg_at_end"] = list(os.getloadavg())
    out = {
        "generated": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": " ".join(["python", "benchmarks/bench_replay.py", *sys.argv[1:]]),
        "machine": machine,
        "repro_git": git_state(REPO),
        "repro_git_at_start": git_at_start,
        "method": {
            "warm_replay": "N warm replays (wall clock of the whole `repro replay` process) "
            "alternating with the same commands run directly in the cached venv, in a fresh copy "
            "of the captured project; overhead = replay wall - runs' own time, paired per "
            "repetition, median; reported against both the direct runs and the report's "
            "duration_s sum; the target takes the larger",
            "cold_env_build": "repro.env.virtualenv.build_venv with a fresh REPRO_CACHE_DIR "
            "vs python -m "
            "venv + pip install --require-hashes --no-deps, same lock; uv's and pip's download "
            "caches (private to the benchmark) warmed by one untimed build of each, so this is "
            "install time, not download time; medians",
            "docker": "this capsule's repro-env image removed, then two docker replays "
            "(other_cpu_pct there includes the engine and our own containers)",
            "other_cpu_pct": "share of the machine's CPUs used by processes outside this "
            "benchmark's process tree during a measurement: the machine may be shared",
            "isolation": dict.fromkeys(isolated, "temp"),
        },
        "repetitions": {"warm": repeat, "cold": cold_repeat, "quick": args.quick},
        **res,
        "targets": {
            "warm_replay_overhead_under_1_5_s": res["warm_replay"]["pass"],
            "cold_env_build_5x_faster_than_venv_pip": res["cold_env_build"]["pass"],
            "second_docker_replay_reuses_image": res["docker_second_replay"]["pass"],
        },
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
