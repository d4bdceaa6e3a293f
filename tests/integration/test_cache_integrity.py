"""Cached environments are checked before they are reused (issue 16, defect 2): a `.pth`
planted in a cached venv, or an edited file of an installed package, used to run in every
later replay with the same lock. Real venvs, real replays."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import run_cli


def test_a_tampered_cached_venv_is_rebuilt_and_the_planted_code_never_runs(
    tiny_study: Path, offline_index: Path, tmp_path: Path
) -> None:
    env = {"REPRO_CACHE_DIR": str(tmp_path / "cache")}
    capsule = tmp_path / "t.tgz"
    captured = run_cli("capture", str(tiny_study), "-o", str(capsule), env=env)
    assert captured.returncode == 0, captured.stderr
    (venv,) = [p for p in (tmp_path / "cache" / "venvs").iterdir() if p.is_dir()]
    (site,) = venv.glob("lib/python*/site-packages")
    ran = tmp_path / "PLANTED-RAN"
    (site / "zz_planted.pth").write_text(f"import pathlib; pathlib.Path({str(ran)!r}).touch()\n")
    module = site / "reprotest_core.py"
    module.write_text(module.read_text() + "\nimport sys; sys.stderr.write('tampered\\n')\n")

    result = run_cli("replay", str(capsule), "--target", "local", "--json", env=env)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["reproduced"]
    (note,) = [w for w in report["warnings"] if "not as it was built" in w]
    assert "zz_planted.pth" in note and "reprotest_core.py" in note
    assert not ran.exists()
    assert "tampered" not in module.read_text() and not (site / "zz_planted.pth").exists()

    # Rebuilt and recorded again: the next replay reuses it without a word.
    again = run_cli("replay", str(capsule), "--target", "local", "--json", env=env)
    assert again.returncode == 0, again.stderr
    assert not [w for w in json.loads(again.stdout)["warnings"] if "as it was built" in w]
    assert "reusing the cached environment" in again.stderr
    assert not ran.exists()
