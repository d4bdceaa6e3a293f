"""The environment a verified, unpacked capsule describes, as the builders take it: the lock,
the local wheels (with their recorded sha256) and postBuild with its digest."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from repro.capsule.layout import PROJECT_PREFIX
from repro.capsule.manifest import Manifest
from repro.env.dockerfile import render_dockerfile
from repro.env.installer import LocalWheel
from repro.env.virtualenv import PostBuild
from repro.errors import CapsuleIntegrityError, DockerfileMismatchError
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
    lock_text = (root / env.lock).read_text(encoding="utf-8")
    check_capsule_lock(lock_text, env.lock)
    return CapsuleEnvironment(lock_text, wheels, post_build, tuple(env.apt_packages))


_PIN = re.compile(
    r"^[A-Za-z0-9][A-Za-z0-9._-]*(\[[A-Za-z0-9._,-]*\])?==[A-Za-z0-9.+!_-]+(\s*;.*)?$"
)
_INDEX = re.compile(
    r"^((--index-url|--extra-index-url|-i|--find-links|-f)[ =]https?://\S+"
    r"|--trusted-host[ =]\S+|--no-index|--pre|--prefer-binary|--require-hashes"
    r"|--(only|no)-binary[ =]\S+)$"
)


def check_capsule_lock(text: str, where: str) -> None:
    """A capsule's lock is a stranger's file that pip or uv will read on this machine: only
    pinned requirements with hashes and index URLs, never `${VARIABLES}` (expanded from this
    machine's environment), includes (`-r /etc/...`), local find-links or other options."""
    joined = re.sub(r"\\\r?\n", " ", text)
    for raw in joined.splitlines():
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        if "$" in line:
            raise CapsuleIntegrityError(f"{where}: a lock line names a variable: {line[:80]}")
        if line.startswith("-"):
            if not _INDEX.match(line):
                raise CapsuleIntegrityError(f"{where}: option not allowed in a lock: {line[:80]}")
            continue
        requirement, *hashes = line.split(" --hash")
        if not _PIN.match(requirement.strip()) or not hashes:
            raise CapsuleIntegrityError(
                f"{where}: not a pinned requirement with hashes: {line[:80]}"
            )


def expected_dockerfile(manifest: Manifest) -> str:
    """The Dockerfile repro generates from the manifest's declarations (the recorded base
    image as the BASE_IMAGE default, apt packages, the lock, local wheels, postBuild): the
    only one a replay builds."""
    env = manifest.environment
    return render_dockerfile(
        env.base_image,
        list(env.apt_packages),
        bool(env.packages),
        local_wheels=[(Path(p.wheel).name, p.sha256) for p in env.local_packages],
        post_build=env.post_build.removeprefix(PROJECT_PREFIX) if env.post_build else None,
    )


def checked_dockerfile(manifest: Manifest, root: Path) -> str:
    """The capsule's Dockerfile, refused unless it is exactly the one repro generates from
    its declarations: a build runs only what repro wrote (a RUN added by hand ran as root)."""
    expected = expected_dockerfile(manifest)
    shipped = (root / manifest.environment.dockerfile).read_text(encoding="utf-8")
    if shipped != expected:
        mine, theirs = expected.splitlines(), shipped.splitlines()
        line = next(
            (i for i, (a, b) in enumerate(zip(mine, theirs, strict=False)) if a != b),
            min(len(mine), len(theirs)),
        )
        raise DockerfileMismatchError(
            f"the capsule's Dockerfile differs from the one its declarations give "
            f"(from line {line + 1}): it is not built"
        )
    return expected
