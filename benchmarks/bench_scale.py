#!/usr/bin/env python3
"""Benchmark studies of many small files (issue 20): capture, verify and unpack by file count.

For each size of the series (default 1k / 10k / 100k / 300k files of 1-8 KiB text), in one
run, side by side, page cache warm:

  capture:  `repro capture DIR --no-run --json` with a fresh stat cache (its stage timings
            listing / hashing / scan / write from --json), then a second capture of the
            unchanged data (stat cache warm; its % of the first); vs `tar czf`,
            `tar | pigz -1 -p 2`, and `find | xargs -0 -P 2 sha256sum` / `openssl dgst
            -sha256` (hashing alone); --capture-only stops there;
            With --second-only: only the captures, the second also without the block
            cache (REPRO_BLOCK_CACHE=0), each as % of the first;
            With --write-only: the captures (their write stage's wall and CPU seconds,
            this process and its worker processes, from a wrapper around write_capsule)
            and `tar czf`, `tar | pigz -1 -p 2` only;
  verify:   `repro verify CAPSULE --json` vs `tar tzf`;
  unpack:   repro.capsule.reader.read_capsule(CAPSULE, DEST) vs `tar xzf`.

Every command runs under `/usr/bin/time` (wall, user+sys CPU, peak RSS). The machine may be
shared: the CPU seconds and the ratios measured side by side are the figures to read.

Usage:  python benchmarks/bench_scale.py [--sizes 1000,10000,100000,300000] [--data-dir D]
        python benchmarks/bench_scale.py --read --sizes 10000,100000 [--repeat 3]
                (verify, unpack and `repro extract` alone, interleaved with tar tzf / tar
                xzf `--repeat` times, medians; results: benchmarks/results/scale-read.json)

Datasets are generated into $REPRO_BENCH_DIR (default /tmp/repro-bench-scale), reused
when present, never inside the repository. Results: benchmarks/results/scale.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
RESULTS = HERE / "results"
GENERATOR_VERSION = 1
WORDS = [b"alpha", b"beta", b"gamma", b"0.123", b"4.56e-3", b"subject", b"trial", b"x,y,z\n"]


def generate(root: Path, n: int, seed: int = 20) -> None:
    """`n` text files of 1-8 KiB, 1,000 per folder, and a repro.toml declaring them data."""
    rng = random.Random(seed)  # noqa: S311 (deterministic data)
    pool = bytearray()
    while len(pool) < 4 << 20:
        pool += rng.choice(WORDS) + b" "
    data = root / "data"
    data.mkdir(parents=True)
    for i in range(n):
        folder = data / f"d{i // 1000:04d}"
        if i % 1000 == 0:
            folder.mkdir()
        size = rng.randint(1024, 8192)
        start = rng.randrange(0, len(pool) - size)
        fd = os.open(folder / f"f{i:07d}.csv", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        os.write(fd, pool[start : start + size])
        os.close(fd)
    (root / "main.py").write_text("print('hi')\n")
    (root / "repro.toml").write_text('[capsule]\ntitle = "scale"\n[[data]]\npath = "data"\n')
    (root / ".bench-spec").write_text(f"{GENERATOR_VERSION} {n} {seed}\n")


def ensure(base: Path, n: int) -> Path:
    root = base / f"files-{n}"
    spec = f"{GENERATOR_VERSION} {n} 20\n"
    if (root / ".bench-spec").is_file() and (root / ".bench-spec").read_text() == spec:
        return root
    shutil.rmtree(root, ignore_errors=True)
    t0 = time.perf_counter()
    generate(root, n)
    print(f"  generated {n} files in {time.perf_counter() - t0:.0f} s", flush=True)
    # Old enough not to be "racily clean": the stat cache keeps them.
    time.sleep(2.5)
    return root


def timed(cmd: list[str] | str, env: dict[str, str] | None = None) -> dict[str, object]:
    """Run under GNU time: wall, CPU (user+sys) seconds, peak RSS MB; stdout kept."""
    shell = isinstance(cmd, str)
    argv = ["/usr/bin/time", "-f", "%e %U %S %M", *(["sh", "-c", cmd] if shell else cmd)]
    with tempfile.NamedTemporaryFile("r") as stats:
        argv[1:1] = ["-o", stats.name]
        # Run from a neutral folder: `python -m repro` puts the working directory first on
        # sys.path, before PYTHONPATH (a checkout there would shadow --baseline's).
        proc = subprocess.run(argv, env=env, capture_output=True, text=True, cwd="/")
        if proc.returncode != 0:
            raise RuntimeError(f"{cmd} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
        wall, user, sys_, rss = stats.read().split()[-4:]
    return {
        "wall_s": float(wall),
        "cpu_s": round(float(user) + float(sys_), 2),
        "peak_rss_mb": round(int(rss) * 1024 / 1e6, 1),
        "stdout": proc.stdout,
    }


BLOCK_CACHE_ENV = "REPRO_BLOCK_CACHE"
WRITE_STATS_ENV = "REPRO_BENCH_WRITE_STATS"
WRITE_STAGE_WRAPPER = """
import json, os, resource, sys, time
import repro.capture.write as w
real, stats = w.write_capsule, {}
def timed(*a, **k):
    use = lambda who: sum(resource.getrusage(who)[:2])
    t, me, kids = time.perf_counter(), use(resource.RUSAGE_SELF), use(resource.RUSAGE_CHILDREN)
    try:
        return real(*a, **k)
    finally:
        stats.update(wall_s=round(time.perf_counter() - t, 3),
                     cpu_s=round(use(resource.RUSAGE_SELF) - me
                                 + use(resource.RUSAGE_CHILDREN) - kids, 3))
