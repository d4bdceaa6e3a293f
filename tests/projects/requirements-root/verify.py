"""Prove the environment: the -r include and the root file were both installed."""

import json
import re
from collections import Counter
from importlib.metadata import version
from pathlib import Path

import six
import tabulate


def ver(text):
    """'0.9.0' -> (0, 9, 0): no packaging import, it is not declared here."""
    return tuple(int(x) for x in re.findall(r"\d+", text)[:3])


words = re.findall(r"[A-Za-z]+", Path("corpus.txt").read_text())
lengths = Counter(len(w) for w in words)
rows = sorted(lengths.items())
table = tabulate.tabulate(rows, headers=["length", "count"], tablefmt="github")
print(table)

assert (0, 9) <= ver(version("tabulate")) < (1,), version("tabulate")
assert ver(version("six")) >= (1, 16), version("six")
assert six.PY3

Path("results").mkdir(exist_ok=True)
Path("results/verify.json").write_text(
    json.dumps(
        {
            "convention": "requirements.txt with -r include",
            "tabulate": version("tabulate"),
            "six": version("six"),
            "table": table.splitlines(),
            "words": len(words),
        },
        indent=1,
        sort_keys=True,
    )
    + "\n"
)
