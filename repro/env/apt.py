"""Debian packages (apt.txt): which of them this machine lacks, for targets without an image."""

from __future__ import annotations

import shutil

from repro.errors import AptPackagesMissingError
from repro.execution.tools import run_tool

QUERY_TIMEOUT_S = 60


def missing_apt(packages: list[str]) -> list[str]:
    """apt packages not installed on this machine (dpkg-query), by name."""
    if not packages:
        return []
    names = [p.split("=")[0] for p in packages]
    if shutil.which("dpkg-query") is None:
        return names
    missing = []
    for name in names:
        proc = run_tool(
            ["dpkg-query", "-W", "-f=${Status}", name],
            f"looking up apt package {name} (dpkg-query)",
            timeout=QUERY_TIMEOUT_S,
            check=False,
        )
        if not proc.ok or "install ok installed" not in proc.stdout:
            missing.append(name)
    return missing


def check_apt_on_host(packages: list[str], what: str) -> None:
    missing = missing_apt(packages)
    if missing:
        raise AptPackagesMissingError(
            f"{what} needs apt packages missing on this machine: {', '.join(missing)}",
            hint="use --target docker (the image installs them), or apt-get install them",
        )
