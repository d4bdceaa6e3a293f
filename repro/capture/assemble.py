"""Capture's assemble stage: the capsule's file entries (project, results, generated
environment and job files, vendored wheels and image, RO-Crate) and its Manifest."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from operator import attrgetter
from pathlib import Path
from typing import get_args

from repro import __version__
from repro.capsule.layout import (
    ENV_PREFIX,
    JOBS_PREFIX,
    PROJECT_PREFIX,
    ROCRATE_PATH,
    created_timestamp,
    rocrate_metadata,
)
from repro.capsule.manifest import (
    Environment,
    FileEntry,
    JobSpec,
    Manifest,
    Platform,
    Role,
    RunRecord,
    checked_entry,
)
from repro.capsule.writer import Source
from repro.capture.environment import EnvironmentBuild
from repro.capture.options import CaptureOptions, Observer
from repro.capture.plan import Plan
from repro.capture.results import Results, recorded_variables
from repro.capture.snapshot import Snapshot
from repro.capture.source import source_state
from repro.config.models import Run, point_id
from repro.env.image import ensure_image
from repro.env.pythons import PythonInfo
from repro.env.wheels import WheelTarget, download_wheels
from repro.hashing import sha256_bytes, sha256_file
from repro.machine import fingerprint
from repro.model_base import check_path_limits
from repro.scheduler.scripts import Flavour, render_script

JOB_SUFFIX: dict[Flavour, str] = {"slurm": "sbatch", "pbs": "pbs", "sge": "sge"}
LOCK_PATH = ENV_PREFIX + "requirements.lock"
DOCKERFILE_PATH = ENV_PREFIX + "Dockerfile"


@dataclass(frozen=True)
class Assembled:
    """The capsule's contents: its manifest and where each of its files comes from."""

    manifest: Manifest
    sources: Mapping[str, Source | bytes]
    """Capsule path -> a file on disk, or the content repro generated."""


@dataclass
class Contents:
    """The capsule's file entries and their sources, in the order they are added."""

    files: list[FileEntry] = field(default_factory=list)
    sources: dict[str, Source | bytes] = field(default_factory=dict)

    def add_generated(self, path: str, content: bytes, role: Role, mode: int = 0o644) -> None:
        """A file repro generates (lock, Dockerfile, job script, crate) into the capsule."""
        self.files.append(
            FileEntry(
                path=path, sha256=sha256_bytes(content), size=len(content), mode=mode, role=role
            )
        )
        self.sources[path] = content

    def add_file(self, path: str, source: Path, sha256: str, size: int) -> None:
        """An environment file copied from disk (a local wheel, a vendored wheel, the image)."""
        self.files.append(FileEntry(path=path, sha256=sha256, size=size, mode=0o644, role="env"))
        self.sources[path] = Source(source, size, source.stat().st_mtime_ns)


def assemble(
    plan: Plan,
    snapshot: Snapshot,
    environment: EnvironmentBuild,
    results: Results,
    work: Path,
    say: Observer,
) -> Assembled:
    """The stage; `work` holds the saved image with --image."""
    config = plan.config
    contents = project_contents(snapshot, plan.local_data)
    add_results(contents, results)
    add_environment(contents, environment)
    jobs, job_files = job_specs(config.runs)
    for path, content in job_files.items():
        contents.add_generated(path, content, "job", mode=0o755)
    extras = _vendor(plan.options, environment, work, say)
    for path, source in extras.files.items():
        contents.add_file(path, source, *sha256_file(source))
    created = created_timestamp(plan.epoch)
    crate = rocrate_metadata(
        config.capsule,
        created,
        config.runs,
        list(results.records),
        list(plan.local_data),
        contents.files,
        environment.base_image,
        [LOCK_PATH, DOCKERFILE_PATH],
    )
    contents.add_generated(ROCRATE_PATH, crate, "metadata")
    locked = environment.locked
    notes = [*plan.notes, *snapshot.notes, *locked.notes]
    if locked.lock.source == "none":
        notes.append("no dependency declaration found: the lock is empty")
    notes += [
        f"run {run.name} declares no outputs: a replay can only check that it exits 0 "
        '(declare what it writes: outputs = ["results/"])'
        for run in config.runs
        if not run.outputs
    ]
    manifest = Manifest(
        repro_version=__version__,
        created=created,
        metadata=config.capsule,
        source=source_state(plan.project),
        platform=platform(results.python),
        environment=recorded_environment(plan, environment, extras),
        # In UTF-8 byte order, which for these paths (valid UTF-8: FileEntry checks it) is
        # the code point order str comparison gives, without encoding each path.
        files=sorted(contents.files, key=attrgetter("path")),
        remote_data=[r for r, _ in results.remote],
        jobs=jobs,
        runs=config.runs,
        results=list(results.records),
        notebooks=config.notebooks,
        notebook_results=list(results.notebook_records),
        excluded=sorted(snapshot.listing.excluded),
        notes=notes,
    )
    return Assembled(manifest, contents.sources)


