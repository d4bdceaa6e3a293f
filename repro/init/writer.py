"""The repro.toml `repro init` writes: what was found, what was chosen and tried, guesses
marked GUESS and what only the author can say marked QUESTION."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from repro.init.detect import Detected

QUESTION = "# QUESTION:"
GUESS = "# GUESS:"


@dataclass(frozen=True)
class ChosenRun:
    """A run init writes: its command, where it was found and, once tried, its outputs."""

    name: str
    command: str
    source: str
    outputs: tuple[str, ...] = ()
    tried: bool = False


def q(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)  # a JSON string is a valid TOML basic string


def _capsule(found: Detected) -> list[str]:
    meta = found.metadata
    lines = ["[capsule]"]
    if meta.title:
        lines.append(f"title = {q(meta.title.value)}   # from {meta.title.source}")
    else:
        lines += [
            f"{QUESTION} what is the study called?",
            f"# title = {q(found.project_name or 'My study')}",
        ]
    if meta.authors:
        lines.append(f"# from {meta.authors_source}")
        lines.append("authors = [")
        for a in meta.authors:
            fields = [f"name = {q(a.name)}"]
            if a.orcid:
                fields.append(f"orcid = {q(a.orcid)}")
            if a.affiliation:
                fields.append(f"affiliation = {q(a.affiliation)}")
            lines.append(f"    {{ {', '.join(fields)} }},")
        lines.append("]")
    else:
        lines += [
            f"{QUESTION} who are the authors ('Family, Given', with ORCID iDs)?",
            '# authors = [{ name = "Family, Given", orcid = "0000-0000-0000-0000",'
            ' affiliation = "..." }]',
        ]
    if meta.license:
        lines.append(f"license = {q(meta.license.value)}   # from {meta.license.source}")
    else:
        lines += [
            f"{QUESTION} under which licence may others reuse the study? (an SPDX id; "
            "`repro publish` refuses without one)",
            '# license = "CC-BY-4.0"',
        ]
    lines += ["keywords = []", ""]
    return lines


def _environment(project: Path, found: Detected, runs: list[ChosenRun]) -> list[str]:
    env = found.environment
    lines = ["[environment]"]
    lines += [f"# {line}" for line in found.environment_lines(project)]
    if found.subfolder_file:
        lines.append(
            f"# {found.subfolder_file}: a dependency file in a subfolder (repo2docker reads "
            "only the root and binder/)"
        )
        for other in found.subfolder_files[1:]:
            lines.append(f"# also found: {other}")
    if found.requirements:
        lines.append(f"requirements = {q(found.requirements)}")
    elif found.guess and found.guess.packages:
        lines.append(
            f"{GUESS} no dependency file; these are the distributions the project's files "
            "import. Check the names, pin versions (or write a requirements.txt)."
        )
        lines.append("packages = [")
        width = max(len(q(p)) for p in found.guess.packages) + 1
        for package in found.guess.packages:
            where = ", ".join(found.guess.where[package])
            lines.append(f"    {(q(package) + ','):<{width}}  # {where}")
        lines.append("]")
        if found.guess.unparsed:
            lines.append(
                f"# not Python 3 (imports read line by line): {', '.join(found.guess.unparsed)}"
            )
    else:
        lines.append(
            "# No dependency declaration found (requirements.txt, environment.yml, Pipfile, ...):"
        )
        lines.append('# packages = ["numpy>=1.24"]   # requirements declared here instead')
    if found.conda_only:
        lines.append(
            f'conda_only = "skip"   {GUESS} {", ".join(found.conda_only)} have no PyPI '
            "equivalent: left out (the capsule records it); apt.txt or a base image can "
            "provide them"
        )
    if env.project_file:
        lines.append(f"install_project = true   # {env.project_file}: the project is installed")
    if found.python:
        lines.append(f"python = {q(found.python)}   # from {env.python.source}")
    else:
        lines.append('# python = "3.11"            # default: runtime.txt, else this interpreter')
    if found.apt:
        lines.append(f"apt = {json.dumps(found.apt)}   # from {env.apt_file}")
    elif any(r.command.split()[:1] == ["make"] for r in runs):
        lines.append(
            '# apt = ["make"]   # the runs call make, which python:X.Y-slim images lack '
            "(needed for --target docker; or list it in apt.txt)"
        )
    lines.append('# base_image = "python:3.11-slim"')
    lines.append("")
    return lines


def _data(found: Detected) -> list[str]:
    lines = []
    for data in found.data_dirs:
        lines += ["[[data]]", f"path = {q(data)}", ""]
    if not found.data_dirs:
        lines += [
            "# [[data]]",
            '# path = "data"                 # embedded with checksums',
            "# [[data]]",
            '# url = "https://..."           # fetched and checked, not embedded',
            '# sha256 = "..."',
            '# path = "data/big.csv"',
            "",
        ]
    return lines


def _notebooks(found: Detected) -> list[str]:
    lines = []
    if found.notebooks:
        lines += [
            "# Each notebook is executed at capture (its outputs, cell by cell, become the",
            "# expectation; --no-run keeps the outputs saved in it) and again at replay.",
        ]
    for i, notebook in enumerate(found.notebooks):
        lines += ["[[notebooks]]", f"path = {q(notebook)}"]
        if i == 0:
            lines += [
                "# timeout = 600                  # seconds per cell",
                "# [notebooks.parameters]         # injected after the cell tagged parameters",
                "# alpha = 0.1",
                "# [notebooks.compare]            # per output type; default: exact",
                '# "text/plain" = { rtol = 1e-9 }',
                '# "stream" = { rtol = 1e-9 }',
                '# "image/png" = { pixel_tolerance = 0.001 }',
            ]
        lines.append("")
    return lines


def _runs(found: Detected, runs: list[ChosenRun]) -> list[str]:
    lines = [
        "# Each run is executed at capture, in an environment built from the lock, and its",
        "# outputs become the expected results that `repro replay` compares against.",
    ]
    if not runs:
        top = found.candidates[0].command if found.candidates else "python analyse.py"
        if found.candidates:
            lines.append("# Candidates found (choose with `repro init --run CMD` or --yes):")
            lines += [f"#   {c.command}   ({c.source})" for c in found.candidates]
        lines += [
            "# [[runs]]",
            '# name = "main"',
            f"# command = {q(top)}",
            '# outputs = ["results/metrics.json"]',
        ]
    for run in runs:
        lines += ["[[runs]]", f"name = {q(run.name)}", f"command = {q(run.command)}"]
        lines.append(f"# from {run.source}")
        if run.tried and run.outputs:
            lines.append("# outputs: the files it wrote when `repro init --try` ran it")
            lines.append("outputs = [")
            lines += [f"    {q(out)}," for out in run.outputs]
            lines.append("]")
        elif run.tried:
            lines += [
                f"{QUESTION} it wrote no file when `repro init --try` ran it: what should "
                "replay compare?",
                "outputs = []",
            ]
        else:
            lines += [
                f"{QUESTION} which files does it write? (`repro init --try` finds them)",
                "outputs = []",
            ]
        lines.append("")
    lines += [
        "# timeout = 3600",
        "# [runs.compare]",
        '# "results/metrics.json" = { rtol = 1e-9 }',
        "# [runs.resources]",
        "# cpus = 1",
        '# memory = "1G"',
        '# walltime = "00:10:00"',
        "# [runs.sweep]                  # every combination is one point; {seed} is substituted",
        "# seed = [0, 1, 2]",
        "",
    ]
    return lines


def render_config(project: Path, found: Detected, runs: list[ChosenRun]) -> str:
    lines = [
        "# repro.toml: how `repro capture` packs this study into a capsule.",
        "# Reference: README.md of repro ('repro.toml reference'). Flags override this file.",
        "# Lines marked QUESTION are for you to answer before publishing; GUESS, to check.",
        "",
    ]
    lines += _capsule(found)
    lines += _environment(project, found, runs)
    lines += _data(found)
    lines += _notebooks(found)
    lines += _runs(found, runs)
    return "\n".join(lines)
