"""`repro init`: write a commented repro.toml from what the project has (never overwrites)."""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass
from pathlib import Path

from repro.capture.files import BUILTIN_IGNORES
from repro.config import CONFIG_NAME, parse_config
from repro.config.models import EnvironmentSpec
from repro.env.declarations import EnvironmentPlan, describe, plan_environment
from repro.errors import ConfigExistsError, ProjectNotFoundError

DATA_DIR_NAMES = ("data", "datasets", "dataset", "inputs", "input", "raw")
SCRIPT_NAMES = (
    "main.py",
    "run.py",
    "analyse.py",
    "analyze.py",
    "analysis.py",
    "simulate.py",
    "run.sh",
    "Makefile",
)


@dataclass(frozen=True)
class Detected:
    environment: EnvironmentPlan
    """The environment as capture will read it (binder/ first, repo2docker's precedence)."""
    notebooks: list[str]
    data_dirs: list[str]
    scripts: list[str]

    @property
    def requirements(self) -> str | None:
        return self.environment.dependency_file

    @property
    def python(self) -> str | None:
        choice = self.environment.python
        return None if choice.source == "this interpreter" else choice.version

    @property
    def apt(self) -> list[str]:
        return self.environment.apt

    def environment_lines(self, project: Path) -> list[str]:
        return describe(project, self.environment) + self.environment.notes


def detect(project: Path) -> Detected:
    environment = plan_environment(project, EnvironmentSpec())
    notebooks = _notebooks(project)
    data_dirs = [n for n in DATA_DIR_NAMES if (project / n).is_dir()]
    scripts = [n for n in SCRIPT_NAMES if (project / n).is_file()]
    return Detected(environment, notebooks, data_dirs, scripts)


def _notebooks(project: Path) -> list[str]:
    """The notebooks a capture would embed (git's and .reproignore's ignores applied), or
    every one outside the built-in ignores when the project cannot be listed yet."""
    from repro.capture.files import list_project
    from repro.errors import ReproError

    try:
        listing = list_project(project, data_paths=[], extra_ignores=[], exclude=set())
        return sorted(f.rel for f in listing.files if f.rel.endswith(".ipynb"))
    except ReproError:
        skip = {p.rstrip("/") for p in BUILTIN_IGNORES if p.endswith("/")}
        return sorted(
            p.relative_to(project).as_posix()
            for p in project.rglob("*.ipynb")
            if not skip.intersection(p.relative_to(project).parts)
        )


def _q(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)  # a JSON string is a valid TOML basic string


def render_config(project: Path, found: Detected) -> str:
    title = project.name.replace("-", " ").replace("_", " ").strip().capitalize() or "My study"
    lines = [
        "# repro.toml: how `repro capture` packs this study into a capsule.",
        "# Reference: README.md of repro ('repro.toml reference'). Flags override this file.",
        "",
        "[capsule]",
        f"title = {_q(title)}",
        '# authors = [{ name = "Family, Given", orcid = "0000-0000-0000-0000",'
        ' affiliation = "..." }]',
        'license = "CC-BY-4.0"',
        "keywords = []",
        "",
        "[environment]",
    ]
    env = found.environment
    lines += [f"# {line}" for line in found.environment_lines(project)]
    if found.requirements:
        lines.append(f"requirements = {_q(found.requirements)}")
    else:
        lines.append(
            "# No dependency declaration found (requirements.txt, environment.yml, Pipfile, ...):"
        )
        lines.append('# packages = ["numpy>=1.24"]   # requirements declared here instead')
    if env.project_file:
        lines.append(f"install_project = true   # {env.project_file}: the project is installed")
    if found.python:
        lines.append(f"python = {_q(found.python)}   # from {env.python.source}")
    else:
        lines.append('# python = "3.11"            # default: runtime.txt, else this interpreter')
    if found.apt:
        lines.append(f"apt = {json.dumps(found.apt)}   # from {env.apt_file}")
    lines.append('# base_image = "python:3.11-slim"')
    lines.append("")
    for data in found.data_dirs:
        lines += ["[[data]]", f"path = {_q(data)}", ""]
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
    if found.notebooks:
        lines += [
            "# Each notebook is executed at capture (its outputs, cell by cell, become the",
            "# expectation; --no-run keeps the outputs saved in it) and again at replay.",
        ]
    for i, notebook in enumerate(found.notebooks):
        lines += ["[[notebooks]]", f"path = {_q(notebook)}"]
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
    script = found.scripts[0] if found.scripts else None
    command = (
        "make"
        if script == "Makefile"
        else f"sh {script}"
        if script and script.endswith(".sh")
        else f"python {script}"
        if script
        else "python analyse.py"
    )
    lines += [
        "# Each run is executed at capture, in an environment built from the lock, and its",
        "# outputs become the expected results that `repro replay` compares against.",
        "# [[runs]]",
        '# name = "main"',
        f"# command = {_q(command)}",
        '# outputs = ["results/metrics.json"]',
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
    return "\n".join(lines)


def init_project(project: Path) -> tuple[Path, Detected]:
    """Write DIR/repro.toml; refuse when one exists."""
    if not project.is_dir():
        raise ProjectNotFoundError(f"project directory not found: {project}")
    target = project / CONFIG_NAME
    if target.exists():
        raise ConfigExistsError(f"{target} already exists; repro init never overwrites it")
    found = detect(project)
    text = render_config(project.resolve(), found)
    parse_config(tomllib.loads(text), CONFIG_NAME)  # what we write must be what we read
    with target.open("x", encoding="utf-8") as fh:
        fh.write(text)
    return target, found
