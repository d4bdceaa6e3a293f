"""Prove environment.yml won over Pipfile and requirements.txt."""

import json
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import attrs
import more_itertools

try:
    version("repro-test-should-never-be-installed")
    raise AssertionError("Pipfile or requirements.txt was read")
except PackageNotFoundError:
    pass
assert attrs.has(attrs.make_class("C", ["a"]))
Path("results").mkdir(exist_ok=True)
Path("results/verify.json").write_text(
    json.dumps({"convention": "environment.yml > Pipfile > requirements.txt",
                "windows": list(more_itertools.windowed(range(4), 2))}, indent=1, sort_keys=True)
    + "\n"
)
