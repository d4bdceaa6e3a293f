from setuptools import setup

setup(
    name="greeter",
    version="2.0.0",
    packages=["greeter"],
    install_requires=["colorama>=0.4"],
)
