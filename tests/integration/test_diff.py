"""`repro diff A B`: code, data, runs and results that changed between two capsules."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import run_cli


def test_diff_names_what_changed(tiny_study: Path, offline_index: Path, tmp_path: Path) -> None:
    a, b = tmp_path / "a.tgz", tmp_path / "b.tgz"
    assert run_cli("capture", str(tiny_study), "-o", str(a)).returncode == 0
    (tiny_study / "data" / "values.csv").write_text("1 2 3 5\n")
    (tiny_study / "notes.md").write_text("new file\n")
    assert run_cli("capture", str(tiny_study), "-o", str(b)).returncode == 0

    result = run_cli("diff", str(a), str(b), "--json")
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert not doc["identical"]
    changes = {(e["kind"], e["name"], e["change"]) for e in doc["entries"]}
    assert ("data", "data/values.csv", "changed") in changes
    assert ("code", "notes.md", "added") in changes
    results = {e["name"]: e for e in doc["entries"] if e["kind"] == "result"}
    analyse = results["analyse [_] results/metrics.json"]
    assert analyse["change"] == "changed" and analyse["detail"].startswith("different")
    assert "$.ms" in analyse["detail"]
    assert not any(e["kind"] == "dependency" for e in doc["entries"])

    same = run_cli("diff", str(a), str(a))
    assert same.returncode == 0 and "no differences" in same.stdout
    human = run_cli("diff", str(a), str(b))
    assert "values.csv" in human.stdout
