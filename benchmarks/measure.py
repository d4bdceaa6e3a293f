"""What the replay and notebook benchmarks share: timing a command while watching how busy
the rest of the machine is, medians, the import-time and cProfile readers, a text table and
the checkout's git state. Imported by the scripts beside it (`python benchmarks/X.py`)."""

from __future__ import annotations

import os
import pstats
import re
import statistics
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

CLK = os.sysconf("SC_CLK_TCK")
NCPU = os.cpu_count() or 1
IMPORT_RE = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)")


class BenchError(Exception):
    pass


def cpu_snapshot() -> tuple[float, float, float]:
    """(machine busy CPU-seconds, this process tree's CPU-seconds, wall clock)."""
    with Path("/proc/stat").open() as fh:
        v = [int(x) for x in fh.readline().split()[1:9]]
    busy = (v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / CLK
    t = os.times()
    return busy, t.user + t.system + t.children_user + t.children_system, time.perf_counter()


def foreign_cpu_pct(before: tuple[float, float, float], after: tuple[float, float, float]) -> float:
    """Share of the machine's CPUs busy with *other* processes between two snapshots."""
    wall = after[2] - before[2]
    other = (after[0] - before[0]) - (after[1] - before[1])
    return max(0.0, 100 * other / (wall * NCPU)) if wall > 0 else 0.0


def wait_for_quiet(max_wait: float, threshold: float = 15.0, window: float = 0.5) -> float:
    """Wait (at most max_wait s) until other processes use < threshold % of the CPUs."""
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < max_wait:
        before = cpu_snapshot()
        time.sleep(window)
        if foreign_cpu_pct(before, cpu_snapshot()) < threshold:
            break
    return time.perf_counter() - t0


@dataclass
class Timed:
    seconds: float
    other_cpu_pct: float
    proc: subprocess.CompletedProcess[str] | None = None


def timed(cmd: list[str], **kw: object) -> Timed:
    before = cpu_snapshot()
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, **kw)  # type: ignore[call-overload]
    seconds = time.perf_counter() - t0
    return Timed(seconds, foreign_cpu_pct(before, cpu_snapshot()), proc)


def check(t: Timed, what: str) -> subprocess.CompletedProcess[str]:
    assert t.proc is not None
    if t.proc.returncode != 0:
        tail = " | ".join((t.proc.stderr or t.proc.stdout).strip().splitlines()[-4:])
        raise BenchError(f"{what} exited {t.proc.returncode}: {tail}")
    return t.proc


def med(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def r3(x: float) -> float:
    return round(x, 3)


def import_rows(stderr: str) -> list[tuple[int, int, int, str]]:
    """`-X importtime` lines as (self µs, cumulative µs, depth, module)."""
    rows = []
    for line in stderr.splitlines():
        mt = IMPORT_RE.match(line)
        if mt:
            rows.append((int(mt[1]), int(mt[2]), (len(mt[3]) - 1) // 2, mt[4]))
    return rows


def profiled_seconds(
    prof: Path, funcs: dict[str, tuple[str, str]]
) -> tuple[dict[str, float], float]:
    """Per label (file suffix, function name): its cumulative seconds in a cProfile dump (own
    time for built-ins); and the largest cumulative time, the profiled total."""
    stats = pstats.Stats(str(prof)).stats  # type: ignore[attr-defined]
    found: dict[str, float] = {}
    for label, (suffix, func) in funcs.items():
        for (fname, _line, name), (_cc, _nc, tt, ct, _callers) in stats.items():
            if name == func and fname.endswith(suffix):
                found[label] = found.get(label, 0.0) + (tt if func.startswith("<built-in") else ct)
    return found, max(v[3] for v in stats.values())


def git_state(repo: Path) -> dict:
    def git(*cmd: str) -> str:
        r = subprocess.run(
            ["git", "-C", str(repo), *cmd], capture_output=True, text=True, check=False
        )
        return r.stdout.rstrip("\n") if r.returncode == 0 else ""

    dirty = [line[3:] for line in git("status", "--porcelain", "--", "repro").splitlines()]
    return {"head": git("rev-parse", "--short", "HEAD") or None, "uncommitted_in_repro": dirty}


def table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]

    def fmt(r: list[str]) -> str:
        return "  ".join(
            str(c).ljust(w) if i == 0 else str(c).rjust(w)
            for i, (c, w) in enumerate(zip(r, widths, strict=True))
        )

    return "\n".join([fmt(header), "  ".join("-" * w for w in widths), *map(fmt, rows)])
