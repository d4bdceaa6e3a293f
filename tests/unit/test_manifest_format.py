"""The manifest's JSON Schema is pinned per capsule format: a change to it is a deliberate act.

The manifest embeds config models as they were at capture (Metadata, Run, NotebookSpec,
CompareRule, Resources from repro.config.models), so editing what repro.toml accepts can
silently change what a capsule is. This test pins a digest of the manifest's schema for each
`repro.FORMAT`, and fails when the schema changes while the format stays the same.

What is hashed is the schema's *shape*: `$ref`s inlined, so renaming a class changes nothing;
descriptions and titles dropped, so docstrings can be edited freely; field order ignored.
Types, constraints (patterns, bounds), defaults, required fields and the forbidding of
unknown keys all count.

When the test fails, decide which of the two the change is:

- **Compatible**: every manifest valid before is still valid and means the same thing, so
  this repro reads every capsule of the format ever written. Adding an optional field with
  a default is compatible (older capsules lack it and get the default); so is loosening a
  constraint. An older repro refuses a new capsule that carries the new field
  (`extra="forbid"`): that is accepted within one format, because it fails loudly and never
  misreads. Then record the new digest under the same format below, and say in the commit
  message why the change is compatible.
- **Incompatible**: removing or renaming a field, making one required, changing a type or a
  default, tightening a constraint. Then bump `repro.FORMAT` (and the Literal of
  `Manifest.format`), keep the old format's digest here, and add the new one.

The digest is never updated to make the test pass without one of those reasons.
"""

from __future__ import annotations

import copy
import hashlib
import json
import typing
from typing import Any

import repro
from repro.capsule.manifest import Manifest, canonical_json

MANIFEST_SCHEMA_DIGESTS: dict[str, str] = {
    # repro-capsule/1 as first pinned (the models split out of repro/models.py).
    # Compatible: NotebookSpec.allow_errors added, optional with default false (a capsule
    # without it means what it always meant: a cell that raises fails the notebook).
    # Compatible: Platform.python_abi added, optional with default None (a capsule without it
    # records no ABI, and replay compares none).
    # Compatible: Environment.image_id added, optional with default null (issue 16: a saved
    # image is loaded only when it is the recorded image; a capsule without the id means what
    # it always meant, and replay builds its environment from the Dockerfile instead of
    # trusting the saved image's tag).
    # Compatible: RunRecord.usage and NotebookRecord.usage added (issue 15), optional with
    # default null (a capsule without them recorded no resource usage, as one made under
    # SOURCE_DATE_EPOCH still does).
    # Compatible: Environment.captured_on gains the value "slurm" (issue 17, capture --target
    # slurm); every capsule written before holds one of the old values, read as before.
    "repro-capsule/1": "be96520db2ac00b0d9e716364135bc365df7c8b11ffabc7abd447c54e63798d9",
}
"""Format -> sha256 of the manifest schema's shape (see `schema_digest`). Entries are only
added, or replaced for a compatible change of the current format, never removed."""

_ANNOTATIONS = frozenset({"title", "description", "$comment", "examples", "$schema", "$defs"})
_SCHEMA_MAPS = frozenset({"properties", "patternProperties", "dependentSchemas"})
_SCHEMA_LISTS = frozenset({"anyOf", "allOf", "oneOf", "prefixItems"})
_SCHEMA_ONE = frozenset(
    {
        "items",
        "additionalProperties",
        "not",
        "if",
        "then",
        "else",
        "contains",
        "propertyNames",
        "unevaluatedProperties",
        "unevaluatedItems",
    }
)


def schema_shape(schema: dict[str, Any]) -> Any:
    """What a schema accepts, free of names and prose: $refs inlined, annotations dropped."""
    defs = schema.get("$defs", {})

    def walk(node: Any, seen: frozenset[str]) -> Any:
        if not isinstance(node, dict):
            return node  # `true`/`false` schemas
        out: dict[str, Any] = {}
        ref = node.get("$ref")
        if ref is not None:
            name = ref.removeprefix("#/$defs/")
            assert name not in seen, f"recursive schema at {name}: inline by name instead"
            out |= walk(defs[name], seen | {name})
        for key, value in node.items():
            if key in _ANNOTATIONS or key == "$ref":
                continue
            if key in _SCHEMA_MAPS:
                out[key] = {name: walk(sub, seen) for name, sub in value.items()}
            elif key in _SCHEMA_LISTS:
                out[key] = [walk(sub, seen) for sub in value]
            elif key in _SCHEMA_ONE:
                out[key] = walk(value, seen)
            elif key == "required":
                out[key] = sorted(value)
            else:  # type, const, enum, default, pattern, bounds...: data, kept as it is
                out[key] = value
        return out

    return walk(schema, frozenset())


def schema_digest(schema: dict[str, Any]) -> str:
    return hashlib.sha256(canonical_json(schema_shape(schema))).hexdigest()


