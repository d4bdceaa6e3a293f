#!/usr/bin/env python
# -*- coding: utf-8 -*-
from setuptools import find_packages, setup

with open("README.md") as fh:
    long_description = fh.read()

setup(
    name="tidecal",
    version="0.3.1",
    author="Coastal Lab",
    description="Tide-table calendar helpers",
    long_description=long_description,
    long_description_content_type="text/markdown",
    package_dir={"": "src"},
    packages=find_packages("src"),
    install_requires=[
        "python-dateutil>=2.8",
    ],
    python_requires=">=3.7",
    classifiers=[
        "Programming Language :: Python :: 3",
    ],
)
