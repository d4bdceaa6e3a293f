#!/usr/bin/env python3
"""Benchmark `repro capture` hashing and capsule writing side by side with peers.

Everything runs in one invocation, on one deterministic dataset, with the page cache warm:

  1. hashing:   repro.hashing.hash_files (threads) vs `openssl dgst -sha256`
                (one process; two parallel processes), `sha256sum`, and bagit's make_bag
                (sha256, 2 processes, on a hard-linked copy);
  2. writing:   the `write` stage of a real `repro capture --no-run` vs `tar czf` and
                other tar | gzip-family pipelines on the same files;
  3. stat cache: second capture of unchanged data, `hash` stage as a % of the first's;
  4. memory:    peak RSS of the whole `repro capture` process, on the dataset and on one
                3 GiB sparse-ish file.

Usage:  python benchmarks/bench_capture.py [--size-gib 1] [--files 2000] [--repeat 3]

The dataset is generated once into $REPRO_BENCH_DIR (default /tmp/repro-bench-data) and
reused; nothing large is written inside the repository. Results are printed as a table and
written to benchmarks/results/capture.json. See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import collections
import importlib
import json
import logging
import math
import os
import platform
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
# Measure this checkout's repro, whatever the editable install currently points at.
sys.path.insert(0, str(REPO))
RESULTS = HERE / "results"
KiB, MiB, GiB = 1 << 10, 1 << 20, 1 << 30
GENERATOR_VERSION = 1  # bump when the data generator changes, so cached datasets are rebuilt

TARGETS = {
    "hash_vs_openssl_1proc": 1.6,  # repro hashing throughput >= 1.6x single-process openssl
    "hash_vs_bagit_2proc": 1.0,  # repro hashing faster than bagit with 2 processes
    "write_vs_tar_czf": 5.0,  # repro write stage >= 5x faster than `tar czf`
    "second_capture_hash_pct": 5.0,  # second capture's hash stage < 5% of the first's
    "peak_rss_mb": 150.0,  # peak RSS of `repro capture` < 150 MB (10^6 bytes)
}


# --- dataset --------------------------------------------------------------------------------


def plan_sizes(n: int, total: int, seed: int, lo: int = KiB, hi: int = 64 * MiB) -> list[int]:
    """File sizes for `n` files summing to exactly `total` bytes, between ~lo and ~hi.

    A plain log-uniform draw over [1 KiB, 64 MiB] has a mean of ~5.8 MiB, so 2,000 files
    would weigh ~11 GiB. To keep the 1 KiB..64 MiB spread *and* hit the requested total, the
    distribution is piecewise log-uniform: a "body" of small files log-uniform in [lo, 1 MiB)
    and a "tail" of large files log-uniform in [1 MiB, hi]; the tail's share of the count is
    solved so that the expected sum equals `total` (for 1 GiB / 2,000 files: ~49 tail files
    holding ~73% of the bytes). Both parts are drawn by stratified sampling, so a small sample
    follows the distribution closely, and the tail is then rescaled to hit `total` exactly.
    """
    rng = random.Random(seed)  # noqa: S311 (deterministic data, not crypto)
    mid = min(MiB, hi)

    def log_uniform(count: int, a: int, b: int) -> list[float]:
        la, lb = math.log(a), math.log(b)
        return [math.exp(la + (lb - la) * (i + rng.random()) / count) for i in range(count)]

    def mean(a: int, b: int) -> float:
        return (b - a) / math.log(b / a)

    mean_body, mean_tail = mean(lo, mid), mean(mid, hi)
    n_tail = round((total - n * mean_body) / (mean_tail - mean_body))
    n_tail = max(0, min(n - 1, n_tail))
    body = log_uniform(n - n_tail, lo, mid)
    tail = log_uniform(n_tail, mid, hi) if n_tail else []
    if tail:
        scale = (total - sum(body)) / sum(tail)
        if scale <= 0:
            tail, body = [], body + [0.0] * n_tail
    if not tail:
        # Tiny totals: everything comes from the body, scaled down.
        scale = total / sum(body)
        body = [b * scale for b in body]
    else:
        tail = [t * scale for t in tail]
    sizes = [max(1, int(s)) for s in body + tail]
    sizes[sizes.index(max(sizes))] += total - sum(sizes)  # exact total
    rng.shuffle(sizes)
    return sizes


def _text_pool(rng: random.Random, size: int) -> bytes:
    """Synthetic log/CSV lines: timestamps, levels, ids, floats and a few words."""
    words = (
        "sensor",
        "calibration",
        "ok",
        "drift",
        "retry",
        "batch",
        "sample",
        "flush",
        "timeout",
        "checkpoint",
        "epoch",
        "loss",
        "accuracy",
        "gradient",
        "warmup",
    )
    levels = ("INFO", "INFO", "INFO", "DEBUG", "WARN", "ERROR")
    lines: list[str] = []
    n = 0
    t = 1_700_000_000.0
    while n < size:
        t += rng.expovariate(20.0)
        tm = time.gmtime(t)
        line = (
            f"{tm.tm_year}-{tm.tm_mon:02d}-{tm.tm_mday:02d}T{tm.tm_hour:02d}:{tm.tm_min:02d}:"
            f"{tm.tm_sec:02d}.{int(t * 1000) % 1000:03d}Z,{rng.choice(levels)},"
            f"node-{rng.randrange(64):02d},{rng.randrange(1 << 20)},{rng.gauss(0, 1):.6f},"
            f"{rng.random() * 1e3:.3f},"
            f"{' '.join(rng.choice(words) for _ in range(rng.randrange(1, 6)))}\n"
        )
        lines.append(line)
        n += len(line)
    return "".join(lines).encode()[:size]


SEGMENT = 64 * KiB
TEXT_SHARE = 0.55  # share of 64 KiB segments that are text; the rest are random bytes


def generate_dataset(root: Path, sizes: list[int], seed: int) -> None:
    """Write the files: each is a sequence of 64 KiB segments, each segment either random bytes
    (incompressible) or synthetic log text (compresses ~3x), drawn from two pools at random
    offsets. Roughly 55% text by bytes: a gzip -1 / isal level-1 archive is ~65-69% of the
    payload (gzip -6: ~62%), i.e. 'compressible-ish' like real research data (mixed logs,
    CSVs and binaries). The pools are far larger than deflate's 32 KiB window, so reuse is
    invisible to gzip.
    """
    rng = random.Random(seed + 1)  # noqa: S311
    rand_pool = rng.randbytes(64 * MiB)
    text_pool = _text_pool(rng, 16 * MiB)
    n_groups = max(1, len(sizes) // 50)
    for i, size in enumerate(sizes):
        folder = root / "data" / f"group_{i % n_groups:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        ext = (".csv", ".log", ".bin", ".dat")[i % 4]
        with (folder / f"file_{i:05d}{ext}").open("wb") as fh:
            left = size
            while left:
                n = min(SEGMENT, left)
                pool = text_pool if rng.random() < TEXT_SHARE else rand_pool
                off = rng.randrange(len(pool) - n + 1)
                fh.write(pool[off : off + n])
                left -= n
    (root / "README.md").write_text("Synthetic benchmark dataset for repro capture.\n")


def ensure_dataset(base: Path, size: int, n_files: int, seed: int) -> tuple[Path, dict]:
    spec = {"generator": GENERATOR_VERSION, "bytes": size, "files": n_files, "seed": seed}
    home = base / f"dataset-{size // MiB}MiB-{n_files}f-seed{seed}-v{GENERATOR_VERSION}"
    project = home / "project"
    marker = home / "spec.json"
    if marker.is_file() and json.loads(marker.read_text()).get("spec") == spec:
        return project, json.loads(marker.read_text())
    print(f"generating dataset in {home} ...", flush=True)
    shutil.rmtree(home, ignore_errors=True)
    project.mkdir(parents=True)
    t0 = time.perf_counter()
    sizes = plan_sizes(n_files - 1, size, seed)  # + README.md
    generate_dataset(project, sizes, seed)
    info = {
        "spec": spec,
        "distribution": "piecewise log-uniform: body in [1 KiB, 1 MiB), tail in [1 MiB, 64 MiB]",
        "content": f"64 KiB segments, {TEXT_SHARE:.0%} synthetic log/CSV text, rest random bytes",
        "generated_in_s": round(time.perf_counter() - t0, 1),
    }
    marker.write_text(json.dumps(info, indent=2))
    return project, info


def ensure_big_file(base: Path, size: int, seed: int) -> Path:
    """One `size`-byte file, sparse-ish: a hole with a 1 MiB random block every 64 MiB."""
    home = base / f"bigfile-{size // MiB}MiB-seed{seed}-v{GENERATOR_VERSION}"
    project = home / "project"
    target = project / "big.bin"
    marker = home / "done"
    config = project / "repro.toml"
    # Above repro's default per-file limit (2 GiB), so the benchmark project raises it.
    config_text = f"[capture]\nmax_file_size = {size + GiB}\n"
    if marker.is_file() and target.is_file() and target.stat().st_size == size:
        if not config.is_file() or config.read_text() != config_text:
            config.write_text(config_text)
        return project
    print(f"generating {size / GiB:.1f} GiB sparse-ish file in {home} ...", flush=True)
    shutil.rmtree(home, ignore_errors=True)
    project.mkdir(parents=True)
    rng = random.Random(seed + 2)  # noqa: S311
    with target.open("wb") as fh:
        fh.truncate(size)
        for off in range(0, size - MiB + 1, 64 * MiB):
            fh.seek(off)
            fh.write(rng.randbytes(MiB))
    config.write_text(config_text)
    marker.write_text("ok\n")
    return project


def list_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def warm(paths: list[Path]) -> float:
    t0 = time.perf_counter()
    buf = bytearray(MiB)
    for p in paths:
        with p.open("rb", buffering=0) as fh:
            while fh.readinto(buf):
                pass
    return time.perf_counter() - t0


def wait_until_older_than(paths: list[Path], seconds: float) -> None:
    newest = max(p.stat().st_mtime for p in paths)
    delay = newest + seconds + 0.5 - time.time()
    if delay > 0:
        print(f"waiting {delay:.1f} s so no file is 'racily clean' for the stat cache", flush=True)
        time.sleep(delay)


# --- measurement helpers --------------------------------------------------------------------


CLK = os.sysconf("SC_CLK_TCK")
NCPU = os.cpu_count() or 1


def cpu_snapshot() -> tuple[float, float, float]:
    """(machine busy CPU-seconds, this process tree's CPU-seconds, wall clock)."""
    with Path("/proc/stat").open() as fh:
        v = [int(x) for x in fh.readline().split()[1:9]]
    busy = (v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / CLK  # all but idle and iowait
    t = os.times()
    return busy, t.user + t.system + t.children_user + t.children_system, time.perf_counter()


def foreign_cpu_pct(before: tuple[float, float, float], after: tuple[float, float, float]) -> float:
    """Share of the machine's CPUs busy with *other* processes between two snapshots."""
    wall = after[2] - before[2]
    other = (after[0] - before[0]) - (after[1] - before[1])
    return max(0.0, 100 * other / (wall * NCPU)) if wall > 0 else 0.0


@dataclass
class Measure:
    name: str
    times: list[float]
    nbytes: int
    note: str = ""
    other_cpu_pct: list[float] = field(default_factory=list)
    cpu_s: list[float] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        """Best of the runs: the estimate least disturbed by other load on the machine."""
        return min(self.times)

    @property
    def median(self) -> float:
        return statistics.median(self.times)

    @property
    def mib_s(self) -> float:
        return self.nbytes / MiB / self.seconds

    @property
    def cpu_per_gib(self) -> float:
        """CPU-seconds (all threads and child processes) per GiB: the cost other load on the
        machine does not change much, unlike wall time."""
        return statistics.median(self.cpu_s) / (self.nbytes / GiB) if self.cpu_s else float("nan")

    @property
    def cores_used(self) -> float:
        """CPU-seconds / wall seconds of the best run: the parallelism actually achieved."""
        if not self.cpu_s:
            return float("nan")
        best = self.times.index(min(self.times))
        return self.cpu_s[best] / self.times[best]

    @property
    def contention(self) -> float:
        return statistics.median(self.other_cpu_pct) if self.other_cpu_pct else float("nan")

    def as_dict(self) -> dict:
        return {
            "name": self.name,
            "seconds_best": round(self.seconds, 4),
            "seconds_median": round(self.median, 4),
            "seconds_all": [round(t, 4) for t in self.times],
            "mib_per_s_best": round(self.mib_s, 1),
            "note": self.note,
            "other_cpu_pct": [round(c, 1) for c in self.other_cpu_pct],
            "cpu_s": [round(c, 3) for c in self.cpu_s],
            "cpu_s_per_gib": round(self.cpu_per_gib, 3) if self.cpu_s else None,
        }


@dataclass
class Job:
    measure: Measure
    fn: Callable[[], None]
    repeat: int
    setup: Callable[[], None] | None = None
    teardown: Callable[[], None] | None = None


def wait_for_quiet(max_wait: float, threshold: float = 10.0, window: float = 0.5) -> float:
    """Wait (at most max_wait s) for a `window` in which other processes use < threshold % of
    the CPUs; returns the seconds waited. The machine may be shared (CI, other sessions)."""
    t0 = time.perf_counter()
    while True:
        before = cpu_snapshot()
        time.sleep(window)
        if foreign_cpu_pct(before, cpu_snapshot()) < threshold:
            return time.perf_counter() - t0
        if time.perf_counter() - t0 >= max_wait:
            return time.perf_counter() - t0


def run_interleaved(jobs: list[Job], idle_wait: float = 0.0) -> None:
    """Round-robin over the jobs, so a burst of load elsewhere hits every tool alike."""
    for r in range(max(j.repeat for j in jobs)):
        for job in jobs:
            if idle_wait > 0:
                wait_for_quiet(idle_wait)
            if r >= job.repeat:
                continue
            if job.setup:
                job.setup()
            before = cpu_snapshot()
            t0 = time.perf_counter()
            job.fn()
            job.measure.times.append(time.perf_counter() - t0)
            after = cpu_snapshot()
            job.measure.other_cpu_pct.append(foreign_cpu_pct(before, after))
            job.measure.cpu_s.append(after[1] - before[1])
            if job.teardown:
                job.teardown()


def run(cmd: list[str] | str, **kw) -> subprocess.CompletedProcess:
    shell = isinstance(cmd, str)
    return subprocess.run(
        cmd, check=True, shell=shell, executable="/bin/bash" if shell else None, **kw
    )


def fsync_path(path: Path) -> float:
    t0 = time.perf_counter()
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    return time.perf_counter() - t0


def parse_openssl(out: str, root: Path) -> dict[str, str]:
    digests = {}
    for line in out.splitlines():
        m = re.match(r"SHA2?-?256\((.*)\)= ([0-9a-f]{64})$", line)
        if m:
            digests[str((root / m.group(1)).resolve())] = m.group(2)
    return digests


def split_balanced(rels: list[str], sizes: dict[str, int], parts: int) -> list[list[str]]:
    """Greedy split by bytes (largest first), so each process gets the same amount of work."""
    buckets: list[tuple[int, list[str]]] = [(0, []) for _ in range(parts)]
    for rel in sorted(rels, key=lambda r: -sizes[r]):
        i = min(range(parts), key=lambda k: buckets[k][0])
        buckets[i] = (buckets[i][0] + sizes[rel], buckets[i][1] + [rel])
    return [b for _, b in buckets]


# --- stage 1: hashing ------------------------------------------------------------------------


def bench_hashing(
    project: Path, paths: list[Path], nbytes: int, repeat: int, scratch: Path, idle_wait: float
) -> tuple[list[Measure], dict]:
    from repro.hashing import hash_files

    rels = [str(p.relative_to(project)) for p in paths]
    sizes = {r: p.stat().st_size for r, p in zip(rels, paths, strict=True)}
    checks: dict = {}
    jobs: list[Job] = []
    results: dict = {}

    # repro, in process, default worker count (threads), no stat cache.
    def repro_hash() -> None:
        results["repro"] = hash_files(paths, cache=None)

    jobs.append(
        Job(
            Measure(
                "repro hash_files (threads, default workers)",
                [],
                nbytes,
                f"workers=min(8, cpu_count)={min(8, NCPU)}",
            ),
            repro_hash,
            repeat,
        )
    )
    jobs.append(
        Job(
            Measure(
                "repro hash_files (workers=1, reference)",
                [],
                nbytes,
                "same code, one thread: the per-core baseline",
            ),
            lambda: hash_files(paths, cache=None, workers=1),
            repeat,
        )
    )

    # openssl, one process, every file on one command line (no xargs batching).
    assert sum(len(r) + 1 for r in rels) < 1_000_000, "file list too long for one command line"

    def openssl_one() -> None:
        results["openssl"] = run(
            ["openssl", "dgst", "-sha256", *rels], cwd=project, capture_output=True, text=True
        ).stdout

    jobs.append(
        Job(
            Measure("openssl dgst -sha256, 1 process", [], nbytes, "all files in one invocation"),
            openssl_one,
            repeat,
        )
    )

    halves = split_balanced(rels, sizes, 2)

    def openssl_two() -> None:
        procs = [
            subprocess.Popen(
                ["openssl", "dgst", "-sha256", *h], cwd=project, stdout=subprocess.DEVNULL
            )
            for h in halves
        ]
        if any(p.wait() != 0 for p in procs):
            raise RuntimeError("openssl failed")

    jobs.append(
        Job(
            Measure(
                "openssl dgst -sha256, 2 parallel processes",
                [],
                nbytes,
                "file list split in two halves balanced by bytes",
            ),
            openssl_two,
            repeat,
        )
    )
    # coreutils sha256sum has no SHA-NI path here and is slow: one run is enough.
    jobs.append(
        Job(
            Measure("sha256sum (coreutils), 1 process", [], nbytes, "one run"),
            lambda: run(["sha256sum", *rels], cwd=project, stdout=subprocess.DEVNULL),
            1,
        )
    )

    # bagit: make_bag on a hard-linked copy (cp -al), so no file data is rewritten; only
    # make_bag is timed (it walks, moves the links into data/, hashes, writes manifests).
    try:
        import bagit
    except ImportError:
        bagit = None
    if bagit is not None:
        logging.getLogger("bagit").setLevel(logging.WARNING)
        copy = scratch / "bagit-copy"

        def setup() -> None:
            shutil.rmtree(copy, ignore_errors=True)
            run(["cp", "-al", str(project), str(copy)])

        def make() -> None:
            bagit.make_bag(str(copy), checksums=["sha256"], processes=2)

        def teardown() -> None:
            lines = (copy / "manifest-sha256.txt").read_text().splitlines()
            checks["bagit_manifest_lines"] = len(lines)
            shutil.rmtree(copy, ignore_errors=True)

        jobs.append(
            Job(
                Measure(
                    "bagit make_bag(sha256, processes=2)",
                    [],
                    nbytes,
                    f"bagit {getattr(bagit, 'VERSION', '?')}, on a cp -al copy",
                ),
                make,
                repeat,
                setup,
                teardown,
            )
        )

    # Diagnostics: the same tools on the small files and on the large files separately, to
    # show where repro's time goes (per-file overhead vs streaming throughput).
    split: list[Job] = []
    for label, keep in (("< 1 MiB", lambda n: n < MiB), (">= 1 MiB", lambda n: n >= MiB)):
        sub = [r for r in rels if keep(sizes[r])]
        if not sub:
            continue
        sub_paths = [project / r for r in sub]
        sub_bytes = sum(sizes[r] for r in sub)
        tag = f"[{len(sub)} files {label}]"
        halves_sub = split_balanced(sub, sizes, 2)

        def ossl(parts: list[list[str]]) -> Callable[[], None]:
            def go() -> None:
                procs = [
                    subprocess.Popen(
                        ["openssl", "dgst", "-sha256", *h], cwd=project, stdout=subprocess.DEVNULL
                    )
                    for h in parts
                ]
                if any(p.wait() != 0 for p in procs):
                    raise RuntimeError("openssl failed")

            return go

        split += [
            Job(
                Measure(f"{tag} repro hash_files (threads)", [], sub_bytes),
                lambda sp=sub_paths: hash_files(sp, cache=None),
                repeat,
            ),
            Job(Measure(f"{tag} openssl, 1 process", [], sub_bytes), ossl([sub]), repeat),
            Job(Measure(f"{tag} openssl, 2 processes", [], sub_bytes), ossl(halves_sub), repeat),
        ]

    run_interleaved(jobs + split, idle_wait)
    repro_digests = {str(p.resolve()): d.sha256 for p, d in results["repro"].items()}
    ossl_digests = parse_openssl(results["openssl"], project)
    checks["openssl_digests_match_repro"] = ossl_digests == repro_digests
    return [j.measure for j in jobs], [j.measure for j in split], checks


# --- stage 2-4: captures ---------------------------------------------------------------------


@dataclass
class Capture:
    label: str
    wall_s: float
    timings: dict
    peak_rss_mb: float | None
    archive_size: int
    payload_size: int
    other_cpu_pct: float
    cpu_s: float


def repro_cmd() -> list[str]:
    return [sys.executable, "-m", "repro"]


def repro_env(**extra: str) -> dict[str, str]:
    """The subprocess imports this checkout's repro (PYTHONPATH first), not another install."""
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
    return dict(os.environ, PYTHONPATH=path, **extra)


def run_capture(
    label: str, project: Path, out: Path, cache_dir: Path, *, no_cache: bool, keep: bool = False
) -> Capture:
    cmd = [*repro_cmd(), "capture", str(project), "--no-run", "-o", str(out), "--json"]
    if no_cache:
        cmd.append("--no-hash-cache")
    env = repro_env(REPRO_CACHE_DIR=str(cache_dir))
    time_bin = shutil.which("time") or "/usr/bin/time"
    use_time = Path(time_bin).exists() and _gnu_time(time_bin)
    before = cpu_snapshot()
    t0 = time.perf_counter()
    if use_time:
        proc = subprocess.run([time_bin, "-v", *cmd], env=env, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr)
        rss = int(m.group(1)) * 1024 / 1e6 if m else None
    else:
        proc, rss = _run_polling_rss(cmd, env)
        wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"capture failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    data = json.loads(proc.stdout)
    after = cpu_snapshot()
    cap = Capture(
        label,
        wall,
        data["timings"],
        rss,
        data["archive_size"],
        data["payload_size"],
        foreign_cpu_pct(before, after),
        after[1] - before[1],
    )
    if not keep:
        out.unlink(missing_ok=True)
    return cap


def _gnu_time(path: str) -> bool:
    try:
        r = subprocess.run([path, "-v", "true"], capture_output=True, text=True)
    except OSError:
        return False
    return "Maximum resident set size" in r.stderr


def _run_polling_rss(cmd: list[str], env: dict) -> tuple[subprocess.CompletedProcess, float | None]:
    """Fallback without GNU time: poll the process tree's RSS with psutil every 20 ms."""
    import psutil

    p = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ps = psutil.Process(p.pid)
    peak = 0
    while p.poll() is None:
        try:
            procs = [ps, *ps.children(recursive=True)]
            peak = max(peak, sum(q.memory_info().rss for q in procs))
        except psutil.Error:
            pass
        time.sleep(0.02)
    stdout, stderr = p.communicate()
    return subprocess.CompletedProcess(cmd, p.returncode, stdout, stderr), peak / 1e6


def bench_tar(project: Path, scratch: Path, nbytes: int, all_peers: bool) -> list[Measure]:
    """tar-family peers, each timed including an fsync of the output (repro's write stage
    fsyncs its capsule before renaming it into place)."""
    out = scratch / "peer.tgz"
    peers = [
        ("tar czf (GNU tar + gzip -6)", f"tar czf {out} -C {project} ."),
        ("tar | gzip -1 (same level as repro)", f"tar cf - -C {project} . | gzip -1 > {out}"),
    ]
    if shutil.which("pigz"):
        if all_peers:
            peers.append(
                ("tar | pigz -p 2 (level 6)", f"tar cf - -C {project} . | pigz -p 2 > {out}")
            )
        peers.append(
            (
                "tar | pigz -1 -p 2 (same level and threads as repro)",
                f"tar cf - -C {project} . | pigz -1 -p 2 > {out}",
            )
        )
    results = []
    for name, cmd in peers:
        before = cpu_snapshot()
        t0 = time.perf_counter()
        run(f"set -o pipefail; {cmd}")
        sync = fsync_path(out)
        total = time.perf_counter() - t0
        after = cpu_snapshot()
        size = out.stat().st_size
        out.unlink()
        results.append(
            Measure(
                name,
                [total],
                nbytes,
                f"archive {size / MiB:.0f} MiB ({size / nbytes:.1%}); incl. fsync {sync:.2f} s",
                [foreign_cpu_pct(before, after)],
                [after[1] - before[1]],
            )
        )
    return results


# --- profile (optional) ------------------------------------------------------------------------


def profile_capture(project: Path, scratch: Path, dest: Path) -> str | None:
    """py-spy the first (no-cache) capture; write raw stacks and a top-25 summary."""
    if not shutil.which("py-spy"):
        return None
    raw = scratch / "profile.raw.txt"
    out = scratch / "profile.capsule.tgz"
    cmd = [
        "py-spy",
        "record",
        "--rate",
        "250",
        "--format",
        "raw",
        "-o",
        str(raw),
        "--",
        *repro_cmd(),
        "capture",
        str(project),
        "--no-run",
        "-o",
        str(out),
        "--json",
        "--no-hash-cache",
    ]
    env = repro_env(REPRO_CACHE_DIR=str(scratch / "profile-cache"))
    run(cmd, env=env, capture_output=True)
    out.unlink(missing_ok=True)
    own: collections.Counter = collections.Counter()
    incl: collections.Counter = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n = int(count)
        total += n
        frames = stack.split(";")
        own[frames[-1]] += n
        for f in set(frames):
            incl[f] += n
    lines = [f"py-spy samples (all threads, idle excluded): {total}", "", "top by own samples:"]
    lines += [f"  {100 * n / total:5.1f}%  {f}" for f, n in own.most_common(25)]
    lines += ["", "top by inclusive samples:"]
    lines += [f"  {100 * n / total:5.1f}%  {f}" for f, n in incl.most_common(25)]
    dest.write_text("\n".join(lines) + "\n")
    return str(dest)


# --- report -------------------------------------------------------------------------------------


def machine_info() -> dict:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / GiB

    def version(cmd: list[str]) -> str:
        try:
            r = subprocess.run(cmd, capture_output=True, text=True)
            return (r.stdout or r.stderr).splitlines()[0].strip()
        except (OSError, IndexError):
            return "n/a"

    return {
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "mem_gib": round(mem, 1),
        "python": platform.python_version(),
        "repro": importlib.import_module("repro").__version__,
        "openssl": version(["openssl", "version"]),
        "tar": version(["tar", "--version"]),
        "gzip": version(["gzip", "--version"]),
        "pigz": version(["pigz", "--version"]) if shutil.which("pigz") else "n/a",
    }


def git_state() -> dict:
    """HEAD and uncommitted changes under repro/: the code measured may be a work in progress."""

    def git(*cmd: str) -> str:
        r = subprocess.run(["git", "-C", str(REPO), *cmd], capture_output=True, text=True)
        return r.stdout.rstrip("\n") if r.returncode == 0 else ""

    dirty = [line[3:] for line in git("status", "--porcelain", "--", "repro").splitlines()]
    return {"head": git("rev-parse", "--short", "HEAD") or None, "uncommitted_in_repro": dirty}


def table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]

    def fmt(r):
        return "  ".join(
            str(c).ljust(w) if i == 0 else str(c).rjust(w)
            for i, (c, w) in enumerate(zip(r, widths, strict=True))
        )

    sep = "  ".join("-" * w for w in widths)
    return "\n".join([fmt(header), sep, *map(fmt, rows)])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size-gib", type=float, default=1.0)
    ap.add_argument("--files", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=20240521)
    ap.add_argument("--repeat", type=int, default=5, help="rounds of the hashing measures")
    ap.add_argument("--big-gib", type=float, default=3.0, help="single sparse-ish file; 0 skips")
    ap.add_argument(
        "--data-dir",
        type=Path,
        default=Path(os.environ.get("REPRO_BENCH_DIR", "/tmp/repro-bench-data")),
    )
    ap.add_argument("--json", type=Path, default=RESULTS / "capture.json")
    ap.add_argument(
        "--idle-wait",
        type=float,
        default=5.0,
        help="before each hashing run, wait up to this many seconds for other "
        "processes to leave the CPUs alone (0: never wait)",
    )
    ap.add_argument(
        "--all-peers",
        action="store_true",
        help="also time `tar | pigz -p 2` at level 6 (adds ~20 s)",
    )
    ap.add_argument(
        "--profile",
        action="store_true",
        help="also py-spy the no-cache capture (results/capture-profile.txt)",
    )
    args = ap.parse_args()

    size = int(args.size_gib * GiB)
    base = args.data_dir.absolute()
    if base.is_relative_to(HERE.parent):
        ap.error("--data-dir must be outside the repository")
    base.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    load_at_start = [round(x, 2) for x in os.getloadavg()]
    project, ds_info = ensure_dataset(base, size, args.files, args.seed)
    paths = list_files(project)
    nbytes = sum(p.stat().st_size for p in paths)
    big = ensure_big_file(base, int(args.big_gib * GiB), args.seed) if args.big_gib > 0 else None

    scratch = Path(tempfile.mkdtemp(prefix="bench-", dir=base))
    try:
        print(f"dataset: {len(paths)} files, {nbytes / GiB:.2f} GiB in {project}", flush=True)
        warm_s = warm(paths)
        print(
            f"page cache warmed in {warm_s:.1f} s ({nbytes / MiB / warm_s:.0f} MiB/s)", flush=True
        )

        print("stage 1: hashing ...", flush=True)
        hashing, by_size, checks = bench_hashing(
            project, paths, nbytes, args.repeat, scratch, args.idle_wait
        )

        print("stage 2-4: captures ...", flush=True)
        wait_until_older_than(paths, 2.0)
        out = scratch / "bench.capsule.tgz"
        cap_nocache = run_capture(
            "capture --no-hash-cache", project, out, scratch / "cache-a", no_cache=True
        )
        cap_first = run_capture(
            "capture #1 (fills stat cache)", project, out, scratch / "cache-b", no_cache=False
        )
        captures = [cap_nocache, cap_first]
        for i in (2, 3):
            captures.append(
                run_capture(
                    f"capture #{i} (unchanged data)",
                    project,
                    out,
                    scratch / "cache-b",
                    no_cache=False,
                )
            )
        if big is not None:
            warm(list_files(big))
            captures.append(
                run_capture(
                    f"capture {args.big_gib:g} GiB sparse-ish file --no-hash-cache",
                    big,
                    out,
                    scratch / "cache-c",
                    no_cache=True,
                )
            )
        print("stage 2: tar peers ...", flush=True)
        warm(paths)
        tars = bench_tar(project, scratch, nbytes, args.all_peers)

        profile = None
        if args.profile:
            print("profiling the no-cache capture with py-spy ...", flush=True)
            profile = profile_capture(project, scratch, RESULTS / "capture-profile.txt")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    # --- ratios and targets
    h = {m.name: m for m in hashing}
    repro_h = hashing[0]
    cached = [c for c in captures if c.label.startswith("capture #") and c is not cap_first]
    same_data = [cap_nocache, cap_first, *cached]
    repro_w = Measure(
        "repro capture 'write' stage (write_capsule)",
        [c.timings["write"] for c in same_data],
        nbytes,
        f"best of {len(same_data)} captures; archive "
        f"{cap_nocache.archive_size / MiB:.0f} MiB "
        f"({cap_nocache.archive_size / nbytes:.1%}); incl. fsync",
        [c.other_cpu_pct for c in same_data],
    )
    capture_hash = Measure(
        "repro capture 'hash' stage (no cache)",
        [cap_nocache.timings["hash"], cap_first.timings["hash"]],
        nbytes,
        "end to end in the CLI: stat + hash_files; best of 2 captures",
        [cap_nocache.other_cpu_pct, cap_first.other_cpu_pct],
    )

    def speedup(peer: Measure, ours: Measure) -> float:
        return peer.seconds / ours.seconds

    ossl1 = h["openssl dgst -sha256, 1 process"]
    bag = h.get("bagit make_bag(sha256, processes=2)")
    tar_czf = tars[0]
    second_hash = min(c.timings["hash"] for c in cached)
    pct = 100 * second_hash / cap_first.timings["hash"]
    rss_max = max((c.peak_rss_mb or 0) for c in captures)
    targets = {
        "hash_vs_openssl_1proc": {"value": round(speedup(ossl1, repro_h), 2), "target": ">= 1.6x"},
        "hash_vs_bagit_2proc": {
            "value": round(speedup(bag, repro_h), 2) if bag else None,
            "target": "> 1.0x",
        },
        "write_vs_tar_czf": {"value": round(speedup(tar_czf, repro_w), 2), "target": ">= 5x"},
        "second_capture_hash_pct": {
            "value": round(pct, 2),
            "target": "< 5%",
            "detail": f"{second_hash * 1000:.0f} ms vs {cap_first.timings['hash'] * 1000:.0f} ms",
        },
        "peak_rss_mb": {
            "value": round(rss_max, 1),
            "target": "< 150 MB",
            "detail": "max over all captures, incl. the big single file",
        },
    }
    for key, t in targets.items():
        v = t["value"]
        if v is None:
            t["met"] = None
        elif key in ("second_capture_hash_pct", "peak_rss_mb"):
            t["met"] = v < TARGETS[key]
        elif key == "hash_vs_bagit_2proc":
            t["met"] = v > TARGETS[key]
        else:
            t["met"] = v >= TARGETS[key]

    # --- print
    print()
    print(
        f"dataset: {len(paths)} files, {nbytes / GiB:.2f} GiB ({ds_info['distribution']}; "
        f"{ds_info['content']}); page cache warm"
    )
    print(
        "'repro faster by' = peer time / repro time, on the best run of each; 'other CPU' ="
        " share of the machine's CPUs used by other processes meanwhile (median)"
    )
    print()
    print(f"HASHING ({args.repeat} interleaved rounds)")
    rows = [
        [
            m.name,
            f"{m.seconds:.2f}",
            f"{m.median:.2f}",
            f"{m.mib_s:.0f}",
            f"{m.cpu_per_gib:.2f}",
            f"{m.cores_used:.2f}",
            f"{m.contention:.0f}%",
            f"{speedup(m, repro_h):.2f}x",
        ]
        for m in [*hashing, capture_hash]
    ]
    print(
        table(
            rows,
            [
                "",
                "best s",
                "median s",
                "MiB/s",
                "CPU s/GiB",
                "cores",
                "other CPU",
                "repro faster by",
            ],
        )
    )
    if by_size:
        print()
        print("HASHING BY FILE SIZE (diagnostic: 'repro faster by' vs repro on the same subset)")
        rows = []
        for i in range(0, len(by_size), 3):
            group = by_size[i : i + 3]
            rows += [
                [
                    m.name,
                    f"{m.seconds:.3f}",
                    f"{m.mib_s:.0f}",
                    f"{m.cpu_per_gib:.2f}",
                    f"{m.cores_used:.2f}",
                    f"{m.contention:.0f}%",
                    f"{speedup(m, group[0]):.2f}x",
                ]
                for m in group
            ]
        print(
            table(
                rows, ["", "best s", "MiB/s", "CPU s/GiB", "cores", "other CPU", "repro faster by"]
            )
        )
    print()
    print("WRITING THE ARCHIVE (peers: one run each, timed incl. an fsync of the output)")
    rows = [
        [
            m.name,
            f"{m.seconds:.2f}",
            f"{m.mib_s:.0f}",
            f"{m.contention:.0f}%",
            f"{speedup(m, repro_w):.2f}x",
            m.note,
        ]
        for m in [repro_w, *tars]
    ]
    print(table(rows, ["", "best s", "MiB/s", "other CPU", "repro faster by", ""]))
    print("(repro's write-stage CPU is not separable from the whole capture; see CAPTURES)")
    print()
    print("CAPTURES (repro capture --no-run --json, separate processes; stage seconds)")
    stages = [
        k
        for k in ("list", "hash", "scan", "lock", "runs", "write")
        if any(k in c.timings for c in captures)
    ]
    stages += sorted({k for c in captures for k in c.timings} - set(stages))
    rows = [
        [
            c.label,
            f"{c.wall_s:.2f}",
            *(f"{c.timings.get(k, 0):.3f}" for k in stages),
            f"{c.cpu_s:.1f}",
            f"{c.peak_rss_mb:.0f}" if c.peak_rss_mb else "?",
            f"{c.other_cpu_pct:.0f}%",
        ]
        for c in captures
    ]
    print(table(rows, ["", "wall", *stages, "CPU s", "peak RSS MB", "other CPU"]))
    print()
    print("TARGETS")
    rows = [
        [
            k,
            str(t["value"]),
            t["target"],
            {True: "MET", False: "NOT MET", None: "n/a"}[t["met"]],
            t.get("detail", ""),
        ]
        for k, t in targets.items()
    ]
    print(table(rows, ["", "value", "target", "", ""]))
    if checks:
        print(f"\nchecks: {checks}")
    elapsed = time.perf_counter() - t_start
    print(f"\ntotal benchmark time {elapsed:.0f} s")

    import repro

    report = {
        "generated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "command": " ".join(["python", "benchmarks/bench_capture.py", *sys.argv[1:]]),
        "machine": {**machine_info(), "loadavg_at_start": load_at_start},
        "repro_module": repro.__file__,
        "repro_git": git_state(),
        "method": {
            "ratio": "peer seconds / repro seconds, best run of each (min is the estimate least"
            " disturbed by other load); medians and every run are kept below",
            "other_cpu_pct": "share of all CPUs busy with processes other than the benchmark's"
            " during a measurement (from /proc/stat minus own rusage)",
            "page_cache": "every file read once before timing; 24 GiB RAM keeps it all cached",
        },
        "dataset": {
            **ds_info,
            "path": str(project),
            "n_files": len(paths),
            "bytes": nbytes,
            "big_file_bytes": int(args.big_gib * GiB) if big else None,
        },
        "hashing": [
            {**m.as_dict(), "repro_speedup": round(speedup(m, repro_h), 3)}
            for m in [*hashing, capture_hash]
        ],
        "hashing_by_file_size": [
            {**m.as_dict(), "repro_speedup": round(speedup(m, by_size[i - i % 3]), 3)}
            for i, m in enumerate(by_size)
        ],
        "writing": [
            {**m.as_dict(), "repro_speedup": round(speedup(m, repro_w), 3)}
            for m in [repro_w, *tars]
        ],
        "captures": [
            {
                "label": c.label,
                "wall_s": round(c.wall_s, 3),
                "timings": {k: round(v, 4) for k, v in c.timings.items()},
                "peak_rss_mb": c.peak_rss_mb,
                "archive_size": c.archive_size,
                "payload_size": c.payload_size,
                "other_cpu_pct": round(c.other_cpu_pct, 1),
                "cpu_s": round(c.cpu_s, 2),
            }
            for c in captures
        ],
        "targets": targets,
        "checks": checks,
        "profile": profile,
        "elapsed_s": round(elapsed, 1),
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.json.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(report, indent=2) + "\n")
    tmp.replace(args.json)
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
