"""Prove the environment came from binder/ only."""

import json
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

sys.path.insert(0, "analysis")
import toolz  # noqa: E402
from counts import word_counts  # noqa: E402

assert version("toolz").startswith("0.12."), version("toolz")
assert toolz.__version__ == version("toolz")
for absent in ("repro-test-should-never-be-installed", "wordstream"):
    try:
        version(absent)
    except PackageNotFoundError:
        pass
    else:
        raise AssertionError(f"{absent} is installed: the root files were read")

counts = word_counts("the cat and the hat. The end!")
assert counts == {"the": 3, "cat": 1, "and": 1, "hat": 1, "end": 1}, counts

Path("results").mkdir(exist_ok=True)
Path("results/verify.json").write_text(
    json.dumps(
        {"convention": "binder/ folder wins", "toolz": version("toolz"), "counts": counts},
        indent=1,
        sort_keys=True,
    )
    + "\n"
)
