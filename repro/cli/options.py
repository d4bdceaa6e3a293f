"""The options and arguments more than one command takes, declared once."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer

# -q/-v: set by the app callback, read by the terminal renderers (repro.report.verbosity)
from repro.report.verbosity import Verbosity as Verbosity
from repro.report.verbosity import set_verbosity as set_verbosity
from repro.report.verbosity import verbosity as verbosity

AsJson = Annotated[bool, typer.Option("--json", help="Machine-readable result on stdout.")]

CapsuleFile = Annotated[Path, typer.Argument(help="Capsule file.")]
ProjectDir = Annotated[Path, typer.Argument(help="Project directory.")]

RequireSigned = Annotated[
    bool, typer.Option("--require-signed", help="Exit 4 unless the capsule is signed.")
]
RequireTrusted = Annotated[
    bool, typer.Option("--require-trusted", help="Exit 4 unless signed by a trusted key.")
]

ZenodoUrl = Annotated[
    str | None,
    typer.Option(
        "--zenodo-url",
        help="Zenodo site root (default: REPRO_ZENODO_URL, else the DOI's site, zenodo.org).",
    ),
]

SigningKey = Annotated[
    Path | None,
    typer.Option("--key", help="Private key to sign with (default: your default key)."),
]

BaseImage = Annotated[str | None, typer.Option("--base-image", help="Container base image.")]

Jobs = Annotated[int, typer.Option("-j", "--jobs", min=1, help="Sweep points to run in parallel.")]

PassEnv = Annotated[
    list[str] | None,
    typer.Option(
        "--pass-env",
        metavar="NAME",
        help="Give the runs this variable of your environment too (repeatable); runs get "
        "only an allowlisted environment otherwise.",
    ),
]

KeyName = Annotated[str, typer.Option("--name", help="Key name.")]

VersionDoiOnly = Annotated[
    bool,
    typer.Option(
        "--version-doi-only",
        help="Refuse a concept DOI (all versions): take only the DOI of one version.",
    ),
]


Partition = Annotated[
    str | None, typer.Option("--partition", help="Slurm partition (slurm target).")
]
Account = Annotated[str | None, typer.Option("--account", help="Slurm account (slurm target).")]
ArrayLimit = Annotated[
    int | None,
    typer.Option("--array-limit", min=1, help="Array tasks running at once (slurm target)."),
]
Container = Annotated[
    Literal["apptainer", "charliecloud", "podman", "docker"] | None,
    typer.Option(
        "--container",
        help="slurm target: run every task in the capsule's image under this runtime "
        "(apptainer, charliecloud, podman, docker) instead of a virtual environment.",
    ),
]
