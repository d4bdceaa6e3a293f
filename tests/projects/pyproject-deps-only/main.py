"""Entry point and environment check."""

import json
from importlib.metadata import version
from pathlib import Path

import toolz
import yaml

from load import load
from report import render
from stats import means

assert int(version("PyYAML").split(".")[0]) >= 6, version("PyYAML")
assert yaml.__with_libyaml__ in (True, False)
assert toolz.__version__ == version("toolz")

summary = means(load("inputs/stations.yml"))
assert summary == {"Aberdeen": 10.8125, "Brest": 14.5}, summary
Path("results").mkdir(exist_ok=True)
Path("results/verify.json").write_text(
    json.dumps({"convention": "pyproject.toml [project] deps, no build-system, flat modules",
                "summary": summary, "report": render(summary)}, indent=1, sort_keys=True) + "\n"
)
