"""Working with a capsule short of replaying it: cat, extract, restamp, inspect --files and
--packages, shell and exec (local and docker), and diff's unified diffs and HTML report.

Two real capsules are captured once for the module (the tiny study from the local wheelhouse,
and a study that draws a PNG with the standard library only); each test takes copies.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import struct
import subprocess
import sys
import tarfile
import time
import uuid
from pathlib import Path

import pytest
from typer.testing import CliRunner

from repro.cli import app
from tests.capsules import Members, rewrite
from tests.conftest import (
    BASE_IMAGE,
    STUDY_SCRIPT,
    STUDY_TOML,
    docker_ready,
    require_service,
    run_cli,
)
from tests.unit.test_cli import validated

FIGURE_SCRIPT = """\
import struct, zlib
from pathlib import Path

level = int(Path("data/level.txt").read_text())
w, h = 16, 8
rows = b"".join(
    b"\\x00" + b"".join(bytes((255 if x < level else 0, 64, 128)) for x in range(w))
    for _ in range(h)
)
def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
png = b"\\x89PNG\\r\\n\\x1a\\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(rows))
Path("results").mkdir(exist_ok=True)
Path("results/figure.png").write_bytes(png + chunk(b"IEND", b""))
Path("results/summary.txt").write_text(f"level {level}\\nwidth {w}\\n")
"""

FIGURE_TOML = """\
[capsule]
title = "Figure study"
license = "CC0-1.0"
authors = [{ name = "Doe, Jane" }]

[[data]]
path = "data"

[[runs]]
name = "figure"
command = "python make_figure.py"
outputs = ["results/figure.png", "results/summary.txt"]
[runs.compare]
"results/figure.png" = { pixel_tolerance = 0.0 }
"""


def _env(home: Path, session_cache: Path, wheelhouse: Path) -> dict[str, str]:
    """What the autouse fixture gives each test, for the module's captures."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REPRO_", "UV_", "PIP_"))}
    env.update(
        HOME=str(home),
        REPRO_CACHE_DIR=str(session_cache / "repro"),
        REPRO_CONFIG_DIR=str(home / ".config" / "repro"),
        REPRO_DATA_DIR=str(home / ".local" / "share" / "repro"),
        UV_CACHE_DIR=str(session_cache / "uv"),
        UV_NO_INDEX="1",
        UV_FIND_LINKS=str(wheelhouse),
        PIP_NO_INDEX="1",
        PIP_FIND_LINKS=str(wheelhouse),
    )
    return env


