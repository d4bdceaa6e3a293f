"""Prove the conda names were mapped to the right PyPI projects."""

import datetime as dt
import json
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import msgpack
from dateutil import parser

assert int(version("msgpack").split(".")[0]) >= 1, version("msgpack")
try:
    version("msgpack-python")
except PackageNotFoundError:
    pass
else:
    raise AssertionError("the PyPI project msgpack-python was installed, not msgpack")

events = [{"at": "2024-03-01T10:00:00Z", "kind": "start"}, {"at": "2024-03-01 10:05", "kind": "stop"}]
packed = msgpack.packb(events)
back = msgpack.unpackb(packed)
assert back == events
parsed = [parser.parse(e["at"]).replace(tzinfo=None) for e in back]
Path("results").mkdir(exist_ok=True)
Path("results/verify.json").write_text(
    json.dumps({"convention": "environment.yml with renamed conda packages",
                "packed_hex": packed.hex(),
                "seconds": (parsed[1] - parsed[0]) / dt.timedelta(seconds=1)},
               indent=1, sort_keys=True) + "\n"
)
