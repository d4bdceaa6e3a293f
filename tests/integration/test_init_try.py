"""`repro init --try --yes` on repositories as they are found (no repro.toml), then capture
with no edits, then replay: identical on the local target (and in Docker for one).

Each project under tests/projects/fresh/ says what init must find: the runs a researcher
would point at, the files they write, the environment (a requirements file, one in a
subfolder, or packages guessed from the imports), the licence or the question about it.
"""

from __future__ import annotations

import hashlib
import json
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import run_cli
from tests.projects.helpers import FRESH, fresh_projects, prepare_fresh


@dataclass(frozen=True)
class Expect:
    runs: list[tuple[str, list[str]]]
    """(command, outputs) of each run init must write, in order."""
    requirements: str | None = None
    packages: list[str] = field(default_factory=list)
    license: str | None = None
    title: str | None = None
    git: bool = False


EXPECT: dict[str, Expect] = {
    "script-figures": Expect(
        runs=[
            (
                "python analysis.py",
                ["figures/anomaly.png", "figures/monthly climatology.csv", "figures/summary.csv"],
            )
        ],
        requirements="requirements.txt",
        license="MIT",
        title="Sea-surface temperature anomalies, 1990-2020",
        git=True,
    ),
    "makefile-fit": Expect(
        runs=[("make", ["results/fit.txt", "results/report.md"])],
        requirements="requirements.txt",
        title="Decay fit",
    ),
    "imports-only": Expect(
        runs=[("python src/simulate.py", ["output/paths.npy", "output/summary.json"])],
        packages=["numpy", "pyyaml"],
        title="Random walks",
    ),
    "readme-steps": Expect(
        runs=[
            ("python prepare.py --min-count 2", ["work/vocab.json"]),
            ("python train.py --smoothing 0.5", ["out/model.tsv"]),
        ],
        requirements="requirements.txt",
        title="Word-frequency baseline",
    ),
    "subfolder-deps": Expect(
        runs=[("python analysis/run.py", ["analysis/out/means.json"])],
        requirements="analysis/requirements.txt",
        license="CC-BY-4.0",
        title="Station summaries",
    ),
}


def test_every_fresh_project_is_covered() -> None:
    assert set(EXPECT) == set(fresh_projects()) == set(FRESH)


def tree(project: Path) -> dict[str, str]:
    return {
        p.relative_to(project).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(project.rglob("*"))
        if p.is_file() and ".git" not in p.relative_to(project).parts
    }


def init_try(project: Path) -> tuple[dict[str, Any], float]:
    before = tree(project)
    t0 = time.monotonic()
    proc = run_cli("init", str(project), "--try", "--yes", "--json", timeout=900)
    seconds = time.monotonic() - t0
    assert proc.returncode == 0, proc.stderr[-4000:]
    after = tree(project)
    # the trial ran in a scratch copy: the project gained repro.toml and nothing else
    assert set(after) - set(before) == {"repro.toml"}, sorted(set(after) - set(before))
    assert {k: v for k, v in after.items() if k != "repro.toml"} == before
    return json.loads(proc.stdout), seconds


@pytest.mark.network
@pytest.mark.parametrize("name", sorted(EXPECT))
def test_init_try_then_capture_and_replay_with_no_edits(
    name: str, tmp_path: Path, pypi: None
) -> None:
    expect = EXPECT[name]
    project = prepare_fresh(name, tmp_path / name, git=expect.git)
    assert not (project / "repro.toml").exists()
    report, _ = init_try(project)
    assert [(r["command"], r["outputs"]) for r in report["runs"]] == expect.runs
    assert all(r["tried"] and r["exit_code"] == 0 for r in report["runs"])
    assert report["trial"]["ok"] and report["trial"]["python"].startswith("3.")

    written = (project / "repro.toml").read_text(encoding="utf-8")
    config = tomllib.loads(written)
    assert [(r["command"], r["outputs"]) for r in config["runs"]] == expect.runs
    env = config["environment"]
    assert env.get("requirements") == expect.requirements
    assert env.get("packages", []) == expect.packages
    if expect.packages:
        assert "# GUESS:" in written
    assert config["capsule"].get("license") == expect.license
    if expect.license is None:
        assert "# QUESTION: under which licence" in written
        assert any(q.startswith("license:") for q in report["questions"])
    assert config["capsule"].get("title") == expect.title

    capsule = tmp_path / f"{name}.capsule.tgz"
    captured = run_cli("capture", str(project), "-o", str(capsule), "--json", timeout=900)
    assert captured.returncode == 0, captured.stderr[-4000:]
    summary = json.loads(captured.stdout)
    recorded = sorted(o for r in summary["results"] for o in r["outputs"])
    assert recorded == sorted(o for _, outs in expect.runs for o in outs)

    replayed = run_cli("replay", str(capsule), "--target", "local", "--json", timeout=900)
    assert replayed.returncode == 0, replayed.stderr[-4000:]
    verdicts = [o["verdict"] for p in json.loads(replayed.stdout)["points"] for o in p["outputs"]]
    assert verdicts and set(verdicts) == {"identical"}, verdicts


@pytest.mark.network
def test_the_guessed_environment_replays_in_docker(
    tmp_path: Path, pypi: None, docker_engine: str
) -> None:
    project = prepare_fresh("imports-only", tmp_path / "imports-only")
    init_try(project)
    capsule = tmp_path / "imports-only.capsule.tgz"
    captured = run_cli("capture", str(project), "-o", str(capsule), timeout=900)
    assert captured.returncode == 0, captured.stderr[-4000:]
    replayed = run_cli(
        "replay",
        str(capsule),
        "--target",
        "docker",
        "--base-image",
        docker_engine,
        "--json",
        timeout=1200,
    )
    assert replayed.returncode == 0, replayed.stderr[-4000:]
    report = json.loads(replayed.stdout)
    assert report["target"] == "docker"
    verdicts = {o["path"]: o["verdict"] for p in report["points"] for o in p["outputs"]}
    assert verdicts == {"output/paths.npy": "identical", "output/summary.json": "identical"}


@pytest.mark.network
def test_a_failing_trial_writes_nothing(tmp_path: Path, pypi: None) -> None:
    project = tmp_path / "broken"
    project.mkdir()
    (project / "run.py").write_text(
        "import sys\nopen('partial.txt', 'w').write('x')\n"
        "print('reading the input', flush=True)\nsys.exit('data/input.csv: no such file')\n"
    )
    proc = run_cli("init", str(project), "--try", "--yes")
    assert proc.returncode == 1, proc.stderr
    assert not (project / "repro.toml").exists()
    assert not (project / "partial.txt").exists()
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1
    assert "run run (python run.py) failed with exit code 1" in errors[0]
    assert "data/input.csv: no such file" in errors[0]
    assert "hint:" in proc.stderr
    assert "reading the input" in proc.stderr  # the tail of stdout is shown too

    as_json = run_cli("init", str(project), "--try", "--yes", "--json")
    assert as_json.returncode == 1
    out = json.loads(as_json.stdout)
    assert out["ok"] is False and out["kind"] == "TrialFailedError"
    assert not (project / "repro.toml").exists()
