#!/usr/bin/env python3
"""What checking a cached venv against the record of its files costs before reuse.

Builds (or reuses) a venv of numpy + pandas from a hashed lock through repro's own
`build_venv`, then times `check_tree` (one lstat per file; nothing re-read while the stat
matches), the record written at build time, and a whole reuse through `build_venv`.

Usage:  python benchmarks/bench_venv_check.py [--repeat 7] [--packages numpy pandas]
Needs PyPI (through this machine's proxy) for the first build; scratch in $REPRO_BENCH_DIR
(default /tmp/repro-bench-data), kept so a second run skips the build.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--packages", nargs="+", default=["numpy", "pandas"])
    ap.add_argument(
        "--data-dir",
        type=Path,
        default=Path(os.environ.get("REPRO_BENCH_DIR", "/tmp/repro-bench-data")),
    )
    args = ap.parse_args()
    scratch = args.data_dir / "venv-check"
    scratch.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("REPRO_CACHE_DIR", str(scratch / "cache"))

    from repro.env.file_record import check_tree, record_tree
    from repro.env.lock import uv_bin
    from repro.env.virtualenv import RECORD_SUFFIX, build_venv

    req_in = scratch / "requirements.in"
    req_in.write_text("\n".join(args.packages) + "\n")
    lock = scratch / "requirements.lock"
    mm = f"{sys.version_info.major}.{sys.version_info.minor}"
    subprocess.run(
        [
            uv_bin(),
            "pip",
            "compile",
            "--quiet",
            "--generate-hashes",
            "--python-version",
            mm,
            str(req_in),
            "-o",
            str(lock),
        ],
        check=True,
    )
    t0 = time.perf_counter()
    venv = build_venv(lock.read_text(), mm, cache_root=scratch / "venvs")
    built = time.perf_counter() - t0
    record = venv.root.parent / f"{venv.root.name}{RECORD_SUFFIX}"
    files = sum(len(names) for _, _, names in os.walk(venv.root))
    mib = (
        sum((Path(d) / n).lstat().st_size for d, _, names in os.walk(venv.root) for n in names)
        / 2**20
    )

    checks = []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        assert check_tree(venv.root, record) is None
        checks.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    record_tree(venv.root, record)
    recording = time.perf_counter() - t0
    t0 = time.perf_counter()
    assert build_venv(lock.read_text(), mm, cache_root=scratch / "venvs").reused
    reuse = time.perf_counter() - t0

    print(f"venv of {' + '.join(args.packages)}: {files} files, {mib:.0f} MiB")
    print(f"build (or reuse) at start: {built:.1f} s")
    print(
        f"check before reuse: median {statistics.median(checks) * 1000:.0f} ms "
        f"(min {min(checks) * 1000:.0f}, max {max(checks) * 1000:.0f}, n={args.repeat})"
    )
    print(f"record at build end (sha256 of every file): {recording:.2f} s")
    print(f"whole reuse through build_venv (lock, check): {reuse * 1000:.0f} ms")
    print(f"load average: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
