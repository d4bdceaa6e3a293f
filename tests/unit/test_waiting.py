"""The tests' own waiting helpers fail at their deadline, naming what they waited for."""

from __future__ import annotations

import io
import os
import time

import pytest

from tests.waiting import LineReader, wait_until


def test_wait_until_returns_the_first_truthy_value() -> None:
    calls = iter([0, "", "ready"])
    assert wait_until(lambda: next(calls), timeout=5, what="x", every=0) == "ready"


def test_wait_until_fails_at_its_deadline_naming_what_it_waited_for() -> None:
    start = time.monotonic()
    with pytest.raises(pytest.fail.Exception, match="after 0.2 s waiting for the flag file"):
        wait_until(lambda: False, timeout=0.2, what="the flag file", every=0.05)
    assert time.monotonic() - start < 2


def test_a_line_reader_finds_a_line_and_then_the_rest() -> None:
    reader = LineReader(io.StringIO("start\njob 42 submitted\nrunning\nbye\n"))
    assert reader.wait_for(r"job (\d+)", timeout=5).group(1) == "42"
    assert reader.rest(timeout=5) == "running\nbye\n"


def test_a_line_reader_fails_when_the_output_ends_first() -> None:
    reader = LineReader(io.StringIO("only this\n"))
    with pytest.raises(pytest.fail.Exception, match=r"(?s)ended before a line matching.*only this"):
        reader.wait_for("running", timeout=5)


def test_a_line_reader_fails_at_its_deadline_on_a_silent_writer() -> None:
    read_fd, write_fd = os.pipe()
    with os.fdopen(read_fd) as stream, os.fdopen(write_fd, "w") as writer:
        writer.write("hello\n")
        writer.flush()
        reader = LineReader(stream)
        with pytest.raises(pytest.fail.Exception, match=r"(?s)timed out waiting for.*hello"):
            reader.wait_for("never", timeout=0.3)
        writer.close()  # end of stream: the reader's thread ends before the pipe is closed
        assert reader.rest(timeout=5) == ""
