"""`repro capture` end to end with real resolvers (uv, pip-compile), real venvs and real runs.

Resolution is hermetic: a local wheelhouse of two tiny packages (see conftest).
"""

from __future__ import annotations

import http.server
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from repro.capsule.reader import read_capsule
from repro.capture.pipeline import CaptureOptions, capture
from repro.errors import FileChangedError
from tests.conftest import run_cli
from tests.waiting import wait_until


def capsule_json(path: Path) -> dict:  # type: ignore[type-arg]
    result = run_cli("inspect", str(path), "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)["manifest"]  # type: ignore[no-any-return]


def no_leftovers(folder: Path) -> None:
    assert not list(folder.glob("*.tgz")), "a capsule was written despite the failure"
    assert not list(folder.glob(".repro-tmp-*")), "a temporary file was left behind"


def test_capture_locks_builds_runs_and_records(
    tiny_study: Path, offline_index: Path, tmp_path: Path
) -> None:
    out = tmp_path / "tiny.capsule.tgz"
    result = run_cli("capture", str(tiny_study), "-o", str(out), "-j", "2")
    assert result.returncode == 0, result.stderr
    assert "captured" in result.stdout
    m = capsule_json(out)
    env = m["environment"]
    assert env["lock_source"] == "uv"
    assert [(p["name"], p["version"]) for p in env["packages"]] == [
        ("reprotest-core", "1.0.0"),
        ("reprotest-stats", "2.1.0"),
    ]
    assert env["python_version"] == f"{sys.version_info.major}.{sys.version_info.minor}"
    assert env["base_image"] == f"python:{env['python_version']}-slim"
    verified = read_capsule(out, tmp_path / "u")
    assert verified.root is not None
    lock = (verified.root / "data/env/requirements.lock").read_text()
    assert lock.count("--hash=sha256:") >= 2
    assert "ARG BASE_IMAGE=python:" in (verified.root / "data/env/Dockerfile").read_text()

    records = {(r["run"], r["point_id"]): r for r in m["results"]}
    assert set(records) == {
        ("analyse", "_"),
        ("sweep", "seed=0"),
        ("sweep", "seed=1"),
        ("sweep", "seed=2"),
    }
    for (_run, pid), record in records.items():
        assert record["executed"] and record["exit_code"] == 0
        assert record["duration_s"] is not None and "done" in record["stdout_tail"]
        (output,) = record["outputs"]
        produced = json.loads((verified.root / output["capsule_path"]).read_text())
        seed = 0 if pid == "_" else int(pid.split("=")[1])
        assert produced == {"seed": seed, "ms": 7.5 + seed}  # mean of squares of 1..4, + seed
    assert records[("analyse", "_")]["outputs"][0]["rule"]["method"] == "numeric"
    assert records[("sweep", "seed=1")]["outputs"][0]["rule"]["method"] == "exact"
    roles = {f["path"]: f["role"] for f in m["files"]}
    assert roles["data/project/data/values.csv"] == "data"
    assert roles["data/project/study.py"] == "code"
    assert run_cli("verify", str(out)).returncode == 0


def test_second_capture_reuses_the_environment(
    tiny_study: Path, offline_index: Path, tmp_path: Path
) -> None:
    capture(CaptureOptions(project=tiny_study, output=tmp_path / "a.tgz"))
    venvs = Path(os.environ["REPRO_CACHE_DIR"]) / "venvs"
    built = {p: (p / ".repro-complete").stat().st_mtime_ns for p in venvs.iterdir() if p.is_dir()}
    messages: list[str] = []
    capture(CaptureOptions(project=tiny_study, output=tmp_path / "b.tgz"), observe=messages.append)
    after = {p: (p / ".repro-complete").stat().st_mtime_ns for p in venvs.iterdir() if p.is_dir()}
    assert after == built  # nothing rebuilt


def test_capture_with_pip_tools(tiny_study: Path, offline_index: Path, tmp_path: Path) -> None:
    out = tmp_path / "pt.tgz"
    result = run_cli(
        "capture", str(tiny_study), "-o", str(out), "--resolver", "pip-tools", "--no-run"
    )
    assert result.returncode == 0, result.stderr
    env = capsule_json(out)["environment"]
    assert env["lock_source"] == "pip-tools"
    assert {p["name"] for p in env["packages"]} == {"reprotest-core", "reprotest-stats"}


def test_reproducible_capture_is_byte_identical_with_runs(
    tiny_study: Path, offline_index: Path, tmp_path: Path
) -> None:
    env = {"SOURCE_DATE_EPOCH": "1700000000"}
    a, b = tmp_path / "a.tgz", tmp_path / "b.tgz"
    assert run_cli("capture", str(tiny_study), "-o", str(a), env=env).returncode == 0
    assert run_cli("capture", str(tiny_study), "-o", str(b), "-j", "3", env=env).returncode == 0
    assert a.read_bytes() == b.read_bytes()


def test_unresolvable_requirement_fails_with_the_resolvers_message(
    tiny_study: Path, offline_index: Path, tmp_path: Path
) -> None:
    (tiny_study / "requirements.txt").write_text("reprotest_stats>=99\n")
    result = run_cli("capture", str(tiny_study), "-o", str(tmp_path / "x.tgz"))
    assert result.returncode == 1
    assert "could not resolve" in result.stderr and "reprotest" in result.stderr
    assert "hint:" in result.stderr and "Traceback" not in result.stderr
    no_leftovers(tmp_path)


@pytest.mark.parametrize(
    ("command", "outputs", "timeout", "expected"),
    [
        (
            "python -c \"import sys; sys.exit('boom: bad input')\"",
            [],
            60,
            ["run r failed with exit code 1", "stderr (last 1 line(s)):", "    boom: bad input"],
        ),
        ("sleep 30", [], 1, ["run r timed out after 1 s"]),
        ("true", ["results/never.json"], 60, ["its output results/never.json was not produced"]),
        ("true", ["results/"], 60, ["its output results/ matched no file"]),
        ("true", ["figs/*.pdf"], 60, ["its output figs/*.pdf matched no file"]),
    ],
)
def test_failing_runs_fail_the_capture_and_write_nothing(
    tmp_path: Path, command: str, outputs: list[str], timeout: int, expected: list[str]
) -> None:
    project = tmp_path / "p"
    project.mkdir()
    (project / "repro.toml").write_text(
        f'[[runs]]\nname = "r"\ncommand = {json.dumps(command)}\noutputs = {json.dumps(outputs)}\n'
        f"timeout = {timeout}\n"
    )
    start = time.monotonic()
    result = run_cli("capture", str(project), "-o", str(tmp_path / "x.tgz"))
    assert time.monotonic() - start < 25
    assert result.returncode == 1, result.stderr
    for fragment in expected:
        assert fragment in result.stderr, result.stderr
    assert len([ln for ln in result.stderr.splitlines() if ln.startswith("error:")]) == 1
    no_leftovers(tmp_path)


def test_flags_alone_pair_each_output_with_the_run_before_it(tmp_path: Path) -> None:
    project = tmp_path / "p"
    (project / "inputs").mkdir(parents=True)
    (project / "inputs" / "n.txt").write_text("21\n")
    out = tmp_path / "flags.tgz"
    result = run_cli(
        "capture",
        str(project),
        "-o",
        str(out),
        "--run",
        "mkdir -p r && echo $(( $(cat inputs/n.txt) * 2 )) > r/a.txt",
        "--output",
        "r/a.txt",
        "--run",
        "cat r/a.txt r/a.txt > r/b.txt",
        "--output",
        "r/b.txt",
        "--data",
        "inputs",
    )
    assert result.returncode == 0, result.stderr
    assert "no dependency declaration found" in result.stdout
    m = capsule_json(out)
    assert [(r["run"], [o["path"] for o in r["outputs"]]) for r in m["results"]] == [
        ("run1", ["r/a.txt"]),
        ("run2", ["r/b.txt"]),
    ]
    assert m["environment"]["lock_source"] == "none"
    assert {f["role"] for f in m["files"] if f["path"].startswith("data/project/inputs")} == {
        "data"
    }


def test_output_without_run_is_a_usage_error(tmp_path: Path) -> None:
    result = run_cli("capture", str(tmp_path), "--output", "x.txt")
    assert result.returncode == 2 and "--output needs a --run" in result.stderr


@pytest.mark.parametrize("make", ["missing", "file"])
def test_bad_project_directory(tmp_path: Path, make: str) -> None:
    target = tmp_path / "proj"
    if make == "file":
        target.write_text("not a dir")
    result = run_cli("capture", str(target), "-o", str(tmp_path / "x.tgz"))
    assert result.returncode == 1
    assert ("not found" if make == "missing" else "not a directory") in result.stderr
    assert "hint:" in result.stderr


def test_file_vanishing_during_capture_fails_cleanly(tmp_path: Path) -> None:
    project = tmp_path / "p"
    project.mkdir()
    (project / "a.txt").write_text("a")
    (project / "b.txt").write_text("b")
    (project / "repro.toml").write_text('[[runs]]\nname = "r"\ncommand = "true"\n')

    def vanish(message: str) -> None:
        if message.startswith("running"):
            (project / "b.txt").unlink()

    with pytest.raises(FileChangedError, match=r"vanished during capture: .*b\.txt"):
        capture(CaptureOptions(project=project, output=tmp_path / "x.tgz"), observe=vanish)
    no_leftovers(tmp_path)


def test_file_changed_during_capture_fails_cleanly(tmp_path: Path) -> None:
    project = tmp_path / "p"
    project.mkdir()
    (project / "a.txt").write_text("a")
    (project / "repro.toml").write_text('[[runs]]\nname = "r"\ncommand = "true"\n')

    def grow(message: str) -> None:
        if message.startswith("running"):
            (project / "a.txt").write_text("a and more")

    with pytest.raises(FileChangedError, match="a.txt changed while it was captured"):
        capture(CaptureOptions(project=project, output=tmp_path / "x.tgz"), observe=grow)
    no_leftovers(tmp_path)


def test_zero_byte_file_is_captured_and_verified(tmp_path: Path) -> None:
    project = tmp_path / "p"
    project.mkdir()
    (project / "empty.dat").write_bytes(b"")
    out = tmp_path / "z.tgz"
    assert run_cli("capture", str(project), "-o", str(out), "--no-run").returncode == 0
    files = {f.path: f for f in read_capsule(out).manifest.files}
    assert files["data/project/empty.dat"].size == 0


def test_a_5gb_file_is_refused_with_a_hint(tmp_path: Path) -> None:
    project = tmp_path / "p"
    project.mkdir()
    with (project / "huge.bin").open("wb") as fh:
        fh.truncate(5 * 10**9)  # sparse: no disk used
    result = run_cli("capture", str(project), "-o", str(tmp_path / "x.tgz"), "--no-run")
    assert result.returncode == 1
    assert "huge.bin is 4.7 GiB, over the 2.0 GiB per-file limit" in result.stderr
    assert "remote data" in result.stderr
    no_leftovers(tmp_path)


def test_ctrl_c_during_a_run_stops_it_and_writes_nothing(tmp_path: Path) -> None:
    project = tmp_path / "p"
    project.mkdir()
    marker = tmp_path / "child.pid"
    (project / "repro.toml").write_text(
        f'[[runs]]\nname = "r"\ncommand = "echo $$ > {marker}; exec sleep 60"\n'
    )
    with subprocess.Popen(
        [sys.executable, "-m", "repro", "capture", str(project), "-o", str(tmp_path / "x.tgz")],
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:
        try:

            def started() -> str:
                if proc.poll() is not None:
                    pytest.fail(f"capture ended before its run started:\n{proc.communicate()[1]}")
                return marker.read_text().strip() if marker.exists() else ""

            child = int(wait_until(started, timeout=60, what="the run to start"))
            proc.send_signal(signal.SIGINT)
            _, stderr = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:  # failed mid-way: leave nothing running
                proc.kill()
                proc.communicate(timeout=30)
    assert proc.returncode == 130
    assert "interrupted" in stderr and "Traceback" not in stderr
    wait_until(
        lambda: not process_exists(child),
        timeout=10,
        what=f"the run's process {child} to end after Ctrl-C",
    )
    no_leftovers(tmp_path)


def process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


# --- remote data -------------------------------------------------------------------------


@pytest.fixture
def http_server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    root = tmp_path / "served"
    root.mkdir()

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
            super().__init__(*args, directory=str(root), **kwargs)

        def log_message(self, fmt: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", root
    server.shutdown()
    server.server_close()


def remote_project(tmp_path: Path, url: str, sha: str) -> Path:
    project = tmp_path / "p"
    project.mkdir()
    (project / "repro.toml").write_text(
        f'[[data]]\nurl = "{url}"\nsha256 = "{sha}"\npath = "inputs/big.csv"\n'
        '[[runs]]\nname = "count"\ncommand = "mkdir -p out && wc -l < inputs/big.csv > out/n.txt"\n'
        'outputs = ["out/n.txt"]\n'
    )
    return project


def test_remote_data_is_fetched_checked_and_referenced(
    tmp_path: Path, http_server: tuple[str, Path]
) -> None:
    import hashlib

    base, root = http_server
    content = b"".join(f"{i},{i * i}\n".encode() for i in range(1000))
    (root / "big.csv").write_bytes(content)
    sha = hashlib.sha256(content).hexdigest()
    project = remote_project(tmp_path, f"{base}/big.csv", sha)
    out = tmp_path / "r.tgz"
    result = run_cli("capture", str(project), "-o", str(out))
    assert result.returncode == 0, result.stderr
    verified = read_capsule(out, tmp_path / "u")
    m = verified.manifest
    assert [(r.path, r.sha256, r.size) for r in m.remote_data] == [
        ("inputs/big.csv", sha, len(content))
    ]
    assert not any(f.path.endswith("big.csv") for f in m.files)  # referenced, not embedded
    assert verified.root is not None
    assert (verified.root / m.results[0].outputs[0].capsule_path).read_text().strip() == "1000"


def test_remote_data_with_wrong_checksum_fails(
    tmp_path: Path, http_server: tuple[str, Path]
) -> None:
    base, root = http_server
    (root / "f.csv").write_bytes(b"changed upstream\n")
    project = remote_project(tmp_path, f"{base}/f.csv", "0" * 64)
    result = run_cli("capture", str(project), "-o", str(tmp_path / "x.tgz"))
    assert result.returncode == 1 and "sha256 mismatch" in result.stderr
    no_leftovers(tmp_path)


def test_unreachable_remote_data_is_exit_5(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    project = remote_project(tmp_path, f"http://127.0.0.1:{port}/x.csv", "0" * 64)
    result = run_cli("capture", str(project), "-o", str(tmp_path / "x.tgz"))
    assert result.returncode == 5, result.stderr
    assert "cannot download" in result.stderr
    no_leftovers(tmp_path)


def test_json_error_output(tmp_path: Path) -> None:
    result = run_cli("verify", str(tmp_path / "nope.tgz"), "--json")
    assert result.returncode == 1
    doc = json.loads(result.stdout)
    assert doc["ok"] is False and "capsule not found" in doc["error"] and doc["exit_code"] == 1


def test_capsule_text_is_never_read_as_terminal_markup(tmp_path: Path) -> None:
    project = tmp_path / "p"
    project.mkdir()
    (project / "[red]x.txt").write_text("x")
    (project / "repro.toml").write_text(
        '[capsule]\ntitle = "[/oops] [link=https://evil.example]click[/link]"\n'
        '[[runs]]\nname = "r"\ncommand = "cp ./*x.txt out.txt"\noutputs = ["out.txt"]\n'
    )
    out = tmp_path / "m.tgz"
    captured = run_cli("capture", str(project), "-o", str(out))
    assert captured.returncode == 0, captured.stderr
    inspected = run_cli("inspect", str(out))
    assert inspected.returncode == 0, inspected.stderr
    assert "[/oops] [link=https://evil.example]click[/link]" in inspected.stdout
    replayed = run_cli("replay", str(out), "--target", "local")
    assert replayed.returncode == 0, replayed.stderr
    assert "[/oops]" in replayed.stdout
