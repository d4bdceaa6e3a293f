"""Run output streamed as it is written (repro.execution.stream, repro.report.live): real
subprocesses through the local runner, lines labelled per sweep point, quiet honoured."""

from __future__ import annotations

import io
import threading
import time
from pathlib import Path

import pytest
from rich.console import Console

from repro.cli.output_mode import quiet, set_quiet
from repro.config.models import Run
from repro.execution.runs import InFlight, LocalRunner, execute_runs
from repro.execution.stream import StreamName
from repro.report import live


class Recorder:
    def __init__(self) -> None:
        self.lines: list[tuple[float, str, StreamName, str]] = []
        self._lock = threading.Lock()

    def __call__(self, label: str, stream: StreamName, line: str) -> None:
        with self._lock:
            self.lines.append((time.monotonic(), label, stream, line))


def runner() -> LocalRunner:
    return LocalRunner(Path("/usr/bin"), None)


def test_lines_arrive_while_the_command_still_runs(tmp_path: Path) -> None:
    rec = Recorder()
    run = Run(name="slow", command="x")
    start = time.monotonic()
    result = runner().run(
        "echo first; echo oops >&2; sleep 1; printf 'partial'",
        tmp_path,
        {},
        30,
        run,
        InFlight(),
        lambda stream, line: rec("", stream, line),
    )
    end = time.monotonic()
    assert result.exit_code == 0
    got = [(s, ln) for _, _, s, ln in rec.lines]
    assert got[:2] in (
        [("stdout", "first"), ("stderr", "oops")],
        [("stderr", "oops"), ("stdout", "first")],
    )
    assert got[-1] == ("stdout", "partial")  # a last line without its newline is not lost
    first_at = next(t for t, _, _, ln in rec.lines if ln == "first")
    assert first_at - start < 0.7 < end - start  # seen before the command ended
    # The tails are captured as before.
    assert result.stdout_tail == "first\npartial"
    assert result.stderr_tail == "oops\n"


def test_python_output_is_unbuffered_and_sweep_points_are_labelled(tmp_path: Path) -> None:
    rec = Recorder()
    run = Run(
        name="sweep",
        command="python3 -c 'import time; print(\"seed\", {seed}); time.sleep(0.6)'",
        sweep={"seed": [1, 2]},
    )
    outcomes = execute_runs([run], tmp_path, runner(), jobs=2, echo=rec)
    assert [o.result.exit_code for o in outcomes] == [0, 0]
    assert sorted((label, line) for _, label, _, line in rec.lines) == [
        ("seed=1", "seed 1"),
        ("seed=2", "seed 2"),
    ]
    # Both printed before either ended: a Python study's lines are not held in a buffer.
    assert max(t for t, *_ in rec.lines) - min(t for t, *_ in rec.lines) < 0.5


def test_no_echo_is_the_old_path(tmp_path: Path) -> None:
    (outcome,) = execute_runs([Run(name="one", command="echo hi")], tmp_path, runner())
    assert outcome.result.stdout_tail == "hi\n"


def test_the_echo_prefixes_points_and_shows_capsule_text_inert() -> None:
    buf = io.StringIO()
    echo = live.RunEcho(Console(file=buf, width=80, color_system=None))
    echo("seed=3", "stdout", "loss 0.5 \x1b[2J[bold]x[/]")
    echo("", "stderr", "plain")
    assert buf.getvalue().splitlines() == [
        "  [seed=3] loss 0.5 \\x1b[2J[bold]x[/]",
        "  plain",
    ]


def test_quiet_from_the_environment_or_the_flag(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REPRO_QUIET", raising=False)
    assert not quiet()
    assert isinstance(live.run_echo(quiet()), live.RunEcho)
    monkeypatch.setenv("REPRO_QUIET", "1")
    assert quiet()
    assert live.run_echo(quiet()) is None
    monkeypatch.delenv("REPRO_QUIET")
    set_quiet(True)
    try:
        assert quiet()
    finally:
        set_quiet(False)


def test_the_activity_spinner_only_on_a_terminal() -> None:
    buf = io.StringIO()
    plain = Console(file=buf, width=80, color_system=None)
    with live.activity(quiet=False, console=plain) as observe:
        assert isinstance(observe, live.Activity)
        assert observe._progress is None  # not a terminal: plain lines only
    tty = Console(file=io.StringIO(), width=80, force_terminal=True)
    with live.activity(quiet=False, console=tty) as observe:
        assert observe._progress is not None  # type: ignore[attr-defined]
        observe("building image x")
    with live.activity(quiet=True, console=tty) as observe:
        assert observe._progress is None  # type: ignore[attr-defined]


def test_lines_split_across_chunks_carriage_returns_and_endless_lines() -> None:
    from repro.execution.stream import MAX_LINE, ChunkFollower

    got: list[tuple[StreamName, str]] = []
    follower = ChunkFollower(lambda stream, line: got.append((stream, line)))
    chunks = [b"hal", b"f line\r\nprogress 10%\rprogress 100%\n", b"\xff\n", b"x" * (MAX_LINE + 5)]
    follower.follow("stderr", lambda: iter(chunks))
    follower.join()
    assert got == [
        ("stderr", "half line"),
        ("stderr", "progress 100%"),  # what a redrawn line finally says
        ("stderr", "\ufffd"),  # undecodable bytes do not stop the stream
        ("stderr", "x" * MAX_LINE),
        ("stderr", "xxxxx"),
    ]


def test_on_a_terminal_the_echo_folds_long_lines_under_their_prefix() -> None:
    buf = io.StringIO()
    echo = live.RunEcho(Console(file=buf, width=40, force_terminal=True, color_system=None))
    echo("seed=3", "stdout", "one two three four five six seven eight nine ten")
    assert buf.getvalue().splitlines() == [
        "  [seed=3] one two three four five six",
        "           seven eight nine ten",
    ]


def test_a_prompt_takes_the_spinner_off_the_screen_while_it_waits() -> None:
    tty = Console(file=io.StringIO(), width=80, force_terminal=True)
    with live.activity(quiet=False, console=tty) as act:
        progress = act._progress
        assert progress is not None and progress.live.is_started

        def ask(question: str) -> bool:
            assert not progress.live.is_started  # nothing redraws over the question
            return question == "run?"

        paused = act.pausing(ask)
        assert paused is not None and paused("run?") is True
        assert progress.live.is_started
        assert act.pausing(None) is None
