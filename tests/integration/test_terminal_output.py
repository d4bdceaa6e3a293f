"""What a researcher sees on the terminal: run output live, crash reasons, 80 columns.

A real capture and a real replay (local target) of a small sweep whose third point fails
on replay, watched through a real pseudo-terminal of 80 columns (tests/pty_terminal.py).
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, run_cli
from tests.pty_terminal import run_in_terminal

SCRIPT = """\
import json, os, random, sys
from pathlib import Path
seed = int(sys.argv[1])
print(f"training seed {seed}", flush=True)
Path("results").mkdir(exist_ok=True)
if seed == 2 and not os.path.exists(sys.argv[2]):
    def load():
        raise FileNotFoundError("instrument calibration file not found: calib/instrument.dat")
    load()
value = seed if seed != 1 else random.random()
Path(f"results/metrics-{seed}.json").write_text(json.dumps({"seed": seed, "value": value}))
"""

TOML = """\
[capsule]
title = "A study with a rather long title that would not fit in eighty columns at all"

[[runs]]
name = "train"
command = "python run.py {seed} MARKER"
outputs = ["results/metrics-{seed}.json"]
[runs.sweep]
seed = [0, 1, 2]
"""


@pytest.fixture
def sweep_capsule(tmp_path: Path) -> tuple[Path, Path]:
    """A captured 3-point sweep: point 0 reproduces, 1 does not (random), 2 crashes on
    replay (the marker file it needs exists only at capture). Returns (capsule, marker)."""
    marker = tmp_path / "capture-phase"
    marker.write_text("1")
    project = tmp_path / "study"
    project.mkdir()
    (project / "run.py").write_text(SCRIPT)
    (project / "repro.toml").write_text(TOML.replace("MARKER", str(marker)))
    capsule = tmp_path / "s.tgz"
    result = run_cli("capture", str(project), "-o", str(capsule), "-j", "2")
    assert result.returncode == 0, result.stderr
    # Live, labelled per point (-j 2), on stderr; stdout is the summary only.
    for seed in (0, 1, 2):
        assert f"  [seed={seed}] training seed {seed}\n" in result.stderr
    assert "training seed" not in result.stdout
    marker.unlink()
    return capsule, marker


def _env() -> dict[str, str]:
    return {"PYTHONPATH": str(ROOT)}


def test_replay_in_an_80_column_terminal_and_with_json(sweep_capsule: tuple[Path, Path]) -> None:
    capsule, _ = sweep_capsule
    screen = run_in_terminal(
        [sys.executable, "-m", "repro", "replay", str(capsule), "--target", "local"],
        columns=80,
        env=_env(),
    )
    text = "\n".join(screen.lines)
    assert screen.exit_code == 3, text
    assert "Traceback" not in text.split("not reproduced")[-1]
    # Nothing reached the last column: the terminal never had to wrap a line itself.
    assert max(len(line) for line in screen.lines) < 80, text
    # One line per output, its path and its verdict together.
    for path, verdict in (
        ("results/metrics-0.json", "identical"),
        ("results/metrics-1.json", "different"),
        ("results/metrics-2.json", "missing"),
    ):
        (line,) = [ln for ln in screen.lines if path in ln and ln.lstrip()[:1] in "✓✗"]
        assert re.search(rf"[✓✗] {re.escape(path)}  {verdict}\b", line), line
    # The crash reason, not only "run failed (exit 1)".
    assert "train [seed=2]  run failed (exit 1)" in screen.lines
    tail = text.split("run failed (exit 1)", 1)[1]
    assert "stderr (last" in tail and "FileNotFoundError: instrument calibration" in tail
    # The run's output was shown while it ran, labelled by its point.
    assert "  [seed=1] training seed 1" in screen.lines
    assert screen.lines[-1].startswith("not reproduced (1 different, 1 identical, 1 missing)")

    # --json: stdout is the one document; the live lines and the crash reason on stderr.
    loud = run_cli("replay", str(capsule), "--target", "local", "--json")
    report = json.loads(loud.stdout)  # stdout is the one document, nothing else
    assert loud.returncode == 3 and not report["reproduced"]
    assert "  [seed=0] training seed 0" in loud.stderr
    # The failed point's stderr tail reaches the terminal with --json too.
    assert "run train [seed=2] failed (exit 1)" in loud.stderr
    assert "FileNotFoundError: instrument calibration file not found" in loud.stderr
    # Quiet (REPRO_QUIET=1, as -q): no run output; a crash reason is a result, not chatter.
    quiet = run_cli("replay", str(capsule), "--target", "local", "--json", env={"REPRO_QUIET": "1"})
    assert quiet.returncode == 3 and json.loads(quiet.stdout)["reproduced"] is False
    assert "training seed" not in quiet.stderr
    assert "FileNotFoundError" in quiet.stderr


def test_a_capture_that_fails_shows_the_stderr_tail(tmp_path: Path) -> None:
    project = tmp_path / "study"
    project.mkdir()
    (project / "run.py").write_text(
        "import sys\nfor i in range(1, 21):\n    print(f'problem line {i}', file=sys.stderr)\n"
        "sys.exit(1)\n"
    )
    (project / "repro.toml").write_text(
        '[[runs]]\nname = "main"\ncommand = "python run.py"\noutputs = ["out.json"]\n'
    )
    result = run_cli(
        "capture", str(project), "-o", str(tmp_path / "c.tgz"), env={"REPRO_QUIET": "1"}
    )
    assert result.returncode == 1
    assert "run main failed with exit code 1" in result.stderr
    assert "stderr (last 15 line(s)):" in result.stderr
    assert "problem line 6\n" in result.stderr and "problem line 20\n" in result.stderr
    assert "problem line 5\n" not in result.stderr


def test_a_key_fingerprint_is_one_token_on_a_colour_terminal() -> None:
    made = run_cli("keys", "generate", "--name", "jane")
    assert made.returncode == 0, made.stderr
    screen = run_in_terminal(
        [sys.executable, "-m", "repro", "keys", "list"], columns=80, env=_env(), timeout=60
    )
    assert screen.exit_code == 0, screen.raw
    assert "\x1b[" in screen.raw  # a colour terminal: styles are written
    # No escape sequence inside it (rich's IPv6 highlighter once coloured "A256:0a1b").
    assert re.search(r"SHA256:[0-9a-f]{4}( [0-9a-f]{4}){7}", screen.raw), screen.raw
