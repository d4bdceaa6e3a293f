"""Live output on the real Docker engine: an image build streams its steps, a container's
output reaches the echo while it runs, and the tails are still captured."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest

from repro.config.models import Run
from repro.engines.docker_engine import DockerEngine
from repro.errors import ImageBuildError
from repro.execution.container import DockerRunner
from repro.execution.runs import InFlight
from repro.execution.stream import StreamName


def test_an_image_build_streams_its_steps_as_they_run(tmp_path: Path, docker_engine: str) -> None:
    (tmp_path / "Dockerfile").write_text(
        "ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\nRUN echo building-now && sleep 1\nLABEL live=yes\n"
    )
    engine = DockerEngine()
    tag = f"repro-test-live:{uuid.uuid4().hex[:12]}"
    seen: list[tuple[float, str]] = []
    try:
        engine.build(
            tmp_path,
            tag,
            build_args={"BASE_IMAGE": docker_engine},
            labels={},
            network=False,
            progress=lambda line: seen.append((time.monotonic(), line)),
        )
        done = time.monotonic()
        lines = [line for _, line in seen]
        assert "Step 1/4 : ARG BASE_IMAGE" in lines
        assert "Step 3/4 : RUN echo building-now && sleep 1" in lines
        assert "building-now" in lines
        # Streamed: the RUN step was announced before the build ended, not all at the end.
        step3 = next(t for t, line in seen if line.startswith("Step 3/4"))
        assert done - step3 > 0.8
        assert engine.has_image(tag)
        # A failing step still fails with the step named (the log streamed as well).
        (tmp_path / "Dockerfile").write_text(
            "ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\nRUN echo about-to-fail && exit 3\n"
        )
        failed: list[str] = []
        with pytest.raises(ImageBuildError, match="about-to-fail") as info:
            engine.build(
                tmp_path,
                tag + "-bad",
                build_args={"BASE_IMAGE": docker_engine},
                labels={},
                network=False,
                progress=failed.append,
            )
        assert "RUN echo about-to-fail" in info.value.step
        assert "about-to-fail" in failed
    finally:
        engine.remove_image(tag)
        engine.close()


def test_a_containers_output_reaches_the_echo_while_it_runs(
    tmp_path: Path, docker_engine: str
) -> None:
    engine = DockerEngine()
    seen: list[tuple[float, StreamName, str]] = []
    try:
        result = DockerRunner(engine, docker_engine).run(
            "echo first; sleep 1.5; echo second >&2",
            tmp_path,
            {},
            60,
            Run(name="r", command="x"),
            InFlight(),
            lambda stream, line: seen.append((time.monotonic(), stream, line)),
        )
        end = time.monotonic()
    finally:
        engine.close()
    assert result.exit_code == 0
    assert [(s, line) for _, s, line in seen] == [("stdout", "first"), ("stderr", "second")]
    assert end - seen[0][0] > 1.0  # "first" was seen well before the container ended
    assert result.stdout_tail == "first\n" and result.stderr_tail == "second\n"
