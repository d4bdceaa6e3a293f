"""Replaying a hostile capsule: no planted secret, HOME file, outside write or loopback socket
reaches or comes from its run, on the local (bubblewrap), docker and slurm targets; and
--pass-env passes exactly the variable it names (issue 16)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.conftest import require_service, run_cli
from tests.isolation_attack import (
    ATTACKS,
    SECRETS,
    Listener,
    Outcome,
    Plan,
    hostile_project,
    judge,
    table,
)


def bwrap_works() -> bool:
    from repro.execution.sandbox import available_sandbox

    return available_sandbox().isolation == "bubblewrap"


def _capture(project: Path, out: Path, *args: str, env: dict[str, str] | None = None) -> Path:
    result = run_cli("capture", str(project), "-o", str(out), "--no-sign", *args, env=env)
    assert result.returncode == 0, result.stderr
    return out


def attack(
    tmp_path: Path, target: str, *args: str, passed: tuple[str, ...] = ()
) -> tuple[Outcome, dict]:  # type: ignore[type-arg]
    """Capture the hostile study, plant the secrets, replay it on `target`: what it managed."""
    plan = Plan.around(Path(os.environ["HOME"]), Path(os.environ["REPRO_CACHE_DIR"]))
    listener = Listener()
    try:
        project = hostile_project(tmp_path / "hostile", plan, listener.port, list(passed))
        capsule = _capture(project, tmp_path / "hostile.tgz", *args)
        plan.clean()  # capture ran the user's own code unsandboxed: start from nothing
        listener.connections = 0
        plan.plant()
        work = tmp_path / f"work-{target}"
        flags = [f"--pass-env={name}" for name in passed]
        result = run_cli(
            "replay",
            str(capsule),
            "--json",
            "--target",
            target,
            "--workdir",
            str(work),
            *flags,
            *args,
            env=SECRETS,
            timeout=900,
        )
        assert result.returncode in (0, 3), result.stderr
        report = json.loads(result.stdout)
        (found_file,) = work.glob("*/capsule/data/project/attack.json")
        found = json.loads(found_file.read_text())
        outcome = judge(target, report["isolation"], found, plan, listener.connections)
        outcome.details["env"] = found["env"]
        outcome.details["passed"] = found["passed"]
        outcome.details["home"] = found["home"]
        return outcome, report
    finally:
        listener.close()
        plan.clean()


def _assert_all_refused(outcome: Outcome) -> None:
    assert all(outcome.refused.values()), (table([outcome]), outcome.details)
    env = set(outcome.details["env"])  # type: ignore[call-overload]
    assert not env & set(SECRETS), env
    assert outcome.details["home"] != os.environ["HOME"]


def test_local_replay_runs_in_bubblewrap_and_every_attack_is_refused(tmp_path: Path) -> None:
    require_service(bwrap_works(), "bubblewrap (bwrap) able to unshare every namespace")
    outcome, report = attack(tmp_path, "local")
    assert report["isolation"] == "bubblewrap"
    _assert_all_refused(outcome)


def test_docker_replay_is_hardened_and_every_attack_is_refused(
    tmp_path: Path, docker_engine: str, offline_index: Path
) -> None:
    outcome, report = attack(tmp_path, "docker", "--base-image", docker_engine)
    assert report["isolation"] == "docker"
    _assert_all_refused(outcome)


def test_slurm_replay_gets_the_allowlist_and_the_sandbox(tmp_path: Path, slurm: None) -> None:
    outcome, report = attack(tmp_path, "slurm")
    # the environment allowlist holds on every cluster; the rest where nodes have bwrap
    assert outcome.refused["secret variables"], outcome.details
    if bwrap_works():
        assert report["isolation"] == "bubblewrap"
        _assert_all_refused(outcome)


@pytest.mark.parametrize("target", ["local", "docker", "slurm"])
def test_pass_env_passes_exactly_the_named_variable(
    tmp_path: Path, target: str, request: pytest.FixtureRequest
) -> None:
    args: tuple[str, ...] = ()
    if target == "docker":
        args = ("--base-image", request.getfixturevalue("docker_engine"))
        request.getfixturevalue("offline_index")
    elif target == "slurm":
        request.getfixturevalue("slurm")
    else:
        require_service(bwrap_works(), "bubblewrap (bwrap)")
    outcome, report = attack(tmp_path, target, *args, passed=("GITHUB_TOKEN", "NOT_SET_HERE"))
    assert outcome.details["passed"] == ["GITHUB_TOKEN"]
    assert outcome.details["secrets"] == ["GITHUB_TOKEN"]
    assert any("--pass-env NOT_SET_HERE" in w for w in report["warnings"]), report["warnings"]


def test_an_untrusted_capsule_does_not_replay_unsandboxed(tmp_path: Path) -> None:
    """No sandbox here (REPRO_BWRAP names no executable): a stranger's capsule (captured on
    another machine: another data directory) is exit 4 with the way out; with --no-sandbox
    it runs, and the report says isolation none."""
    project = tmp_path / "p"
    project.mkdir()
    (project / "run.py").write_text("open('out.txt', 'w').write('hi')\n")
    (project / "repro.toml").write_text(
        '[[runs]]\nname = "main"\ncommand = "python run.py"\noutputs = ["out.txt"]\n'
    )
    elsewhere = {"REPRO_DATA_DIR": str(tmp_path / "another-machine")}
    capsule = _capture(project, tmp_path / "p.tgz", env=elsewhere)
    nowhere = {"REPRO_BWRAP": str(tmp_path / "no-bwrap")}
    refused = run_cli("replay", str(capsule), "--target", "local", env=nowhere)
    assert refused.returncode == 4, refused.stderr
    assert "no sandbox works on this machine" in refused.stderr
    assert "--no-sandbox" in refused.stderr and "Traceback" not in refused.stderr
    allowed = run_cli(
        "replay", str(capsule), "--target", "local", "--no-sandbox", "--json", env=nowhere
    )
    assert allowed.returncode == 0, allowed.stderr
    report = json.loads(allowed.stdout)
    assert report["isolation"] == "none"
    assert any("--no-sandbox" in w for w in report["warnings"])


def test_your_own_capture_replays_where_no_sandbox_works(tmp_path: Path) -> None:
    """The README's quick start on a machine without bubblewrap: a capsule this user
    captured here is their own code, and replays (unsandboxed, saying so); the same bytes
    captured elsewhere would not."""
    project = tmp_path / "p"
    project.mkdir()
    (project / "run.py").write_text("open('out.txt', 'w').write('hi')\n")
    (project / "repro.toml").write_text(
        '[[runs]]\nname = "main"\ncommand = "python run.py"\noutputs = ["out.txt"]\n'
    )
    capsule = _capture(project, tmp_path / "p.tgz")
    nowhere = {"REPRO_BWRAP": str(tmp_path / "no-bwrap")}
    own = run_cli("replay", str(capsule), "--target", "local", "--json", env=nowhere)
    assert own.returncode == 0, own.stderr
    report = json.loads(own.stdout)
    assert report["isolation"] == "none"
    assert any("captured by you here" in w for w in report["warnings"]), report["warnings"]
    stranger = {**nowhere, "REPRO_DATA_DIR": str(tmp_path / "another-user")}
    refused = run_cli("replay", str(capsule), "--target", "local", env=stranger)
    assert refused.returncode == 4, refused.stderr


def test_the_attack_table_names_every_attack() -> None:
    row = Outcome("local", "bubblewrap", dict.fromkeys(ATTACKS, True), {})
    assert "refused" in table([row]) and "ALLOWED" not in table([row])


def test_containers_are_hardened(docker_engine: str) -> None:
    """What the engine was asked for, read back from the engine: no capabilities,
    no-new-privileges, a pids limit, a read-only root with tmpfs, no network."""
    import docker

    from repro.engines import ContainerSpec
    from repro.engines.docker_engine import DockerEngine

    engine = DockerEngine()
    container = engine.start(
        ContainerSpec(
            image=docker_engine,
            command=("/bin/sh", "-c", "touch /x 2>&1; touch /tmp/y && echo tmp-ok"),
            user="1000:1000",
            tmpfs=("/tmp", "/home/repro"),
        )
    )
    try:
        assert container.wait(60) == 0
        out = container.logs("stdout").decode()
        assert "Read-only file system" in out and "tmp-ok" in out
        info = docker.from_env().api.inspect_container(container._container.id)  # type: ignore[attr-defined]
        host = info["HostConfig"]
        assert host["CapDrop"] == ["ALL"] and "no-new-privileges" in host["SecurityOpt"]
        assert host["ReadonlyRootfs"] and host["PidsLimit"] == 4096
        assert set(host["Tmpfs"]) == {"/tmp", "/home/repro"}
        assert info["Config"]["NetworkDisabled"]
    finally:
        container.remove()
        engine.close()