def _capture(project: Path, out: Path, env: dict[str, str]) -> Path:
    proc = subprocess.run(
        [sys.executable, "-m", "repro", "capture", str(project), "-o", str(out), "--no-sign"],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return out


@pytest.fixture(scope="module")
def capsules(
    tmp_path_factory: pytest.TempPathFactory, session_cache: Path, wheelhouse: Path
) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("tools")
    home = base / "home"
    home.mkdir()
    env = _env(home, session_cache, wheelhouse)
    study = base / "study"
    (study / "data").mkdir(parents=True)
    (study / "data" / "values.csv").write_text("1 2 3 4\n")
    (study / "study.py").write_text(STUDY_SCRIPT)
    (study / "requirements.txt").write_text("reprotest_stats\n")
    (study / "repro.toml").write_text(STUDY_TOML)
    fig = base / "fig"
    (fig / "data").mkdir(parents=True)
    (fig / "data" / "level.txt").write_text("4\n")
    (fig / "make_figure.py").write_text(FIGURE_SCRIPT)
    (fig / "repro.toml").write_text(FIGURE_TOML)
    out = {"study": _capture(study, base / "study.tgz", env)}
    out["fig_a"] = _capture(fig, base / "fig-a.tgz", env)
    (fig / "data" / "level.txt").write_text("9\n")
    (fig / "make_figure.py").write_text(FIGURE_SCRIPT.replace("width {w}", "width: {w}"))
    out["fig_b"] = _capture(fig, base / "fig-b.tgz", env)
    return out


@pytest.fixture
def study(capsules: dict[str, Path], tmp_path: Path) -> Path:
    return Path(shutil.copy(capsules["study"], tmp_path / "study.capsule.tgz"))


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    """The CLI in-process (each `python -m repro` costs an interpreter start): exit code,
    stdout and stderr as run_cli gives them."""
    result = CliRunner().invoke(app, list(args))
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return subprocess.CompletedProcess(args, result.exit_code, result.stdout, result.stderr)


def _tampered(capsule: Path, dest: Path, member: str) -> Path:
    """The capsule with one byte of `member` changed (same size: only its sha256 tells)."""

    def flip(members: Members) -> None:
        for i, (info, data) in enumerate(members):
            if info.name == member:
                members[i] = (info, bytes([data[0] ^ 1]) + data[1:])

    return rewrite(capsule, dest, flip)


# --- cat -------------------------------------------------------------------------------


def test_cat_prints_a_member_by_project_path_data_path_or_member_name(study: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "repro", "cat", str(study), "study.py"],
        capture_output=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == STUDY_SCRIPT.encode()
    result = cli("cat", str(study), "results/analyse/_/results/metrics.json")
    assert result.returncode == 0 and json.loads(result.stdout)["seed"] == 0
    manifest = cli("cat", str(study), "repro.json")
    assert json.loads(manifest.stdout)["format"] == "repro-capsule/1"
    assert cli("cat", str(study), "data/project/data/values.csv").stdout == "1 2 3 4\n"


def test_cat_of_a_missing_path_suggests_the_closest_and_inspect_files(study: Path) -> None:
    result = cli("cat", str(study), "stdy.py")
    assert result.returncode == 2 and result.stdout == ""
    assert "no file stdy.py" in result.stderr
    assert "did you mean study.py?" in result.stderr
    assert "repro inspect CAPSULE --files" in result.stderr
    folder = cli("cat", str(study), "data")
    assert folder.returncode == 2 and "repro extract" in folder.stderr


def test_cat_prints_nothing_of_a_tampered_capsule(study: Path, tmp_path: Path) -> None:
    bad = _tampered(study, tmp_path / "bad.tgz", "data/project/study.py")
    result = cli("cat", str(bad), "study.py")
    assert result.returncode == 4, result.stderr
    assert result.stdout == ""
    assert "checksum mismatch: data/project/study.py" in result.stderr
    # Tampering elsewhere is found too, before the asked file is printed.
    other = _tampered(study, tmp_path / "other.tgz", "data/project/data/values.csv")
    assert cli("cat", str(other), "study.py").stdout == ""
    # A missing path in a tampered capsule is reported as the tampering (exit 4).
    assert cli("cat", str(other), "nothing.py").returncode == 4


# --- extract ---------------------------------------------------------------------------


def _members(capsule: Path) -> set[str]:
    with tarfile.open(capsule) as tar:
        return {m.name for m in tar.getmembers() if m.isfile() or m.issym()}


def test_extract_everything_or_some_and_refuse_to_overwrite(study: Path, tmp_path: Path) -> None:
    out = tmp_path / "all"
    result = cli("extract", str(study), "-o", str(out), "--json")
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert set(doc["files"]) == _members(study)
    assert (out / "data" / "project" / "study.py").read_text() == STUDY_SCRIPT
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".repro-extract-")]

    some = tmp_path / "some"
    picked = cli("extract", str(study), "study.py", "results/sweep", "-o", str(some))
    assert picked.returncode == 0, picked.stderr
    written = {str(p.relative_to(some)) for p in some.rglob("*") if p.is_file()}
    assert written == {
        "data/project/study.py",
        *(f"data/results/sweep/seed={s}/results/metrics-{s}.json" for s in range(3)),
    }

    (some / "data" / "project" / "study.py").write_text("mine\n")
    again = cli("extract", str(study), "study.py", "-o", str(some))
    assert again.returncode == 2 and "--force" in again.stderr
    assert (some / "data" / "project" / "study.py").read_text() == "mine\n"
    forced = cli("extract", str(study), "study.py", "-o", str(some), "--force", "--json")
    assert forced.returncode == 0, forced.stderr
    assert json.loads(forced.stdout)["replaced"] == ["data/project/study.py"]
    assert (some / "data" / "project" / "study.py").read_text() == STUDY_SCRIPT


