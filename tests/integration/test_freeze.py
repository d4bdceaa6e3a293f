"""`repro capture --freeze`: lock exactly what an interpreter has, and run with it."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from repro.env.lock import freeze_lock, uv_bin
from tests.conftest import ROOT


def make_venv(path: Path, *packages: str, extra_env: dict[str, str] | None = None) -> Path:
    env = {**os.environ, **(extra_env or {})}
    subprocess.run([uv_bin(), "venv", "-q", str(path)], check=True, env=env)
    python = path / "bin" / "python"
    subprocess.run(
        [uv_bin(), "pip", "install", "-q", "--python", str(python), *packages], check=True, env=env
    )
    return python


def test_freeze_locks_installed_packages_with_hashes(offline_index: Path, tmp_path: Path) -> None:
    python = make_venv(tmp_path / "venv", "reprotest_stats")
    lock, skipped = freeze_lock("3.11", python=str(python))
    assert lock.source == "freeze" and skipped == []
    assert [(p.name, p.version) for p in lock.packages] == [
        ("reprotest-core", "1.0.0"),
        ("reprotest-stats", "2.1.0"),
    ]
    assert lock.text.count("--hash=sha256:") == 2


@pytest.mark.network
def test_capture_freeze_runs_in_the_frozen_interpreter(
    tiny_study: Path, wheelhouse: Path, tmp_path: Path, pypi: None
) -> None:
    # repro itself, installed (not editable) from this checkout next to the study's package:
    # it cannot be hash-locked from an index, so freeze must say it skipped it.
    links = {"UV_FIND_LINKS": str(wheelhouse)}
    python = make_venv(tmp_path / "venv", str(ROOT), "reprotest_stats", extra_env=links)
    (tiny_study / "requirements.txt").unlink()
    out = tmp_path / "frozen.tgz"
    result = subprocess.run(
        [
            str(python),
            "-m",
            "repro",
            "capture",
            str(tiny_study),
            "-o",
            str(out),
            "--freeze",
            "--json",
        ],
        capture_output=True,
        text=True,
        env={**os.environ, **links},
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["lock_source"] == "freeze"
    assert any(
        note.startswith("not locked (no index hashes): repro-capsule @ file://")
        for note in summary["notes"]
    )
    inspect = subprocess.run(
        [str(python), "-m", "repro", "inspect", str(out), "--json"],
        capture_output=True,
        text=True,
        check=True,
    )
    manifest = json.loads(inspect.stdout)["manifest"]
    names = {p["name"] for p in manifest["environment"]["packages"]}
    assert {"reprotest-stats", "reprotest-core", "pydantic", "typer"} <= names
    assert "repro" not in names
    assert all(r["exit_code"] == 0 for r in manifest["results"])  # ran with the venv's packages
