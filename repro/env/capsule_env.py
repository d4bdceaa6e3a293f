"""The environment a verified, unpacked capsule describes, as the builders take it: the lock,
the local wheels (with their recorded sha256) and postBuild with its digest."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from repro.capsule.layout import PROJECT_PREFIX
from repro.capsule.manifest import Manifest
from repro.env.installer import LocalWheel
from repro.env.virtualenv import PostBuild
from repro.hashing import sha256_bytes


@dataclass(frozen=True)
class CapsuleEnvironment:
    lock_text: str
    local_wheels: tuple[LocalWheel, ...]
    post_build: PostBuild | None
    apt: tuple[str, ...]


def post_build_digest(project_files: dict[str, str]) -> str:
    """sha256 over the project's files (`capsule path -> sha256`): capture and replay agree."""
    lines = sorted(f"{p} {s}" for p, s in project_files.items() if p.startswith(PROJECT_PREFIX))
    return sha256_bytes("\n".join(lines).encode())


def capsule_environment(manifest: Manifest, root: Path) -> CapsuleEnvironment:
    """`root` is the unpacked capsule (every file already checked against the manifest)."""
    env = manifest.environment
    wheels = tuple(LocalWheel(root / p.wheel, p.sha256) for p in env.local_packages)
    post_build = None
    if env.post_build:
        digest = post_build_digest({f.path: f.sha256 for f in manifest.files})
        post_build = PostBuild(
            env.post_build.removeprefix(PROJECT_PREFIX), root / PROJECT_PREFIX, digest
        )
    return CapsuleEnvironment(
        (root / env.lock).read_text(encoding="utf-8"), wheels, post_build, tuple(env.apt_packages)
    )
