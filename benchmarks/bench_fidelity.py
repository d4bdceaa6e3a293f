#!/usr/bin/env python3
"""Fidelity benchmark: how many real-world environment conventions repro captures and
replays faithfully, project by project.

For every good project under tests/projects/ (one repo2docker convention or combination
each; see tests/projects/helpers.py) and the sample papers under sample_papers/:

  1. capture:  `python -m repro capture COPY -o X.tgz --no-sign --json` of a fresh copy
               (prepared as the tests prepare it: pipfile-git's dependency becomes a local git
               repository). Exit code and wall time.
  2. local:    `python -m repro replay X.tgz --target local --json`: the verdict ("identical",
               "within tolerance", "NOT reproduced: ..." or the error line).
  3. docker:   `python -m repro replay X.tgz --target docker --base-image IMAGE --json`, when a
               Docker engine answers and has IMAGE (default repro-base:bookworm-py3.11, or
               $REPRO_BASE_IMAGE); otherwise the column is skipped, with a note.

Every project's own run asserts that its environment is right (imports, versions,
behaviour), so "identical" means the declared environment was rebuilt, not only that the
bytes matched. Then each project under tests/projects/bad/ is captured and must fail with
its expected exit code, one error line naming what its expect.toml says, and a hint.

Prints a table (project, convention, capture ok/seconds, local verdict, docker verdict) and
the success rates, and writes benchmarks/results/fidelity.json (--json PATH, --no-json).

Usage:  python benchmarks/bench_fidelity.py [--only NAME ...] [--no-docker] [--no-bad]
                                            [--no-papers] [--base-image IMAGE] [--keep-tmp]

`python -m repro` runs this checkout's repro (PYTHONPATH). Everything (copies, capsules,
REPRO_CACHE_DIR, REPRO_CONFIG_DIR, UV_CACHE_DIR, PIP_CACHE_DIR) lives in one temporary
folder, deleted at the end: the user's caches are not touched; only the Docker engine's
image store is shared. The uv cache is shared by the projects of one run, so the first
capture downloads most. Needs PyPI. Runtime: about 4-6 minutes with Docker on the 2-core VM.
See benchmarks/README.md.
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
import tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))  # tests.projects.helpers from this checkout
RESULTS = HERE / "results"

from measure import NCPU, git_state, r3, timed  # noqa: E402  (beside this script)

from tests.projects.helpers import (  # noqa: E402
    CONVENTIONS,
    bad_expectation,
    bad_projects,
    good_projects,
    prepare_project,
)

PAPERS_DIR = REPO / "sample_papers"
DEFAULT_BASE_IMAGE = os.environ.get("REPRO_BASE_IMAGE", "repro-base:bookworm-py3.11")
DROP = ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "SOURCE_DATE_EPOCH")
DROP_PREFIXES = ("REPRO_", "UV_", "PIP_")
TIMEOUT_S = 900


@dataclass
class Step:
    ok: bool
    seconds: float
    verdict: str
    exit_code: int | None = None
    error: str | None = None
    counts: dict[str, int] = field(default_factory=dict)


@dataclass
class Row:
    project: str
    kind: str
    """convention project or sample paper"""
    convention: str
    capture: Step | None = None
    local: Step | None = None
    docker: Step | None = None


def clean_env(isolated: dict[str, Path]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in DROP and not k.startswith(DROP_PREFIXES)}
    env.update({k: str(v) for k, v in isolated.items()})
    env["PYTHONPATH"] = str(REPO)  # `python -m repro` is this checkout's repro
    return env


def error_line(stderr: str, stdout: str = "") -> str:
    try:
        data = json.loads(stdout)
        if isinstance(data, dict) and data.get("error"):
            return str(data["error"])[:300]
    except ValueError:
        pass
    lines = [ln for ln in stderr.splitlines() if ln.startswith("error:")]
    tail = lines[-1] if lines else (stderr.strip().splitlines() or ["(no output)"])[-1]
    return tail.removeprefix("error:").strip()[:300]


def docker_available(image: str) -> tuple[bool, str]:
    try:
        import docker  # the Docker SDK repro itself uses

        client = docker.from_env(timeout=5)
        client.ping()
    except Exception as exc:  # any failure: no usable engine
        return False, f"no Docker engine answers ({type(exc).__name__})"
    try:
        client.images.get(image)
    except Exception:
        return False, f"the Docker engine has no image {image} (scripts/ci/setup-docker.sh)"
    return True, ""


def paper_convention(project: Path) -> str:
    spec = tomllib.loads((project / "repro.toml").read_text(encoding="utf-8"))
    req = (spec.get("environment") or {}).get("requirements")
    return f"sample paper ({req})" if req else "sample paper"


def capture(repro: list[str], project: Path, out: Path, env: dict[str, str]) -> Step:
    t = timed(
        [*repro, "capture", str(project), "-o", str(out), "--no-sign", "--json"],
        env=env,
        timeout=TIMEOUT_S,
    )
    assert t.proc is not None
    if t.proc.returncode == 0:
        return Step(True, r3(t.seconds), "ok", 0)
    return Step(
        False,
        r3(t.seconds),
        f"failed (exit {t.proc.returncode})",
        t.proc.returncode,
        error_line(t.proc.stderr, t.proc.stdout),
    )


def replay(repro: list[str], capsule: Path, target: str, env: dict[str, str], image: str) -> Step:
    cmd = [*repro, "replay", str(capsule), "--target", target, "--json"]
    if target == "docker":
        cmd += ["--base-image", image]
    try:
        t = timed(cmd, env=env, timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return Step(False, TIMEOUT_S, f"timed out after {TIMEOUT_S} s")
    assert t.proc is not None
    code = t.proc.returncode
    report = None
    with contextlib.suppress(ValueError):
        report = json.loads(t.proc.stdout)
    if code in (0, 3) and isinstance(report, dict) and "points" in report:
        counts = dict(report.get("counts") or {})
        if report.get("reproduced"):
            verdict = "identical" if set(counts) <= {"identical"} else "within tolerance"
            return Step(True, r3(t.seconds), verdict, code, counts=counts)
        worst = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()) if k != "identical")
        failed = [
            p.get("stderr_tail", "").strip().splitlines()[-1:]
            for p in report["points"]
            if p.get("status") != "ok"
        ]
        detail = next((f[0] for f in failed if f), None)
        return Step(False, r3(t.seconds), f"NOT reproduced ({worst})", code, detail, counts=counts)
    return Step(
        False,
        r3(t.seconds),
        f"error (exit {code})",
        code,
        error_line(t.proc.stderr, t.proc.stdout),
    )


def check_bad(repro: list[str], name: str, tmp: Path, env: dict[str, str]) -> dict:
    expect = bad_expectation(name)
    project = prepare_project(name, tmp / "bad" / name, bad=True)
    out_dir = tmp / "bad-out" / name
    out_dir.mkdir(parents=True)
    t = timed([*repro, "capture", str(project), "-o", str(out_dir / "x.tgz")], env=env)
    assert t.proc is not None
    lines = t.proc.stderr.splitlines()
    errors = [ln for ln in lines if ln.startswith("error:")]
    hints = [ln for ln in lines if ln.startswith("hint:")]
    problems = []
    if t.proc.returncode not in expect["exit_codes"]:
        problems.append(f"exit {t.proc.returncode}, expected {expect['exit_codes']}")
    if len(errors) != 1:
        problems.append(f"{len(errors)} error lines")
    if len(hints) != 1:
        problems.append(f"{len(hints)} hint lines")
    missing = [w for w in expect["mentions"] if not errors or w not in errors[0]]
    if missing:
        problems.append(f"error line lacks {missing}")
    if "Traceback" in t.proc.stderr:
        problems.append("traceback")
    if any(out_dir.iterdir()):
        problems.append("wrote a file")
    return {
        "project": name,
        "ok": not problems,
        "exit_code": t.proc.returncode,
        "seconds": r3(t.seconds),
        "error": errors[0].removeprefix("error:").strip() if errors else None,
        "hint": hints[0].removeprefix("hint:").strip() if hints else None,
        "problems": problems,
    }


def table(rows: list[list[str]], header: list[str]) -> str:
    """Text columns, left-aligned (measure.table right-aligns every column but the first)."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def fmt(r: list[str]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()

    return "\n".join([fmt(header), "  ".join("-" * w for w in widths), *map(fmt, rows)])


