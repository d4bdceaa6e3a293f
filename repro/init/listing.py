"""The project's files as a capture would list them (git's and .reproignore's ignores), and
the dependency files that sit in subfolders, where repo2docker does not look."""

from __future__ import annotations

from pathlib import Path

from repro.capture.files import BUILTIN_IGNORES, list_project
from repro.env.declarations import CONFIG_FOLDERS, DEPENDENCY_ORDER
from repro.errors import ReproError

# Folders whose dependency files are not the study's: documentation builds, test suites,
# vendored code, examples of a library.
NOT_THE_STUDY = frozenset(
    {"docs", "doc", "tests", "test", "examples", "vendor", "third_party", "node_modules", "site"}
)
PREFERRED_FOLDERS = ("env", "environment", "envs", "analysis", "code", "src", "scripts")
MAX_DEPTH = 3


def project_files(project: Path) -> list[str]:
    """Project-relative paths of the files a capture would embed, or every file outside
    the built-in ignores when the project cannot be listed that way (e.g. a file name
    that is not UTF-8: capture then names it)."""
    try:
        listing = list_project(project, data_paths=[], extra_ignores=[], exclude=set())
        return [f.rel for f in listing.files]
    except ReproError:
        skip = {p.rstrip("/") for p in BUILTIN_IGNORES if p.endswith("/")}
        return sorted(
            p.relative_to(project).as_posix()
            for p in project.rglob("*")
            if p.is_file() and not skip.intersection(p.relative_to(project).parts)
        )


def subfolder_declarations(files: list[str]) -> list[str]:
    """Dependency files below the root (not binder/), best first: the shallowest, in a
    folder named for environments or code, then by repo2docker's precedence."""
    found = []
    for rel in files:
        parts = Path(rel).parts
        if len(parts) < 2 or len(parts) > MAX_DEPTH + 1 or parts[-1] not in DEPENDENCY_ORDER:
            continue
        if parts[0] in CONFIG_FOLDERS or NOT_THE_STUDY.intersection(p.lower() for p in parts):
            continue
        found.append(rel)

    def rank(rel: str) -> tuple[int, int, int]:
        parts = Path(rel).parts
        folder = parts[-2].lower()
        preferred = PREFERRED_FOLDERS.index(folder) if folder in PREFERRED_FOLDERS else 99
        return len(parts), preferred, DEPENDENCY_ORDER.index(parts[-1])

    return sorted(found, key=rank)