def manifest_schema() -> dict[str, Any]:
    # What schemas/manifest.schema.json holds (test_schemas keeps the file equal to this).
    return Manifest.model_json_schema(mode="validation")


def test_the_manifest_schema_is_the_one_recorded_for_its_format() -> None:
    digest = schema_digest(manifest_schema())
    recorded = MANIFEST_SCHEMA_DIGESTS.get(repro.FORMAT)
    assert recorded is not None, (
        f"repro.FORMAT is {repro.FORMAT!r}, which has no recorded manifest schema digest: "
        f"add {repro.FORMAT!r}: {digest!r} to MANIFEST_SCHEMA_DIGESTS in {__name__}"
    )
    assert digest == recorded, (
        f"the manifest schema changed: bump repro.FORMAT and record the new digest, or make "
        f"the change backwards compatible (see this module's docstring) and record it under "
        f"{repro.FORMAT!r}, saying in the commit why it is compatible. New digest: {digest}. "
        f"What changed: `python -m repro.schemas && git diff schemas/manifest.schema.json`."
    )


def test_the_manifest_declares_the_current_format() -> None:
    """A format bump changes both repro.FORMAT and the Literal capsules are checked against."""
    field = Manifest.model_fields["format"]
    assert typing.get_args(field.annotation) == (repro.FORMAT,)
    assert field.default == repro.FORMAT


def _defs(schema: dict[str, Any]) -> dict[str, Any]:
    defs: dict[str, Any] = schema["$defs"]
    return defs


def test_prose_and_class_names_do_not_change_the_digest() -> None:
    schema = manifest_schema()
    before = schema_digest(schema)

    reworded = copy.deepcopy(schema)
    _defs(reworded)["Run"]["properties"]["timeout"]["description"] = "Reworded."
    _defs(reworded)["Run"]["description"] = "Reworded too."
    assert schema_digest(reworded) == before

    renamed = copy.deepcopy(schema)
    _defs(renamed)["RunDeclaration"] = _defs(renamed).pop("Run")
    _defs(renamed)["RunDeclaration"]["title"] = "RunDeclaration"
    text = canonical_json(renamed).decode().replace('"#/$defs/Run"', '"#/$defs/RunDeclaration"')
    assert schema_digest(json.loads(text)) == before


def test_a_change_to_an_embedded_config_model_changes_the_digest() -> None:
    schema = manifest_schema()
    before = schema_digest(schema)

    added = copy.deepcopy(schema)  # e.g. a new field of Run in repro.config.models
    _defs(added)["Run"]["properties"]["retries"] = {"type": "integer", "default": 0}
    assert schema_digest(added) != before

    tightened = copy.deepcopy(schema)
    _defs(tightened)["Resources"]["properties"]["cpus"]["minimum"] = 2
    assert schema_digest(tightened) != before

    redefaulted = copy.deepcopy(schema)
    _defs(redefaulted)["Run"]["properties"]["network"]["default"] = True
    assert schema_digest(redefaulted) != before

    # "description" is also a field name (Metadata.description): as a property it counts.
    dropped = copy.deepcopy(schema)
    del _defs(dropped)["Metadata"]["properties"]["description"]
    assert schema_digest(dropped) != before


def test_canonical_json_of_many_files_is_what_model_dump_gives() -> None:
    """The file list is written entry by entry, without model_dump: the bytes must not move
    (they are what the capsule id hashes), whatever the names hold."""
    from repro.capsule.manifest import FileEntry, _files_json, canonical_json
    from tests.unit.replay_values import manifest

    names = [
        'a"b',
        "back\\slash",
        "tab\there",
        "ctl\x01\x1f",
        "é ü 中文 🎉",
        "\u2028\u2029",
        "/x",
        "%",
    ]
    files = [
        FileEntry(
            path=f"data/project/{name}/{i}",
            sha256=f"{i:064x}",
            size=i * 1_000_003,
            mode=0o755 if i % 2 else 0o644,
            role="data",
            link=None if i % 3 else f"../{name}",
        )
        for i, name in enumerate(names * 3)
    ]
    m = manifest().model_copy(update={"files": files, "notes": ['"files":"x"', "files"]})
    assert _files_json(files) is not None  # the fast way was taken
    assert m.canonical_json() == canonical_json(m.model_dump(mode="json"))
    # An entry that is not of the exact types the fast way writes takes the plain way.
    odd = FileEntry.model_construct(path="p", sha256="0" * 64, size=True, mode=420, role="code")
    m = m.model_copy(update={"files": [*files, odd]})
    assert _files_json(m.files) is None
    assert m.canonical_json() == canonical_json(m.model_dump(mode="json"))
    empty = manifest()
    assert empty.canonical_json() == canonical_json(empty.model_dump(mode="json"))
