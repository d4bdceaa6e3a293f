"""run_tool and probe, against real small commands (sh, sleep): every failure is one line."""

from __future__ import annotations

import functools
import os
import time
from pathlib import Path

import pytest

from repro.errors import EnvironmentBuildError, ReproError, ResolverError
from repro.execution.tools import Completed, last_lines, probe, run_tool


def sh(script: str) -> list[str]:
    return ["sh", "-c", script]


def test_the_output_and_exit_code_come_back() -> None:
    done = run_tool(sh("printf 'out\\n'; printf 'err\\n' >&2"), "greeting", timeout=10)
    assert done == Completed(0, b"out\n", b"err\n")
    assert (done.ok, done.stdout, done.stderr) == (True, "out\n", "err\n")


def test_a_timeout_is_one_line_and_does_not_wait_for_the_command() -> None:
    start = time.monotonic()
    with pytest.raises(EnvironmentBuildError) as caught:
        run_tool(["sleep", "30"], "napping", timeout=0.5)
    assert time.monotonic() - start < 10
    assert caught.value.message == "napping did not finish within 0.5 s"


def test_a_missing_executable_is_named() -> None:
    with pytest.raises(EnvironmentBuildError) as caught:
        run_tool(["repro-no-such-tool", "--help"], "helping", timeout=10)
    assert caught.value.message == "helping: repro-no-such-tool is not installed"


def test_a_non_zero_exit_gives_the_end_of_stderr() -> None:
    script = "for i in 1 2 3 4 5 6; do echo line $i >&2; done; echo; exit 3"
    with pytest.raises(EnvironmentBuildError) as caught:
        run_tool(sh(script), "counting", timeout=10)
    assert caught.value.message == "counting failed: line 3 line 4 line 5 line 6"


def test_a_non_zero_exit_without_stderr_gives_stdout_then_the_exit_code() -> None:
    with pytest.raises(EnvironmentBuildError, match=r"^quiet failed: said so$"):
        run_tool(sh("echo said so; exit 1"), "quiet", timeout=10)
    with pytest.raises(EnvironmentBuildError, match=r"^silent failed: exit code 7$"):
        run_tool(sh("exit 7"), "silent", timeout=10)


def test_the_stderr_tail_is_bounded() -> None:
    with pytest.raises(EnvironmentBuildError) as caught:
        run_tool(sh("head -c 5000 /dev/zero | tr '\\0' x >&2; exit 1"), "long", timeout=10)
    assert caught.value.message == "long failed: " + "x" * 500


def test_the_caller_chooses_the_error_class_and_its_hint() -> None:
    with pytest.raises(ResolverError) as caught:
        run_tool(sh("exit 1"), "resolving", timeout=10, error=ResolverError)
    assert caught.value.hint == ResolverError.default_hint
    error = functools.partial(ReproError, hint="try again")
    with pytest.raises(ReproError) as raised:
        run_tool(["sleep", "30"], "waiting", timeout=0.2, error=error)
    assert (type(raised.value), raised.value.hint) == (ReproError, "try again")


def test_unchecked_a_non_zero_exit_is_returned() -> None:
    done = run_tool(sh("echo no >&2; exit 4"), "asking", timeout=10, check=False)
    assert (done.ok, done.returncode, done.tail()) == (False, 4, "no")


def test_unchecked_a_timeout_still_raises() -> None:
    with pytest.raises(EnvironmentBuildError, match="did not finish"):
        run_tool(["sleep", "30"], "napping", timeout=0.2, check=False)


def test_callers_can_say_more_when_it_cannot_start_or_times_out(tmp_path: Path) -> None:
    script = tmp_path / "script"
    script.write_text("#!/repro/no/such/interpreter\n", encoding="utf-8")
    script.chmod(0o755)
    with pytest.raises(ResolverError, match=r"^script cannot be run: No such file or directory$"):
        run_tool(
            [str(script)],
            "script",
            timeout=10,
            not_started=lambda exc: ResolverError(f"script cannot be run: {exc.strerror}"),
        )
    with pytest.raises(ResolverError, match=r"^no answer in 0.2 s$"):
        run_tool(
            ["sleep", "30"],
            "napping",
            timeout=0.2,
            timed_out=lambda limit: ResolverError(f"no answer in {limit:g} s"),
        )


def test_env_and_cwd_reach_the_command(tmp_path: Path) -> None:
    env = {"PATH": os.environ["PATH"], "REPRO_TOOLS_TEST": "passed"}
    done = run_tool(sh('echo "$REPRO_TOOLS_TEST"; pwd'), "env", timeout=10, env=env, cwd=tmp_path)
    assert done.stdout.splitlines() == ["passed", str(tmp_path)]


def test_output_that_is_not_utf8_is_kept_as_bytes() -> None:
    done = run_tool(sh("printf 'a\\377\\r\\nb'"), "bytes", timeout=10)
    assert done.stdout_bytes == b"a\xff\r\nb"
    assert done.stdout == "a\ufffd\nb"


def test_probe_answers_none_when_the_command_is_missing_or_hangs() -> None:
    assert probe(["repro-no-such-tool"], timeout=10) is None
    assert probe(["sleep", "30"], timeout=0.2) is None
    answer = probe(sh("echo 3.11.7; exit 2"), timeout=10)
    assert answer is not None
    assert (answer.returncode, answer.stdout) == (2, "3.11.7\n")


def test_last_lines_keeps_the_non_blank_end() -> None:
    assert last_lines("a\n\n  b  \nc\n", 2) == "b c"
    assert last_lines("abcdef", 1, 3) == "def"
    assert last_lines("", 4) == ""