def test_extract_of_a_tampered_capsule_leaves_nothing(study: Path, tmp_path: Path) -> None:
    bad = _tampered(study, tmp_path / "bad.tgz", "data/project/data/values.csv")
    out = tmp_path / "out"
    result = cli("extract", str(bad), "-o", str(out))
    assert result.returncode == 4, result.stderr
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.tgz", "home", "study.capsule.tgz"]


def test_extract_never_writes_through_a_link_in_the_folder(study: Path, tmp_path: Path) -> None:
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    out.mkdir()
    elsewhere.mkdir()
    (out / "data").symlink_to(elsewhere)
    result = cli("extract", str(study), "study.py", "-o", str(out), "--force")
    assert result.returncode == 2 and "symbolic link" in result.stderr
    assert list(elsewhere.iterdir()) == []


# --- restamp ---------------------------------------------------------------------------


def test_restamp_changes_metadata_only_deterministically(study: Path, tmp_path: Path) -> None:
    a, b = tmp_path / "a.tgz", tmp_path / "b.tgz"
    args = ["--title", "Tiny study, v2", "--author", "Roe, Rick", "--doi", "10.5281/zenodo.1"]
    first = cli("restamp", str(study), *args, "-o", str(a), "--json")
    assert first.returncode == 0, first.stderr
    doc = json.loads(first.stdout)
    assert doc["changed"] == ["title", "authors", "doi"] and not doc["signed"]
    assert cli("restamp", str(study), *args, "-o", str(b)).returncode == 0
    assert a.read_bytes() == b.read_bytes()
    manifest = json.loads(cli("cat", str(a), "repro.json").stdout)
    assert manifest["metadata"]["title"] == "Tiny study, v2"
    assert [a["name"] for a in manifest["metadata"]["authors"]] == ["Roe, Rick"]
    assert cli("verify", str(a)).returncode == 0
    before = cli("cat", str(study), "study.py").stdout
    assert cli("cat", str(a), "study.py").stdout == before

    # Never over the input unless asked; asked: atomically, signed with the user's key.
    same = cli("restamp", str(study), "--license", "MIT", "-o", str(study))
    assert same.returncode == 2 and "--in-place" in same.stderr
    assert cli("keys", "generate").returncode == 0
    in_place = cli("restamp", str(study), "--license", "MIT", "--in-place")
    assert in_place.returncode == 0, in_place.stderr
    verified = json.loads(cli("verify", str(study), "--json").stdout)
    assert verified["signature"]["state"] == "trusted"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []

    # A signed capsule is not restamped unsigned by accident.
    (tmp_path / "home" / ".config" / "repro" / "keys" / "default.key").unlink()
    unsigned = cli("restamp", str(study), "--title", "x", "-o", str(tmp_path / "c.tgz"))
    assert unsigned.returncode == 1 and "--no-sign" in unsigned.stderr


def test_restamp_refuses_bad_metadata_and_a_tampered_capsule(study: Path, tmp_path: Path) -> None:
    bad_author = cli("restamp", str(study), "--author", "", "-o", str(tmp_path / "x.tgz"))
    assert bad_author.returncode == 2 and "authors" in bad_author.stderr
    bad = _tampered(study, tmp_path / "bad.tgz", "data/project/study.py")
    result = cli("restamp", str(bad), "--title", "x", "-o", str(tmp_path / "y.tgz"))
    assert result.returncode == 4
    assert not (tmp_path / "x.tgz").exists() and not (tmp_path / "y.tgz").exists()


# --- inspect ---------------------------------------------------------------------------


