"""`repro cat CAPSULE PATH`: one member's bytes on stdout, after the capsule verified."""

from __future__ import annotations

import shutil
import sys
from typing import Annotated

import typer

from repro.cli.options import CapsuleFile, RequireSigned, RequireTrusted


def cat_command(
    capsule: CapsuleFile,
    path: Annotated[
        str,
        typer.Argument(
            metavar="PATH",
            help="File in the capsule: a project path (analyse.py), a path under data/ "
            "(results/RUN/POINT/...), or a member name (repro.json).",
        ),
    ],
    require_signed: RequireSigned = False,
    require_trusted: RequireTrusted = False,
) -> None:
    """Print one file of a capsule, verified: nothing is printed unless every byte checks."""
    from repro.extract import open_member
    from repro.verify import Policy

    with open_member(capsule, path, Policy(require_signed, require_trusted)) as member:
        with member.path.open("rb") as fh:
            shutil.copyfileobj(fh, sys.stdout.buffer)
        sys.stdout.buffer.flush()
