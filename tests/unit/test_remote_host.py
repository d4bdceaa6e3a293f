"""Offline parts of replaying over SSH: the ssh command line, what ssh's failures mean, the
cluster config, the tar members accepted back, detached replay records and states."""

from __future__ import annotations

import tarfile
from pathlib import Path

import pytest

from repro.errors import ConfigError, ExitCode, UsageError
from repro.remote.clusters import resolve_host
from repro.remote.host import (
    HostAuthError,
    HostKeyError,
    HostSpec,
    HostUnreachableError,
    RemoteHost,
    ssh_failure,
)
from repro.remote.transfer import UnsafeDownloadError, _safe_member
from repro.replay.detached import ReplayNotFoundError, overall, record_path
from repro.report.detached import TaskStatus


def test_ssh_never_prompts_and_keeps_host_key_checking() -> None:
    spec = HostSpec("me@login", port=2222, identity_file=Path("/k"), known_hosts=Path("/kh"))
    argv = RemoteHost(spec).ssh_argv()
    joined = " ".join(argv)
    for option in ("BatchMode=yes", "ConnectTimeout=15", "ControlMaster=auto", "ControlPersist="):
        assert option in joined
    assert "StrictHostKeyChecking" not in joined  # ssh's own default (ask -> refuse in batch)
    assert argv[argv.index("-p") + 1] == "2222" and "UserKnownHostsFile=/kh" in joined
    assert argv[argv.index("-i") + 1] == "/k" and "IdentitiesOnly=yes" in joined


@pytest.mark.parametrize(
    ("stderr", "kind", "code"),
    [
        ("ssh: connect to host x port 22: Connection refused", HostUnreachableError, 5),
        (
            "ssh: Could not resolve hostname nowhere: Name or service not known",
            HostUnreachableError,
            5,
        ),
        ("ssh: connect to host x port 22: Connection timed out", HostUnreachableError, 5),
        ("me@x: Permission denied (publickey).", HostAuthError, 1),
        (
            "No ED25519 host key is known for [x]:22 ...\nHost key verification failed.",
            HostKeyError,
            1,
        ),
    ],
)
def test_what_an_ssh_failure_means(stderr: str, kind: type, code: int) -> None:
    error = ssh_failure(HostSpec("me@x"), stderr)
    assert type(error) is kind and error.exit_code == code
    assert "\n" not in error.message and error.hint


def test_a_cluster_by_name_and_a_host_by_address(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(
        '[clusters.hpc]\nhost = "me@login.example.org"\nworkdir = "/scratch/me"\n'
        'identity_file = "~/.ssh/hpc"\npartition = "short"\n'
    )
    from repro.remote.clusters import load_user_config

    loaded = load_user_config(config)
    hpc = resolve_host("hpc", loaded)
    assert hpc.destination == "me@login.example.org" and hpc.workdir == "/scratch/me"
    assert hpc.partition == "short" and hpc.identity_file == Path("~/.ssh/hpc").expanduser()
    assert hpc.label == "hpc"
    direct = resolve_host("me@other.example.org:2200", loaded)
    assert (direct.destination, direct.port) == ("me@other.example.org", 2200)
    with pytest.raises(UsageError) as refused:
        resolve_host("-oProxyCommand=evil", loaded)
    assert refused.value.exit_code == ExitCode.USAGE and "hpc" in refused.value.hint
    config.write_text('[clusters.hpc]\nhots = "typo"\n')
    with pytest.raises(ConfigError):
        load_user_config(config)


@pytest.mark.parametrize(
    ("name", "kind"),
    [("../etc/passwd", tarfile.REGTYPE), ("/abs", tarfile.REGTYPE), ("link", tarfile.SYMTYPE)],
)
def test_files_brought_back_stay_regular_files_inside_the_project(name: str, kind: bytes) -> None:
    member = tarfile.TarInfo(name)
    member.type = kind
    with pytest.raises(UnsafeDownloadError):
        _safe_member(member)
    fine = tarfile.TarInfo("out/0.json")
    assert str(_safe_member(fine)) == "out/0.json"


def _task(state: str) -> TaskStatus:
    return TaskStatus.model_validate(
        {"run": "r", "index": 0, "point_id": "", "job": "1", "state": state}
    )


@pytest.mark.parametrize(
    ("states", "expected"),
    [
        (["queued", "queued"], "queued"),
        (["queued", "running"], "running"),
        (["done", "queued"], "running"),
        (["done", "done"], "done"),
        (["done", "failed"], "failed"),
    ],
)
def test_a_replays_state_from_its_points(states: list[str], expected: str) -> None:
    state, counts = overall([_task(s) for s in states])
    assert state == expected and sum(counts.values()) == len(states)


def test_a_replay_id_is_never_a_path() -> None:
    with pytest.raises(ReplayNotFoundError):
        record_path("../../etc/passwd")
    assert record_path("r20261201-abc123").name == "r20261201-abc123.json"


def test_another_key_never_rides_on_a_shared_connection() -> None:
    def control_path(spec: HostSpec) -> str:
        argv = RemoteHost(spec).ssh_argv()
        return next(a for a in argv if a.startswith("ControlPath="))

    mine = HostSpec("me@login", identity_file=Path("/mine"))
    assert control_path(mine) == control_path(HostSpec("me@login", identity_file=Path("/mine")))
    assert control_path(mine) != control_path(HostSpec("me@login", identity_file=Path("/other")))
    assert control_path(mine) != control_path(
        HostSpec("me@login", identity_file=Path("/mine"), known_hosts=Path("/kh"))
    )
