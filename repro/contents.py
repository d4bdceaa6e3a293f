"""What `repro inspect --files` and `--packages` list: a capsule's files (path, size, role,
sha256) and its locked packages (name, version, how many hashes the lock pins)."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from repro.capsule.manifest import Manifest
from repro.capsule.reader import peek_manifest
from repro.env.lock import hash_counts
from repro.paths import scratch_prefix
from repro.verify import VerifyReport, open_capsule


def human_size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"


@dataclass(frozen=True)
class Contents:
    report: VerifyReport
    lock_text: str | None
    """The lock file's text, when asked for (--packages)."""


def read_contents(path: Path, *, lock: bool) -> Contents:
    """inspect_capsule, and with `lock` the lock file's text (only that member unpacked,
    after the whole capsule verified)."""
    if not lock:
        return Contents(open_capsule(path), None)
    member = peek_manifest(path).environment.lock
    with tempfile.TemporaryDirectory(prefix=scratch_prefix("inspect")) as tmp:
        root = Path(tmp) / "capsule"
        report = open_capsule(path, root, only=lambda name: name == member)
        lock_path = root / report.capsule.manifest.environment.lock
        text = lock_path.read_text(encoding="utf-8") if lock_path.is_file() else ""
    return Contents(report, text)


def file_rows(manifest: Manifest) -> list[list[str]]:
    """member path (what repro cat and extract take), size, role, sha256 (12 digits)."""
    return [
        [
            f.path + (f" -> {f.link}" if f.link else ""),
            human_size(f.size),
            f.role,
            f.sha256[:12],
        ]
        for f in manifest.files
    ]


def package_rows(manifest: Manifest, lock_text: str | None) -> list[list[str]]:
    """name, version, hashes (how many the lock pins; '-' when unknown), and the local
    packages built at capture (kind, the wheel's sha256: one hash)."""
    counts = hash_counts(lock_text or "")
    env = manifest.environment
    rows = [
        [p.name, p.version, str(counts[p.name]) if p.name in counts else "-", "index"]
        for p in env.packages
    ]
    rows += [[p.name, p.version, "1", f"{p.kind} (embedded wheel)"] for p in env.local_packages]
    return rows
