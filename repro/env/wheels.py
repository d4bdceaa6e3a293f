"""Download a lock's wheels on the host, hash-checked, for offline installs (images, --offline)."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from repro.errors import EnvironmentBuildError, NetworkError
from repro.execution.tools import last_lines, run_tool
from repro.hashing import sha256_bytes
from repro.paths import cache_dir

DOWNLOAD_TIMEOUT_S = 1800


def wheel_dir(lock_text: str) -> Path:
    return cache_dir() / "wheels" / sha256_bytes(lock_text.encode())[:20]


def download_wheels(lock_text: str, *, offline: bool = False) -> Path:
    """Every wheel of the lock in a cached folder; pip checks each against the lock's hashes."""
    folder = wheel_dir(lock_text)
    marker = folder / ".repro-complete"
    if marker.is_file():
        return folder
    if offline:
        raise NetworkError(
            "the wheels of this lock are not cached and --offline forbids downloading them",
            hint="replay once with the network, or capture with --wheels to vendor them",
        )
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    lock_file = folder / "requirements.lock"
    lock_file.write_text(lock_text, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k not in ("PIP_REQUIRE_VIRTUALENV",)}
    proc = run_tool(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--quiet",
            "--no-deps",
            "--require-hashes",
            "--only-binary=:all:",
            "--dest",
            str(folder),
            "-r",
            str(lock_file),
        ],
        "downloading the lock's wheels",
        timeout=DOWNLOAD_TIMEOUT_S,
        env=env,
        check=False,
    )
    lock_file.unlink()
    if not proc.ok:
        shutil.rmtree(folder, ignore_errors=True)
        raise EnvironmentBuildError(
            f"downloading the lock's wheels failed: {last_lines(proc.stderr, 3)}",
            hint="a package without a wheel for this platform cannot be installed offline",
        )
    marker.write_text("ok\n", encoding="utf-8")
    return folder
