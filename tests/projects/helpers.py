"""The convention projects: which there are, what each covers, and how to make a working copy.

Every good project (a folder here with a repro.toml) proves its own environment: its run
imports the packages its declaration files name, asserts versions and behaviour, and writes
`results/verify.json`, the output capture records and replay compares. Bad projects (under
bad/) must fail capture; each has an `expect.toml` (exit_codes, and words the error line
must contain).

Projects under results/ are about results rather than environments (issue 14): outputs as
folders and globs, figures with volatile metadata, notebooks that fail or raise on purpose;
tests/integration/test_results.py says what each must do.

Some projects need preparing before capture: `prepare_project` copies one and does it
(pipfile-git's dependency becomes a local git repository, see `make_git_dependency`).
Used by the integration tests and by benchmarks/bench_fidelity.py (no pytest needed).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tomllib
from pathlib import Path

HERE = Path(__file__).resolve().parent
BAD_DIR = HERE / "bad"
RESULTS_DIR = HERE / "results"
FRESH_DIR = HERE / "fresh"

# project -> the convention it covers (the benchmark's table shows these).
CONVENTIONS: dict[str, str] = {
    "requirements-root": "requirements.txt (loose pins, comments, -r include)",
    "requirements-hashed": "requirements.txt with hashes (kept as the lock)",
    "requirements-editable-dot": "requirements.txt with -e . (setup.py project)",
    "binder-folder": "binder/ wins; root requirements.txt + setup.py ignored",
    "dot-binder": ".binder/ with runtime.txt; root runtime.txt/apt.txt ignored",
    "pipfile-dev": "Pipfile: dev-packages, extras, marker, [requires]",
    "pipfile-lock": "Pipfile.lock (default + develop) over Pipfile",
    "pipfile-path": "Pipfile path dependency named like a PyPI project",
    "pipfile-git": "Pipfile git dependency at a tag (local repository)",
    "setup-py-project": "setup.py project installed (src layout)",
    "pyproject-project": "pyproject.toml [project] + setuptools build-system",
    "pyproject-deps-only": "pyproject.toml [project] deps, no build-system",
    "conda-env": "environment.yml: channels, python=, pip: section",
    "conda-rename": "environment.yml: conda names differing from PyPI's",
    "conda-only-skip": "environment.yml: conda-only packages skipped",
    "postbuild": "postBuild script",
    "apt-txt": "apt.txt",
    "no-declaration-packages": "no file; [environment] packages",
    "mixed-precedence": "environment.yml > Pipfile > requirements.txt",
}

GIT_IDENTITY = (
    "-c", "user.name=Calibration Lab",
    "-c", "user.email=lab@example.org",
    "-c", "commit.gpgsign=false",
    "-c", "tag.gpgsign=false",
    "-c", "init.defaultBranch=main",
)  # fmt: skip
GIT_URL_IN_PIPFILE = "https://github.com/example-lab/reprogitdemo.git"
GIT_TAG = "v1.0"


# fresh/ project -> what it is: repositories as found, with no repro.toml at all, that
# `repro init --try --yes` must make capturable with no edits.
FRESH: dict[str, str] = {
    "script-figures": "a script writing a figure and CSVs into figures/ (git-ignored)",
    "makefile-fit": "a Makefile whose default target runs two scripts",
    "imports-only": "no dependency file: numpy and yaml imported (a Python 2 file too)",
    "readme-steps": "README code blocks: a console block with two steps",
    "subfolder-deps": "analysis/requirements.txt (docs/requirements.txt is not the study's)",
}


def fresh_projects() -> list[str]:
    return sorted(p.name for p in FRESH_DIR.iterdir() if p.is_dir() and not p.name.startswith("."))


def prepare_fresh(name: str, dest: Path, *, git: bool = False) -> Path:
    """Copy fresh project `name` to `dest`; with `git`, make it a repository with one
    commit (its .gitignore then decides what a capture lists)."""
    shutil.copytree(FRESH_DIR / name, dest, ignore=shutil.ignore_patterns("__pycache__"))
    if git:
        _git(dest, "init", "-q")
        _git(dest, "add", "-A")
        _git(dest, "commit", "-q", "-m", "as published")
    return dest


def good_projects() -> list[str]:
    return sorted(p.name for p in HERE.iterdir() if p.is_dir() and (p / "repro.toml").is_file())


def bad_projects() -> list[str]:
    return sorted(p.name for p in BAD_DIR.iterdir() if p.is_dir() and (p / "repro.toml").is_file())


def bad_expectation(name: str) -> dict:
    """{"exit_codes": [...], "mentions": [...]} from bad/NAME/expect.toml."""
    return tomllib.loads((BAD_DIR / name / "expect.toml").read_text(encoding="utf-8"))


def _git(cwd: Path, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env["GIT_CONFIG_NOSYSTEM"] = "1"
    env["GIT_CONFIG_GLOBAL"] = os.devnull
    return subprocess.run(
        ["git", *GIT_IDENTITY, *args],
        cwd=cwd,
        check=True,
        capture_output=True,
        text=True,
        env=env,
    ).stdout.strip()


def make_git_dependency(
    src: Path, dest: Path, tag: str, later: dict[str, str] | None = None
) -> str:
    """Turn the package sources in `src` into a git repository at `dest`: one commit with
    `src` as it is, tagged `tag` (an annotated tag, as releases are), then -- when `later`
    maps paths to new contents -- one more commit on the branch after the tag, so a tool
    that ignores the ref installs something else. Returns the repository's file:// URL."""
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(src, dest, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    _git(dest, "init", "-q")
    _git(dest, "add", "-A")
    _git(dest, "commit", "-q", "-m", f"release {tag}")
    _git(dest, "tag", "-a", tag, "-m", f"release {tag}")
    if later:
        for rel, text in later.items():
            (dest / rel).write_text(text, encoding="utf-8")
        _git(dest, "add", "-A")
        _git(dest, "commit", "-q", "-m", f"work after {tag}")
    return dest.resolve().as_uri()


def tag_commit(repo_url: str, tag: str) -> str:
    """The commit a tag of a local repository (file:// URL) points at."""
    path = Path(repo_url.removeprefix("file://"))
    return _git(path, "rev-parse", f"{tag}^{{commit}}")


def results_projects() -> list[str]:
    return sorted(p.name for p in RESULTS_DIR.iterdir() if (p / "repro.toml").is_file())


def prepare_project(name: str, dest: Path, bad: bool = False, results: bool = False) -> Path:
    """Copy project `name` (of bad/ or results/ when asked) to `dest` (which must not exist)
    and make it ready to capture."""
    src = (BAD_DIR if bad else RESULTS_DIR if results else HERE) / name
    shutil.copytree(
        src, dest, ignore=shutil.ignore_patterns("results", "__pycache__", "*.egg-info", "build")
    )
    if name == "pipfile-git" and not bad:
        init = dest / "_gitsrc" / "reprogitdemo" / "__init__.py"
        later = init.read_text(encoding="utf-8").replace('"1.0.0"', '"2.0.0.dev0"')
        later = later.replace("GAIN = 42.0", "GAIN = 43.5")
        url = make_git_dependency(
            dest / "_gitsrc",
            dest.parent / f"{dest.name}-gitdep" / "reprogitdemo",
            GIT_TAG,
            later={"reprogitdemo/__init__.py": later},
        )
        pipfile = dest / "Pipfile"
        text = pipfile.read_text(encoding="utf-8")
        if GIT_URL_IN_PIPFILE not in text:
            raise RuntimeError(f"{pipfile} no longer names {GIT_URL_IN_PIPFILE}")
        pipfile.write_text(text.replace(GIT_URL_IN_PIPFILE, url), encoding="utf-8")
    return dest


def git_dependency_url(project: Path) -> str:
    """The file:// URL prepare_project wrote into a prepared pipfile-git copy."""
    return (project.parent / f"{project.name}-gitdep" / "reprogitdemo").resolve().as_uri()
