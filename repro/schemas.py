"""JSON Schemas of the models that cross a boundary, generated into schemas/.

Regenerate with `python -m repro.schemas` after changing repro/models.py; a test fails when
the committed files drift from the models.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from pydantic import BaseModel

from repro.models import CapsuleDiff, Manifest, ProjectConfig, ReplayReport

SCHEMAS: dict[str, type[BaseModel]] = {
    "manifest.schema.json": Manifest,
    "config.schema.json": ProjectConfig,
    "replay-report.schema.json": ReplayReport,
    "diff.schema.json": CapsuleDiff,
}


def render_schema(model: type[BaseModel]) -> str:
    schema = model.model_json_schema(mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def write_schemas(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, model in SCHEMAS.items():
        path = folder / name
        path.write_text(render_schema(model), encoding="utf-8")
        written.append(path)
    return written


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent.parent / "schemas"
    for path in write_schemas(target):
        sys.stdout.write(f"wrote {path}\n")
