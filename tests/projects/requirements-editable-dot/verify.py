"""Prove `-e .` installed the project (with its install_requires) and click came from the index."""

import json
import os
from importlib.metadata import version
from pathlib import Path

import click
import colorama
import greeter

assert version("greeter") == "2.0.0"  # installed, not just importable from the cwd
assert version("colorama")  # from setup.py's install_requires only
assert int(version("click").split(".")[0]) == 8, version("click")
assert colorama.Style.RESET_ALL == "\x1b[0m"


@click.command()
@click.argument("names", nargs=-1)
def hello(names):
    return [greeter.greet(n) for n in names]


greetings = hello.main(["Ada", "Grace"], standalone_mode=False)
Path("results").mkdir(exist_ok=True)
Path("results/verify.json").write_text(
    json.dumps({"convention": "requirements.txt with -e .", "greetings": greetings,
                "coloured": greeter.greet("x", colour=True).encode().hex(),
                "cwd_listing_has_setup": os.path.isfile("setup.py")}, indent=1, sort_keys=True)
    + "\n"
)
