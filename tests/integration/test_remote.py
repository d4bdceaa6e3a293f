"""Replay "from a laptop" over SSH: a real sshd on 127.0.0.1 (scripts/ci/setup-sshd.sh) with
its own user, who submits to this machine's one-node Slurm. The laptop is this test process
(root), the cluster is user repro-ssh behind that sshd.

One capsule for the module (a 3-point sweep, a run that sleeps only on the cluster, and a few
MB of data so that a transfer has something to resume); repro's own environment there is
installed once and reused (its stamp is this source tree's digest).
"""

from __future__ import annotations

import json
import os
import random
import secrets
import signal
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

from tests.conftest import REQUIRE_SERVICES, require_service, run_cli, slurm_ready
from tests.waiting import LineReader, wait_until

pytestmark = pytest.mark.slow

SSHD = Path("/etc/repro-ci-sshd")
SSH_CONFIG = SSHD / "ssh_config"
ALIAS = "repro-ci"

STUDY = """\
import json, os, sys
seed = int(sys.argv[1])
os.makedirs("out", exist_ok=True)
blob = open("data/blob.bin", "rb").read()
json.dump({"seed": seed, "square": seed * seed, "blob": len(blob)}, open(f"out/{seed}.json", "w"))
"""
SLOW = """\
import os, time
if os.environ.get("REPRO_PROJECT"):  # set on Slurm only: fast at capture, slow replayed there
    time.sleep(300)
open("slow.txt", "w").write("slept\\n")
"""
TOML = """\
[[data]]
path = "data"

[[runs]]
name = "sim"
command = "python study.py {seed}"
outputs = ["out/{seed}.json"]
timeout = 300
[runs.sweep]
seed = [0, 1, 2]

[[runs]]
name = "slow"
command = "python slow.py"
outputs = ["slow.txt"]
timeout = 600
"""


def _login(*command: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            "ssh",
            "-F",
            str(SSH_CONFIG),
            "-o",
            "BatchMode=yes",
            "-o",
            "ConnectTimeout=5",
            ALIAS,
            *command,
        ],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


_SSHD: bool | None = None


def sshd_ready() -> bool:
    global _SSHD
    if _SSHD is None:
        try:
            _SSHD = SSH_CONFIG.is_file() and _login("true").returncode == 0
        except (OSError, subprocess.TimeoutExpired):
            _SSHD = False
    return _SSHD


