"""Replay targets without an engine: the registry, the auto choice, the options a target
ignores (and says so), and the prepare and execute stages around any Target."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from repro.capsule.manifest import Manifest
from repro.config.models import Resources, Run
from repro.errors import GpuUnavailableError, UsageError
from repro.execution.runs import PointOutcome
from repro.replay.execute import execute
from repro.replay.open import Opened, select
from repro.replay.prepare import prepare
from repro.replay.targets import (
    TARGETS,
    Observer,
    OnPoint,
    Prepared,
    Select,
    SlurmSettings,
    Target,
    TargetName,
    TargetOptions,
    choose,
    make_target,
)
from tests.unit.replay_values import manifest, outcome

SLURM_SETTINGS = SlurmSettings(partition="debug", account="lab", array_limit=4)


def quiet(_message: str) -> None:
    pass


def ignored(name: TargetName, **options: object) -> list[str]:
    return make_target(name, TargetOptions(**options), quiet).ignored()  # type: ignore[arg-type]


def test_the_registry_has_one_target_per_name_and_makes_it_without_contacting_anything() -> None:
    assert set(TARGETS) == {"local", "docker", "slurm"}
    for name in TARGETS:
        # No engine or scheduler is asked anything before prepare (this machine may have none).
        target = make_target(name, TargetOptions(), quiet)
        assert target.name == name
        target.close()  # safe before prepare


@pytest.mark.parametrize(("engine", "chosen"), [(True, "docker"), (False, "local")])
def test_no_target_asked_for_is_docker_when_an_engine_answers_else_local(
    monkeypatch: pytest.MonkeyPatch, engine: bool, chosen: str
) -> None:
    monkeypatch.setattr("repro.env.image.engine_available", lambda: engine)
    said: list[str] = []
    assert choose(None, said.append) == chosen
    assert said == [f"target: {chosen}" + ("" if engine else " (no Docker engine answered)")]


def test_a_target_asked_for_is_used_without_looking_for_an_engine(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def no(*_a: object) -> bool:
        raise AssertionError("the engine must not be asked")

    monkeypatch.setattr("repro.env.image.engine_available", no)
    said: list[str] = []
    assert choose("slurm", said.append) == "slurm"
    assert said == []


@pytest.mark.parametrize("name", ["local", "docker", "slurm"])
def test_default_options_and_offline_are_never_ignored(name: TargetName) -> None:
    assert ignored(name) == []
    assert ignored(name, offline=True) == []  # every target builds its environment offline


def test_slurm_ignores_jobs_because_the_scheduler_decides() -> None:
    assert ignored("slurm", jobs=1) == []
    (warning,) = ignored("slurm", jobs=4)
    assert warning.startswith("-j 4 is ignored on the slurm target: the scheduler decides")
    assert "--array-limit" in warning
    assert ignored("local", jobs=4) == ignored("docker", jobs=4) == []


@pytest.mark.parametrize("name", ["local", "slurm"])
def test_base_image_is_ignored_outside_docker(name: TargetName) -> None:
    (warning,) = ignored(name, base_image="python:3.12-slim")
    assert warning.startswith(f"--base-image is ignored on the {name} target: ")
    assert ignored("docker", base_image="python:3.12-slim") == []


def test_slurm_containers_use_the_base_image_and_always_isolate() -> None:
    containers = SlurmSettings(container="charliecloud")
    assert ignored("slurm", base_image="python:3.12-slim", slurm=containers) == []
    (warning,) = ignored("slurm", no_sandbox=True, slurm=containers)
    assert warning.startswith("--no-sandbox is ignored with --container charliecloud")
    assert ignored("docker", slurm=containers) == [
        "--container is ignored on the docker target: Slurm settings only apply to --target slurm"
    ]


@pytest.mark.parametrize("name", ["local", "docker"])
def test_slurm_settings_are_ignored_outside_slurm(name: TargetName) -> None:
    assert ignored(name, slurm=SLURM_SETTINGS) == [
        f"--partition, --account, --array-limit are ignored on the {name} target: "
        "Slurm settings only apply to --target slurm"
    ]
    assert ignored(name, slurm=SlurmSettings(account="lab")) == [
        f"--account is ignored on the {name} target: Slurm settings only apply to --target slurm"
    ]
    assert ignored("slurm", slurm=SLURM_SETTINGS) == []


def test_every_ignored_option_is_reported_together() -> None:
    warnings = ignored("slurm", jobs=2, base_image="x", slurm=SLURM_SETTINGS, offline=True)
    assert [w.split(" is ignored")[0] for w in warnings] == ["-j 2", "--base-image"]
    warnings = ignored("local", jobs=2, base_image="x", slurm=SlurmSettings(partition="p"))
    assert [w.split(" is ignored")[0] for w in warnings] == ["--base-image", "--partition"]


# --- the prepare and execute stages, around a fake target -----------------------------------


class FakeTarget:
    """A Target that records what the stages ask of it."""

    def __init__(self, name: TargetName = "local", ignores: list[str] | None = None) -> None:
        self._name: TargetName = name
        self.ignores = ignores or []
        self.executed: list[tuple[list[str], Path]] = []

    @property
    def name(self) -> TargetName:
        return self._name

    def ignored(self) -> list[str]:
        return self.ignores

    def prepare(self, manifest: Manifest, root: Path, say: Observer) -> Prepared:
        say("preparing")
        return Prepared("3.11.7", None, ["captured with Python 3.10"])

    def execute(
        self, runs: list[Run], project: Path, select: Select, on_point: OnPoint
    ) -> list[PointOutcome]:
        self.executed.append(([r.name for r in runs], project))
        outcomes = [outcome(r, p) for r in runs for p in r.points() if select(r, p)]
        for o in outcomes:
            on_point(o)
        return outcomes

    def close(self) -> None:
        pass


SWEEP = Run(name="sweep", command="python s.py {seed}", sweep={"seed": [0, 1, 2]})


def opened(tmp_path: Path, names: list[str], points: dict[str, str]) -> Opened:
    m = manifest(runs=[SWEEP])
    return Opened(
        manifest=m,
        capsule_id="0" * 64,
        signature="unsigned",
        root=tmp_path / "capsule",
        project=tmp_path / "capsule" / "data" / "project",
        selection=select(m, names, points),
        notebook_runs=[],
        warnings=[],
    )


def test_a_fake_target_satisfies_the_protocol() -> None:
    target: Target = FakeTarget()  # mypy checks the protocol here
    assert target.name == "local"


def test_prepare_puts_the_ignored_options_first(tmp_path: Path) -> None:
    target = FakeTarget("local", ignores=["--base-image is ignored on the local target: ..."])
    prepared = prepare(target, opened(tmp_path, [], {}), tmp_path, False, quiet)
    assert prepared.python_version == "3.11.7"
    assert prepared.warnings == [
        "--base-image is ignored on the local target: ...",
        "captured with Python 3.10",
    ]


def test_prepare_on_slurm_no_longer_warns_about_the_working_directory(tmp_path: Path) -> None:
    # Every task checks it sees the submit host's working directory (a marker file), so
    # there is nothing to warn about here (tests/integration/test_cluster_runtimes.py).
    for shared in (False, True):
        prepared = prepare(FakeTarget("slurm"), opened(tmp_path, [], {}), tmp_path, shared, quiet)
        assert prepared.warnings == ["captured with Python 3.10"]


@pytest.mark.skipif(shutil.which("nvidia-smi") is not None, reason="this machine has GPUs")
def test_a_gpu_run_is_refused_before_the_target_prepares_anything(tmp_path: Path) -> None:
    said: list[str] = []
    gpu_run = SWEEP.model_copy(update={"resources": Resources(gpus=2)})
    opening = replace(opened(tmp_path, [], {}), notebook_runs=[gpu_run])
    with pytest.raises(GpuUnavailableError, match="needs 2 GPU"):
        prepare(FakeTarget("docker"), opening, tmp_path, True, said.append)
    assert "preparing" not in said


def test_execute_runs_the_selected_points_and_reports_progress(tmp_path: Path) -> None:
    target = FakeTarget()
    said: list[str] = []
    opening = opened(tmp_path, [], {"seed": "1"})
    outcomes = execute(target, opening, said.append)
    assert [o.point for o in outcomes] == [{"seed": 1}]
    assert target.executed == [(["sweep"], opening.project)]
    assert said == ["replaying 1 run(s), 1 point(s) on local", "ran sweep [seed=1] in 0.2 s"]


def test_execute_refuses_a_selection_without_points(tmp_path: Path) -> None:
    target = FakeTarget()
    with pytest.raises(UsageError, match="no run point matches the selection"):
        execute(target, opened(tmp_path, [], {"seed": "7"}), quiet)
    assert target.executed == []


def test_the_report_carries_every_stage_warning_in_order(tmp_path: Path) -> None:
    from repro.replay.judge import Judgement
    from repro.replay.report import build_report

    opening = replace(opened(tmp_path, [], {}), warnings=["capsule is unsigned: ..."])
    target = FakeTarget("slurm", ignores=["-j 4 is ignored on the slurm target: ..."])
    prepared = prepare(target, opening, tmp_path, True, quiet)
    judged = Judgement([], [], {}, True, 1, ["1 output(s) had no recorded expectation"])
    report = build_report(tmp_path / "c.tgz", opening, "slurm", prepared, judged, None, 0.0, 0.0)
    assert report.warnings == [
        "capsule is unsigned: ...",
        "-j 4 is ignored on the slurm target: ...",
        "captured with Python 3.10",
        "1 output(s) had no recorded expectation",
    ]
    assert report.target == "slurm" and report.reproduced and report.workdir is None
