"""The container engine going away mid-flow, through tests/unit/engine_fake.py: what the real
engine cannot be made to do on demand. Everything else runs against the real engine."""

from __future__ import annotations

from pathlib import Path

import pytest

from repro.config.models import Run
from repro.engines import ContainerEngine
from repro.env.image import LABEL, BuiltImages, ImageSpec, ensure_image
from repro.errors import ServiceUnavailableError
from repro.execution.container import DockerRunner
from repro.execution.runs import InFlight
from tests.unit.engine_fake import FakeContainer, FakeEngine

BASE = "repro-base:test"
SPEC = ImageSpec(
    dockerfile="ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\n",
    lock_text="",
    base_image=BASE,
    has_packages=False,
    needs_network=False,
)
RUN = Run(name="r", command="python study.py")


def _built(engine: ContainerEngine) -> str:
    return ensure_image(engine, SPEC, offline=True, say=lambda _: None)


def test_the_engine_going_away_between_build_and_run_is_exit_5_with_the_hint(
    tmp_path: Path,
) -> None:
    engine = FakeEngine(images={BASE: {}})
    tag = _built(engine)
    assert engine.builds == [SPEC.tag] and engine.ids[SPEC.tag] == tag
    assert engine.images[SPEC.tag] == {LABEL: SPEC.digest}
    engine.gone = True
    with pytest.raises(ServiceUnavailableError) as caught:
        DockerRunner(engine, tag).run("python study.py", tmp_path, {}, 60, RUN, InFlight())
    assert caught.value.exit_code == 5
    assert "no Docker engine answers" in caught.value.message
    assert "--target local" in caught.value.hint


def test_the_engine_dropping_the_wait_stops_the_point_as_at_its_timeout(tmp_path: Path) -> None:
    engine = FakeEngine(
        images={BASE: {}},
        make_container=lambda spec: FakeContainer(
            spec, lose_engine_in_wait=True, stdout=b"half", stderr=b"way"
        ),
    )
    result = DockerRunner(engine, _built(engine)).run(
        "python study.py", tmp_path, {"SEED": "1"}, 60, RUN, InFlight()
    )
    assert result.timed_out and (result.stdout_tail, result.stderr_tail) == ("half", "way")
    (container,) = engine.started
    assert container.killed == 1 and container.removed
    assert container.spec.command == ("/bin/sh", "-c", "python study.py")
    env = container.spec.environment
    assert env["SEED"] == "1" and env["HOME"] == "/home/repro" and not container.spec.network
    # the allowlist: the locale at most, nothing else of this environment
    assert set(env) - {"SEED", "HOME"} <= {"LANG", "LANGUAGE", "TZ"} | {
        k for k in env if k.startswith("LC_")
    }


def test_a_tag_this_machine_did_not_build_is_built_again(tmp_path: Path) -> None:
    # Whoever can tag images (docker load of a stranger's archive, docker tag) can point
    # repro-env:<digest> at any image: only the id recorded when repro built it is reused.
    registry = BuiltImages(tmp_path / "images.json")
    engine = FakeEngine(images={BASE: {}})
    engine.images[SPEC.tag] = {LABEL: SPEC.digest}  # planted, with the "right" label
    engine.ids[SPEC.tag] = "sha256:" + "e" * 64
    said: list[str] = []
    image = ensure_image(engine, SPEC, offline=True, say=said.append, registry=registry)
    assert engine.builds == [SPEC.tag] and image != "sha256:" + "e" * 64
    assert any("not one repro built on this machine" in m for m in said)
    assert registry.get(SPEC.digest) == image
    again = ensure_image(engine, SPEC, offline=True, say=said.append, registry=registry)
    assert again == image and engine.builds == [SPEC.tag] and said[-1].startswith("reusing")