def test_inspect_lists_commands_files_and_locked_packages(study: Path) -> None:
    result = cli("inspect", str(study), "--files", "--packages")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "analyse: python study.py" in out and "sweep: python study.py {seed}" in out
    assert "data/project/study.py" in out and "code" in out
    rows = [[c.strip() for c in ln.split("│")] for ln in out.splitlines()]
    packages = {r[0]: r[1:] for r in rows if r[0].startswith("reprotest")}
    # name, version, hashes in the lock (one wheel each), where from
    assert packages == {
        "reprotest-core": ["1.0.0", "1", "index"],
        "reprotest-stats": ["2.1.0", "1", "index"],
    }


# --- shell and exec --------------------------------------------------------------------


def test_exec_runs_in_the_locked_environment_and_passes_the_exit_code(
    study: Path, offline_index: Path
) -> None:
    probe = (
        "import os, sys, reprotest_stats; print(sys.prefix); print(os.getcwd()); "
        "print(os.environ.get('MY_SECRET_TOKEN')); sys.exit(7)"
    )
    result = run_cli(
        "exec", str(study), "--target", "local", "--", "python", "-c", probe,
        env={"MY_SECRET_TOKEN": "hunter2-very-secret"},
    )  # fmt: skip
    assert result.returncode == 7, result.stderr
    prefix, cwd, passed = result.stdout.splitlines()
    assert "/venvs/" in prefix
    assert cwd.endswith("capsule/data/project")
    assert passed == "None"
    assert not Path(cwd).exists()  # the scratch folder is gone
    # As a shell reports them: ended by a signal (128 + N), or no such command (127).
    kill = "import os, signal; os.kill(os.getpid(), signal.SIGKILL)"
    assert (
        cli("exec", str(study), "--target", "local", "--", "python", "-c", kill).returncode == 137
    )
    assert cli("exec", str(study), "--target", "local", "--", "no-such-tool").returncode == 127


def test_shell_reads_commands_from_stdin(study: Path, offline_index: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "repro", "shell", str(study), "--target", "local"],
        input="ls\npython -c 'import reprotest_stats; print(\"imported\")'\nexit 3\n",
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 3, proc.stderr
    assert "study.py" in proc.stdout and "imported" in proc.stdout


def test_exec_in_docker_as_the_container_user_without_network(
    study: Path, offline_index: Path
) -> None:
    require_service(docker_ready(), f"Docker engine with image {BASE_IMAGE}")
    probe = (
        "import os, socket, sys, reprotest_stats; print(os.getuid()); print(os.getcwd()); "
        "print(len([i for i in socket.if_nameindex() if i[1] != 'lo'])); sys.exit(5)"
    )
    result = run_cli(
        "exec", str(study), "--target", "docker", "--", "python", "-c", probe,
        env={"REPRO_BASE_IMAGE": BASE_IMAGE},
    )  # fmt: skip
    assert result.returncode == 5, result.stderr
    uid, cwd, interfaces = result.stdout.split()
    assert uid != "0" and cwd == "/work" and interfaces == "0"


# --- diff ------------------------------------------------------------------------------


def test_the_figure_study_draws_a_png(capsules: dict[str, Path]) -> None:
    raw = subprocess.run(
        [
            sys.executable,
            "-m",
            "repro",
            "cat",
            str(capsules["fig_a"]),
            "results/figure/_/results/figure.png",
        ],
        capture_output=True,
        check=True,
    ).stdout
    assert raw[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">II", raw[16:24]) == (16, 8)


def test_diff_shows_unified_diffs_and_figures_side_by_side(
    capsules: dict[str, Path], tmp_path: Path
) -> None:
    a, b = capsules["fig_a"], capsules["fig_b"]
    report = tmp_path / "diff.html"
    result = cli("diff", str(a), str(b), "--json", "--report", str(report))
    assert result.returncode == 0, result.stderr
    entries = {e["name"]: e for e in json.loads(result.stdout)["entries"]}
    assert entries["data/level.txt"]["unified"].endswith("-4\n+9")
    assert (
        '+Path("results/summary.txt").write_text(f"level {level}\\nwidth: {w}\\n")'
        in (entries["make_figure.py"]["unified"])
    )
    summary = entries["figure [_] results/summary.txt"]
    assert "\n-width 16\n" in summary["unified"] and summary["unified"].endswith("+width: 16")
    figure = entries["figure [_] results/figure.png"]
    assert figure["unified"] is None and figure["detail"].startswith("different")

    page = report.read_text()
    assert page.count('src="data:image/png;base64,') == 3  # A, B and their difference
    assert "<figcaption>difference</figcaption>" in page
    assert '<span class="add">+9</span>' in page
    assert "http://" not in page and "https://" not in page

    human = cli("diff", str(a), str(b))
    assert "+++ b/data/level.txt" in human.stdout
    quiet = cli("diff", str(a), str(b), "--no-patch")
    assert "+++ b/data/level.txt" not in quiet.stdout


