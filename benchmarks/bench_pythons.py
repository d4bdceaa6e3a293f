#!/usr/bin/env python3
"""Every-Python benchmark: cold and warm environment builds per Python version, on the local
and docker targets, side by side with doing the same by hand.

For each era study of tests/integration/test_pythons.py (3.6 with pins of 2017, 3.8 of 2020,
3.12 of 2024), in one run:

  capture (cold)   `repro capture` with empty repro and uv caches: lock, build the venv, run.
  capture (warm)   the same again: the venv and the lock's downloads are cached.
  by hand (cold)   the baseline for the venv: `uv venv --python X.Y` + `uv pip sync` of the
                   capsule's own lock with an empty uv cache (what a user would type).
  local (cold)     `repro replay --target local` with an empty repro cache (uv cache warm).
  local (warm)     the same again: the cached venv is reused.
  docker (cold)    `repro replay --target docker` with the environment image removed and an
                   empty wheel cache (the base image python:X.Y-slim present).
  docker (warm)    the same again: the image is reused.
  docker by hand   the baseline for the image: `docker build` of FROM python:X.Y-slim +
                   `python -m venv` + `pip install --require-hashes -r lock` from the index.

Ratios are repro's time over the baseline's (cold). Every timing notes how busy the rest of
the machine was (other processes' share of the CPUs). Needs PyPI, pyenv's Pythons and the
python:X.Y-slim images of scripts/ci/setup-pythons.sh.

Usage:  python benchmarks/bench_pythons.py [--only 3.6 ...] [--no-docker] [--json PATH]
Writes benchmarks/results/pythons.json by default.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))

from measure import NCPU, git_state, r3, timed, wait_for_quiet  # noqa: E402

from tests.integration.test_pythons import ERAS, make_study  # noqa: E402

CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"


def _env(root: Path, cache: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REPRO_", "UV_", "PIP_"))}
    home = root / "home"  # as the tests: no user pip/uv configuration (local indexes)
    home.mkdir(parents=True, exist_ok=True)
    env.update(
        HOME=str(home),
        PYTHONPATH=str(REPO),
        REPRO_CACHE_DIR=str(root / cache / "repro"),
        REPRO_CONFIG_DIR=str(root / "config"),
        UV_CACHE_DIR=str(root / cache / "uv"),
        PIP_CACHE_DIR=str(root / cache / "pip"),
    )
    return env


def _repro(*args: str) -> list[str]:
    return [sys.executable, "-m", "repro", *args]


def _row(what: str, t: object) -> dict[str, object]:
    proc = getattr(t, "proc", None)
    ok = proc is not None and proc.returncode == 0
    tail = "" if ok or proc is None else (proc.stderr or proc.stdout).strip().splitlines()[-1:]
    return {
        "step": what,
        "seconds": r3(getattr(t, "seconds", 0.0)),
        "other_cpu_pct": round(getattr(t, "other_cpu_pct", 0.0)),
        "ok": ok,
        "error": " ".join(tail) if tail else "",
    }


def bench_era(era_python: str, root: Path, docker: bool) -> list[dict[str, object]]:
    era = next(e for e in ERAS if e.python == era_python)
    work = root / f"py{era.python}"
    project = make_study(work / "study", era)
    capsule = work / "study.tgz"
    rows = []
    wait_for_quiet(20)
    cold = _env(work, "cold")
    capture = _repro("capture", str(project), "-o", str(capsule), "--no-sign")
    rows.append(_row("capture (cold)", timed(capture, env=cold)))
    if not rows[-1]["ok"]:
        return rows  # nothing to replay; the error is in the row
    rows.append(_row("capture (warm)", timed(capture, env=cold)))
    with tarfile.open(capsule) as tar:
        lock_text = _member(tar, "data/env/requirements.lock")
        manifest = json.loads(_member(tar, "repro.json"))
    lock = work / "requirements.lock"
    lock.write_text(lock_text)
    rows.append(_row("venv by hand (cold)", _venv_by_hand(era.python, work, lock)))
    replay = _env(work, "replay")
    replay["UV_CACHE_DIR"] = cold["UV_CACHE_DIR"]  # downloads warm: the build is measured
    local = _repro("replay", str(capsule), "--target", "local")
    for label in ("local (cold)", "local (warm)"):
        rows.append(_row(label, timed(local, env=replay)))
    if docker:
        rows += _docker(capsule, work, lock, manifest["environment"]["base_image"], era.python)
    return rows


def _member(tar: tarfile.TarFile, name: str) -> str:
    member = tar.extractfile(name)
    return member.read().decode() if member else ""


def _venv_by_hand(python: str, work: Path, lock: Path) -> object:
    from repro.env.lock import uv_bin
    from repro.env.pythons import find_python

    uv, venv = uv_bin(), work / "hand-venv"
    interpreter = find_python(python, download=False)
    script = (
        f"'{uv}' venv -q --python '{interpreter}' '{venv}' && "
        f"'{uv}' pip sync -q --require-hashes --python '{venv}/bin/python' '{lock}'"
    )
    return timed(["/bin/sh", "-c", script], env=_env(work, "hand"))


def _docker(
    capsule: Path, work: Path, lock: Path, base: str, python: str
) -> list[dict[str, object]]:
    env = _env(work, "docker")
    replay = _repro("replay", str(capsule), "--target", "docker")
    cold = timed(replay, env=env)
    reused = re.search(r"reusing image (repro-env:\S+)", cold.proc.stderr if cold.proc else "")
    if reused:  # built before this run: remove it and measure a real cold build
        _rm_image(reused.group(1))
        shutil.rmtree(Path(env["REPRO_CACHE_DIR"]), ignore_errors=True)
        cold = timed(replay, env=env)
    rows = [_row("docker (cold)", cold), _row("docker (warm)", timed(replay, env=env))]
    context = work / "hand-image"
    context.mkdir()
    shutil.copy(lock, context / "requirements.lock")
    # Behind a TLS-inspecting proxy (as here) pip in a container needs the host's CA bundle;
    # repro downloads on the host and needs none in the build.
    ca = os.environ.get("PIP_CERT") or os.environ.get("SSL_CERT_FILE") or CA_BUNDLE
    shutil.copy(ca, context / "ca.crt")
    (context / "Dockerfile").write_text(
        f"FROM {base}\nCOPY requirements.lock ca.crt /tmp/\nENV PIP_CERT=/tmp/ca.crt\n"
        "RUN python3 -m venv /opt/env && /opt/env/bin/python -m pip install -q "
        "--require-hashes -r /tmp/requirements.lock\n"
    )
    tag = f"repro-bench-hand:py{python}"
    _rm_image(tag)
    build = ["docker", "build", "--no-cache", "-q", "-t", tag, str(context)]
    rows.append(
        _row("image by hand (cold)", timed(build, env={**os.environ, "DOCKER_BUILDKIT": "0"}))
    )
    _rm_image(tag)
    return rows


def _rm_image(tag: str) -> None:
    subprocess.run(["docker", "image", "rm", "-f", tag], capture_output=True, check=False)


def _print(version: str, rows: list[dict[str, object]]) -> None:
    by = {str(r["step"]): float(r["seconds"]) for r in rows}  # type: ignore[arg-type]
    print(f"\nPython {version}")
    for r in rows:
        flag = "" if r["ok"] else f"  FAILED: {r['error']}"
        print(f"  {r['step']:<22} {r['seconds']:>8.1f} s  (other CPU {r['other_cpu_pct']}%){flag}")
    for mine, theirs in (
        ("local (cold)", "venv by hand (cold)"),
        ("docker (cold)", "image by hand (cold)"),
    ):
        if by.get(theirs):
            print(f"  {mine} / {theirs}: {by[mine] / by[theirs]:.2f}x")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", default=[e.python for e in ERAS])
    parser.add_argument("--no-docker", action="store_true")
    parser.add_argument("--json", default=str(HERE / "results" / "pythons.json"))
    args = parser.parse_args()
    results: dict[str, object] = {"cpus": NCPU, "git": git_state(REPO), "pythons": {}}
    with tempfile.TemporaryDirectory(prefix="repro-bench-pythons-") as tmp:
        for version in args.only:
            rows = bench_era(version, Path(tmp), not args.no_docker)
            results["pythons"][version] = rows  # type: ignore[index]
            _print(version, rows)
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nwrote {out}")
    failed = [r for rows in results["pythons"].values() for r in rows if not r["ok"]]  # type: ignore[union-attr]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
