"""`repro capture --target slurm`: the runs executed on the cluster, one sbatch array per run,
through the slurm replay target's own submission, polling and gathering
(repro.replay.targets.slurm.run_arrays), so that the expected results come from the
cluster's environment.

The capture's scratch folder is then made in the working directory the nodes share
(`--workdir`, default ~/.repro/slurm-work): the project is staged there, the environment is
built there (a venv from the lock under `venvs/`, or with --container the capsule's image
converted for the runtime under `runtime-images/`), and each point's exit code, duration,
outputs and resource usage come back as the same PointOutcome a local capture records.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from repro.capture.environment import EnvironmentBuild
from repro.capture.options import CaptureOptions, Observer, SlurmCapture
from repro.config.models import ProjectConfig, Run
from repro.engines.runtimes import RuntimeName
from repro.env.apt import check_apt_on_host
from repro.env.pythons import PythonInfo, major_minor, python_info
from repro.env.virtualenv import build_venv
from repro.errors import ServiceUnavailableError, UsageError
from repro.execution.environment import Allowlist, run_environment, standard_path
from repro.execution.runs import PointOutcome
from repro.execution.sandbox import NoSandbox
from repro.execution.stream import Echo
from repro.execution.task_measure import measure_variables
from repro.replay.targets.base import SlurmSettings
from repro.replay.targets.slurm import Isolation, run_arrays
from repro.scheduler.slurm import Scheduler, Slurm

VENVS = "venvs"


def check_slurm(opts: CaptureOptions, config: ProjectConfig) -> Scheduler:
    """Before any work: Slurm is here (exit 5 with a hint otherwise), and the capture asks
    for nothing the cluster path cannot do."""
    if opts.freeze:
        raise UsageError(
            "--freeze runs the study with this interpreter, not on the cluster",
            hint="repro capture --target slurm (a venv built from the lock on the nodes), or "
            "--freeze without --target slurm",
        )
    try:
        scheduler = Slurm()
    except ServiceUnavailableError as exc:  # exit 5, with capture's own way out
        raise ServiceUnavailableError(
            str(exc),
            hint="install the Slurm client (sbatch, squeue, scancel), or run the capture "
            "here: repro capture --target local",
        ) from None
    if opts.execute:
        from repro.replay.targets.gpus import check_gpus

        check_gpus("slurm", config.runs)  # exit 5 when no node offers the GPUs a run needs
    if opts.slurm.container is not None:
        from repro.engines.runtimes import runtime_for

        runtime_for(opts.slurm.container)  # exit 5 when the runtime is not on PATH
    return scheduler


def shared_scratch(opts: SlurmCapture) -> Path:
    """The folder that holds a capture's scratch folders, on the filesystem the nodes share."""
    root = opts.shared_root()
    if root.exists() and not root.is_dir():
        raise UsageError(f"--workdir is not a folder: {root}")
    root.mkdir(parents=True, exist_ok=True)
    return root


def run_on_slurm(
    opts: CaptureOptions,
    runs: list[Run],
    environment: EnvironmentBuild,
    stage: Path,
    variables: Mapping[str, str],
    allowed: Allowlist,
    say: Observer,
    echo: Echo | None = None,
) -> tuple[list[PointOutcome], PythonInfo | None]:
    """Every point of `runs` run as a Slurm array task in `stage` (a folder the nodes
    share); the outcomes in the order of the runs' points, and the interpreter they used."""
    scheduler = Slurm()
    cluster = opts.slurm
    root = cluster.shared_root()
    if opts.jobs > 1:
        say(
            f"warning: -j {opts.jobs} is ignored on the slurm target: the scheduler decides "
            "how many tasks run at once (limit them with --array-limit)"
        )
    home = stage.parent / "home"
    home.mkdir(exist_ok=True)
    if cluster.container is not None:
        isolation, python = _in_containers(
            cluster.container, runs, environment, root, stage, variables, allowed, say
        )
    else:
        check_apt_on_host(environment.apt, "the study (apt.txt)")
        say(f"building the environment from the lock in {root / VENVS}")
        venv = build_venv(
            environment.locked.lock.text,
            environment.python,
            local_wheels=environment.locked.local_wheels,
            post_build=environment.post_build,
            cache_root=root / VENVS,
        )
        if venv.note:
            say(venv.note)
        export = run_environment(
            allowed,
            home=str(home),
            path=standard_path(str(venv.bin_dir)),
            variables={
                **variables,
                "PYTHONUNBUFFERED": "1",
                "REPRO_VENV": str(venv.root),
                "REPRO_PYTHON": major_minor(environment.python),
                **measure_variables(),
            },
        )
        # Not sandboxed, as a local capture is not (the project is the user's own code).
        isolation = Isolation(export, NoSandbox(), venv.root, home)
        python = python_info(venv.python)
    settings = SlurmSettings(
        partition=cluster.partition,
        account=cluster.account,
        array_limit=cluster.array_limit,
        container=cluster.container,
        image_cache=root,
    )
    outcomes = run_arrays(
        scheduler, runs, stage, isolation, lambda _run, _point: True, settings, say, echo
    )
    return outcomes, python


def _in_containers(
    name: RuntimeName,
    runs: list[Run],
    environment: EnvironmentBuild,
    root: Path,
    stage: Path,
    variables: Mapping[str, str],
    allowed: Allowlist,
    say: Observer,
) -> tuple[Isolation, PythonInfo | None]:
    """--container: the capsule's image built (or reused) through the Docker engine, as
    --target docker builds it, converted for the runtime into ROOT/runtime-images."""
    from repro.engines.docker_engine import DockerEngine
    from repro.engines.runtimes import Charliecloud, runtime_for
    from repro.env.image import ensure_image
    from repro.execution.container import give_to_container_user, image_python
    from repro.replay.targets.cluster_image import IMAGE_CACHE, ContainerPlan, converted
    from repro.replay.targets.gpus import runs_need_gpus

    runtime = runtime_for(name)
    if isinstance(runtime, Charliecloud):
        runtime.gpus = runs_need_gpus(runs) > 0
    engine = DockerEngine()
    try:
        engine.ping()
        image_id = ensure_image(engine, environment.image_spec(), offline=False, say=say)
        python = image_python(engine, image_id)
        cache = root / IMAGE_CACHE
        cache.mkdir(parents=True, exist_ok=True)
        artifact, dest = converted(runtime, engine, image_id, cache, say)
    finally:
        engine.close()
    say(f"isolation: {name} containers")
    plan = ContainerPlan(
        runtime,
        artifact,
        dest if name in ("podman", "docker") else None,
        run_environment(
            allowed, home=runtime.home, path=None, variables=dict(variables), host_paths=False
        ),
    )
    if name in ("podman", "docker"):
        give_to_container_user(stage)
    home = stage.parent / "home"
    # The batch shell's own environment: enough to find the runtime; what the point sees is
    # only what the runtime is given explicitly (plan.environment).
    export = run_environment(Allowlist(), home=str(home), path=standard_path(), variables={})
    return Isolation(export, NoSandbox(), None, home, plan), python
