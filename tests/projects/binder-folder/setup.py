# The old library's setup script. repo2docker does not install the project when a binder/
# folder exists, so this must never run during capture or replay.
import sys

sys.exit("setup.py ran, but binder/ exists: the project must not be installed")

from setuptools import setup  # noqa: E402  (unreachable, kept for the record)

setup(name="wordstream", version="0.1", install_requires=["repro-test-should-never-be-installed"])
