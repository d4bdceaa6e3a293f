"""The bundled sample papers are tests: capture -> verify -> inspect, with real packages."""

from __future__ import annotations

import json
from pathlib import Path

import bagit
import pytest

from repro.capsule.reader import read_capsule
from tests.conftest import ROOT, copy_project, run_cli

PAPERS = sorted(p.name for p in (ROOT / "sample_papers").iterdir() if (p / "repro.toml").is_file())


def test_there_are_at_least_three_sample_papers() -> None:
    assert len(PAPERS) >= 3


@pytest.mark.network
@pytest.mark.parametrize("paper", PAPERS)
def test_sample_paper_round_trip(paper: str, tmp_path: Path, pypi: None) -> None:
    project = copy_project(ROOT / "sample_papers" / paper, tmp_path / paper)
    out = tmp_path / f"{paper}.capsule.tgz"
    captured = run_cli("capture", str(project), "-o", str(out), "-j", "2", "--json", timeout=900)
    assert captured.returncode == 0, captured.stderr
    summary = json.loads(captured.stdout)
    assert summary["ok"] and summary["lock_source"] == "uv" and summary["packages"] >= 1

    verified = run_cli("verify", str(out), "--json")
    assert verified.returncode == 0, verified.stderr
    assert json.loads(verified.stdout)["capsule_id"] == summary["capsule_id"]

    capsule = read_capsule(out, tmp_path / "unpacked")
    m = capsule.manifest
    assert m.metadata.authors and m.metadata.license
    assert all(r.executed and r.exit_code == 0 for r in m.results)
    declared = sum(len(run.outputs) * len(run.points()) for run in m.runs)
    assert sum(len(r.outputs) for r in m.results) == declared > 0
    assert capsule.root is not None
    bagit.Bag(str(capsule.root)).validate()
    for record in m.results:
        for output in record.outputs:
            assert (capsule.root / output.capsule_path).stat().st_size == output.size > 0
    inspected = run_cli("inspect", str(out))
    assert inspected.returncode == 0 and m.metadata.title in inspected.stdout

    replayed = run_cli("replay", str(out), "--target", "local", "-j", "2", "--json", timeout=900)
    assert replayed.returncode == 0, replayed.stderr
    report = json.loads(replayed.stdout)
    assert report["reproduced"] and sum(report["counts"].values()) == declared
    assert set(report["counts"]) <= {"identical", "within_tolerance"}
    assert len(report["notebooks"]) == len(m.notebooks) == len(m.notebook_results)
    for notebook in report["notebooks"]:
        assert notebook["verdict"] in ("identical", "within_tolerance"), notebook["detail"]


@pytest.mark.network
@pytest.mark.parametrize("paper", PAPERS)
def test_sample_paper_replays_in_docker(
    paper: str, tmp_path: Path, pypi: None, docker_engine: str
) -> None:
    project = copy_project(ROOT / "sample_papers" / paper, tmp_path / paper)
    out = tmp_path / f"{paper}.capsule.tgz"
    captured = run_cli("capture", str(project), "-o", str(out), timeout=900)
    assert captured.returncode == 0, captured.stderr
    replayed = run_cli(
        "replay",
        str(out),
        "--target",
        "docker",
        "--base-image",
        docker_engine,
        "--json",
        timeout=900,
    )
    assert replayed.returncode in (0, 3), replayed.stderr
    report = json.loads(replayed.stdout)
    # Same lock, another OS build of Python 3.11 (Debian's, in the image): numbers must agree
    # within the paper's declared tolerance; images are compared exactly unless declared.
    assert report["target"] == "docker"
    assert report["reproduced"], json.dumps([report["points"], report["notebooks"]])[:3000]
