"""Environment images: built from a capsule's Dockerfile through a container engine, tagged
by environment digest and reused, saved into and loaded from capsules.

Images are trusted by content, never by a name or a label a capsule could set:
- a built image is tagged `repro-env:<environment digest>`, and the image id it got is
  recorded in this machine's registry (`images.json` under the cache); a tag is reused only
  while it still names the image recorded for it, else the image is built again;
- a capsule's saved image is loaded only when its archive holds exactly the one image the
  manifest records by id (`sha256:` of its config, which covers every layer) and carries no
  tag; it is kept as `repro-loaded:<id>`, a repository no build uses, and run by its id.
So an image loaded from one capsule can never stand in for another capsule's environment.

The engine is a `ContainerEngine` the caller passes (the Docker engine, connected lazily):
importing this module contacts nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
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
from repro.env.virtualenv import locked
from repro.env.wheels import WheelTarget, download_wheels, platform_tags
from repro.errors import CapsuleIntegrityError, ImageBuildError, ServiceUnavailableError
from repro.hashing import sha256_bytes
from repro.paths import cache_dir, mark_used, scratch_prefix

IMAGE_REPO = "repro-env"
LOADED_REPO = "repro-loaded"
"""Saved images loaded from capsules: a repository no build tags."""
REGISTRY_NAME = "images.json"
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


class BuiltImages:
    """This machine's record of the images repro built: environment digest -> image id, in
    one JSON file under the cache (written whole, atomically, under a file lock)."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or cache_dir() / REGISTRY_NAME

    def _read(self) -> dict[str, str]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}  # none yet, or unreadable: every image is then built again
        if not isinstance(data, dict):
            return {}
        return {str(k): str(v) for k, v in data.items()}

    def get(self, digest: str) -> str | None:
        return self._read().get(digest)

    def record(self, digest: str, image_id: str) -> None:
        with locked(self.path.with_suffix(".lock")):
            data = self._read()
            data[digest] = image_id
            tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps(data, sort_keys=True, indent=1), encoding="utf-8")
            tmp.replace(self.path)


def ensure_image(
    engine: ContainerEngine,
    spec: ImageSpec,
    offline: bool,
    say: Callable[[str], None],
    registry: BuiltImages | None = None,
) -> str:
    """The environment image's id: the image tagged for `spec` when this machine built it
    (the registry says so and the tag still names it), otherwise built now. Returned as an
    id, so that nothing retagged in between is run."""
    built = registry or BuiltImages()
    tag = spec.tag
    current = engine.image_id(tag)
    if current is not None:
        if built.get(spec.digest) == current:
            say(f"reusing image {tag}")
            mark_used("images", current.removeprefix("sha256:"))
            return current
        say(f"image {tag} is not one repro built on this machine: building it again")
    _build(engine, spec, offline, say)
    image_id = engine.image_id(tag)
    if image_id is None:
        raise ImageBuildError(f"the build of {tag} gave no image")
    built.record(spec.digest, image_id)
    mark_used("images", image_id.removeprefix("sha256:"))
    return image_id


def load_saved_image(
    engine: ContainerEngine, saved: Path, image_id: str, say: Callable[[str], None]
) -> str:
    """The capsule's saved image, by id: loaded when the engine does not have it yet, after
    checking the archive holds exactly that image and no tag; kept as repro-loaded:<id>."""
    short = image_id.removeprefix("sha256:")[:16]
    mark_used("images", image_id.removeprefix("sha256:"))
    if engine.image_id(image_id) == image_id:
        say(f"reusing the capsule's saved image {short} (loaded before)")
        return image_id
    check_saved_archive(saved, image_id)
    say(f"loading the capsule's saved image {short}")
    engine.load(saved)
    if engine.image_id(image_id) != image_id:
        raise CapsuleIntegrityError(
            f"the capsule's saved image did not load as the image it records ({short})"
        )
    engine.tag(image_id, f"{LOADED_REPO}:{short}")
    return image_id


_STEP = re.compile(r"^Step \d+/\d+ : ")


def _build_steps(say: Callable[[str], None]) -> Callable[[str], None]:
    """The build log's progress as the observer hears it: one line per Dockerfile step
    (`Step 3/9 : RUN ...`), so a first build says what it is doing, not every line pip writes."""

    def on_line(line: str) -> None:
        if _STEP.match(line):
            say(f"image build {line[:160]}")

    return on_line


def _build(
    engine: ContainerEngine, spec: ImageSpec, offline: bool, say: Callable[[str], None]
) -> None:
    tag = spec.tag
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
                progress=_build_steps(say),
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


def check_saved_archive(saved: Path, image_id: str) -> None:
    """A saved image must be exactly the image the manifest records and carry no tag
    (loading a tag would move it off another image): one image, no RepoTags, no
    `repositories` names, and a config whose sha256 is the recorded id."""
    want = image_id.removeprefix("sha256:")
    try:
        with tarfile.open(saved) as tar:
            entries = _json_member(tar, "manifest.json")
            names = _json_member(tar, "repositories", missing={})
            if not (isinstance(entries, list) and len(entries) == 1):
                raise CapsuleIntegrityError("the capsule's saved image holds more than one image")
            entry = entries[0]
            config = entry.get("Config") if isinstance(entry, dict) else None
            tags = entry.get("RepoTags") if isinstance(entry, dict) else None
            if tags or names:
                raise CapsuleIntegrityError(
                    "the capsule's saved image carries tags: loading it would replace other images"
                )
            if not isinstance(config, str):
                raise CapsuleIntegrityError("the capsule's saved image names no config")
            member = tar.extractfile(config)
            digest = hashlib.sha256(member.read()).hexdigest() if member else ""
    except (tarfile.TarError, KeyError, ValueError, OSError):
        raise CapsuleIntegrityError(
            "the capsule's saved image is not a docker save archive"
        ) from None
    if digest != want:
        raise CapsuleIntegrityError(
            f"the capsule's saved image is not the image it records (sha256:{want[:16]})"
        )


def _json_member(tar: tarfile.TarFile, name: str, missing: object = None) -> object:
    try:
        member = tar.extractfile(name)
    except KeyError:
        if missing is None:
            raise
        return missing
    if member is None:
        raise ValueError(name)
    return json.loads(member.read(1 << 20))
