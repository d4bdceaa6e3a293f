"""Prove the Pipfile was read: packages, dev-packages, extras and markers."""

import json
import sys
from importlib.metadata import PackageNotFoundError, version
from importlib.util import find_spec
from pathlib import Path

import click
import more_itertools  # [dev-packages]: repo2docker installs them too
import socks  # PySocks, from the urllib3[socks] extra
import urllib3

assert sys.platform != "win32"
assert int(version("urllib3").split(".")[0]) >= 2, version("urllib3")
assert urllib3.__version__ == version("urllib3")
assert socks.PROXY_TYPE_SOCKS5 == 2
assert find_spec("urllib3.contrib.socks") is not None
try:
    version("colorama")
except PackageNotFoundError:
    pass
else:
    raise AssertionError("colorama is installed, but its marker is sys_platform == 'win32'")
assert find_spec("colorama") is None


@click.command()
@click.option("--n", default=3)
def main(n):
    return list(more_itertools.chunked(range(n * 2), 2))


chunks = main.main(["--n", "3"], standalone_mode=False)
Path("results").mkdir(exist_ok=True)
Path("results/verify.json").write_text(
    json.dumps(
        {
            "convention": "Pipfile: packages + dev-packages, extras, markers",
            "chunks": chunks,
            "pysocks": version("PySocks"),
            "dev_package": version("more-itertools") != "",
        },
        indent=1,
        sort_keys=True,
    )
    + "\n"
)
