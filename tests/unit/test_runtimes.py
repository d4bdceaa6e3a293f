"""Container runtimes on the slurm target: the exact command lines each renders (golden: the
one check Apptainer gets where it is not installed), the batch script around them, GPUs."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest

from repro.config.models import Resources, Run
from repro.engines.docker_engine import device_requests
from repro.engines.runtimes import (
    RUNTIMES,
    Apptainer,
    Charliecloud,
    Docker,
    Podman,
    TaskSpec,
    runtime_for,
)
from repro.errors import ExitCode, GpuUnavailableError, ServiceUnavailableError
from repro.replay.targets.gpus import check_gpus, runs_need_gpus
from repro.scheduler.scripts import NOT_SHARED_EXIT, SHARED_MARKER, render_script

PROJECT = Path("/shared/replay-x/capsule/data/project")
SPEC = TaskSpec(
    image="/shared/runtime-images/img",
    project=PROJECT,
    environment={"HOME": "/tmp", "SOURCE_DATE_EPOCH": "1700000000", "MSG": "it's a $test"},
    point_names=("REPRO_POINT", "REPRO_PARAM_SEED"),
    cpus=2,
    memory="512m",
    archive=Path("/shared/runtime-images/img.tar"),
    as_root=True,
)
MSG = "'{}MSG=it'\"'\"'s a $test'"


def test_apptainer_contains_cleans_binds_and_cuts_the_network() -> None:
    assert Apptainer().lines(SPEC) == [
        "env APPTAINERENV_SOURCE_DATE_EPOCH=1700000000 "
        + MSG.format("APPTAINERENV_")
        + ' APPTAINERENV_REPRO_POINT="${REPRO_POINT}"'
        ' APPTAINERENV_REPRO_PARAM_SEED="${REPRO_PARAM_SEED}"'
        " apptainer exec --containall --cleanenv --no-home --no-privs"
        f" --bind {PROJECT}:/work --pwd /work --net --network none"
        ' /shared/runtime-images/img /bin/sh -c "$command"',
        "code=$?",
    ]


def test_apptainer_network_when_declared_and_nv_for_gpus() -> None:
    line = Apptainer().lines(dataclasses.replace(SPEC, network=True, gpus=2))[0]
    assert "--net" not in line.split() and "none" not in line.split()
    assert " --nv /shared/runtime-images/img " in line


def test_apptainer_sif_from_a_docker_archive() -> None:
    assert Apptainer().convert_commands(Path("/s/img.tar"), Path("/s/x.sif")) == [
        ["apptainer", "build", "--force", "/s/x.sif", "docker-archive:///s/img.tar"]
    ]


def test_charliecloud_sets_every_variable_explicitly_and_unshares_the_network() -> None:
    assert Charliecloud().lines(SPEC) == [
        'USER="${USER:-$(id -un)}" unshare --net --map-current-user ch-run'
        " '--unset-env=*' --set-env --env-no-expand --set-env=HOME=/tmp"
        " --set-env=SOURCE_DATE_EPOCH=1700000000 "
        + MSG.format("--set-env=")
        + ' --set-env=REPRO_POINT="${REPRO_POINT}"'
        ' --set-env=REPRO_PARAM_SEED="${REPRO_PARAM_SEED}"'
        f" --private-tmp -b {PROJECT}:/work -c /work /shared/runtime-images/img --"
        ' /bin/sh -c "$command"',
        "code=$?",
    ]
    with_network = Charliecloud().lines(dataclasses.replace(SPEC, network=True))[0]
    assert "unshare" not in with_network


def test_charliecloud_gpus_inject_the_host_driver_libraries() -> None:
    plain, gpu = Charliecloud(), Charliecloud(gpus=True)
    assert plain.convert_commands(Path("/s/img.tar"), Path("/s/d"), gpus=False) == [
        ["ch-convert", "-i", "tar", "-o", "dir", "/s/img.tar", "/s/d"]
    ]
    assert gpu.convert_commands(Path("/s/img.tar"), Path("/s/d"), gpus=True)[-1] == [
        "ch-fromhost",
        "--nvidia",
        "/s/d",
    ]
    assert gpu.artifact_name("abc") != plain.artifact_name("abc")


@pytest.mark.parametrize("runtime", [Podman(), Docker()], ids=["podman", "docker"])
def test_podman_and_docker_get_the_docker_targets_hardening(runtime: Podman | Docker) -> None:
    b = runtime.binary
    lines = runtime.lines(SPEC)
    assert lines[0] == (
        f"{b} image inspect /shared/runtime-images/img >/dev/null 2>&1 || "
        f"{b} load -q -i /shared/runtime-images/img.tar >&2"
    )
    assert lines[2] == f"trap '{b} stop -t 5 \"$name\" >/dev/null 2>&1' TERM INT"
    assert lines[3] == (
        f'{b} run --rm --init --name "$name" --network none --read-only --cap-drop all'
        " --security-opt no-new-privileges --pids-limit 4096"
        " --tmpfs /tmp:rw,nosuid,nodev,exec,mode=1777"
        " --tmpfs /home/repro:rw,nosuid,nodev,exec,mode=1777 --user 1000:1000"
        f" -v {PROJECT}:/work -w /work --cpus 2 --memory 512m --env=HOME=/tmp"
        " --env=SOURCE_DATE_EPOCH=1700000000 "
        + MSG.format("--env=")
        + ' --env=REPRO_POINT="${REPRO_POINT}" --env=REPRO_PARAM_SEED="${REPRO_PARAM_SEED}"'
        ' /shared/runtime-images/img /bin/sh -c "$command" &'
    )
    assert lines[-2:] == ['wait "$!"', "code=$?"]


def test_gpu_options_of_podman_and_docker() -> None:
    gpu = dataclasses.replace(SPEC, gpus=2)
    assert " --device nvidia.com/gpu=all " in Podman().lines(gpu)[3]
    assert " --gpus 2 " in Docker().lines(gpu)[3]
    assert "--gpus" not in Docker().lines(SPEC)[3]


def test_rootless_podman_keeps_the_users_id() -> None:
    line = Podman().lines(dataclasses.replace(SPEC, as_root=False))[3]
    assert "--userns=keep-id" in line and "--user 1000:1000" not in line


def test_docker_target_asks_the_engine_for_gpus() -> None:
    assert device_requests(0) is None
    (request,) = device_requests(2) or []
    assert request["Count"] == 2 and request["Capabilities"] == [["gpu"]]


def test_every_runtime_the_cli_offers_has_a_class() -> None:
    assert sorted(RUNTIMES) == ["apptainer", "charliecloud", "docker", "podman"]


@pytest.mark.skipif(shutil.which("apptainer") is not None, reason="apptainer is installed here")
def test_a_runtime_that_is_not_installed_is_refused_before_any_work() -> None:
    with pytest.raises(ServiceUnavailableError, match="apptainer is not on PATH") as caught:
        runtime_for("apptainer")
    assert caught.value.exit_code == ExitCode.SERVICE_UNAVAILABLE
    assert "--container" in caught.value.hint


def _sweep(gpus: int = 0) -> Run:
    return Run(
        name="sim",
        command="python point.py {seed}",
        sweep={"seed": [0, 1]},
        resources=Resources(gpus=gpus, cpus=1),
    )


def test_the_batch_script_asks_slurm_for_gpus_and_runs_the_runtime_lines() -> None:
    run = _sweep(gpus=2)
    script = render_script(run, run.points(), "slurm", run_lines=["RUNTIME LINE", "code=$?"])
    lines = script.splitlines()
    assert "#SBATCH --gres=gpu:2" in lines
    assert "RUNTIME LINE" in lines
    assert '/bin/sh -c "$command"' not in script  # the runtime's line replaces the plain one
    assert "#SBATCH --gres" not in render_script(_sweep(), _sweep().points(), "slurm")


def test_every_task_checks_the_shared_marker_before_its_point() -> None:
    run = _sweep()
    lines = render_script(run, run.points(), "slurm").splitlines()
    read = next(i for i, line in enumerate(lines) if SHARED_MARKER in line)
    assert f"read -r seen 2>/dev/null < {SHARED_MARKER}" in lines[read]  # a builtin: no fork
    check = next(i for i, line in enumerate(lines) if '"$seen" != "$REPRO_SHARED_TOKEN"' in line)
    assert read < check and f"exit {NOT_SHARED_EXIT}" in lines[check + 1]
    assert check < next(i for i, line in enumerate(lines) if '/bin/sh -c "$command"' in line)


@pytest.mark.skipif(shutil.which("nvidia-smi") is not None, reason="this machine has GPUs")
@pytest.mark.parametrize("target", ["local", "docker"])
def test_a_gpu_run_is_refused_where_there_is_no_gpu(target: str) -> None:
    assert runs_need_gpus([_sweep(), _sweep(gpus=1)]) == 1
    check_gpus(target, [_sweep()])  # type: ignore[arg-type]  # no GPU asked: fine
    with pytest.raises(GpuUnavailableError, match=r"run sim needs 1 GPU\(s\)") as caught:
        check_gpus(target, [_sweep(gpus=1)])  # type: ignore[arg-type]
    assert caught.value.exit_code == ExitCode.SERVICE_UNAVAILABLE
    assert "--partition" in caught.value.hint
