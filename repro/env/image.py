"""Environment images: built from a capsule's Dockerfile through a container engine, tagged
by environment digest and reused, saved into and loaded from capsules.

The engine is a `ContainerEngine` the caller passes (the Docker engine, connected lazily):
importing this module contacts nothing.
"""

from __future__ import annotations

import json
import re
import shutil
import tarfile
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from repro.engines import ContainerEngine
from repro.engines.container_engine import ContainerRefusedError
from repro.env.dockerfile import LOCAL_WHEELS_DIR
from repro.env.installer import LocalWheel, check_wheels, local_lock
from repro.env.pythons import major_minor, parse_info
from repro.env.wheels import WheelTarget, download_wheels, platform_tags
from repro.errors import CapsuleIntegrityError, ImageBuildError, ServiceUnavailableError
from repro.hashing import sha256_bytes
from repro.paths import scratch_prefix

IMAGE_REPO = "repro-env"
LABEL = "org.repro.env-digest"
BASE_IMAGE_ENV = "REPRO_BASE_IMAGE"


def engine_available() -> bool:
    """Whether a Docker engine answers within a few seconds (the default target's choice)."""
    from repro.engines.docker_engine import DockerEngine

    engine = DockerEngine(timeout=3)
    try:
        engine.ping()
    except ServiceUnavailableError:
        return False
    finally:
        engine.close()
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
    python_version: str | None = None
    """The capsule's Python (major.minor): the wheels are downloaded for it, not for the
    interpreter running repro. None: this interpreter's."""

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
    engine: ContainerEngine,
    spec: ImageSpec,
    offline: bool,
    say: Callable[[str], None],
    saved: Path | None = None,
) -> str:
    """The environment image: reused when tagged, loaded from `saved` (an image tarball
    from the capsule) when given, otherwise built."""
    tag = spec.tag
    if engine.has_image(tag):
        say(f"reusing image {tag}")
        return tag
    if saved is not None:
        say(f"loading image {tag} from the capsule")
        _check_saved_tags(saved, tag)
        engine.load(saved)
        if engine.image_label(tag, LABEL) != spec.digest:
            engine.remove_image(tag)
            raise CapsuleIntegrityError(
                f"the capsule's saved image is not the environment it describes ({tag})"
            )
        return tag
    if not engine.has_image(spec.base_image):
        pull_base_image(engine, spec.base_image, say)
    target = base_target(engine, spec.base_image)
    if spec.python_version and major_minor(target.python_version) != spec.python_version:
        raise ImageBuildError(
            f"base image {spec.base_image} runs Python {major_minor(target.python_version)}, "
            "but the study "
            f"is Python {spec.python_version}",
            hint=f"choose an image with Python {spec.python_version}: --base-image "
            f"python:{spec.python_version}-slim (or {BASE_IMAGE_ENV})",
        )
    with tempfile.TemporaryDirectory(prefix=scratch_prefix("image")) as tmp:
        context = Path(tmp)
        (context / "Dockerfile").write_text(spec.dockerfile, encoding="utf-8")
        (context / "env").mkdir()
        (context / "env" / "requirements.lock").write_text(spec.lock_text, encoding="utf-8")
        wheels = context / "wheels"
        if spec.has_packages:
            say("collecting the lock's wheels (hash-checked)")
            source = spec.wheels or download_wheels(spec.lock_text, offline=offline, target=target)
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
            engine.build(
                context,
                tag,
                build_args={"BASE_IMAGE": spec.base_image},
                labels={LABEL: spec.digest},
                network=spec.needs_network,
            )
        except ImageBuildError as exc:
            if "postBuild" not in exc.step:
                raise
            detail = exc.message.rsplit(": ", 1)[-1]
            raise ImageBuildError(
                f"postBuild failed in the image build: {detail}",
                hint="the image build has no network (unless apt.txt declares packages): "
                "declare what postBuild installs as dependencies instead",
                step=exc.step,
            ) from None
    return tag


PULL_REPORT_S = 2.0


def pull_base_image(engine: ContainerEngine, image: str, say: Callable[[str], None]) -> None:
    """Pull a missing base image, saying how far it got every few seconds."""
    say(f"pulling base image {image}")
    last = [time.monotonic()]

    def progress(done: int, total: int) -> None:
        now = time.monotonic()
        if total and now - last[0] >= PULL_REPORT_S:
            last[0] = now
            say(f"pulling {image}: {done / 2**20:.0f} of {total / 2**20:.0f} MiB")

    engine.pull(image, progress)


_BASE_PROBE = """
import os, platform, subprocess, sys, sysconfig, tempfile
print(platform.python_implementation())
print(platform.python_version())
print(sysconfig.get_config_var("SOABI") or "")
try:
    print(os.confstr("CS_GNU_LIBC_VERSION") or "")
except (AttributeError, ValueError, OSError):
    print("")
print(platform.machine())
venv = os.path.join(tempfile.mkdtemp(), "v")
try:
    subprocess.check_call([sys.executable, "-m", "venv", venv],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    out = subprocess.check_output([os.path.join(venv, "bin", "python"), "-m", "pip",
                                   "--version"], stderr=subprocess.DEVNULL)
    print(out.decode().split()[1])
except Exception:
    print("")
"""


def base_target(engine: ContainerEngine, image: str) -> WheelTarget:
    """What the base image's environment is: its python3's version and ABI, its glibc and
    architecture, and the pip a venv of it gets (which decides the wheel tags it accepts).
    Asked of a throwaway container with no network."""
    try:
        out = engine.run_once(image, ["python3", "-c", _BASE_PROBE]).decode("utf-8", "replace")
    except ContainerRefusedError as exc:
        raise ImageBuildError(
            f"base image {image} has no working python3: {exc.message}",
            hint="choose an image with Python and its venv module: --base-image python:X.Y-slim",
        ) from None
    lines = [ln.strip() for ln in out.splitlines()] + [""] * 7
    info = parse_info("\n".join(lines[:3]))
    if info is None:
        raise ImageBuildError(f"base image {image}: cannot tell its Python version ({out[:80]!r})")
    glibc = re.fullmatch(r"glibc (\d+)\.(\d+)", lines[3])
    pip = tuple(int(p) for p in re.findall(r"\d+", lines[5])[:2]) or (0,)
    return WheelTarget(
        python_version=info.version,
        abis=tuple(dict.fromkeys([*([info.abi] if info.abi else []), "abi3", "none"])),
        platforms=tuple(
            platform_tags(
                (int(glibc.group(1)), int(glibc.group(2))) if glibc else None,
                lines[4] or "x86_64",
                pip,
            )
        ),
        implementation="cp" if info.implementation == "CPython" else "py",
    )


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