def rate(rows: list[Row], col: str) -> tuple[int, int]:
    steps = [getattr(r, col) for r in rows]
    ran = [s for s in steps if s is not None]
    return sum(1 for s in ran if s.ok), len(ran)


def cell(step: Step | None, skipped: str) -> str:
    if step is None:
        return skipped
    return step.verdict if step.ok else f"{step.verdict}"


def print_report(rows: list[Row], bad: list[dict], docker_note: str) -> None:
    body = []
    for r in rows:
        cap = r.capture
        assert cap is not None
        body.append(
            [
                r.project,
                r.convention[:58],
                f"{'ok' if cap.ok else 'FAILED'} {cap.seconds:.1f} s",
                cell(r.local, "-"),
                cell(r.docker, "skipped" if docker_note else "-"),
            ]
        )
    print()
    print(table(body, ["project", "convention", "capture", "local", "docker"]))
    failures = [
        (r.project, name, s)
        for r in rows
        for name, s in (("capture", r.capture), ("local", r.local), ("docker", r.docker))
        if s is not None and not s.ok
    ]
    if failures:
        print("\nfailures:")
        for project, name, s in failures:
            print(f"  {project} / {name}: {s.verdict}: {s.error or ''}"[:400])
    print()
    for col in ("capture", "local", "docker"):
        ok, n = rate(rows, col)
        if n:
            print(f"  {col:<8} {ok}/{n} = {100 * ok / n:.0f} %")
        else:
            print(f"  {col:<8} not run" + (f": {docker_note}" if col == "docker" else ""))
    if bad:
        ok = sum(1 for b in bad if b["ok"])
        print(f"  bad projects refused as expected: {ok}/{len(bad)}")
        for b in bad:
            if not b["ok"]:
                print(f"    {b['project']}: {'; '.join(b['problems'])} ({b['error']})"[:400])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", action="append", help="this project only (repeatable)")
    ap.add_argument("--no-docker", action="store_true", help="skip the docker column")
    ap.add_argument("--no-bad", action="store_true", help="skip the bad projects")
    ap.add_argument("--no-papers", action="store_true", help="skip the sample papers")
    ap.add_argument("--base-image", default=DEFAULT_BASE_IMAGE)
    ap.add_argument("--keep-tmp", action="store_true")
    ap.add_argument("--json", type=Path, default=RESULTS / "fidelity.json")
    ap.add_argument("--no-json", action="store_true", help="print only")
    args = ap.parse_args()

    t_start = time.perf_counter()
    repro = [sys.executable, "-m", "repro"]
    tmp = Path(tempfile.mkdtemp(prefix="repro-bench-fidelity-"))
    isolated = {
        "REPRO_CACHE_DIR": tmp / "repro-cache",
        "REPRO_CONFIG_DIR": tmp / "repro-config",
        "UV_CACHE_DIR": tmp / "uv-cache",
        "PIP_CACHE_DIR": tmp / "pip-cache",
    }
    env = clean_env(isolated)
    projects: list[tuple[str, str, Path | None]] = [
        (name, "convention", None) for name in good_projects()
    ]
    if not args.no_papers:
        projects += [
            (p.name, "sample paper", p)
            for p in sorted(PAPERS_DIR.iterdir())
            if (p / "repro.toml").is_file()
        ]
    if args.only:
        unknown = set(args.only) - {p[0] for p in projects} - set(bad_projects())
        if unknown:
            print(f"error: unknown project(s): {sorted(unknown)}", file=sys.stderr)
            return 2
        projects = [p for p in projects if p[0] in args.only]
    docker_ok, docker_note = (
        (False, "--no-docker") if args.no_docker else docker_available(args.base_image)
    )
    git_at_start = git_state(REPO)
    print(
        f"bench_fidelity: {len(projects)} projects; tmp {tmp}; {NCPU} CPUs; docker: "
        + ("yes, " + args.base_image if docker_ok else f"skipped ({docker_note})"),
        flush=True,
    )

    rows: list[Row] = []
    bad: list[dict] = []
    try:
        for name, kind, src in projects:
            dest = tmp / "projects" / name
            if src is None:
                project = prepare_project(name, dest)
                convention = CONVENTIONS.get(name, "?")
            else:
                project = dest
                shutil.copytree(src, dest, ignore=shutil.ignore_patterns("results", "__pycache__"))
                convention = paper_convention(project)
            row = Row(name, kind, convention)
            capsule = tmp / "capsules" / f"{name}.capsule.tgz"
            capsule.parent.mkdir(exist_ok=True)
            row.capture = capture(repro, project, capsule, env)
            if row.capture.ok:
                row.local = replay(repro, capsule, "local", env, args.base_image)
                if docker_ok:
                    row.docker = replay(repro, capsule, "docker", env, args.base_image)
            rows.append(row)
            print(
                f"  {name:<28} capture {cell(row.capture, '-')} ({row.capture.seconds:.1f} s)"
                f", local {cell(row.local, '-')}, docker {cell(row.docker, 'skipped')}",
                flush=True,
            )
        if not args.no_bad:
            for name in bad_projects():
                if args.only and name not in args.only:
                    continue
                bad.append(check_bad(repro, name, tmp, env))
    finally:
        if args.keep_tmp:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)

    print_report(rows, bad, "" if docker_ok else docker_note)
    out = {
        "generated": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": " ".join(["python", "benchmarks/bench_fidelity.py", *sys.argv[1:]]),
        "machine": {
            "cpus": NCPU,
            "os": platform.platform(),
            "python": platform.python_version(),
            "loadavg_at_end": list(os.getloadavg()),
        },
        "repro_git": git_state(REPO),
        "repro_git_at_start": git_at_start,
        "docker": {"used": docker_ok, "base_image": args.base_image, "note": docker_note},
        "rates": {
            col: dict(zip(("ok", "of"), rate(rows, col), strict=True))
            for col in ("capture", "local", "docker")
        },
        "bad_refused": {"ok": sum(1 for b in bad if b["ok"]), "of": len(bad)},
        "projects": [asdict(r) for r in rows],
        "bad_projects": bad,
        "elapsed_s": r3(time.perf_counter() - t_start),
    }
    if out["repro_git"] != git_at_start:
        print(
            "warning: repro's code changed while the benchmark ran (see repro_git*): run it "
            "again on a quiet checkout",
            file=sys.stderr,
        )
    if not args.no_json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        tmp_json = args.json.with_suffix(".json.tmp")
        tmp_json.write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
        tmp_json.replace(args.json)
        print(f"\nwrote {args.json} ({out['elapsed_s']:.0f} s)")
    all_ok = all(s is None or s.ok for r in rows for s in (r.capture, r.local, r.docker)) and all(
        b["ok"] for b in bad
    )
    return 0 if all_ok else 3


if __name__ == "__main__":
    sys.exit(main())
