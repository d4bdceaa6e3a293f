"""Prove the git dependency was installed at its tag (v1.0), not at the branch head."""

import json
from importlib.metadata import version
from pathlib import Path

import idna
import reprogitdemo

assert version("reprogitdemo") == "1.0.0", version("reprogitdemo")
assert reprogitdemo.GAIN == 42.0, reprogitdemo.GAIN
assert "site-packages" in reprogitdemo.__file__, reprogitdemo.__file__  # built, not _gitsrc/

Path("results").mkdir(exist_ok=True)
Path("results/verify.json").write_text(
    json.dumps(
        {
            "convention": "Pipfile git dependency at a tag",
            "reprogitdemo": version("reprogitdemo"),
            "calibrated": [reprogitdemo.calibrate(x) for x in (0.5, 1.0, 2.0)],
            "idna": idna.encode("bücher.example").decode(),
        },
        indent=1,
        sort_keys=True,
    )
    + "\n"
)