# --- cache -----------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _no_real_images(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test here may list or prune the engine's real repro images (other people's
    caches): images count as repro's only in a repository no build uses."""
    monkeypatch.setenv("REPRO_IMAGE_REPOSITORIES", "repro-env-test-none")


def _hold(kind: str, name: str) -> subprocess.Popen[str]:
    """Another process using the cache entry (as a replay does) until its stdin closes."""
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from repro.paths import mark_used; "
            f"mark_used({kind!r}, {name!r}); print('held', flush=True); sys.stdin.read()",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdout.readline() == "held\n"
    return holder


def test_cache_lists_sizes_and_prunes_by_age_count_and_never_in_use(
    capsules: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    offline_index: Path,
) -> None:
    cache = tmp_path / "cache"
    monkeypatch.setenv("REPRO_CACHE_DIR", str(cache))
    for capsule in (capsules["study"], capsules["fig_a"]):  # two locks: two environments
        used = run_cli("exec", str(capsule), "--target", "local", "--", "true")
        assert used.returncode == 0, used.stderr
    listed = cli("cache", "list", "--kind", "venvs", "--json")
    assert listed.returncode == 0, listed.stderr
    doc = validated("cache list", listed.stdout)
    venvs = doc["entries"]
    assert len(venvs) == 2 and all(e["size"] > 0 and not e["in_use"] for e in venvs)
    assert doc["total"] == sum(e["size"] for e in venvs)
    human = cli("cache", "list", "--kind", "venvs")
    assert "venvs" in human.stdout and "total" in human.stdout and "KiB" in human.stdout
    # Remote data lands in data/SHA256 (repro.remote_data); downloads in progress are not entries.
    (cache / "data").mkdir()
    (cache / "data" / ("ab" * 32)).write_bytes(b"x" * 3000)
    (cache / "data" / ".download-123").write_bytes(b"partial")
    data = validated("cache list", cli("cache", "list", "--kind", "data", "--json").stdout)
    assert [(e["name"], e["size"]) for e in data["entries"]] == [("ab" * 32, 3000)]

    # The older one was last used 40 days ago.
    old, new = sorted(venvs, key=lambda e: e["name"])
    stamp = cache / "used" / "venvs" / old["name"]
    long_ago = time.time() - 40 * 86400
    os.utime(stamp, (long_ago, long_ago))
    dry = validated(
        "cache prune",
        cli(
            "cache", "prune", "--kind", "venvs", "--older-than", "30d", "--dry-run", "--json"
        ).stdout,
    )
    assert [e["name"] for e in dry["removed"]] == [old["name"]] and dry["dry_run"]
    assert Path(old["path"]).is_dir()
    pruned = cli("cache", "prune", "--kind", "venvs", "--older-than", "30d", "--json")
    assert [e["name"] for e in validated("cache prune", pruned.stdout)["removed"]] == [old["name"]]
    assert not Path(old["path"]).exists() and Path(new["path"]).is_dir()
    assert not Path(old["path"] + ".files.json").exists()
    kept = validated(
        "cache prune", cli("cache", "prune", "--kind", "venvs", "--keep-last", "1", "--json").stdout
    )
    assert kept["removed"] == [] and [e["name"] for e in kept["kept"]] == [new["name"]]

    # In use by another process: skipped, whatever the flags say; free again: removed.
    holder = _hold("venvs", new["name"])
    try:
        busy = validated(
            "cache prune", cli("cache", "prune", "--kind", "venvs", "--all", "--json").stdout
        )
        assert [e["name"] for e in busy["skipped"]] == [new["name"]] and busy["removed"] == []
        assert Path(new["path"]).is_dir()
    finally:
        holder.communicate("", timeout=30)
    # Being built (its build lock held, as build_venv holds it): skipped too.
    lock = Path(new["path"]).with_suffix(".lock")
    builder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, sys; fh = open(sys.argv[1], 'a'); fcntl.flock(fh, fcntl.LOCK_EX); "
            "print('locked', flush=True); sys.stdin.read()",
            str(lock),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert builder.stdout is not None and builder.stdout.readline() == "locked\n"
        building = cli("cache", "prune", "--kind", "venvs", "--all", "--json")
        assert [e["name"] for e in validated("cache prune", building.stdout)["skipped"]] == [
            new["name"]
        ]
    finally:
        builder.communicate("", timeout=30)
    freed = validated(
        "cache prune", cli("cache", "prune", "--kind", "venvs", "--all", "--json").stdout
    )
    assert [e["name"] for e in freed["removed"]] == [new["name"]] and freed["freed"] > 0
    assert not Path(new["path"]).exists()


