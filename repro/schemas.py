"""JSON Schemas of the models that cross a boundary, generated into schemas/.

Regenerate with `python -m repro.schemas` after changing a model (repro/config/models.py,
repro/capsule/manifest.py, repro/report/, repro/compare/verdict.py, repro/model_base.py); a
test fails when the committed files drift from the models, and
tests/unit/test_manifest_format.py when the manifest's changes without a format bump.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from pydantic import BaseModel

from repro.attestation.statement import Statement
from repro.capsule.manifest import Manifest
from repro.config.models import ProjectConfig
from repro.report.attestation import (
    HistoryOutput,
    PublishAttestationOutput,
    VerifyAttestationOutput,
)
from repro.report.detached import DetachedReplay, ReplayList, ReplayStatus
from repro.report.diff import CapsuleDiff
from repro.report.models import (
    CaptureOutput,
    ErrorOutput,
    FetchOutput,
    InitOutput,
    InspectOutput,
    KeyExportOutput,
    KeyGenerateOutput,
    KeyListOutput,
    KeyTrustOutput,
    KeyUntrustOutput,
    PublishOutput,
    VerifyOutput,
)
from repro.report.replay import ReplayReport
from repro.report.tools import CacheListOutput, CachePruneOutput, ExtractOutput, RestampOutput

COMMAND_SCHEMAS: dict[str, str] = {
    "init": "init.schema.json",
    "capture": "capture.schema.json",
    "verify": "verify.schema.json",
    "inspect": "inspect.schema.json",
    "replay": "replay-report.schema.json",
    "diff": "diff.schema.json",
    "keys generate": "keys-generate.schema.json",
    "keys list": "keys-list.schema.json",
    "keys export": "keys-export.schema.json",
    "keys trust": "keys-trust.schema.json",
    "keys untrust": "keys-untrust.schema.json",
    "publish": "publish.schema.json",
    "fetch": "fetch.schema.json",
    "verify-attestation": "verify-attestation.schema.json",
    "history": "history.schema.json",
    "extract": "extract.schema.json",
    "restamp": "restamp.schema.json",
    "cache list": "cache-list.schema.json",
    "cache prune": "cache-prune.schema.json",
    "status": "status.schema.json",
    "collect": "replay-report.schema.json",
}
"""Each command's --json output on success; on an expected failure every command prints
error.schema.json instead. Two commands print something else with some options:
`replay --detach` replay-detached.schema.json, `status` without an id status-list.schema.json."""

SCHEMAS: dict[str, type[BaseModel]] = {
    "manifest.schema.json": Manifest,
    "config.schema.json": ProjectConfig,
    "error.schema.json": ErrorOutput,
    "init.schema.json": InitOutput,
    "capture.schema.json": CaptureOutput,
    "verify.schema.json": VerifyOutput,
    "inspect.schema.json": InspectOutput,
    "replay-report.schema.json": ReplayReport,
    "diff.schema.json": CapsuleDiff,
    "keys-generate.schema.json": KeyGenerateOutput,
    "keys-list.schema.json": KeyListOutput,
    "keys-export.schema.json": KeyExportOutput,
    "keys-trust.schema.json": KeyTrustOutput,
    "keys-untrust.schema.json": KeyUntrustOutput,
    "publish.schema.json": PublishOutput,
    "fetch.schema.json": FetchOutput,
    "verify-attestation.schema.json": VerifyAttestationOutput,
    "history.schema.json": HistoryOutput,
    "publish-attestation.schema.json": PublishAttestationOutput,
    "attestation-statement.schema.json": Statement,
    "extract.schema.json": ExtractOutput,
    "restamp.schema.json": RestampOutput,
    "cache-list.schema.json": CacheListOutput,
    "cache-prune.schema.json": CachePruneOutput,
    "replay-detached.schema.json": DetachedReplay,
    "status.schema.json": ReplayStatus,
    "status-list.schema.json": ReplayList,
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
