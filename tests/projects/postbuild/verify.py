"""Prove postBuild ran in this environment."""

import json
import sys
from pathlib import Path

import idna

marker = Path(sys.prefix, "postbuild-marker.txt")
assert marker.is_file(), f"no {marker}: postBuild did not run in this environment"
assert marker.read_text() == "ok"
defaults = json.loads(Path(sys.prefix, "etc", "analysis-defaults.json").read_text())

Path("results").mkdir(exist_ok=True)
Path("results/verify.json").write_text(
    json.dumps({"convention": "postBuild", "marker": marker.read_text(),
                "domain": idna.decode(defaults["domain"])}, indent=1, sort_keys=True) + "\n"
)
