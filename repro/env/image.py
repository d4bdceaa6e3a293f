"""Environment images: built from a capsule's Dockerfile through the Docker engine API,
tagged by environment digest and reused, saved into and loaded from capsules.

The engine sits behind the docker SDK (docker-py), connected lazily: importing this module
contacts nothing.
"""

from __future__ import annotations

import json
import shutil
import tarfile
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from repro.env.dockerfile import LOCAL_WHEELS_DIR
from repro.env.installer import LocalWheel, check_wheels, local_lock
from repro.env.wheels import download_wheels
from repro.errors import CapsuleIntegrityError, EnvironmentBuildError, ServiceUnavailableError
from repro.hashing import sha256_bytes

IMAGE_REPO = "repro-env"
LABEL = "org.repro.env-digest"
BASE_IMAGE_ENV = "REPRO_BASE_IMAGE"
ENGINE_HINT = "start the Docker engine (dockerd), or replay with --target local"


def docker_client(timeout: int = 60) -> Any:
    import docker
    import docker.errors

    try:
        client = docker.from_env(timeout=timeout)
        client.ping()
    except docker.errors.DockerException as exc:
        raise ServiceUnavailableError(
            f"no Docker engine answers: {str(exc).splitlines()[0][:200]}", hint=ENGINE_HINT
        ) from None
    return client


def engine_available() -> bool:
    try:
        docker_client(timeout=3)
    except ServiceUnavailableError:
        return False
    return True


def environment_digest(dockerfile: str, lock_text: str, base_image: str, extra: str = "") -> str:
    material = f"{base_image}\0{dockerfile}\0{lock_text}" + (f"\0{extra}" if extra else "")
    return sha256_bytes(material.encode())


@dataclass(frozen=True)
class ImageSpec:
    """Everything an environment image is built from."""

    dockerfile: str
    lock_text: str
    base_image: str
    has_packages: bool
    needs_network: bool
    """apt packages are installed from the network; otherwise the build has none."""
    wheels: Path | None = None
    """Vendored wheels (capture --wheels); else they are downloaded on the host."""
    local_wheels: tuple[LocalWheel, ...] = ()
    """The project's own wheels (from the capsule), installed after the lock."""
    post_build_project: Path | None = None
    """The project's files, copied into the build for postBuild to run in."""
    post_build_digest: str = ""

    @property
    def digest(self) -> str:
        extra = "\0".join(sorted(w.sha256 for w in self.local_wheels))
        if self.post_build_project is not None:
            extra += "\0" + self.post_build_digest
        return environment_digest(self.dockerfile, self.lock_text, self.base_image, extra)

    @property
    def tag(self) -> str:
        return f"{IMAGE_REPO}:{self.digest[:16]}"


def ensure_image(
    client: Any,
    spec: ImageSpec,
    offline: bool,
    say: Callable[[str], None],
    saved: Path | None = None,
) -> str:
    """The environment image: reused when tagged, loaded from `saved` (an image tarball
    from the capsule) when given, otherwise built."""
    import docker.errors

    tag = spec.tag
    try:
        client.images.get(tag)
        say(f"reusing image {tag}")
        return tag
    except docker.errors.ImageNotFound:
        pass
    if saved is not None:
        say(f"loading image {tag} from the capsule")
        _check_saved_tags(saved, tag)
        with saved.open("rb") as fh:
            client.images.load(fh)
        image = client.images.get(tag)
        if (image.labels or {}).get(LABEL) != spec.digest:
            client.images.remove(tag, force=True)
            raise CapsuleIntegrityError(
                f"the capsule's saved image is not the environment it describes ({tag})"
            )
        return tag
    try:
        client.images.get(spec.base_image)
    except docker.errors.ImageNotFound:
        raise ServiceUnavailableError(
            f"base image {spec.base_image} is not available to the Docker engine",
            hint=f"pull or build it, or choose one with --base-image / {BASE_IMAGE_ENV}",
        ) from None
    with tempfile.TemporaryDirectory(prefix="repro-image-") as tmp:
        context = Path(tmp)
        (context / "Dockerfile").write_text(spec.dockerfile, encoding="utf-8")
        (context / "env").mkdir()
        (context / "env" / "requirements.lock").write_text(spec.lock_text, encoding="utf-8")
        wheels = context / "wheels"
        if spec.has_packages:
            say("collecting the lock's wheels (hash-checked)")
            source = spec.wheels or download_wheels(spec.lock_text, offline=offline)
            shutil.copytree(source, wheels, ignore=shutil.ignore_patterns(".repro-complete"))
        else:
            wheels.mkdir()
        if spec.local_wheels:
            check_wheels(spec.local_wheels)
            local = context / "local-wheels"
            local.mkdir()
            for wheel in spec.local_wheels:
                shutil.copyfile(wheel.path, local / wheel.path.name)
            entries = [(w.path.name, w.sha256) for w in spec.local_wheels]
            (local / "local.lock").write_text(
                local_lock(entries, LOCAL_WHEELS_DIR), encoding="utf-8"
            )
        if spec.post_build_project is not None:
            shutil.copytree(spec.post_build_project, context / "project", symlinks=True)
        say(f"building image {tag} from the capsule's Dockerfile")
        try:
            client.images.build(
                path=str(context),
                tag=tag,
                buildargs={"BASE_IMAGE": spec.base_image},
                labels={LABEL: spec.digest},
                rm=True,
                forcerm=True,
                network_mode=None if spec.needs_network else "none",
            )
        except docker.errors.BuildError as exc:
            lines = [str(c.get("stream", c.get("error", ""))).strip() for c in exc.build_log]
            detail = " ".join(ln for ln in lines if ln)[-300:]
            raise EnvironmentBuildError(
                f"building the environment image failed: {detail}"
            ) from None
        except docker.errors.APIError as exc:
            raise EnvironmentBuildError(f"the Docker engine refused the build: {exc}") from None
    return tag


def _check_saved_tags(saved: Path, tag: str) -> None:
    """A saved image may only bring its own tag: loading it must not replace other images."""
    try:
        with tarfile.open(saved) as tar:
            member = tar.extractfile("manifest.json")
            entries = json.loads(member.read()) if member else None
    except (tarfile.TarError, KeyError, ValueError):
        raise CapsuleIntegrityError(
            "the capsule's saved image is not a docker save archive"
        ) from None
    tags = [t for e in entries or [] if isinstance(e, dict) for t in e.get("RepoTags") or []]
    if tags != [tag]:
        raise CapsuleIntegrityError(
            f"the capsule's saved image carries other tags than {tag}: {', '.join(tags)[:200]}"
        )


def save_image(client: Any, tag: str, dest: Path) -> None:
    """docker save of one tagged image, streamed to a file."""
    image = client.images.get(tag)
    with dest.open("wb") as fh:
        for chunk in image.save(named=True):
            fh.write(chunk)
