"""`repro capture`: turn a project into a capsule (list, hash, lock, run, record, write)."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from repro import __version__
from repro.capsule.layout import (
    ENV_PREFIX,
    JOBS_PREFIX,
    PROJECT_PREFIX,
    RESULTS_PREFIX,
    ROCRATE_PATH,
    created_timestamp,
    rocrate_metadata,
)
from repro.capsule.manifest import (
    Environment,
    ExpectedOutput,
    FileEntry,
    JobSpec,
    KernelInfo,
    Manifest,
    NotebookRecord,
    Platform,
    RemoteData,
    Role,
    RunRecord,
)
from repro.capsule.writer import Source, WrittenCapsule, write_capsule
from repro.capture import environment as env_stage
from repro.capture.files import Listing, ProjectFile, list_project
from repro.capture.secret_scan import Hit, SecretScanner, fail_on_hits, is_secret_variable
from repro.capture.source import source_state
from repro.config import load_config
from repro.config.models import (
    CompareRule,
    DataSpec,
    NotebookSpec,
    ProjectConfig,
    Resolver,
    Run,
    point_id,
    render,
)
from repro.engines import ContainerEngine
from repro.env.apt import check_apt_on_host
from repro.env.dockerfile import default_base_image
from repro.env.image import ImageSpec, ensure_image
from repro.env.lock import (
    Lock,
    with_packages,
)
from repro.env.virtualenv import PostBuild, build_venv, python_version_of
from repro.env.wheels import download_wheels
from repro.errors import (
    ConfigError,
    FileTooLargeError,
    NotebookError,
    NotebookFailedError,
    ProjectNotFoundError,
    ResolverError,
    SigningKeyError,
    UsageError,
)
from repro.execution.runs import (
    CommandRunner,
    LocalRunner,
    PointOutcome,
    execute_runs,
    stage_project,
)
from repro.hashing import Digest, StatCache, hash_files, sha256_bytes, sha256_file
from repro.machine import fingerprint
from repro.notebooks import notebook as nbk
from repro.paths import cache_dir
from repro.remote_data import fetch_remote
from repro.scheduler.scripts import Flavour, render_script
from repro.sign import (
    PassphrasePrompt,
    default_key_path,
    key_id,
    load_private_key,
    sign_digest,
)

Observer = Callable[[str], None]
CaptureTarget = Literal["local", "docker"]


@dataclass(frozen=True)
class CaptureOptions:
    """What the user asked for; None means 'as repro.toml says'."""

    project: Path
    output: Path
    runs: list[Run] | None = None
    """Runs given as flags; they replace the config's runs."""
    data: list[str] = field(default_factory=list)
    requirements: str | None = None
    python: str | None = None
    resolver: Resolver | None = None
    freeze: bool = False
    execute: bool = True
    jobs: int = 1
    base_image: str | None = None
    use_hash_cache: bool = True
    wheels: bool = False
    """Vendor the lock's wheels into the capsule (offline replays)."""
    image: bool = False
    """Build the environment image and save it into the capsule (docker save)."""
    allow_secrets: list[str] = field(default_factory=list)
    """Paths allowed to hold what looks like a secret (--allow-secret)."""
    sign: bool | None = None
    """True: must sign; False: never; None: sign when a signing key exists."""
    key: Path | None = None
    passphrase_prompt: PassphrasePrompt | None = None
    target: CaptureTarget = "local"
    """Where the study runs at capture: a venv on this machine, or the capsule's own image."""


@dataclass(frozen=True)
class CaptureResult:
    capsule: WrittenCapsule
    manifest: Manifest
    config_source: str | None
    hashed_bytes: int
    timings: dict[str, float]
    signed_by: str | None
    """Key id of the signature, when the capsule was signed."""


def _project_dir(path: Path) -> Path:
    if not path.exists():
        raise ProjectNotFoundError(f"project directory not found: {path}")
    if not path.is_dir():
        raise ProjectNotFoundError(f"not a directory: {path}")
    if not os.access(path, os.R_OK | os.X_OK):
        raise ProjectNotFoundError(
            f"project directory is not readable: {path}", hint="check its permissions"
        )
    return path.resolve()