def test_cache_prune_needs_a_rule_and_a_known_kind() -> None:
    bare = cli("cache", "prune")
    assert bare.returncode == 2 and "--older-than" in bare.stderr
    assert cli("cache", "prune", "--older-than", "soon").returncode == 2
    assert cli("cache", "list", "--kind", "pizza").returncode == 2


def test_cache_prunes_only_unused_images_of_its_repositories(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Real Docker: two images of a repository this test owns, one with a container made
    from it; only the other is pruned. No other image on the engine is touched."""
    require_service(docker_ready(), f"Docker engine with image {BASE_IMAGE}")
    import docker

    client = docker.from_env()
    repo = f"repro-env-test-{uuid.uuid4().hex[:12]}"
    monkeypatch.setenv("REPRO_IMAGE_REPOSITORIES", repo)
    monkeypatch.setenv("REPRO_IMAGE_GRACE", "0")  # just built, yet prunable
    monkeypatch.setenv("REPRO_CACHE_DIR", str(tmp_path / "cache"))
    container = None
    try:
        ids = {}
        for name in ("kept", "gone"):
            dockerfile = f"FROM {BASE_IMAGE}\nLABEL org.repro.test={repo}-{name}\n".encode()
            image, _ = client.images.build(
                fileobj=io.BytesIO(dockerfile), tag=f"{repo}:{name}", rm=True
            )
            ids[name] = image.id
        monkeypatch.delenv("REPRO_IMAGE_GRACE")
        fresh = validated("cache list", cli("cache", "list", "--kind", "images", "--json").stdout)
        assert all(e["in_use"] for e in fresh["entries"])  # just built: maybe about to run
        monkeypatch.setenv("REPRO_IMAGE_GRACE", "0")
        container = client.containers.create(ids["kept"], ["true"])
        listed = validated("cache list", cli("cache", "list", "--kind", "images", "--json").stdout)
        by_tag = {e["path"]: e for e in listed["entries"]}
        assert set(by_tag) == {f"{repo}:kept", f"{repo}:gone"}  # nobody else's images
        assert by_tag[f"{repo}:kept"]["in_use"] and by_tag[f"{repo}:gone"]["size"] > 0
        pruned = cli("cache", "prune", "--kind", "images", "--all", "--json")
        doc = validated("cache prune", pruned.stdout)
        assert [e["path"] for e in doc["removed"]] == [f"{repo}:gone"]
        assert [e["path"] for e in doc["skipped"]] == [f"{repo}:kept"]
        tags = {t for row in client.api.images() for t in row.get("RepoTags") or []}
        assert f"{repo}:kept" in tags and f"{repo}:gone" not in tags
    finally:
        if container is not None:
            container.remove(force=True)
        for name in ("kept", "gone"):
            with contextlib.suppress(docker.errors.ImageNotFound):
                client.images.remove(f"{repo}:{name}", force=True)
        client.close()