def file_role(rel: str, data_paths: tuple[str, ...]) -> Role:
    return role_of(data_paths)(rel)


def role_of(data_paths: tuple[str, ...]) -> Callable[[str], Role]:
    """`file_role` for these data paths, with the folder prefixes built once (it runs for
    every file of the project)."""
    exact = frozenset(data_paths)
    folders = tuple(data.rstrip("/") + "/" for data in data_paths)

    def role(rel: str) -> Role:
        if rel in exact or rel.startswith(folders):
            return "data"
        return "notebook" if rel.endswith(".ipynb") else "code"

    return role


def project_contents(snapshot: Snapshot, data_paths: tuple[str, ...]) -> Contents:
    """The project's files under project/, with their role; a symlink is stored as a link."""
    contents = Contents()
    files, sources = contents.files, contents.sources
    hashed = iter(zip(snapshot.sha256, snapshot.sizes, strict=True))
    role_for = role_of(data_paths)
    checked = _all_sha256(snapshot.sha256)
    for f in snapshot.listing.files:  # `regular` is this list without the links
        capsule_path = PROJECT_PREFIX + f.rel
        role = role_for(f.rel)
        if f.link_target is not None:
            files.append(
                FileEntry(
                    path=capsule_path,
                    sha256=sha256_bytes(f.link_target.encode()),
                    size=0,
                    mode=0o777,
                    role=role,
                    link=f.link_target,
                )
            )
            continue
        sha, size = next(hashed)
        mode = 0o755 if f.executable else 0o644
        files.append(project_entry(capsule_path, sha, size, mode, role, sha_checked=checked))
        st = f.stat
        sources[capsule_path] = Source(
            f.where, size, st.st_mtime_ns if st else None, st.st_ctime_ns if st else None
        )
    return contents


_FIELDS_SET = {"path", "sha256", "size", "mode", "role"}
"""What validation records as set for a project file's entry, shared by them all."""


_HEX = "0123456789abcdef"
_ROLES = frozenset(get_args(Role))
_FAST_ENTRIES = tuple(FileEntry.model_fields) == ("path", "sha256", "size", "mode", "role", "link")
"""Whether FileEntry has the fields `project_entry` builds (else it validates them all)."""


def _all_sha256(shas: Sequence[str]) -> bool:
    """Whether every one of `shas` is what SHA256_PATTERN accepts: 64 lower-case hex digits
    (checked at once: one strip over them all, not one per file)."""
    return all(type(s) is str and len(s) == 64 for s in shas) and not "".join(shas).strip(_HEX)


def project_entry(
    path: str, sha256: str, size: int, mode: int, role: Role, *, sha_checked: bool = False
) -> FileEntry:
    """A project file's FileEntry, as `FileEntry(...)` validates and `lean_entry` shares it,
    at a third of the cost (it runs for every file): each value checked here by the rule
    its field has (the path by the same function), then the instance built as pydantic's
    model_construct does, without its loop over fields and defaults (`sha_checked`: the
    caller checked every digest at once with `_all_sha256`). Anything unexpected,
    an invalid value or a FileEntry with other fields, goes through full validation."""
    if (
        not _FAST_ENTRIES
        or type(path) is not str
        or not (sha_checked or _all_sha256((sha256,)))
        or type(size) is not int
        or size < 0
        or mode not in (0o644, 0o755)
        or role not in _ROLES
    ):
        return lean_entry(FileEntry(path=path, sha256=sha256, size=size, mode=mode, role=role))
    try:
        check_path_limits(path, "file path")
    except ValueError:  # the model says it, as a ValidationError
        return lean_entry(FileEntry(path=path, sha256=sha256, size=size, mode=mode, role=role))
    values = {"path": path, "sha256": sha256, "size": size, "mode": mode, "role": role}
    return checked_entry({**values, "link": None}, _FIELDS_SET)


def lean_entry(entry: FileEntry) -> FileEntry:
    """`entry`, validated, with pydantic's record of the fields set shared (one set per
    entry costs 730 bytes, twice the entry itself; frozen entries never change it, and
    model_copy copies it before adding to it)."""
    if entry.__pydantic_fields_set__ == _FIELDS_SET:
        object.__setattr__(entry, "__pydantic_fields_set__", _FIELDS_SET)
    return entry


