"""schemas/ is generated from the models; this fails when they drift apart."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import typer.main

from repro.capsule.reader import read_capsule
from repro.capture.pipeline import CaptureOptions, capture
from repro.cli import app
from repro.publish.receipt import Receipt
from repro.report.models import PublishOutput
from repro.schemas import COMMAND_SCHEMAS, SCHEMAS, render_schema
from tests.conftest import ROOT

WITHOUT_JSON = {"cat", "shell", "exec"}
"""Commands with no --json: cat prints the file's bytes; shell and exec hand the terminal to
the command they run."""


def test_committed_schemas_match_the_models() -> None:
    for name, model in SCHEMAS.items():
        committed = (ROOT / "schemas" / name).read_text(encoding="utf-8")
        assert committed == render_schema(model), (
            f"schemas/{name} is stale: run `python -m repro.schemas`"
        )
    committed_files = {p.name for p in (ROOT / "schemas").glob("*.schema.json")}
    assert committed_files == set(SCHEMAS), "schemas/ holds a file no model generates"


def _commands(group: typer.main.TyperGroup, prefix: str = "") -> dict[str, set[str]]:
    """Every command of the app ("keys list", ...) -> its option names."""
    found: dict[str, set[str]] = {}
    for name, command in group.commands.items():
        if isinstance(command, typer.main.TyperGroup):
            found |= _commands(command, f"{prefix}{name} ")
        else:
            found[prefix + name] = {opt for p in command.params for opt in p.opts}
    return found


def test_every_command_with_json_output_has_a_schema() -> None:
    group = typer.main.get_command(app)
    assert isinstance(group, typer.main.TyperGroup)
    commands = _commands(group)
    with_json = {name for name, opts in commands.items() if "--json" in opts}
    assert with_json == set(COMMAND_SCHEMAS)
    assert set(commands) - with_json == WITHOUT_JSON
    assert set(COMMAND_SCHEMAS.values()) <= set(SCHEMAS)


def test_publish_output_flattens_the_receipt_field_for_field() -> None:
    extra = {"ok", "receipt", "journal", "resumed", "already_done"}
    ours = PublishOutput.model_fields
    assert set(ours) == set(Receipt.model_fields) | extra
    for name, field in Receipt.model_fields.items():
        assert ours[name].annotation == field.annotation, name
        assert ours[name].description == field.description, name


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
