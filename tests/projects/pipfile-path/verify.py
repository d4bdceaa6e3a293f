"""Prove the local path dependency was installed, not PyPI's project of the same name."""

import json
from importlib.metadata import version
from pathlib import Path

import tabulate

assert hasattr(tabulate, "lab_provenance"), (
    f"tabulate from {tabulate.__file__} is not the vendored fork: PyPI's was installed"
)
assert tabulate.lab_provenance() == "vendored lab fork"
assert version("tabulate") == "0.9.0"
assert not hasattr(tabulate, "simple_separated_format")  # a PyPI tabulate function

table = tabulate.tabulate([(1, "one"), (22, "twenty-two")], headers=("n", "name"))
print(table)
Path("results").mkdir(exist_ok=True)
Path("results/verify.json").write_text(
    json.dumps(
        {
            "convention": "Pipfile path dependency (name also on PyPI)",
            "provenance": tabulate.lab_provenance(),
            "table": table.splitlines(),
            "six": version("six"),
        },
        indent=1,
        sort_keys=True,
    )
    + "\n"
)
