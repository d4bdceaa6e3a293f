"""Prove environment.yml was translated: conda packages, the pip: section, Python 3.11."""

import json
import sys
from importlib.metadata import version
from pathlib import Path

import six
import tabulate
import toolz
import yaml

assert sys.version_info[:2] == (3, 11)
assert version("toolz").startswith("0.12."), version("toolz")  # toolz=0.12 is 0.12.*
assert version("tabulate") == "0.9.0"  # pip: section
assert version("PyYAML")  # conda's pyyaml is PyPI's PyYAML
assert six.PY3

config = yaml.safe_load(Path("config.yml").read_text())
table = tabulate.tabulate(config["rows"], headers=config["columns"])
Path("results").mkdir(exist_ok=True)
Path("results/verify.json").write_text(
    json.dumps({"convention": "environment.yml with a pip: section",
                "toolz": version("toolz"), "tabulate": version("tabulate"),
                "table": table.splitlines(),
                "prices": toolz.valmap(float, dict(config["rows"]))}, indent=1, sort_keys=True) + "\n"
)