w.write_capsule = timed
from repro.__main__ import main
try:
    main(sys.argv[1:])
finally:
    with open(os.environ["REPRO_BENCH_WRITE_STATS"], "w") as fh:
        json.dump(stats, fh)
"""


def repro_env(cache: Path) -> dict[str, str]:
    env = dict(os.environ)
    # As installed: compiled modules cached (without, every run compiles repro: seconds).
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.update(PYTHONPATH=str(REPO), REPRO_CACHE_DIR=str(cache), SOURCE_DATE_EPOCH="1700000000")
    return env


def warm(root: Path) -> None:
    # Through a pipe: GNU tar does not read the files when the archive is /dev/null.
    subprocess.run(["sh", "-c", f"tar cf - -C {root} . | cat > /dev/null"], check=True)


def bench_size(
    project: Path,
    n: int,
    work: Path,
    read: bool = True,
    baseline: Path | None = None,
    second_only: bool = False,
    write_only: bool = False,
) -> dict[str, object]:
    py = sys.executable
    cache = work / "cache"
    env = repro_env(cache)
    out: dict[str, object] = {"files": n}
    warm(project)
    capsule = work / "c.tgz"
    row: dict[str, dict[str, object]] = {}

    def capture(label: str, dest: Path, env: dict[str, str] = env) -> None:
        args = ["capture", str(project), "--no-run", "-o", str(dest), "--json"]
        if write_only:
            stats = work / "write-stage.json"
            r = timed([py, "-c", WRITE_STAGE_WRAPPER, *args], {**env, WRITE_STATS_ENV: str(stats)})
            r["write_stage"] = json.loads(stats.read_text())
        else:
            r = timed([py, "-m", "repro", *args], env)
        r["timings"] = json.loads(str(r.pop("stdout")))["timings"]
        row[label] = r

    if baseline is not None:  # --baseline: an older checkout's captures, in the same run
        base_env = repro_env(work / "base-cache") | {"PYTHONPATH": str(baseline)}
        capture("baseline_capture_first", work / "b.tgz", base_env)
        capture("baseline_capture_second", work / "b2.tgz", base_env)
        row["baseline_capture_second"]["identical"] = (work / "b.tgz").read_bytes() == (
            work / "b2.tgz"
        ).read_bytes()
        (work / "b2.tgz").unlink()
        shutil.rmtree(work / "base-cache")
    capture("repro_capture_first", capsule)
    if baseline is not None:
        row["repro_capture_first"]["identical_to_baseline"] = (
            capsule.read_bytes() == (work / "b.tgz").read_bytes()
        )
        (work / "b.tgz").unlink()
    if second_only:  # the second as it was before the block cache: files read, recompressed
        env[BLOCK_CACHE_ENV] = "0"
        capture("repro_capture_second_no_block_cache", work / "c2.tgz")
        del env[BLOCK_CACHE_ENV]
        row["repro_capture_second_no_block_cache"]["identical"] = (
            capsule.read_bytes() == (work / "c2.tgz").read_bytes()
        )
    capture("repro_capture_second", work / "c2.tgz")
    row["repro_capture_second"]["identical"] = (
        capsule.read_bytes() == (work / "c2.tgz").read_bytes()
    )
    (work / "c2.tgz").unlink()
    first, second = row["repro_capture_first"], row["repro_capture_second"]
    out["second_pct_of_first"] = {
        "wall": round(100 * float(second["wall_s"]) / float(first["wall_s"]), 1),  # type: ignore[arg-type]
        "cpu": round(100 * float(second["cpu_s"]) / float(first["cpu_s"]), 1),  # type: ignore[arg-type]
    }
    if second_only:
        plain = row["repro_capture_second_no_block_cache"]
        out["second_no_block_cache_pct_of_first"] = {
            "wall": round(100 * float(plain["wall_s"]) / float(first["wall_s"]), 1),  # type: ignore[arg-type]
            "cpu": round(100 * float(plain["cpu_s"]) / float(first["cpu_s"]), 1),  # type: ignore[arg-type]
        }
        out["runs"] = row
        shutil.rmtree(cache, ignore_errors=True)
        capsule.unlink(missing_ok=True)
        return out
    for label, cmd in {
        "tar_czf": f"tar czf {work}/t.tgz -C {project} .",
        "tar_pigz_1_p2": f"tar cf - -C {project} . | pigz -1 -p 2 > {work}/t.tgz",
        "sha256sum_xargs_p2": f"cd {project} && find . -type f -print0 | "
        "xargs -0 -n 1000 -P 2 sha256sum > /dev/null",
        "openssl_xargs_p2": f"cd {project} && find . -type f -print0 | "
        "xargs -0 -n 1000 -P 2 openssl dgst -sha256 > /dev/null",
    }.items():
        if ("pigz" in cmd and not shutil.which("pigz")) or (write_only and "sha256sum" in cmd):
            continue
        row[label] = timed(cmd)
        row[label].pop("stdout")
    if not read or write_only:  # --capture-only, --write-only
        for path in (capsule, work / "t.tgz"):
            path.unlink(missing_ok=True)
        shutil.rmtree(cache, ignore_errors=True)
        out["runs"] = row
        return out
    r = timed([py, "-m", "repro", "verify", str(capsule), "--json"], env)
    r.pop("stdout")
    row["repro_verify"] = r
    row["tar_tzf"] = timed(f"tar tzf {capsule} > /dev/null")
    row["tar_tzf"].pop("stdout")
    dest = work / "unpacked"
    unpack = (
        "from pathlib import Path; from repro.capsule.reader import read_capsule; "
        f"read_capsule(Path({str(capsule)!r}), Path({str(dest)!r}))"
    )
    row["repro_unpack"] = timed([py, "-c", unpack], env)
    row["repro_unpack"].pop("stdout")
    shutil.rmtree(dest)
    dest.mkdir()
    row["tar_xzf"] = timed(f"tar xzf {capsule} -C {dest}")
    row["tar_xzf"].pop("stdout")
    shutil.rmtree(dest)
    for path in (capsule, work / "t.tgz"):
        path.unlink(missing_ok=True)
    shutil.rmtree(cache, ignore_errors=True)
    out["runs"] = row
    return out


def bench_read(project: Path, n: int, work: Path, repeat: int) -> dict[str, object]:
    """Verify and unpack alone (`--read`): one capsule captured, then `repro verify` and
    `tar tzf`, repro's unpack (read_capsule, as replay does), `repro extract` and `tar xzf`,
    interleaved `repeat` times; each figure is the median of its runs."""
    py = sys.executable
    env = repro_env(work / "cache")
    capsule = work / "c.tgz"
    timed([py, "-m", "repro", "capture", str(project), "--no-run", "-o", str(capsule)], env)
    warm(work)  # the capsule in the page cache
    samples: dict[str, list[dict[str, object]]] = {}
    for i in range(repeat):
        # Each unpack into a folder of its own, all removed at the end: removing 100,000
        # files (ext4, online discard) slows the file creations that follow for a while.
        dest = work / f"unpacked-{i}"
        unpack = (
            "from pathlib import Path; from repro.capsule.reader import read_capsule; "
            f"read_capsule(Path({str(capsule)!r}), Path({str(dest) + '-r'!r}))"
        )
        commands: dict[str, list[str] | str] = {
            "repro_verify": [py, "-m", "repro", "verify", str(capsule), "--json"],
            "tar_tzf": f"tar tzf {capsule} > /dev/null",
            "repro_unpack": [py, "-c", unpack],
            "tar_xzf": f"mkdir {dest}-t && tar xzf {capsule} -C {dest}-t",
            "repro_extract": [py, "-m", "repro", "extract", str(capsule), "-o", f"{dest}-e"],
        }
        for label, cmd in commands.items():
            r = timed(cmd, env if label.startswith("repro") else None)
            r.pop("stdout")
            samples.setdefault(label, []).append(r)
            subprocess.run(["sync"], check=True)  # the last one's writeback not on the next
    row = {
        label: {
            key: sorted(float(str(r[key])) for r in runs)[len(runs) // 2]
            for key in ("wall_s", "cpu_s", "peak_rss_mb")
        }
        | {"runs": runs}
        for label, runs in samples.items()
    }
    capsule.unlink()
    return {"files": n, "repeat": repeat, "runs": row}


def read_table(results: list[dict]) -> str:
    lines = [
        "| files | measure | repro wall s | repro CPU s | peer | peer wall s | peer CPU s | "
        "wall ratio | CPU ratio | repro peak RSS MB |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    pairs = [
        ("verify", "repro_verify", "tar_tzf"),
        ("unpack (replay's)", "repro_unpack", "tar_xzf"),
        ("`repro extract`", "repro_extract", "tar_xzf"),
    ]
    for res in results:
        for label, mine, peer in pairs:
            a, b = res["runs"][mine], res["runs"][peer]
            lines.append(
                f"| {res['files']:,} | {label} | {a['wall_s']:.2f} | {a['cpu_s']:.2f} | "
                f"`{peer}` | {b['wall_s']:.2f} | {b['cpu_s']:.2f} | "
                f"{ratio(a['wall_s'], b['wall_s'])} | {ratio(a['cpu_s'], b['cpu_s'])} | "
                f"{a['peak_rss_mb']} |"
            )
    return "\n".join(lines)


def ratio(a: float, b: float) -> float:
    return round(a / b, 2) if b else float("nan")


def table(results: list[dict]) -> str:
    lines = [
        "| files | measure | repro wall s | repro CPU s | peer | peer wall s | peer CPU s | "
        "CPU ratio | repro s / 1k files (wall, CPU) | repro peak RSS MB |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    pairs = [
        ("capture (first), baseline", "baseline_capture_first", "tar_pigz_1_p2"),
        ("capture (second), baseline", "baseline_capture_second", "tar_pigz_1_p2"),
        ("capture (first)", "repro_capture_first", "tar_pigz_1_p2"),
        ("capture (first)", "repro_capture_first", "tar_czf"),
        ("capture (second)", "repro_capture_second", "tar_pigz_1_p2"),
        ("verify", "repro_verify", "tar_tzf"),
        ("unpack", "repro_unpack", "tar_xzf"),
    ]
    for res in results:
        n, runs = res["files"], res["runs"]
        for label, mine, peer in pairs:
            if mine not in runs or peer not in runs:
                continue
            a, b = runs[mine], runs[peer]
            lines.append(
                f"| {n:,} | {label} | {a['wall_s']:.2f} | {a['cpu_s']:.2f} | `{peer}` | "
                f"{b['wall_s']:.2f} | {b['cpu_s']:.2f} | {ratio(a['cpu_s'], b['cpu_s'])} | "
                f"{a['wall_s'] / n * 1000:.3f}, {a['cpu_s'] / n * 1000:.3f} | "
                f"{a['peak_rss_mb']} |"
            )
    lines += [
        "",
        "| files | list s | hash+scan s | scan (rest) s | write s "
        "| second: list / hash / scan / write s | second % of first (wall, CPU) "
        "| sha256sum -P 2 wall, CPU s | openssl -P 2 wall, CPU s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for res in results:
        runs = res["runs"]
        t1 = runs["repro_capture_first"]["timings"]
        t2 = runs["repro_capture_second"]["timings"]
        sha = runs.get("sha256sum_xargs_p2", {})
        ossl = runs.get("openssl_xargs_p2", {})
        pct = res.get("second_pct_of_first", {})
        lines.append(
            f"| {res['files']:,} | {t1['list']:.2f} | {t1['hash']:.2f} | {t1['scan']:.2f} | "
            f"{t1['write']:.2f} | {t2['list']:.2f} / {t2['hash']:.2f} / {t2['scan']:.2f} / "
            f"{t2['write']:.2f} | {pct.get('wall', '-')} %, {pct.get('cpu', '-')} % | "
            f"{sha.get('wall_s', '-')}, {sha.get('cpu_s', '-')} "
            f"| {ossl.get('wall_s', '-')}, {ossl.get('cpu_s', '-')} |"
        )
    lines += [
        "",
        "| files | second capture, % of first (wall, CPU) | peak RSS first / second MB "
        "| peak RSS per file (first) | identical capsule |",
        "|---|---|---|---|---|",
    ]
    for res in results:
        n, runs = res["files"], res["runs"]
        for who in ("baseline", "repro"):
            if f"{who}_capture_first" not in runs:
                continue
            a, b = runs[f"{who}_capture_first"], runs[f"{who}_capture_second"]
            same = a.get("identical_to_baseline")
            lines.append(
                f"| {n:,}{' (baseline)' if who == 'baseline' else ''} "
                f"| {100 * b['wall_s'] / a['wall_s']:.0f} %, "
                f"{100 * b['cpu_s'] / a['cpu_s']:.0f} % | {a['peak_rss_mb']} / "
                f"{b['peak_rss_mb']} | {a['peak_rss_mb'] * 1e6 / n:,.0f} B | {b.get('identical')}"
                f"{'' if same is None else f', same as baseline: {same}'} |"
            )
    if any("write_stage" in res["runs"]["repro_capture_first"] for res in results):
        lines += [
            "",
            "| files | write stage, first (wall, CPU s) | write stage, second | capture, first "
            "| capture, second | `tar \\| pigz -1 -p 2` | `tar czf` | second == first |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for res in results:
            runs = res["runs"]
            first, second = runs["repro_capture_first"], runs["repro_capture_second"]
            cells = [
                f"{r['wall_s']:.2f}, {r['cpu_s']:.2f}"
                for r in (
                    first["write_stage"],
                    second["write_stage"],
                    first,
                    second,
                    runs.get("tar_pigz_1_p2", {"wall_s": 0, "cpu_s": 0}),
                    runs["tar_czf"],
                )
            ]
            same = second["identical"]
            lines.append(f"| {res['files']:,} | " + " | ".join(cells) + f" | {same} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1000,10000,100000,300000")
    parser.add_argument(
        "--capture-only", action="store_true", help="captures and their peers, no verify/unpack"
    )
    parser.add_argument(
        "--baseline", type=Path, help="also capture with this checkout of repro (before/after)"
    )
    parser.add_argument(
        "--data-dir", type=Path, default=Path(os.environ.get("REPRO_BENCH_DIR", "/tmp"))
    )
    parser.add_argument("--json", type=Path, default=RESULTS / "scale.json")
    parser.add_argument("--keep-data", action="store_true", help="leave the datasets in place")
    parser.add_argument(
        "--second-only",
        action="store_true",
        help="only the first and second captures (the second as %% of the first)",
    )
    parser.add_argument(
        "--write-only",
        action="store_true",
        help="the captures with their write stage's wall and CPU, and tar czf, tar | pigz",
    )
    parser.add_argument(
        "--read",
        action="store_true",
        help="verify and unpack only, against tar tzf / tar xzf (results: scale-read.json)",
    )
    parser.add_argument("--repeat", type=int, default=3, help="runs of each, with --read")
    args = parser.parse_args()
    if args.read:
        main_read(args)
        return
    base = args.data_dir / "repro-bench-scale"
    base.mkdir(parents=True, exist_ok=True)
    results = []
    started = time.time()
    load_before = os.getloadavg()
    for n in [int(s) for s in args.sizes.split(",")]:
        print(f"{n} files", flush=True)
        project = ensure(base, n)
        work = Path(tempfile.mkdtemp(prefix="run-", dir=base))
        try:
            results.append(
                bench_size(
                    project,
                    n,
                    work,
                    read=not args.capture_only,
                    baseline=args.baseline,
                    second_only=args.second_only,
                    write_only=args.write_only,
                )
            )
        finally:
            shutil.rmtree(work, ignore_errors=True)
            if not args.keep_data:
                shutil.rmtree(project, ignore_errors=True)
        print(table(results[-1:]), flush=True)
        write_results(args.json, results, started, load_before)  # after each size
    print(table(results))
    print(f"wrote {args.json}")


def main_read(args: argparse.Namespace) -> None:
    base = args.data_dir / "repro-bench-scale"
    base.mkdir(parents=True, exist_ok=True)
    out = args.json if args.json != RESULTS / "scale.json" else RESULTS / "scale-read.json"
    results = []
    started, load_before = time.time(), os.getloadavg()
    for n in [int(s) for s in args.sizes.split(",")]:
        print(f"{n} files", flush=True)
        project = ensure(base, n)
        work = Path(tempfile.mkdtemp(prefix="read-", dir=base))
        try:
            results.append(bench_read(project, n, work, args.repeat))
        finally:
            shutil.rmtree(work, ignore_errors=True)
            if not args.keep_data:
                shutil.rmtree(project, ignore_errors=True)
        print(read_table(results[-1:]), flush=True)
        write_results(out, results, started, load_before)
    print(read_table(results))
    print(f"wrote {out}")


def write_results(path: Path, results: list[dict], started: float, load_before: tuple) -> None:
    head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True,
                          text=True).stdout.strip()  # fmt: skip
    if not head and (REPO / "GIT_HEAD").is_file():  # run from an exported copy
        head = (REPO / "GIT_HEAD").read_text().strip()
    doc = {
        "benchmark": "bench_scale",
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "seconds": round(time.time() - started),
        "git_head": head,
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "loadavg_before": list(load_before),
            "loadavg_after": os.getloadavg(),
        },
        "results": results,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2) + "\n")


if __name__ == "__main__":
    main()
