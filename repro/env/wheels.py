"""Download a lock's distributions on the host, hash-checked, for offline installs (images,
--offline): for the target's Python, ABI and platform, not the host's; sdist-only packages
with what building them needs, so the image builds them with no index."""

from __future__ import annotations

import shutil
import tarfile
import tomllib
import zipfile
from dataclasses import dataclass
from pathlib import Path

from repro.env.installer import Installer, UvInstaller
from repro.env.virtualenv import locked
from repro.errors import NetworkError
from repro.hashing import sha256_bytes
from repro.paths import cache_dir, mark_used

SDIST_SUFFIXES = (".tar.gz", ".zip", ".tar.bz2", ".tgz")
LEGACY_BUILD_REQUIRES = ("setuptools>=40.8.0", "wheel")
"""What pip builds a project without pyproject.toml's [build-system] with."""


@dataclass(frozen=True)
class WheelTarget:
    """The interpreter and platform the wheels are for: an image's Python, ABI and the
    platform tags its pip accepts. No platforms: this machine's."""

    python_version: str
    """major.minor, or major.minor.micro when known (Requires-Python >=3.6.1 needs it)."""
    abis: tuple[str, ...] = ()
    platforms: tuple[str, ...] = ()
    implementation: str = "cp"

    @property
    def key(self) -> str:
        return "\0".join([self.python_version, self.implementation, *self.abis, *self.platforms])

    def pip_args(self) -> list[str]:
        args = ["--python-version", self.python_version]
        if self.platforms:
            args += ["--implementation", self.implementation]
            for abi in self.abis:
                args += ["--abi", abi]
            for platform in self.platforms:
                args += ["--platform", platform]
        return args


def platform_tags(glibc: tuple[int, int] | None, arch: str, pip: tuple[int, ...]) -> list[str]:
    """The platform tags of a Linux interpreter with glibc `glibc` (None: not glibc) whose
    pip is version `pip`, best first. Old pips know fewer tags (manylinux2010 came with pip
    19.0, manylinux2014 with 19.3, manylinux_2_X with 20.3, musllinux with 21.3): a wheel
    the image's own pip would refuse is never chosen."""
    tags = []
    if glibc is not None and glibc[0] == 2:
        for minor in range(glibc[1], 4, -1):
            if pip >= (20, 3):
                tags.append(f"manylinux_2_{minor}_{arch}")
            legacy = {17: ("manylinux2014", (19, 3)), 12: ("manylinux2010", (19, 0))}
            if minor in legacy and pip >= legacy[minor][1]:
                tags.append(f"{legacy[minor][0]}_{arch}")
            if minor == 5:
                tags.append(f"manylinux1_{arch}")
    elif pip >= (21, 3):
        tags += [f"musllinux_1_2_{arch}", f"musllinux_1_1_{arch}"]
    tags.append(f"linux_{arch}")
    return tags


def wheel_dir(lock_text: str, target: WheelTarget | None = None) -> Path:
    key = lock_text + (f"\0{target.key}" if target else "")
    return cache_dir() / "wheels" / sha256_bytes(key.encode())[:20]


def download_wheels(
    lock_text: str,
    *,
    offline: bool = False,
    target: WheelTarget | None = None,
    installer: Installer | None = None,
) -> Path:
    """Every distribution of the lock in a cached folder (per lock and target), checked
    against the lock's hashes: wheels for `target` (None: this interpreter), else the sdist,
    with the wheels its build needs."""
    folder = wheel_dir(lock_text, target)
    with locked(folder.with_suffix(".lock")):  # two captures or replays of one lock at once
        done = _download(lock_text, folder, offline, target, installer or UvInstaller())
        mark_used("wheels", folder.name)
        return done


def _download(
    lock_text: str,
    folder: Path,
    offline: bool,
    target: WheelTarget | None,
    installer: Installer,
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
        installer.download(lock_file, folder, target=target)
        lock_file.unlink()
        sdists = sorted(p for p in folder.iterdir() if p.name.endswith(SDIST_SUFFIXES))
        needs = sorted({req for sdist in sdists for req in build_requires(sdist)})
        if needs:
            installer.download_build_requirements(needs, folder, target=target)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    marker.write_text("ok\n", encoding="utf-8")
    return folder


def build_requires(sdist: Path) -> list[str]:
    """[build-system] requires of an sdist's pyproject.toml (pip's legacy default without
    one); read from the archive, nothing of it run."""
    text = _member_text(sdist, "pyproject.toml")
    if text is None:
        return list(LEGACY_BUILD_REQUIRES)
    try:
        system = tomllib.loads(text).get("build-system")
    except tomllib.TOMLDecodeError:
        return list(LEGACY_BUILD_REQUIRES)
    requires = system.get("requires") if isinstance(system, dict) else None
    if not isinstance(requires, list):
        return list(LEGACY_BUILD_REQUIRES)
    return [r for r in requires if isinstance(r, str)]


def _member_text(sdist: Path, name: str) -> str | None:
    """The top folder's `name` in an sdist (name-version/pyproject.toml)."""
    try:
        if sdist.name.endswith(".zip"):
            with zipfile.ZipFile(sdist) as zf:
                for info in zf.infolist():
                    if info.filename.count("/") == 1 and info.filename.endswith("/" + name):
                        return zf.read(info).decode("utf-8", "replace")
            return None
        with tarfile.open(sdist) as tar:
            for member in tar:
                if (
                    member.isfile()
                    and member.name.count("/") == 1
                    and member.name.endswith("/" + name)
                ):
                    fh = tar.extractfile(member)
                    return fh.read(1 << 20).decode("utf-8", "replace") if fh else None
    except (OSError, tarfile.TarError, zipfile.BadZipFile):
        return None
    return None
