"""schemas/ is generated from the models; this fails when they drift apart."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema

from repro.capsule.reader import read_capsule
from repro.capture.pipeline import CaptureOptions, capture
from repro.schemas import SCHEMAS, render_schema
from tests.conftest import ROOT


def test_committed_schemas_match_the_models() -> None:
    for name, model in SCHEMAS.items():
        committed = (ROOT / "schemas" / name).read_text(encoding="utf-8")
        assert committed == render_schema(model), (
            f"schemas/{name} is stale: run `python -m repro.schemas`"
        )


def test_a_real_manifest_validates_against_the_schema(tmp_path: Path) -> None:
    project = tmp_path / "p"
    project.mkdir()
    (project / "a.txt").write_text("a")
    (project / "repro.toml").write_text(
        '[[runs]]\nname = "r"\ncommand = "cp a.txt b.txt"\noutputs = ["b.txt"]\n'
    )
    capture(CaptureOptions(project=project, output=tmp_path / "c.tgz"))
    manifest = json.loads(read_capsule(tmp_path / "c.tgz").manifest_bytes)
    schema = json.loads((ROOT / "schemas" / "manifest.schema.json").read_text())
    jsonschema.validate(manifest, schema)
    assert manifest["results"][0]["outputs"][0]["path"] == "b.txt"
