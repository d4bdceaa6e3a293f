"""What `repro init` finds in a project: the environment as capture will read it, a
dependency file in a subfolder or a guess from the imports when the root declares nothing,
data folders, notebooks, run candidates and the metadata the project states."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from repro.config.models import EnvironmentSpec
from repro.env.declarations import (
    EnvironmentPlan,
    describe,
    plan_environment,
    read_declaration,
)
from repro.errors import ConfigError
from repro.init.candidates import Candidate, find_candidates
from repro.init.imports import PackageGuess, guess_packages
from repro.init.listing import project_files, subfolder_declarations
from repro.init.metadata import FoundMetadata, find_metadata

DATA_DIR_NAMES = ("data", "datasets", "dataset", "inputs", "input", "raw")


@dataclass(frozen=True)
class Detected:
    environment: EnvironmentPlan
    """The environment as capture will read it (binder/ first, repo2docker's precedence),
    with the subfolder file or the guessed packages init proposes."""
    notebooks: list[str]
    data_dirs: list[str]
    candidates: list[Candidate]
    """Run candidates, best first."""
    metadata: FoundMetadata
    subfolder_files: list[str]
    """Dependency files below the root, best first (offered when the root has none)."""
    guess: PackageGuess | None
    """Packages guessed from the imports, when nothing declares the environment."""
    project_name: str
    conda_only: list[str] = field(default_factory=list)
    """Conda-only packages of environment.yml (no PyPI equivalent): proposed left out."""

    @property
    def subfolder_file(self) -> str | None:
        """The subfolder file proposed as [environment] requirements."""
        dep = self.environment.dependency_file
        return dep if dep is not None and dep in self.subfolder_files else None

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

    @property
    def scripts(self) -> list[str]:
        """The files the candidates run (scripts, the Makefile), best first."""
        return list(dict.fromkeys(c.file for c in self.candidates if c.file))

    def environment_lines(self, project: Path) -> list[str]:
        return describe(project, self.environment) + self.environment.notes


def detect(project: Path) -> Detected:
    files = project_files(project)
    environment = plan_environment(project, EnvironmentSpec())
    subfolder = subfolder_declarations(files)
    guess = None
    declared = environment.dependency_file or environment.project_file
    if not declared and subfolder:
        environment = plan_environment(project, EnvironmentSpec(requirements=subfolder[0]))
    elif not declared:
        guess = guess_packages(project, files)
        if guess.packages:
            environment = plan_environment(project, EnvironmentSpec(packages=guess.packages))
    notebooks = sorted(f for f in files if f.endswith(".ipynb"))
    conda_only: list[str] = []
    dep = environment.dependency_file
    if dep is not None and dep.endswith((".yml", ".yaml")):
        try:
            read_declaration(project, dep, "error")
        except ConfigError:
            try:  # only conda-only packages are left out with "skip"; other errors stay
                conda_only = list(read_declaration(project, dep, "skip").left_out)
            except ConfigError:
                conda_only = []
    data_dirs = [n for n in DATA_DIR_NAMES if (project / n).is_dir()]
    name = project.resolve().name.replace("-", " ").replace("_", " ").strip().capitalize()
    return Detected(
        environment=environment,
        notebooks=notebooks,
        data_dirs=data_dirs,
        candidates=find_candidates(project),
        metadata=find_metadata(project),
        subfolder_files=subfolder,
        guess=guess,
        project_name=name,
        conda_only=conda_only,
    )
