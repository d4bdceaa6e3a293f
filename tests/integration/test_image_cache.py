"""Image cache poisoning (issue 16, defect 1), against the real Docker engine.

A hostile capsule's saved image, planted under a victim capsule's `repro-env:` tag, used to
be "reused" by the victim's docker replays, reported reproduced although the victim's code
never ran. Images are now trusted by content: a saved image that carries a tag is refused
before it is loaded, and a `repro-env:` tag is reused only while it names the image this
machine's repro built for it.
"""

from __future__ import annotations

import contextlib
import io
import json
import tarfile
from pathlib import Path

import pytest

from repro.capsule.layout import tag_files
from repro.capsule.manifest import Manifest, canonical_json
from repro.capsule.reader import read_capsule
from repro.hashing import sha256_bytes
from repro.replay.targets.container import image_spec
from tests.capsules import Members, rewrite
from tests.conftest import run_cli

VICTIM = "import json\njson.dump({'v': 1}, open('out.json', 'w'))\n"
# The planted image's python: for the victim's command it writes the victim's expected
# result (and a mark), never running the victim's code; for anything else (repro's probes)
# it is the real interpreter.
FAKE_PYTHON = """#!/bin/sh
if [ "$1" = run.py ]; then
  printf '{"v": 1}' > out.json
  touch PLANTED
  exit 0
fi
exec /usr/bin/python3 "$@"
"""


def _study(root: Path, name: str, script: str) -> Path:
    project = root / name
    project.mkdir()
    (project / "run.py").write_text(script)
    (project / "repro.toml").write_text(
        '[[runs]]\nname = "main"\ncommand = "python run.py"\noutputs = ["out.json"]\n'
    )
    return project


def _capture(project: Path, out: Path, *args: str) -> Path:
    result = run_cli("capture", str(project), "-o", str(out), *args)
    assert result.returncode == 0, result.stderr
    return out


def _hostile_image(base: str) -> str:
    """An image that fakes the victim's result, as an attacker would build it."""
    import docker

    dockerfile = (
        # bin/python is a link to the base's python3: replace the link, not its target
        f"FROM {base}\nRUN python3 -m venv /opt/repro-env && rm /opt/repro-env/bin/python\n"
        "COPY python /opt/repro-env/bin/python\nRUN chmod 755 /opt/repro-env/bin/python\n"
        "ENV PATH=/opt/repro-env/bin:$PATH\n"
    )
    context = io.BytesIO()
    with tarfile.open(fileobj=context, mode="w") as tar:
        for name, data in (("Dockerfile", dockerfile), ("python", FAKE_PYTHON)):
            info = tarfile.TarInfo(name)
            info.size = len(data.encode())
            tar.addfile(info, io.BytesIO(data.encode()))
    context.seek(0)
    image, _ = docker.from_env().images.build(
        fileobj=context, custom_context=True, tag="repro-test-hostile:1", network_mode="none"
    )
    return str(image.id)


def _with_saved_image(capsule: Path, dest: Path, image_tar: bytes, image_id: str) -> Path:
    """The capsule with its saved image replaced (manifest, bag and crate kept consistent)."""

    def swap(members: Members) -> None:
        doc = json.loads(members[0][1])
        doc["environment"]["image_id"] = image_id
        for entry in doc["files"]:
            if entry["path"] == "data/env/image.tar":
                entry["sha256"], entry["size"] = sha256_bytes(image_tar), len(image_tar)
        data = canonical_json(doc)
        tags = tag_files(Manifest.model_validate(doc), data)
        for i, (info, old) in enumerate(members):
            if info.name == "repro.json":
                members[i] = (info, data)
            elif info.name == "data/env/image.tar":
                members[i] = (info, image_tar)
            else:
                members[i] = (info, tags.get(info.name, old))

    return rewrite(capsule, dest, swap)


def test_a_planted_image_never_stands_in_for_the_victims_environment(
    tmp_path: Path, docker_engine: str
) -> None:
    import docker
    import docker.errors

    client = docker.from_env()
    victim = _capture(_study(tmp_path, "victim", VICTIM), tmp_path / "victim.tgz")
    unpacked = read_capsule(victim, tmp_path / "victim-unpacked")
    victim_tag = image_spec(unpacked.manifest, unpacked.root, docker_engine).tag
    hostile_id = _hostile_image(docker_engine)
    try:
        # Attack 1: a capsule whose saved image carries the victim's tag (docker load would
        # move the tag onto the attacker's image). Refused before anything is loaded.
        client.images.get(hostile_id).tag(victim_tag)
        saved = b"".join(client.api.get_image(victim_tag))  # RepoTags: [victim_tag]
        client.images.remove(hostile_id, force=True)  # as on the victim's machine: not there
        hostile = _capture(
            _study(tmp_path, "hostile", "open('out.json', 'w').write('{}')\n"),
            tmp_path / "hostile.tgz",
            "--image",
            "--base-image",
            docker_engine,
        )
        poisoned = _with_saved_image(hostile, tmp_path / "poisoned.tgz", saved, hostile_id)
        refused = run_cli("replay", str(poisoned), "--target", "docker", timeout=900)
        assert refused.returncode == 4, refused.stderr
        assert "saved image carries tags" in refused.stderr
        assert "Traceback" not in refused.stderr
        assert victim_tag not in {
            t for row in client.api.images() for t in row.get("RepoTags") or []
        }

        with pytest.raises(docker.errors.ImageNotFound):
            client.images.get(hostile_id)  # nothing was loaded

        # Attack 2: the tag planted anyway (as an older repro's load did, or `docker load` by
        # hand): the victim's replay sees a tag this machine's repro did not build, and
        # builds it again.
        client.images.load(saved)
        assert client.images.get(victim_tag).id == hostile_id
        workdir = tmp_path / "wd"
        result = run_cli(
            "replay",
            str(victim),
            "--target",
            "docker",
            "--base-image",
            docker_engine,
            "--workdir",
            str(workdir),
            "--json",
            timeout=900,
        )
        assert result.returncode == 0, result.stderr
        assert f"image {victim_tag} is not one repro built on this machine" in result.stderr
        assert f"building image {victim_tag}" in result.stderr
        report = json.loads(result.stdout)
        project = Path(report["workdir"]) / "capsule" / "data" / "project"
        assert not (project / "PLANTED").exists()  # the victim's own code ran
        assert client.images.get(victim_tag).id != hostile_id

        # And what repro built is reused from then on.
        again = run_cli("replay", str(victim), "--target", "docker", "--base-image", docker_engine)
        assert again.returncode == 0, again.stderr
        assert f"reusing image {victim_tag}" in again.stderr
    finally:
        with contextlib.suppress(docker.errors.ImageNotFound):
            client.images.remove(hostile_id, force=True)
