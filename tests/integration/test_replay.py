"""`repro replay` end to end: local and docker targets, verdicts, exit codes, selections."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema

from tests.capsules import rewrite
from tests.conftest import ROOT, run_cli


def capture(project: Path, out: Path, *args: str) -> Path:
    result = run_cli("capture", str(project), "-o", str(out), *args)
    assert result.returncode == 0, result.stderr
    return out


def replay_json(capsule: Path, *args: str, env: dict[str, str] | None = None) -> tuple[int, dict]:  # type: ignore[type-arg]
    result = run_cli("replay", str(capsule), "--json", *args, env=env, timeout=900)
    assert "Traceback" not in result.stderr, result.stderr
    try:
        return result.returncode, json.loads(result.stdout)
    except json.JSONDecodeError:
        raise AssertionError(f"exit {result.returncode}: {result.stderr}") from None


def verdicts(report: dict) -> dict[tuple[str, str, str], str]:  # type: ignore[type-arg]
    return {
        (p["run"], p["point_id"], o["path"]): o["verdict"]
        for p in report["points"]
        for o in p["outputs"]
    }


def test_local_replay_reproduces_and_reports(
    tiny_study: Path, offline_index: Path, tmp_path: Path
) -> None:
    capsule = capture(tiny_study, tmp_path / "t.tgz")
    code, report = replay_json(capsule, "--target", "local", "-j", "2")
    assert code == 0, report
    assert report["reproduced"] and report["target"] == "local"
    assert set(verdicts(report).values()) == {"identical"}
    assert len(verdicts(report)) == 4
    assert report["counts"] == {"identical": 4}
    assert any("unsigned" in w for w in report["warnings"])  # loud about an unsigned capsule
    schema = json.loads((ROOT / "schemas" / "replay-report.schema.json").read_text())
    jsonschema.validate(report, schema)
    human = run_cli("replay", str(capsule), "--target", "local")
    assert human.returncode == 0 and "reproduced" in human.stdout
    assert "warning:" in human.stderr and "unsigned" in human.stderr


def test_point_and_run_selection(tiny_study: Path, offline_index: Path, tmp_path: Path) -> None:
    capsule = capture(tiny_study, tmp_path / "t.tgz")
    code, report = replay_json(capsule, "--target", "local", "--point", "seed=1")
    assert code == 0
    assert list(verdicts(report)) == [("sweep", "seed=1", "results/metrics-1.json")]
    code, report = replay_json(capsule, "--target", "local", "--run", "analyse")
    assert code == 0 and list(verdicts(report)) == [("analyse", "_", "results/metrics.json")]
    result = run_cli("replay", str(capsule), "--target", "local", "--run", "nope")
    assert result.returncode == 2 and "no run named 'nope'" in result.stderr
    result = run_cli("replay", str(capsule), "--target", "local", "--point", "seed")
    assert result.returncode == 2 and "KEY=VALUE" in result.stderr


def _study(tmp_path: Path, script: str, toml_extra: str = "") -> Path:
    project = tmp_path / "study"
    project.mkdir()
    (project / "run.py").write_text(script)
    (project / "repro.toml").write_text(
        '[[runs]]\nname = "main"\ncommand = "python run.py"\noutputs = ["out.json"]\n' + toml_extra
    )
    return project


def test_an_unseeded_study_does_not_reproduce(tmp_path: Path) -> None:
    project = _study(
        tmp_path, "import json, random\njson.dump({'x': random.random()}, open('out.json', 'w'))\n"
    )
    capsule = capture(project, tmp_path / "u.tgz")
    code, report = replay_json(capsule, "--target", "local")
    assert code == 3 and not report["reproduced"]
    (verdict,) = report["points"][0]["outputs"]
    assert verdict["verdict"] == "different"


def test_noise_below_tolerance_is_within_tolerance(tmp_path: Path) -> None:
    # ~4.5 million distinct doubles in the noise: two draws are (practically) never equal
    # (1e-12 left only ~4,500 of them, and two runs did collide once in a while).
    script = (
        "import json, random\n"
        "json.dump({'x': 1.0 + random.random() * 1e-9}, open('out.json', 'w'))\n"
    )
    project = _study(tmp_path, script, '[runs.compare]\n"out.json" = { rtol = 1e-6 }\n')
    capsule = capture(project, tmp_path / "n.tgz")
    code, report = replay_json(capsule, "--target", "local")
    assert code == 0, report
    (verdict,) = report["points"][0]["outputs"]
    assert verdict["verdict"] == "within_tolerance"
    assert 0 < verdict["max_abs_deviation"] < 1e-8


def test_missing_output_and_failed_run(tmp_path: Path) -> None:
    marker = tmp_path / "capture-phase"
    marker.write_text("1")
    script = (
        "import json, os, sys\n"
        f"if not os.path.exists({str(marker)!r}):\n"
        "    sys.exit('cannot find the instrument file')\n"
        "json.dump({'x': 1}, open('out.json', 'w'))\n"
    )
    project = _study(tmp_path, script)
    capsule = capture(project, tmp_path / "m.tgz")
    marker.unlink()
    code, report = replay_json(capsule, "--target", "local")
    assert code == 3
    point = report["points"][0]
    assert point["status"] == "failed" and point["exit_code"] == 1
    assert "cannot find the instrument file" in point["stderr_tail"]
    assert point["outputs"][0]["verdict"] == "missing"


def test_a_tampered_capsule_is_refused_before_anything_runs(
    tiny_study: Path, offline_index: Path, tmp_path: Path
) -> None:
    capsule = capture(tiny_study, tmp_path / "t.tgz")

    def tamper(members: list) -> None:  # type: ignore[type-arg]
        for i, (info, data) in enumerate(members):
            if info.name == "data/project/study.py":
                members[i] = (info, data.replace(b"mean_square(values)", b"mean_square(values)*2"))

    bad = rewrite(capsule, tmp_path / "bad.tgz", tamper)
    result = run_cli("replay", str(bad), "--target", "local")
    assert result.returncode == 4 and "mismatch: data/project/study.py" in result.stderr


def test_require_signed_refuses_an_unsigned_capsule(tmp_path: Path) -> None:
    project = _study(tmp_path, "open('out.json', 'w').write('{}')\n")
    capsule = capture(project, tmp_path / "s.tgz")
    result = run_cli("replay", str(capsule), "--target", "local", "--require-signed")
    assert result.returncode == 4 and "unsigned" in result.stderr


def test_workdir_is_kept_and_html_report_written(
    tiny_study: Path, offline_index: Path, tmp_path: Path
) -> None:
    capsule = capture(tiny_study, tmp_path / "t.tgz")
    report_file = tmp_path / "report.html"
    code, report = replay_json(
        capsule,
        "--target",
        "local",
        "--workdir",
        str(tmp_path / "wd"),
        "--report",
        str(report_file),
    )
    assert code == 0
    kept = Path(report["workdir"])
    assert (kept / "capsule" / "data" / "project" / "results" / "metrics.json").is_file()
    html = report_file.read_text()
    assert "Tiny study" in html and "identical" in html


# --- docker ------------------------------------------------------------------------------


def test_docker_replay_runs_in_a_container_without_network_as_non_root(
    tmp_path: Path, docker_engine: str, offline_index: Path, tiny_study: Path
) -> None:
    (tiny_study / "probe.sh").write_text(
        "id -u > results/uid.txt; ls /sys/class/net > results/net.txt\n"
        # cgroup v1 or v2: the CPU quota and memory limit the container runs under
        "{ cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us 2>/dev/null || cut -d' ' -f1 /sys/fs/cgroup/cpu.max; }"
        " > results/cpu.txt\n"
        "{ cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max; }"
        " > results/mem.txt\n"
    )
    toml = (tiny_study / "repro.toml").read_text()
    (tiny_study / "repro.toml").write_text(
        toml.replace('command = "python study.py"', 'command = "python study.py && sh probe.sh"')
    )
    capsule = capture(tiny_study, tmp_path / "t.tgz")
    code, report = replay_json(
        capsule,
        "--target",
        "docker",
        "--base-image",
        docker_engine,
        "--workdir",
        str(tmp_path / "wd"),
    )
    assert code == 0, report
    assert report["target"] == "docker" and set(verdicts(report).values()) == {"identical"}
    results = Path(report["workdir"]) / "capsule" / "data" / "project" / "results"
    assert (results / "uid.txt").read_text().strip() == "1000"
    assert (results / "net.txt").read_text().split() == ["lo"]
    assert (results / "cpu.txt").read_text().strip() == "100000"  # cpus = 1: one period's quota
    assert (results / "mem.txt").read_text().strip() == str(1 << 30)  # memory = "1G"

    # The second replay reuses the image: no build.
    second = run_cli("replay", str(capsule), "--target", "docker", "--base-image", docker_engine)
    assert second.returncode == 0, second.stderr
    assert "reusing image repro-env:" in second.stderr and "building image" not in second.stderr


def test_docker_target_without_an_engine_is_exit_5(tmp_path: Path) -> None:
    project = _study(tmp_path, "open('out.json', 'w').write('{}')\n")
    capsule = capture(project, tmp_path / "s.tgz")
    result = run_cli(
        "replay",
        str(capsule),
        "--target",
        "docker",
        env={"DOCKER_HOST": f"unix://{tmp_path}/no-such.sock"},
    )
    assert result.returncode == 5
    assert "no Docker engine answers" in result.stderr and "--target local" in result.stderr


# --- vendored wheels, offline, saved images ------------------------------------------------


def test_vendored_wheels_replay_offline_with_a_cold_cache(
    tiny_study: Path, offline_index: Path, tmp_path: Path
) -> None:
    capsule = capture(tiny_study, tmp_path / "w.tgz", "--wheels")
    from repro.capsule.reader import read_capsule

    m = read_capsule(capsule).manifest
    assert m.environment.wheels == "data/env/wheels"
    assert sorted(
        f.path.rsplit("/", 1)[1] for f in m.files if f.path.startswith("data/env/wheels/")
    ) == ["reprotest_core-1.0.0-py3-none-any.whl", "reprotest_stats-2.1.0-py3-none-any.whl"]
    empty = tmp_path / "no-wheels-here"
    empty.mkdir()
    cold = {
        "REPRO_CACHE_DIR": str(tmp_path / "cold-cache"),
        "UV_FIND_LINKS": str(empty),
        "PIP_FIND_LINKS": str(empty),
    }
    code, report = replay_json(capsule, "--target", "local", "--offline", env=cold)
    assert code == 0, report
    assert set(verdicts(report).values()) == {"identical"}


def test_offline_without_vendored_wheels_or_cache_is_exit_5(
    tiny_study: Path, offline_index: Path, tmp_path: Path
) -> None:
    capsule = capture(tiny_study, tmp_path / "t.tgz")
    result = run_cli(
        "replay",
        str(capsule),
        "--target",
        "local",
        "--offline",
        env={"REPRO_CACHE_DIR": str(tmp_path / "cold-cache")},
    )
    assert result.returncode == 5
    assert "--offline cannot build it" in result.stderr and "--wheels" in result.stderr


def test_saved_image_replays_without_a_build(
    tiny_study: Path, offline_index: Path, tmp_path: Path, docker_engine: str
) -> None:
    import docker

    capsule = capture(tiny_study, tmp_path / "i.tgz", "--image", "--base-image", docker_engine)
    from repro.capsule.reader import read_capsule

    env = read_capsule(capsule).manifest.environment
    assert env.image == "data/env/image.tar" and env.image_tag and env.image_id
    client = docker.from_env()
    client.images.remove(env.image_id, force=True)  # the build and every tag of it
    result = run_cli("replay", str(capsule), "--target", "docker", timeout=900)
    assert result.returncode == 0, result.stderr
    short = env.image_id.removeprefix("sha256:")[:16]
    assert f"loading the capsule's saved image {short}" in result.stderr
    assert "building image" not in result.stderr
    # Kept under a repository no build uses, never under the capsule's repro-env: tag.
    assert client.images.get(env.image_id).tags == [f"repro-loaded:{short}"]


def test_a_run_that_rewrites_its_expected_result_is_caught(tmp_path: Path) -> None:
    # Runs execute inside the unpacked capsule: a study that overwrites the expectation it is
    # compared with (here: an unseeded result copied over it) must not "reproduce".
    script = (
        "import json, random, shutil\n"
        "json.dump({'x': random.random()}, open('out.json', 'w'))\n"
        "try:\n"
        "    shutil.copyfile('out.json', '../results/main/_/out.json')\n"
        "except OSError:\n"
        "    pass  # at capture there is no capsule around the run\n"
    )
    capsule = capture(_study(tmp_path, script), tmp_path / "c.tgz")
    # Sandboxed (bubblewrap), the run cannot write outside its work tree: the expectation
    # stays as recorded and the unseeded result is simply different.
    sandboxed = run_cli("replay", str(capsule), "--target", "local")
    assert sandboxed.returncode in (3, 4), sandboxed.stderr
    if "isolation: bubblewrap" in sandboxed.stderr:
        assert sandboxed.returncode == 3, sandboxed.stderr
    # Unsandboxed, the write lands, and the judge catches it.
    result = run_cli("replay", str(capsule), "--target", "local", "--no-sandbox")
    assert result.returncode == 4
    assert "expected result changed during the replay: out.json" in result.stderr