def _effective_config(config: ProjectConfig, opts: CaptureOptions) -> ProjectConfig:
    env = config.environment
    updates: dict[str, object] = {}
    if opts.requirements is not None:
        updates["requirements"] = opts.requirements
    if opts.python is not None:
        updates["python"] = opts.python
    if opts.resolver is not None:
        updates["resolver"] = opts.resolver
    if opts.base_image is not None:
        updates["base_image"] = opts.base_image
    data = list(config.data) + [DataSpec(path=p) for p in opts.data]
    return config.model_copy(
        update={
            "environment": env.model_copy(update=updates),
            "data": data,
            "runs": opts.runs if opts.runs is not None else config.runs,
        }
    )


def _epoch() -> tuple[int, bool]:
    value = os.environ.get("SOURCE_DATE_EPOCH")
    if value is None:
        return int(time.time()), False
    try:
        return int(value), True
    except ValueError:
        raise UsageError(f"SOURCE_DATE_EPOCH is not an integer: {value!r}") from None


def _role(rel: str, data_paths: list[str]) -> Role:
    for data in data_paths:
        if rel == data or rel.startswith(data.rstrip("/") + "/"):
            return "data"
    return "notebook" if rel.endswith(".ipynb") else "code"


def capture(opts: CaptureOptions, observe: Observer | None = None) -> CaptureResult:
    """Capture `opts.project` into the capsule file `opts.output`.

    Nothing is written at the destination unless every step succeeded.
    """
    say = observe or (lambda _msg: None)
    timings: dict[str, float] = {}
    project = _project_dir(opts.project)
    config, config_source = load_config(project)
    config = _effective_config(config, opts)
    epoch, reproducible = _epoch()
    notes: list[str] = []
    # The declarations are read and checked before any slow work: a malformed file fails fast.
    planned = env_stage.plan(project, config.environment, freeze=opts.freeze)
    notes += planned.notes
    output = opts.output.absolute()
    signing_key = _signing_key(opts)  # before any work: a wrong passphrase fails fast

    local_data = [d.path.rstrip("/") for d in config.data if d.url is None]
    remote_specs = [d for d in config.data if d.url is not None]
    exclude = {render(t, p) for run in config.runs for t in run.outputs for p in run.points()}
    exclude |= {d.path for d in remote_specs}
    if output.is_relative_to(project):
        exclude.add(output.relative_to(project).as_posix())

    say("listing project files")
    t0 = time.perf_counter()
    allowed = set(config.capture.allow_secrets) | set(opts.allow_secrets)
    listing = list_project(
        project,
        data_paths=local_data,
        extra_ignores=config.capture.ignore,
        exclude=exclude,
        allow_secrets=allowed,
    )
    regular = [f for f in listing.files if not f.is_link]
    limit = config.capture.max_file_size
    for f in regular:
        size = f.path.stat().st_size
        if size > limit:
            raise FileTooLargeError(
                f"{f.rel} is {size / 2**30:.1f} GiB, over the {limit / 2**30:.1f} GiB "
                "per-file limit for embedded data"
            )
    timings["list"] = time.perf_counter() - t0
    notebooks = _read_notebooks(project, config.notebooks, {f.rel for f in listing.files})
    if not opts.execute:
        notes += _saved_outputs_notes(notebooks)

    say(f"hashing {len(regular)} files")
    t0 = time.perf_counter()
    cache = StatCache(cache_dir() / "hashes.sqlite") if opts.use_hash_cache else None
    digests = hash_files([f.path for f in regular], cache=cache, cache_root=project)
    timings["hash"] = time.perf_counter() - t0
    hashed_bytes = sum(d.size for d in digests.values())

    say("scanning for secrets")
    t0 = time.perf_counter()
    scanner = SecretScanner()
    _scan_project(scanner, cache, regular, digests, allowed)
    timings["scan"] = time.perf_counter() - t0

    work = Path(tempfile.mkdtemp(prefix="repro-capture-"))
    try:
        return _capture_rest(
            opts,
            project,
            config,
            config_source,
            planned,
            listing,
            regular,
            digests,
            notebooks,
            scanner,
            allowed,
            local_data,
            remote_specs,
            notes,
            timings,
            hashed_bytes,
            epoch,
            reproducible,
            output,
            signing_key,
            work,
            say,
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _capture_rest(
    opts: CaptureOptions,
    project: Path,
    config: ProjectConfig,
    config_source: str | None,
    planned: env_stage.PlannedEnvironment,
    listing: Listing,
    regular: list[ProjectFile],
    digests: dict[Path, Digest],
    notebooks: list[_Notebook],
    scanner: SecretScanner,
    allowed: set[str],
    local_data: list[str],
    remote_specs: list[DataSpec],
    notes: list[str],
    timings: dict[str, float],
    hashed_bytes: int,
    epoch: int,
    reproducible: bool,
    output: Path,
    signing_key: Ed25519PrivateKey | None,
    work: Path,
    say: Observer,
) -> CaptureResult:
    pyver = planned.python
    say("locking dependencies")
    t0 = time.perf_counter()
    pristine = work / "files"
    if planned.declared.local or planned.plan.post_build:
        # Wheels are built, and postBuild runs, from exactly the captured files, never from
        # the user's tree (builds write into their source folder).
        stage_project([(f.rel, f.path, f.link_target) for f in listing.files], pristine)
    locked = env_stage.lock_environment(
        planned,
        project,
        pristine,
        work / "build",
        config.environment,
        freeze=opts.freeze,
        epoch=epoch,
        say=say,
    )
    lock = locked.lock
    notes += locked.notes
    if notebooks:
        lock, lock_notes = _with_kernel(lock, config, pyver, opts.freeze)
        notes += lock_notes
    locked = env_stage.LockedEnvironment(lock, locked.wheels, locked.notes)
    timings["lock"] = time.perf_counter() - t0

    remote: list[tuple[RemoteData, Path]] = []
    for spec in remote_specs:
        say(f"fetching {spec.url}")
        remote.append(fetch_remote(spec))

    files: list[FileEntry] = []
    sources: dict[str, Source | bytes] = {}
    for f in listing.files:
        capsule_path = PROJECT_PREFIX + f.rel
        if f.link_target is not None:
            files.append(
                FileEntry(
                    path=capsule_path,
                    sha256=sha256_bytes(f.link_target.encode()),
                    size=0,
                    mode=0o777,
                    role=_role(f.rel, local_data),
                    link=f.link_target,
                )
            )
            continue
        d = digests[f.path]
        files.append(
            FileEntry(
                path=capsule_path,
                sha256=d.sha256,
                size=d.size,
                mode=0o755 if f.executable else 0o644,
                role=_role(f.rel, local_data),
            )
        )
        sources[capsule_path] = Source(f.path, d.size, d.mtime_ns, d.ctime_ns)

    project_digests = {f.path: f.sha256 for f in files}
    base_image = config.environment.base_image or default_base_image(pyver)
    environment = _EnvironmentBuild(
        locked,
        env_stage.post_build(planned, project_digests, pristine),
        pyver,
        planned.plan.apt,
        env_stage.dockerfile(base_image, planned, locked, planned.plan.apt),
        base_image,
    )
    stage = work / "stage"
    stage.mkdir()
    t0 = time.perf_counter()
    results = _results(
        config,
        opts,
        project,
        listing.files,
        remote,
        environment,
        stage,
        notebooks,
        say,
    )
    records, notebook_records, expectations = (
        results.records,
        results.notebook_records,
        results.expectations,
    )
    timings["runs"] = time.perf_counter() - t0
    _scan_results(scanner, records, project if not opts.execute else stage, allowed)
    fail_on_hits(
        [
            hit
            for record in notebook_records
            if record.path not in allowed
            for hit in scanner.scan_bytes(
                expectations[record.capsule_path], f"outputs of notebook {record.path}"
            )
        ]
    )
    for path, content in expectations.items():
        _add_generated(files, sources, path, content, "result")
    for record in records:
        for out in record.outputs:
            files.append(
                FileEntry(
                    path=out.capsule_path,
                    sha256=out.sha256,
                    size=out.size,
                    mode=0o644,
                    role="result",
                )
            )
    _result_sources(records, project if not opts.execute else stage, sources)
    if reproducible:
        records = [r.model_copy(update={"duration_s": None}) for r in records]
        notebook_records = [r.model_copy(update={"duration_s": None}) for r in notebook_records]

    apt = planned.plan.apt
    env_files = {
        ENV_PREFIX + "requirements.lock": lock.text.encode(),
        ENV_PREFIX + "Dockerfile": environment.dockerfile.encode(),
    }
    for path, content in env_files.items():
        _add_generated(files, sources, path, content, "env")
    for wheel, package in zip(locked.wheels, locked.local_packages(), strict=True):
        size = wheel.path.stat().st_size
        files.append(
            FileEntry(path=package.wheel, sha256=wheel.sha256, size=size, mode=0o644, role="env")
        )
        sources[package.wheel] = Source(wheel.path, size, wheel.path.stat().st_mtime_ns)
    jobs, job_files = _job_specs(config.runs)
    for path, content in job_files.items():
        _add_generated(files, sources, path, content, "job", mode=0o755)
    extras = _vendor(opts, environment, work, say)
    for path, source in extras.files.items():
        sha, size = sha256_file(source)
        files.append(FileEntry(path=path, sha256=sha, size=size, mode=0o644, role="env"))
        sources[path] = Source(source, size, source.stat().st_mtime_ns)
    created = created_timestamp(epoch)
    crate = rocrate_metadata(
        config.capsule,
        created,
        config.runs,
        records,
        local_data,
        files,
        base_image,
        list(env_files),
    )
    _add_generated(files, sources, ROCRATE_PATH, crate, "metadata")
    if lock.source == "none":
        notes.append("no dependency declaration found: the lock is empty")

    recorded = Environment(
        python_version=pyver,
        lock_source=lock.source,
        requirements=lock.requirements,
        lock=ENV_PREFIX + "requirements.lock",
        lock_sha256=sha256_bytes(lock.text.encode()),
        packages=lock.packages,
        base_image=base_image,
        apt_packages=apt,
        dockerfile=ENV_PREFIX + "Dockerfile",
        variables=_recorded_variables(config.environment.variables),
        wheels=extras.wheels,
        image=extras.image,
        image_tag=extras.image_tag,
        declaration=planned.declaration(),
        local_packages=locked.local_packages(),
        post_build=PROJECT_PREFIX + planned.plan.post_build if planned.plan.post_build else None,
        captured_on=opts.target,
    )
    manifest = Manifest(
        repro_version=__version__,
        created=created,
        metadata=config.capsule,
        source=source_state(project),
        platform=_platform(results.python),
        environment=recorded,
        files=sorted(files, key=lambda f: f.path.encode()),
        remote_data=[r for r, _ in remote],
        jobs=jobs,
        runs=config.runs,
        results=records,
        notebooks=config.notebooks,
        notebook_results=notebook_records,
        excluded=sorted(listing.excluded),
        notes=notes,
    )
    say(f"writing {output.name}")
    t0 = time.perf_counter()
    # The manifest and the generated files travel too: commands, recorded variables,
    # job scripts and the crate are scanned like the project's files.
    fail_on_hits(
        scanner.scan_bytes(manifest.canonical_json(), "repro.json")
        + [
            hit
            for path, content in sources.items()
            if isinstance(content, bytes) and path not in expectations
            for hit in scanner.scan_bytes(content, path)
        ],
        hint="it comes from a run command, a recorded variable or the metadata: remove it "
        "there and pass secrets to runs through the environment at run time",
    )
    signature = None
    if signing_key is not None:
        signature = sign_digest(sha256_bytes(manifest.canonical_json()), signing_key)
    written = write_capsule(output, manifest, sources, signature=signature, mtime=epoch)
    timings["write"] = time.perf_counter() - t0
    signed_by = key_id(signing_key.public_key()) if signing_key else None
    return CaptureResult(written, manifest, config_source, hashed_bytes, timings, signed_by)


def _platform(python: str | None) -> Platform:
    """This machine, with the Python the study really ran with (a venv of another version, or
    the image's interpreter with --target docker)."""
    found = fingerprint()
    return found.model_copy(update={"python_version": python}) if python else found


def _signing_key(opts: CaptureOptions) -> Ed25519PrivateKey | None:
    if opts.sign is False:
        return None
    path = opts.key or default_key_path()
    if path is None:
        if opts.sign:
            raise SigningKeyError("--sign was given but there is no signing key")
        return None
    return load_private_key(path, opts.passphrase_prompt)


JOB_SUFFIX: dict[Flavour, str] = {"slurm": "sbatch", "pbs": "pbs", "sge": "sge"}


def _job_specs(runs: list[Run]) -> tuple[list[JobSpec], dict[str, bytes]]:
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


def _vendor(
    opts: CaptureOptions,
    environment: _EnvironmentBuild,
    stage: Path,
    say: Observer,
    engine: ContainerEngine | None = None,
) -> _Vendored:
    """--wheels: the lock's wheels; --image: the built environment image (docker save)."""
    lock = environment.locked.lock
    files: dict[str, Path] = {}
    wheels_folder = None
    wheels = None
    if (opts.wheels or opts.image) and lock.packages:
        say("downloading the lock's wheels (hash-checked)")
        wheels_folder = download_wheels(lock.text)
        if opts.wheels:
            wheels = ENV_PREFIX + "wheels"
            for whl in sorted(wheels_folder.glob("*.whl")):
                files[f"{wheels}/{whl.name}"] = whl
    if not opts.image:
        return _Vendored(files, wheels)
    from repro.engines.docker_engine import DockerEngine

    engine = engine if engine is not None else DockerEngine()
    tag = ensure_image(engine, environment.image_spec(wheels_folder), offline=False, say=say)
    say(f"saving image {tag} into the capsule")
    tarball = stage / ".repro-image.tar"
    engine.save(tag, tarball)
    files[ENV_PREFIX + "image.tar"] = tarball
    return _Vendored(files, wheels, ENV_PREFIX + "image.tar", tag)


def _recorded_variables(names: list[str]) -> dict[str, str]:
    """Only allowlisted variables, and never one whose name says it is a secret."""
    for name in names:
        if is_secret_variable(name):
            raise ConfigError(
                f"[environment] variables: {name} looks like a secret and is never recorded",
                hint="remove it from the list; pass secrets to runs at replay time instead",
            )
    return {k: os.environ[k] for k in names if k in os.environ}


def _scan_project(
    scanner: SecretScanner,
    cache: StatCache | None,
    files: list[ProjectFile],
    digests: dict[Path, Digest],
    allowed: set[str],
) -> None:
    clean = cache.clean_scans(scanner.rules_digest) if cache else set()
    hits: list[Hit] = []
    newly_clean: set[str] = set()
    for f in files:
        sha = digests[f.path].sha256
        if f.rel in allowed or sha in clean:
            continue
        found = scanner.scan_file(f.path, f.rel)
        if found:
            hits += found
        else:
            newly_clean.add(sha)
    if cache is not None and newly_clean:
        cache.store_clean(scanner.rules_digest, newly_clean)
    fail_on_hits(hits)


def _scan_results(
    scanner: SecretScanner, records: list[RunRecord], root: Path, allowed: set[str]
) -> None:
    """Outputs and the stdout/stderr tails recorded from runs travel in the capsule too."""
    hits: list[Hit] = []
    for record in records:
        label = f"{record.run} [{record.point_id}]"
        for stream, text in (("stdout", record.stdout_tail), ("stderr", record.stderr_tail)):
            hits += scanner.scan_bytes(text.encode(), f"{stream} of run {label}")
        for out in record.outputs:
            if out.path not in allowed:
                hits += scanner.scan_file(root / out.path, out.path)
    fail_on_hits(hits)


def _results(
    config: ProjectConfig,
    opts: CaptureOptions,
    project: Path,
    files: list[ProjectFile],
    remote: list[tuple[RemoteData, Path]],
    environment: _EnvironmentBuild,
    stage: Path,
    notebooks: list[_Notebook],
    say: Observer,
) -> _Results:
    """The runs' expected results, the notebooks' records and their expectation files."""
    if not config.runs and not notebooks:
        return _Results([], [], {}, None)
    if not opts.execute:
        unexecuted = [_notebook_record(nb, nb.node, None) for nb in notebooks]
        return _Results(
            _unexecuted_records(config.runs, project),
            [record for record, _ in unexecuted],
            {record.capsule_path: content for record, content in unexecuted},
            None,
        )
    runner, python = _runner(opts, environment, say)
    say("staging the captured files")
    stage_project([(f.rel, f.path, f.link_target) for f in files], stage)
    for data, cached in remote:
        target = stage / data.path
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(cached, target)
    if opts.target == "docker":
        from repro.execution.container import give_to_container_user

        give_to_container_user(stage)
    n_points = sum(len(r.points()) for r in config.runs)
    if config.runs:
        say(f"running {len(config.runs)} run(s), {n_points} point(s)")
    outcomes = execute_runs(
        config.runs,
        stage,
        runner,
        jobs=opts.jobs,
        on_point=lambda o: say(f"ran {o.label} in {o.result.duration_s:.1f} s"),
    )
    runs_by_name = {r.name: r for r in config.runs}
    records = [_record(runs_by_name[o.run], o) for o in outcomes]
    executed = _execute_notebooks(notebooks, stage, runner, say)
    return _Results(
        records,
        [record for record, _ in executed],
        {record.capsule_path: content for record, content in executed},
        python,
    )


@dataclass(frozen=True)
class _Results:
    records: list[RunRecord]
    notebook_records: list[NotebookRecord]
    expectations: dict[str, bytes]
    """Capsule path -> content of each notebook's expectation."""
    python: str | None
    """major.minor.micro of the interpreter the study ran with, when it is not this one."""


@dataclass(frozen=True)
class _EnvironmentBuild:
    """What the study's environment is built from, for the target capture runs on."""

    locked: env_stage.LockedEnvironment
    post_build: PostBuild | None
    python: str
    apt: list[str]
    dockerfile: str
    base_image: str

    def image_spec(self, wheels: Path | None = None) -> ImageSpec:
        return ImageSpec(
            dockerfile=self.dockerfile,
            lock_text=self.locked.lock.text,
            base_image=self.base_image,
            has_packages=bool(self.locked.lock.packages),
            needs_network=bool(self.apt),
            wheels=wheels,
            local_wheels=tuple(self.locked.local_wheels),
            post_build_project=self.post_build.project if self.post_build else None,
            post_build_digest=self.post_build.digest if self.post_build else "",
        )


def _runner(
    opts: CaptureOptions,
    environment: _EnvironmentBuild,
    say: Observer,
    engine: ContainerEngine | None = None,
) -> tuple[CommandRunner, str | None]:
    """Where capture runs the study: this interpreter (--freeze), the capsule's own image
    (--target docker), or a venv built from the lock (the default); and the Python version
    the runs use when it is not this interpreter's."""
    if opts.freeze:
        runner = LocalRunner(
            Path(sys.executable).parent, Path(sys.prefix) if sys.prefix != sys.base_prefix else None
        )
        return runner, None
    if opts.target == "docker":
        from repro.engines.docker_engine import DockerEngine
        from repro.execution.container import DockerRunner, probe_image

        engine = engine if engine is not None else DockerEngine()
        tag = ensure_image(engine, environment.image_spec(), offline=False, say=say)
        return DockerRunner(engine, tag), probe_image(engine, tag)[0]
    check_apt_on_host(environment.apt, "the study (apt.txt)")
    say("building the environment from the lock")
    venv = build_venv(
        environment.locked.lock.text,
        environment.python,
        local_wheels=environment.locked.local_wheels,
        post_build=environment.post_build,
    )
    return LocalRunner(venv.bin_dir, venv.root), python_version_of(venv.python)


@dataclass(frozen=True)
class _Notebook:
    spec: NotebookSpec
    node: Any
    """The notebook as read and validated (an nbformat NotebookNode)."""
    kernel: KernelInfo
    code_cells: int


def _read_notebooks(project: Path, specs: list[NotebookSpec], listed: set[str]) -> list[_Notebook]:
    """Every declared notebook read and validated by nbformat, before any slow work."""
    found = []
    for spec in specs:
        node = nbk.read_notebook(project / spec.path, spec.path)
        if spec.path not in listed:
            raise NotebookError(
                f"notebook {spec.path} is not among the captured files (ignored or excluded)",
                hint="remove it from .reproignore / [capture] ignore, or from [[notebooks]]",
            )
        found.append(_Notebook(spec, node, nbk.kernel_info(node, spec), nbk.code_cells(node)))
    return found


def _saved_outputs_notes(notebooks: list[_Notebook]) -> list[str]:
    """--no-run: the saved outputs become the expectation; refuse what cannot hold."""
    notes = []
    for nb in notebooks:
        if nb.spec.parameters:
            raise NotebookError(
                f"notebook {nb.spec.path} has parameters, but with --no-run its saved outputs "
                "(computed without them) would be the expectation",
                hint="capture without --no-run, or remove [notebooks.parameters]",
            )
        if nbk.out_of_order(nb.node):
            notes.append(
                f"{nb.spec.path}: its saved outputs come from cells run out of order "
                "(execution counts not increasing)"
            )
    return notes


def _with_kernel(
    lock: Lock, config: ProjectConfig, pyver: str, freeze: bool
) -> tuple[Lock, list[str]]:
    """Notebooks execute with nbclient and ipykernel from the study's own environment."""
    if not freeze:
        return with_packages(lock, nbk.KERNEL_PACKAGES, pyver, config.environment.resolver)
    have = {p.name for p in lock.packages}
    missing = [name for name in nbk.KERNEL_PACKAGES if name not in have]
    if missing:
        raise ResolverError(
            f"--freeze: this environment lacks {', '.join(missing)}, which notebooks need",
            hint=f"pip install {' '.join(missing)}, then capture again",
        )
    return lock, []


def _execute_notebooks(
    notebooks: list[_Notebook], stage: Path, runner: CommandRunner, say: Observer
) -> list[tuple[NotebookRecord, bytes]]:
    """Run each notebook once in the captured environment; its outputs become the record."""
    if not notebooks:
        return []
    nbk.install_driver(stage)
    runs = [nbk.notebook_run(nb.spec, nb.kernel, nb.code_cells) for nb in notebooks]
    say(f"executing {len(runs)} notebook(s)")
    outcomes = execute_runs(
        runs,
        stage,
        runner,
        fail_fast=False,
        on_point=lambda o: say(f"executed {o.run} in {o.result.duration_s:.1f} s"),
    )
    executed = []
    for nb, outcome in zip(notebooks, outcomes, strict=True):
        produced = stage / nbk.executed_path(nb.spec)
        node = _executed_notebook(nb.spec, outcome, produced)
        executed.append(_notebook_record(nb, node, outcome.result.duration_s))
    return executed


def _executed_notebook(spec: NotebookSpec, outcome: PointOutcome, produced: Path) -> Any:
    """The executed notebook, or NotebookFailedError saying which cell raised and how."""
    result = outcome.result
    node = nbk.read_executed(produced)
    if result.timed_out:
        raise NotebookFailedError(
            f"notebook {spec.path} did not finish within {spec.timeout:g} s per cell",
            hint="raise its timeout ([[notebooks]] timeout = SECONDS per cell)",
        )
    if result.exit_code == 124:
        raise NotebookFailedError(
            f"notebook {spec.path}: {nbk.driver_message(result.stderr_tail)}",
            hint="raise its timeout ([[notebooks]] timeout = SECONDS per cell)",
        )
    summary = nbk.error_summary(node) if node is not None else None
    if result.exit_code != 0 or node is None:
        why = summary.splitlines()[0] if summary else nbk.driver_message(result.stderr_tail)
        raise NotebookFailedError(f"notebook {spec.path}: {why}")
    return node


def _notebook_record(
    nb: _Notebook, node: Any, duration: float | None
) -> tuple[NotebookRecord, bytes]:
    content = nbk.expectation_bytes(node)
    language_info = node.metadata.get("language_info", {})
    kernel = nb.kernel.model_copy(
        update={"language_version": language_info.get("version") or nb.kernel.language_version}
    )
    record = NotebookRecord(
        path=nb.spec.path,
        capsule_path=f"{RESULTS_PREFIX}{nb.spec.run_name}/{nb.spec.path}",
        sha256=sha256_bytes(content),
        size=len(content),
        kernel=kernel,
        executed=duration is not None,
        code_cells=nb.code_cells,
        duration_s=None if duration is None else round(duration, 3),
    )
    return record, content


def _record(run: Run, outcome: PointOutcome) -> RunRecord:
    outputs = []
    for template in run.outputs:
        rel = render(template, outcome.point)
        outputs.append(_expected(run, template, outcome.point_id, rel, dict(outcome.outputs)[rel]))
    return RunRecord(
        run=run.name,
        point=outcome.point,
        point_id=outcome.point_id,
        command=outcome.command,
        executed=True,
        exit_code=outcome.result.exit_code,
        duration_s=round(outcome.result.duration_s, 3),
        stdout_tail=outcome.result.stdout_tail,
        stderr_tail=outcome.result.stderr_tail,
        outputs=outputs,
    )


def _expected(run: Run, template: str, pid: str, rel: str, produced: Path) -> ExpectedOutput:
    """An output as the expected result of its run point, with the run's rule for it."""
    sha, size = sha256_file(produced)
    return ExpectedOutput(
        path=rel,
        capsule_path=f"{RESULTS_PREFIX}{run.name}/{pid}/{rel}",
        sha256=sha,
        size=size,
        rule=run.compare.get(template) or CompareRule(),
    )


def _add_generated(
    files: list[FileEntry],
    sources: dict[str, Source | bytes],
    path: str,
    content: bytes,
    role: Role,
    mode: int = 0o644,
) -> None:
    """A file repro generates (lock, Dockerfile, job script, crate) into the capsule."""
    files.append(
        FileEntry(path=path, sha256=sha256_bytes(content), size=len(content), mode=mode, role=role)
    )
    sources[path] = content


def _unexecuted_records(runs: list[Run], project: Path) -> list[RunRecord]:
    """--no-run: outputs already in the project become the expectation, when present."""
    records = []
    for run in runs:
        for point in run.points():
            pid = point_id(point)
            outputs = []
            for template in run.outputs:
                rel = render(template, point)
                path = project / rel
                if path.is_file() and not path.is_symlink():
                    outputs.append(_expected(run, template, pid, rel, path))
            records.append(
                RunRecord(
                    run=run.name,
                    point=point,
                    point_id=pid,
                    command=render(run.command, point),
                    executed=False,
                    outputs=outputs,
                )
            )
    return records


def _result_sources(
    records: list[RunRecord], root: Path, sources: dict[str, Source | bytes]
) -> None:
    for record in records:
        for out in record.outputs:
            path = root / out.path
            st = path.stat()
            sources[out.capsule_path] = Source(path, out.size, st.st_mtime_ns)