@pytest.fixture(autouse=True)
def own_state(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Each test's detached replay records apart (not in an XDG_STATE_HOME of the machine)."""
    monkeypatch.setenv("REPRO_STATE_DIR", str(tmp_path / "state"))


@pytest.fixture
def cluster(slurm: None) -> str:
    """The cluster named `ci` in the user config (the autouse fixture's REPRO_CONFIG_DIR)."""
    require_service(sshd_ready(), f"the test sshd ({SSH_CONFIG}; scripts/ci/setup-sshd.sh)")
    config = Path(os.environ["REPRO_CONFIG_DIR"])
    config.mkdir(parents=True, exist_ok=True)
    (config / "config.toml").write_text(
        f'[clusters.ci]\nhost = "{ALIAS}"\nssh_config = "{SSH_CONFIG}"\n'
    )
    return "ci"


@pytest.fixture(scope="module")
def capsule(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not (slurm_ready() and sshd_ready()):
        if REQUIRE_SERVICES:
            pytest.fail("required services unavailable: Slurm and the test sshd")
        pytest.skip("Slurm or the test sshd unavailable")
    root = tmp_path_factory.mktemp("remote")
    project = root / "study"
    (project / "data").mkdir(parents=True)
    # Incompressible, so the capsule is a few MB: a transfer to interrupt and resume.
    (project / "data" / "blob.bin").write_bytes(random.Random(17).randbytes(3 << 20))  # noqa: S311
    (project / "study.py").write_text(STUDY)
    (project / "slow.py").write_text(SLOW)
    (project / "repro.toml").write_text(TOML)
    home = root / "home"
    env = {
        "HOME": str(home),
        "REPRO_CACHE_DIR": str(root / "cache"),
        "REPRO_CONFIG_DIR": str(home / ".config" / "repro"),
        "REPRO_DATA_DIR": str(home / ".local" / "share" / "repro"),
    }
    out = root / "study.capsule.tgz"
    result = run_cli("capture", str(project), "-o", str(out), env=env, timeout=600)
    assert result.returncode == 0, result.stderr
    assert out.stat().st_size > 3 << 20
    return out


SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"


def _valid(document: object, name: str) -> None:
    jsonschema.validate(document, json.loads((SCHEMAS / name).read_text()))


def _verdicts(report: dict[str, object]) -> list[tuple[str, str, str, list[tuple[str, str]]]]:
    points = report["points"]
    assert isinstance(points, list)
    return sorted(
        (p["run"], p["point_id"], p["status"], [(o["path"], o["verdict"]) for o in p["outputs"]])
        for p in points
    )


def test_a_replay_over_ssh_gives_the_verdicts_of_a_replay_on_the_cluster(
    capsule: Path, cluster: str, tmp_path: Path
) -> None:
    direct = run_cli("replay", str(capsule), "--target", "slurm", "--run", "sim", "--json")
    assert direct.returncode == 0, direct.stderr
    remote = run_cli(
        "replay", str(capsule), "--target", "slurm", "--host", cluster, "--run", "sim", "--json"
    )
    assert remote.returncode == 0, remote.stderr
    here, there = json.loads(direct.stdout), json.loads(remote.stdout)
    assert _verdicts(there) == _verdicts(here)
    assert there["counts"] == {"identical": 3} and there["reproduced"] is True
    assert there["target"] == "slurm" and there["isolation"] == here["isolation"]
    assert "fetching" in remote.stderr and f"on {cluster}" in remote.stderr


def test_a_detached_replay_is_collected_by_a_later_process(capsule: Path, cluster: str) -> None:
    submitted = run_cli(
        "replay",
        str(capsule),
        "--target",
        "slurm",
        "--host",
        cluster,
        "--run",
        "sim",
        "--detach",
        "--json",
    )
    assert submitted.returncode == 0, submitted.stderr
    detached = json.loads(submitted.stdout)
    _valid(detached, "replay-detached.schema.json")
    replay_id, jobs = detached["id"], detached["jobs"]
    assert detached["host"] == cluster and detached["points"] == 3 and jobs
    # the laptop "slept": every later step is a new process
    status = run_cli("status", replay_id, "--json")
    assert status.returncode == 0, status.stderr
    now = json.loads(status.stdout)
    _valid(now, "status.schema.json")
    assert now["id"] == replay_id and len(now["tasks"]) == 3
    assert {t["state"] for t in now["tasks"]} <= {"queued", "running", "done", "failed"}
    listed = json.loads(run_cli("status", "--json").stdout)
    _valid(listed, "status-list.schema.json")
    assert [r["id"] for r in listed["replays"]] == [replay_id]
    collected = run_cli("collect", replay_id, "--json")
    assert collected.returncode == 0, collected.stderr
    report = json.loads(collected.stdout)
    _valid(report, "replay-report.schema.json")
    assert report["counts"] == {"identical": 3} and report["reproduced"] is True
    # the far side keeps no replay folder once the outputs are back here
    assert _login(f"test -e {detached['workdir']}").returncode == 1
    gone = run_cli("status", replay_id)
    assert gone.returncode == 1 and "no detached replay" in gone.stderr


def test_a_detached_replay_on_this_machines_cluster(capsule: Path, slurm: None) -> None:
    submitted = run_cli(
        "replay", str(capsule), "--target", "slurm", "--run", "sim", "--detach", "--json"
    )
    assert submitted.returncode == 0, submitted.stderr
    replay_id = json.loads(submitted.stdout)["id"]
    status = run_cli("status", replay_id, "--json")
    assert status.returncode == 0 and json.loads(status.stdout)["host"] is None
    collected = run_cli("collect", replay_id, "--json")
    assert collected.returncode == 0, collected.stderr
    assert json.loads(collected.stdout)["counts"] == {"identical": 3}


def _remote_host() -> object:
    from repro.remote.host import HostSpec, RemoteHost

    return RemoteHost(HostSpec(destination=ALIAS, ssh_config=SSH_CONFIG))


def test_an_interrupted_upload_resumes_and_a_corrupted_one_is_sent_again(
    capsule: Path, cluster: str
) -> None:
    from repro.remote.host import RemoteHost
    from repro.remote.transfer import upload

    host = _remote_host()
    assert isinstance(host, RemoteHost)
    folder = f"{host.home()}/.cache/repro/test-uploads/{secrets.token_hex(4)}"
    data = capsule.read_bytes()
    size, half = len(data), len(data) // 2
    try:
        first = upload(host, capsule, folder)
        part = first.remote_path + ".part"
        assert first.sent == size and first.resumed_from == 0
        # a copy cut off half-way (what a killed scp or a dropped link leaves)
        host.run(f"rm -f {first.remote_path}; cat > {part}", stdin=data[:half])
        resumed = upload(host, capsule, folder)
        assert resumed.resumed_from == half and resumed.sent == size - half
        assert not resumed.restarted
        check = host.run(f"sha256sum < {resumed.remote_path}").text.split()[0]
        assert check == resumed.sha256
        # a partial whose bytes do not match this file: detected, sent again in full
        corrupt = bytearray(data[:half])
        corrupt[10] ^= 0xFF
        host.run(f"rm -f {first.remote_path}; cat > {part}", stdin=bytes(corrupt))
        again = upload(host, capsule, folder)
        assert again.restarted and again.resumed_from == 0 and again.sent == size
        # already there: nothing sent
        assert upload(host, capsule, folder).sent == 0
    finally:
        host.run(f"rm -rf {folder}", check=False)
        host.close()


def test_a_copy_killed_part_way_is_resumed_by_the_next_replay(
    capsule: Path, cluster: str, tmp_path: Path
) -> None:
    """The real thing: the upload process is killed mid-transfer (throttled so that it
    cannot finish first), then the next upload sends only what is missing."""
    from repro.remote.host import RemoteHost
    from repro.remote.transfer import upload

    host = _remote_host()
    assert isinstance(host, RemoteHost)
    folder = f"{host.home()}/.cache/repro/test-uploads/{secrets.token_hex(4)}"
    script = tmp_path / "slow_upload.py"
    script.write_text(
        "import sys, time\n"
        "from pathlib import Path\n"
        "from repro.remote.host import HostSpec, RemoteHost\n"
        "from repro.remote.transfer import upload\n"
        f"host = RemoteHost(HostSpec(destination={ALIAS!r}, ssh_config=Path({str(SSH_CONFIG)!r})))\n"
        "def slow(done, total):\n"
        "    print(done, flush=True)\n"
        "    time.sleep(0.5)\n"
        f"upload(host, Path({str(capsule)!r}), {folder!r}, progress=slow)\n"
    )
    try:
        with subprocess.Popen(
            [sys.executable, str(script)], stdout=subprocess.PIPE, text=True
        ) as proc:
            assert proc.stdout is not None
            lines = LineReader(proc.stdout)
            lines.wait_for(r"^\d+", timeout=60)
            lines.wait_for(r"^\d+", timeout=60)  # two blocks of 1 MiB sent
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
        cut = wait_until(
            lambda: int(
                host.run(f"stat -c %s {folder}/*.part 2>/dev/null || echo 0", check=False).text or 0
            ),
            timeout=30,
            what="the partial upload there",
        )
        size = capsule.stat().st_size
        assert 0 < cut < size
        resumed = upload(host, capsule, folder)
        assert resumed.resumed_from == cut and resumed.sent == size - cut
    finally:
        host.run(f"rm -rf {folder}", check=False)
        host.close()


def test_ctrl_c_while_submitting_there_cancels_what_was_already_submitted(
    capsule: Path, cluster: str
) -> None:
    """Interrupted between the array's submission there and the replay's record here: the
    repro there is interrupted, and what it submitted is found (this submission's own
    folder there) and cancelled."""
    argv = [sys.executable, "-m", "repro", "replay", str(capsule), "--target", "slurm"]
    with subprocess.Popen(
        [*argv, "--host", cluster, "--run", "slow"], stderr=subprocess.PIPE, text=True
    ) as proc:
        assert proc.stderr is not None
        stderr = LineReader(proc.stderr)
        try:
            job = stderr.wait_for(r"ci: submitted run slow as Slurm job array (\d+)", 600).group(1)
            proc.send_signal(signal.SIGINT)
            rest = stderr.rest(timeout=90)
            proc.wait(timeout=90)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=30)
    assert proc.returncode == 130, rest
    assert f"cancelled Slurm job(s) {job} on ci" in rest
    wait_until(lambda: not _queued(job), 30, f"job {job} to leave the queue", every=0.5)


def test_the_same_repro_runs_there_and_its_install_is_reused(capsule: Path, cluster: str) -> None:
    from repro import __version__
    from repro.remote.host import RemoteHost
    from repro.remote.install import ensure_repro, stamp

    host = _remote_host()
    assert isinstance(host, RemoteHost)
    try:
        ensure_repro(host, "python3", lambda _m: None)
        said: list[str] = []
        exe = ensure_repro(host, "python3", said.append)
        assert said == []  # stamp matched: nothing built, sent or installed
        assert host.run(f"{exe} --version").text.strip() == f"repro {__version__}"
        assert host.run(f"cat {Path(exe).parent.parent}/repro-source.txt").text.strip() == stamp()
    finally:
        host.close()


def _queued(job: str) -> list[str]:
    proc = subprocess.run(
        ["squeue", "-h", "-j", job, "-o", "%i"], capture_output=True, text=True, timeout=30
    )
    return proc.stdout.split()


@pytest.mark.parametrize(("how", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_ctrl_c_or_sigterm_cancels_the_jobs_on_the_cluster(
    capsule: Path, cluster: str, how: signal.Signals, code: int
) -> None:
    with subprocess.Popen(
        [
            sys.executable,
            "-m",
            "repro",
            "replay",
            str(capsule),
            "--target",
            "slurm",
            "--host",
            cluster,
            "--run",
            "slow",
        ],
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:
        assert proc.stderr is not None
        stderr = LineReader(proc.stderr)
        try:
            job = stderr.wait_for(r"on ci: Slurm job\(s\) (\d+)", timeout=600).group(1)
            stderr.wait_for(r"[1-9] running", timeout=120)
            proc.send_signal(how)
            rest = stderr.rest(timeout=60)
            proc.wait(timeout=60)
        finally:
            if proc.poll() is None:  # failed mid-way: let repro cancel its jobs, then stop it
                proc.send_signal(signal.SIGINT)
                try:
                    proc.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=30)
    assert proc.returncode == code, rest
    assert f"cancelled Slurm job(s) {job} on ci" in rest
    wait_until(lambda: not _queued(job), 30, f"job {job} to leave the queue", every=0.5)
    assert run_cli("status", "--json").stdout.count('"id"') == 0  # no record left here


LOCAL = 'host = "repro-ssh@127.0.0.1"\n'


@pytest.mark.parametrize(
    ("config", "code", "message"),
    [
        (LOCAL + "port = 9\n", 5, "cannot reach"),
        (LOCAL + 'port = 22122\nknown_hosts = "HOSTS"\nidentity_file = "OTHER"\n', 1, "refused"),
        (LOCAL + 'port = 22122\nknown_hosts = "EMPTY"\nidentity_file = "KEY"\n', 1, "host key"),
        # this key logs in with PATH=/nonexistent (setup-sshd.sh): a host without sbatch
        (LOCAL + 'port = 22122\nknown_hosts = "HOSTS"\nidentity_file = "NOSLURM"\n', 5, "no Slurm"),
    ],
    ids=["unreachable", "auth", "unknown-host-key", "no-slurm"],
)
def test_connection_failures_are_one_line_errors(
    capsule: Path, cluster: str, tmp_path: Path, config: str, code: int, message: str
) -> None:
    other = tmp_path / "other_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    (tmp_path / "empty").write_text("")
    for word, value in (
        ("HOSTS", SSHD / "known_hosts"),
        ("EMPTY", tmp_path / "empty"),
        ("OTHER", other),
        ("KEY", SSHD / "id_ed25519"),
        ("NOSLURM", SSHD / "id_noslurm"),
    ):
        config = config.replace(f'"{word}"', f'"{value}"')
    path = Path(os.environ["REPRO_CONFIG_DIR"]) / "config.toml"
    path.write_text("[clusters.bad]\n" + config)
    result = run_cli(
        "replay", str(capsule), "--target", "slurm", "--host", "bad", "--run", "sim", timeout=300
    )
    assert result.returncode == code, result.stderr
    lines = result.stderr.strip().splitlines()
    assert message in lines[-2] and lines[-2].startswith("error:"), lines
    assert lines[-1].lstrip().startswith("hint:"), lines
