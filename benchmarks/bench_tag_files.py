#!/usr/bin/env python3
"""How capsule writing scales with the number of files (not their size).

Captures projects of N one-line files (N = 1,000 .. 8,000 by default) in process and reports
the `write` stage and, inside it, `repro.capsule.layout.tag_files` (the bagit manifests).
Doubling N should roughly double both; a 4x step means a quadratic cost.

Usage:  python benchmarks/bench_tag_files.py [--counts 1000 2000 4000 8000]
Scratch projects live under $REPRO_BENCH_DIR (default /tmp/repro-bench-data) and are removed.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--counts", type=int, nargs="+", default=[1000, 2000, 4000, 8000])
    ap.add_argument(
        "--data-dir",
        type=Path,
        default=Path(os.environ.get("REPRO_BENCH_DIR", "/tmp/repro-bench-data")),
    )
    args = ap.parse_args()
    args.data_dir.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="bench-tags-", dir=args.data_dir))
    os.environ["REPRO_CACHE_DIR"] = str(scratch / "cache")

    import repro.capsule.writer as writer
    import repro.capture.pipeline as pipeline

    # Time tag_files where the writer calls it.
    spent: dict[str, float] = {}
    original = writer.tag_files

    def timed_tag_files(*a, **kw):  # type: ignore[no-untyped-def]
        t0 = time.perf_counter()
        try:
            return original(*a, **kw)
        finally:
            spent["tag_files"] = time.perf_counter() - t0

    writer.tag_files = timed_tag_files
    rows = []
    manifest = None
    try:
        for n in args.counts:
            project = scratch / f"p{n}"
            for i in range(n):
                folder = project / f"d{i % 50:02d}"
                folder.mkdir(parents=True, exist_ok=True)
                (folder / f"f{i:06d}.txt").write_text(f"{i}\n")
            opts = pipeline.CaptureOptions(
                project=project, output=scratch / f"p{n}.tgz", execute=False, use_hash_cache=False
            )
            result = pipeline.capture(opts)
            manifest = result.manifest
            rows.append((n, result.timings["write"], spent["tag_files"]))
            (scratch / f"p{n}.tgz").unlink()
            shutil.rmtree(project)
            print(
                f"{n:6d} files: write {result.timings['write']:7.3f} s, "
                f"tag_files {spent['tag_files']:7.3f} s",
                flush=True,
            )
        if manifest is not None:
            prof = cProfile.Profile()
            prof.runcall(original, manifest, manifest.canonical_json())
            out = io.StringIO()
            pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(5)
            print(f"\ncProfile of tag_files for {args.counts[-1]} files:")
            print("\n".join(line for line in out.getvalue().splitlines() if line.strip()))
    finally:
        writer.tag_files = original
        shutil.rmtree(scratch, ignore_errors=True)
    if len(rows) >= 2:
        (n0, _, t0), (n1, _, t1) = rows[-2], rows[-1]
        print(f"\n{n0} -> {n1} files: tag_files x{t1 / t0:.1f} for x{n1 / n0:.1f} files")
    return 0


if __name__ == "__main__":
    sys.exit(main())
