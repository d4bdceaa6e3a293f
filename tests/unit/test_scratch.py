"""Temporary folders carry their owner's pid; a later repro removes those of dead processes
(issue 16, defect 9: a SIGKILLed capture or replay left its folders behind forever)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from repro.paths import scratch_prefix, sweep_scratch


def _dead_pid() -> int:
    proc = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(proc.stdout)


def _folder(root: Path, name: str, age_s: float) -> Path:
    path = root / name
    path.mkdir()
    (path / "inside").write_text("x")
    then = time.time() - age_s
    os.utime(path, (then, then))
    return path


def test_only_old_folders_of_dead_processes_are_removed(tmp_path: Path) -> None:
    tmp_path = tmp_path / "tmp"
    tmp_path.mkdir()
    dead = _dead_pid()
    stale = _folder(tmp_path, f"repro-replay.p{dead}.abc", 3600)
    recent = _folder(tmp_path, f"repro-capture.p{dead}.def", 10)
    live = _folder(tmp_path, f"repro-run.p{os.getppid()}.ghi", 3600)
    mine = _folder(tmp_path, f"{scratch_prefix('image')}jkl", 3600)
    kept = _folder(tmp_path, "repro-replay-kept", 3600)  # --keep: no pid, never swept
    other = _folder(tmp_path, "unrelated.p1.x", 3600)
    link = tmp_path / f"repro-diff.p{dead}.lnk"
    link.symlink_to(other)
    assert sweep_scratch(tmp_path) == [stale]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        p.name for p in (recent, live, mine, kept, other, link)
    )


def test_a_missing_temp_folder_is_no_error(tmp_path: Path) -> None:
    assert sweep_scratch(tmp_path / "absent") == []
