"""Prove the environment came from .binder/: attrs installed, Python 3.11."""

import csv
import json
import sys
from importlib.metadata import version
from pathlib import Path

import attrs

assert sys.version_info[:2] == (3, 11), sys.version  # .binder/runtime.txt, not the root one
assert int(version("attrs").split(".")[0]) >= 23, version("attrs")


@attrs.frozen
class Sighting:
    species: str
    count: int = attrs.field(converter=int)
    site: str


with open("sightings.csv", newline="") as fh:
    rows = [Sighting(**r) for r in csv.DictReader(fh)]
totals = {}
for s in rows:
    totals[s.species] = totals.get(s.species, 0) + s.count
assert totals == {"robin": 5, "wren": 1, "heron": 1}

Path("results").mkdir(exist_ok=True)
Path("results/verify.json").write_text(
    json.dumps(
        {
            "convention": ".binder/ with runtime.txt",
            "python": "%d.%d" % sys.version_info[:2],
            "attrs_major": int(version("attrs").split(".")[0]) >= 23,
            "totals": totals,
        },
        indent=1,
        sort_keys=True,
    )
    + "\n"
)