def add_results(contents: Contents, results: Results) -> None:
    """The notebooks' expectations and the runs' outputs, as results."""
    for path, content in results.expectations.items():
        contents.add_generated(path, content, "result")
    for record in results.records:
        for out in record.outputs:
            contents.files.append(
                FileEntry(
                    path=out.capsule_path,
                    sha256=out.sha256,
                    size=out.size,
                    mode=0o644,
                    role="result",
                )
            )
    _result_sources(results.records, results.root, contents.sources)


def add_environment(contents: Contents, environment: EnvironmentBuild) -> None:
    """The lock, the Dockerfile and the local packages' wheels, under env/."""
    locked = environment.locked
    contents.add_generated(LOCK_PATH, locked.lock.text.encode(), "env")
    contents.add_generated(DOCKERFILE_PATH, environment.dockerfile.encode(), "env")
    for wheel, package in zip(locked.wheels, locked.local_packages(), strict=True):
        contents.add_file(package.wheel, wheel.path, wheel.sha256, wheel.path.stat().st_size)


def _result_sources(
    records: tuple[RunRecord, ...], root: Path, sources: dict[str, Source | bytes]
) -> None:
    for record in records:
        for out in record.outputs:
            path = root / out.path
            st = path.stat()
            sources[out.capsule_path] = Source(path, out.size, st.st_mtime_ns)


def recorded_environment(
    plan: Plan, environment: EnvironmentBuild, extras: _Vendored
) -> Environment:
    """The environment as the manifest records it."""
    planned, lock = plan.environment, environment.locked.lock
    return Environment(
        python_version=environment.python,
        lock_source=lock.source,
        requirements=lock.requirements,
        lock=LOCK_PATH,
        lock_sha256=sha256_bytes(lock.text.encode()),
        packages=lock.packages,
        base_image=environment.base_image,
        apt_packages=planned.plan.apt,
        dockerfile=DOCKERFILE_PATH,
        variables=recorded_variables(plan.config.environment.variables),
        wheels=extras.wheels,
        image=extras.image,
        image_tag=extras.image_tag,
        image_id=extras.image_id,
        declaration=planned.declaration(),
        local_packages=environment.locked.local_packages(),
        post_build=PROJECT_PREFIX + planned.plan.post_build if planned.plan.post_build else None,
        captured_on=plan.options.target,
    )


def platform(python: PythonInfo | None) -> Platform:
    """This machine, with the Python the study really ran with (a venv of another version, or
    the image's interpreter with --target docker)."""
    found = fingerprint()
    if python is None:
        return found
    return found.model_copy(
        update={
            "python_version": python.version,
            "python_implementation": python.implementation,
            "python_abi": python.abi,
        }
    )


def job_specs(runs: list[Run]) -> tuple[list[JobSpec], dict[str, bytes]]:
    """Each run as a cluster job (a sweep is one array), with its batch scripts."""
    specs, files = [], {}
    for run in runs:
        points = run.points()
        scripts = {}
        for flavour, suffix in JOB_SUFFIX.items():
            path = f"{JOBS_PREFIX}{run.name}.{suffix}"
            files[path] = render_script(run, points, flavour).encode()
            scripts[flavour] = path
        specs.append(
            JobSpec(
                run=run.name,
                point_ids=[point_id(p) for p in points],
                resources=run.resources,
                scripts=scripts,
            )
        )
    return specs, files


@dataclass(frozen=True)
class _Vendored:
    files: dict[str, Path]
    wheels: str | None = None
    image: str | None = None
    image_tag: str | None = None
    image_id: str | None = None


def _vendor(
    opts: CaptureOptions, environment: EnvironmentBuild, stage: Path, say: Observer
) -> _Vendored:
    """--wheels: the lock's wheels; --image: the built environment image (docker save)."""
    lock = environment.locked.lock
    files: dict[str, Path] = {}
    wheels_folder = None
    wheels = None
    if (opts.wheels or opts.image) and lock.packages:
        say("downloading the lock's wheels (hash-checked)")
        wheels_folder = download_wheels(lock.text, target=WheelTarget(environment.python_mm))
        if opts.wheels:
            wheels = ENV_PREFIX + "wheels"
            for whl in sorted(wheels_folder.glob("*.whl")):
                files[f"{wheels}/{whl.name}"] = whl
    if not opts.image:
        return _Vendored(files, wheels)
    from repro.engines.docker_engine import DockerEngine

    engine = DockerEngine()  # one connection for the build and the save
    spec = environment.image_spec(wheels_folder)
    image_id = ensure_image(engine, spec, offline=False, say=say)
    say(f"saving image {spec.tag} into the capsule")
    tarball = stage / ".repro-image.tar"
    engine.save(image_id, tarball)
    files[ENV_PREFIX + "image.tar"] = tarball
    return _Vendored(files, wheels, ENV_PREFIX + "image.tar", spec.tag, image_id)
