"""Download a lock's wheels on the host, hash-checked, for offline installs (images, --offline)."""

from __future__ import annotations

import shutil
from pathlib import Path

from repro.env.installer import Installer, UvInstaller
from repro.env.virtualenv import locked
from repro.errors import NetworkError
from repro.hashing import sha256_bytes
from repro.paths import cache_dir


def wheel_dir(lock_text: str, python_version: str | None = None) -> Path:
    key = lock_text + (f"\0{python_version}" if python_version else "")
    return cache_dir() / "wheels" / sha256_bytes(key.encode())[:20]


def download_wheels(
    lock_text: str,
    *,
    offline: bool = False,
    python_version: str | None = None,
    installer: Installer | None = None,
) -> Path:
    """Every wheel of the lock in a cached folder, for `python_version` (None: this
    interpreter's); the installer checks each against the lock's hashes."""
    folder = wheel_dir(lock_text, python_version)
    with locked(folder.with_suffix(".lock")):  # two captures or replays of one lock at once
        return _download(lock_text, folder, offline, python_version, installer)


def _download(
    lock_text: str,
    folder: Path,
    offline: bool,
    python_version: str | None,
    installer: Installer | None,
) -> Path:
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
    try:
        (installer or UvInstaller()).download(lock_file, folder, python_version=python_version)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    lock_file.unlink()
    marker.write_text("ok\n", encoding="utf-8")
    return folder
