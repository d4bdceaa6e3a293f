"""Prove Pipfile.lock was installed as locked (default and develop), not the Pipfile."""

import json
from importlib.metadata import version
from pathlib import Path

import attrs
import six
import toolz

pinned = {"six": "1.16.0", "attrs": "23.2.0", "toolz": "0.12.1"}
found = {name: version(name) for name in pinned}
assert found == pinned, found
assert six.__version__ == "1.16.0"
assert toolz.__version__ == "0.12.1"


@attrs.define
class Point:
    x: int
    y: int


total = toolz.reduce(lambda a, p: a + p.x * p.y, [Point(1, 2), Point(3, 4)], 0)
Path("results").mkdir(exist_ok=True)
Path("results/verify.json").write_text(
    json.dumps(
        {
            "convention": "Pipfile.lock wins over Pipfile",
            "versions": found,
            "total": total,
            "string_types": six.string_types[0].__name__,
        },
        indent=1,
        sort_keys=True,
    )
    + "\n"
)
