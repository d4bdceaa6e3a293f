"""The commands a researcher would point at to reproduce a study, found and ranked: a
reproduce/verify script, the README's code blocks, a Makefile's default target, run.py-like
scripts at the root or in scripts/, src/, code/."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, replace
from pathlib import Path

MAKEFILES = ("GNUmakefile", "makefile", "Makefile")
READMES = ("README.md", "README.markdown", "Readme.md", "readme.md", "README.txt", "README")
SCRIPT_FOLDERS = ("", "scripts", "src", "code", "analysis", "bin")
# Script stems by what they say about themselves, best first: each tier is worth `score`.
SCRIPT_TIERS: tuple[tuple[int, frozenset[str]], ...] = (
    (
        100,
        frozenset(
            {"reproduce", "reproduce_all", "replicate", "verify", "run_all", "runall", "make_all"}
        ),
    ),
    (70, frozenset({"run", "main", "run_analysis", "pipeline", "all", "run_experiments"})),
    (
        60,
        frozenset(
            {
                "analysis",
                "analyse",
                "analyze",
                "analysis_main",
                "simulate",
                "simulation",
                "experiment",
                "experiments",
                "make_figures",
                "figures",
                "plots",
            }
        ),
    ),
)
README_SCORE = 90
MAKEFILE_SCORE = 85
NUMBERED_SCORE = 45
NUMBERED = re.compile(r"^(\d+)[-_. ]?[^/]*\.(py|sh)$")
# A Makefile whose first target sets things up: the target to run instead, if it has one.
SETUP_TARGETS = frozenset(
    {"help", "clean", "install", "setup", "env", "venv", "deps", "requirements", "init"}
)
STUDY_TARGETS = ("all", "reproduce", "paper", "figures", "results", "run", "analysis")
# README lines that set a machine up rather than run the study.
SETUP_WORDS = frozenset(
    {
        "pip", "pip3", "conda", "mamba", "micromamba", "git", "cd", "source", ".", "export",
        "wget", "curl", "docker", "apt", "apt-get", "sudo", "brew", "virtualenv", "pipenv",
        "poetry", "uv", "pyenv", "mkdir", "ls", "cat", "echo", "jupyter", "jupyter-lab",
        "jupyter-notebook", "papermill", "pytest", "tox", "nox", "module", "repro", "unzip",
        "tar", "rm", "cp", "mv", "chmod", "activate", "deactivate", "set", "setx",
    }
)  # fmt: skip
RUN_WORDS = frozenset({"python", "python3", "bash", "sh", "make", "snakemake", "Rscript"})
SHELL_FENCES = frozenset(
    {"", "bash", "sh", "shell", "zsh", "console", "shell-session", "sh-session"}
)
PROMPT = re.compile(r"^\s*(?:\(\S+\)\s*)?[$%>]\s+")
ENV_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=\S*$")


@dataclass(frozen=True)
class Candidate:
    """A command init can propose as a run."""

    command: str
    source: str
    """Where it was found, e.g. 'README.md code block', "Makefile's default target"."""
    score: int
    """Higher first."""
    group: str | None = None
    """Candidates of one README code block share it: accepting one accepts its steps."""
    file: str | None = None
    """The project file it runs (a script, the Makefile), when it names one."""


def find_candidates(project: Path) -> list[Candidate]:
    """Every candidate, best first (ties keep the order they were found in)."""
    found = [
        *_scripts(project),
        *readme_candidates(project),
        *_makefile(project),
        *numbered_scripts(project),
    ]
    merged: dict[str, Candidate] = {}
    for cand in found:
        key = command_key(cand.command)
        have = merged.get(key)
        if have is None:
            merged[key] = cand
        elif cand.score > have.score:
            merged[key] = replace(
                cand, source=f"{cand.source}; {have.source}", file=cand.file or have.file
            )
        else:
            merged[key] = replace(
                have, source=f"{have.source}; {cand.source}", file=have.file or cand.file
            )
    return sorted(merged.values(), key=lambda c: -c.score)


def accepted_by_yes(candidates: list[Candidate]) -> list[Candidate]:
    """--yes: the top candidate, with the other steps of its README code block."""
    if not candidates:
        return []
    top = candidates[0]
    if top.group is None:
        return [top]
    steps = [c for c in candidates if c.group == top.group]
    return sorted(steps, key=lambda c: -c.score)


def command_key(command: str) -> str:
    """What makes two spellings of one command the same candidate."""
    words = command.split()
    if words and words[0] == "python3":
        words[0] = "python"
    if words and words[0] == "sh":
        words[0] = "bash"
    return " ".join(w.removeprefix("./") for w in words)


# --- scripts -------------------------------------------------------------------------------


def _scripts(project: Path) -> list[Candidate]:
    found = []
    for folder in SCRIPT_FOLDERS:
        where = project / folder if folder else project
        if not where.is_dir():
            continue
        for path in sorted(where.iterdir()):
            if not path.is_file() or path.suffix not in (".py", ".sh"):
                continue
            score = next((s for s, names in SCRIPT_TIERS if path.stem.lower() in names), None)
            if score is None:
                continue
            rel = path.relative_to(project).as_posix()
            if folder:
                score -= 10
            if path.suffix == ".sh":
                score += 5  # a shell script at the same level usually drives the others
            found.append(Candidate(script_command(project, rel), "script", score, file=rel))
    return found


def numbered_scripts(project: Path) -> list[Candidate]:
    """Scripts numbered in the order they run (01-clean.py, 02-fit.py), at the root or in
    one folder below it: a sequence, accepted together."""
    found = []
    folders = [project, *sorted(p for p in project.iterdir() if p.is_dir())]
    for where in folders:
        if where.name.startswith(".") and where != project:
            continue
        numbered = sorted(
            (int(m.group(1)), p.name)
            for p in where.iterdir()
            if p.is_file() and (m := NUMBERED.match(p.name))
        )
        if len(numbered) < 2:
            continue
        group = f"numbered:{where.relative_to(project).as_posix()}"
        for i, (_, name) in enumerate(numbered):
            rel = (where / name).relative_to(project).as_posix()
            found.append(
                Candidate(
                    script_command(project, rel),
                    "numbered scripts, run in order",
                    NUMBERED_SCORE - i,
                    group,
                    file=rel,
                )
            )
    return found


def script_command(project: Path, rel: str) -> str:
    """How a script is run: python for .py, its shebang's shell (bash by default) for .sh."""
    if rel.endswith(".py"):
        return f"python {shlex.quote(rel)}"
    try:
        first = (project / rel).read_text(encoding="utf-8", errors="replace").split("\n", 1)[0]
    except OSError:
        first = ""
    shell = "sh" if re.match(r"#!\s*/bin/sh\b|#!\s*/usr/bin/env\s+sh\b", first) else "bash"
    return f"{shell} {shlex.quote(rel)}"


# --- Makefile ------------------------------------------------------------------------------

_RULE = re.compile(r"^([^\s:=#][^:=#]*?)\s*::?(?![=])")
_ASSIGN = re.compile(r"^\s*(?:override\s+|export\s+)?[A-Za-z0-9_.\-]+\s*(?::{1,3}=|\?=|\+=|!=|=)")
_DEFAULT_GOAL = re.compile(r"^\s*\.DEFAULT_GOAL\s*:?=\s*(\S+)")


def makefile_targets(text: str) -> tuple[list[str], str | None]:
    """The Makefile's explicit targets in order (no special .TARGETS, no pattern rules),
    and .DEFAULT_GOAL when it sets one."""
    targets: list[str] = []
    goal = None
    in_define = False
    for line in text.replace("\\\n", " ").splitlines():
        if in_define:
            in_define = not line.strip().startswith("endef")
            continue
        if line.startswith("\t") or not line.strip() or line.lstrip().startswith("#"):
            continue
        if line.strip().startswith("define "):
            in_define = True
            continue
        match = _DEFAULT_GOAL.match(line)
        if match:
            goal = match.group(1)
            continue
        if _ASSIGN.match(line):
            continue
        rule = _RULE.match(line)
        if not rule:
            continue
        for name in rule.group(1).split():
            if name.startswith(".") or "%" in name or "$" in name:
                continue
            if name not in targets:
                targets.append(name)
    return targets, goal


def default_target(text: str) -> str | None:
    targets, goal = makefile_targets(text)
    return goal or (targets[0] if targets else None)


def _makefile(project: Path) -> list[Candidate]:
    path = next((project / n for n in MAKEFILES if (project / n).is_file()), None)
    if path is None:
        return []
    text = path.read_text(encoding="utf-8", errors="replace")
    targets, _ = makefile_targets(text)
    first = default_target(text)
    if first is None:
        return []
    if first in SETUP_TARGETS:
        study = next((t for t in STUDY_TARGETS if t in targets), None)
        if study is None:
            return []
        return [
            Candidate(
                f"make {study}", f"{path.name} target {study!r}", MAKEFILE_SCORE, file=path.name
            )
        ]
    return [
        Candidate("make", f"{path.name}'s default target {first!r}", MAKEFILE_SCORE, file=path.name)
    ]


# --- README --------------------------------------------------------------------------------

_FENCE = re.compile(r"^\s*(```+|~~~+)\s*([\w+-]*)")


def readme_commands(text: str) -> list[tuple[int, str]]:
    """(code block number, command) for each study command in the README's shell code
    blocks, in order: prompts stripped, continuation lines joined, setup lines left out."""
    found: list[tuple[int, str]] = []
    block = -1
    fence: str | None = None
    kind = ""
    pending = ""
    for line in text.splitlines():
        match = _FENCE.match(line)
        if fence is None:
            if match:
                fence, kind = match.group(1), match.group(2).lower()
                block += 1
            continue
        if line.strip().startswith(fence[:3]) and line.strip().strip(fence[0]) == "":
            fence, pending = None, ""
            continue
        if kind not in SHELL_FENCES:
            continue
        has_prompt = PROMPT.match(line) is not None
        if kind in ("console", "shell-session", "sh-session") and not has_prompt and not pending:
            continue  # a console block's other lines are the commands' output
        stripped = PROMPT.sub("", line, count=1) if not pending else line
        stripped = stripped.strip()
        if stripped.endswith("\\"):
            pending += stripped[:-1].rstrip() + " "
            continue
        command = (pending + stripped).strip()
        pending = ""
        if is_study_command(command):
            found.append((block, command))
    return found


def is_study_command(command: str) -> bool:
    """Whether a README line runs the study (python x.py, bash run.sh, make ...), rather
    than setting a machine up, or being a template to fill in."""
    if not command or command.startswith("#"):
        return False
    if re.search(r"<[^>]+>|\[[^\]]*\]|\.\.\.|\{\{", command):
        return False  # python run.py <config>: a template, not a command
    try:
        words = shlex.split(command, comments=True)
    except ValueError:
        return False
    while words and ENV_ASSIGNMENT.match(words[0]):
        words = words[1:]
    if not words:
        return False
    first = words[0]
    if first in SETUP_WORDS or (first not in RUN_WORDS and not first.startswith("./")):
        return False
    if first in ("python", "python3"):
        rest = words[1:]
        if not rest or (rest[0] in ("-m", "-c") and (len(rest) < 2 or rest[1] in SETUP_MODULES)):
            return False
        if rest[0] in ("setup.py", "-V", "--version", "-h", "--help"):
            return False
    return ".ipynb" not in command  # notebooks are [[notebooks]], executed cell by cell


SETUP_MODULES = frozenset(
    {"pip", "venv", "virtualenv", "ensurepip", "pytest", "build", "ipykernel"}
)


def script_of(command: str) -> str | None:
    """The script a command runs (python x.py, bash run.sh, ./run.sh), if it names one."""
    words = shlex.split(command, comments=True)
    while words and ENV_ASSIGNMENT.match(words[0]):
        words = words[1:]
    if words and words[0].startswith("./"):
        return words[0].removeprefix("./")
    script = next(
        (w for w in words[1:3] if w.endswith((".py", ".sh")) and not w.startswith("-")), None
    )
    return script.removeprefix("./") if script else None


def readme_candidates(project: Path) -> list[Candidate]:
    path = next((project / n for n in READMES if (project / n).is_file()), None)
    if path is None:
        return []
    text = path.read_text(encoding="utf-8", errors="replace")
    found = []
    for i, (block, command) in enumerate(readme_commands(text)):
        script = script_of(command)
        if script is not None and not (project / script).is_file():
            continue  # another project's script, or a stale README
        source = f"{path.name} code block"
        found.append(
            Candidate(command, source, README_SCORE - i, f"{path.name}:{block}", file=script)
        )
    return found


def run_name(command: str, taken: set[str]) -> str:
    """A run name from its command: make -> make, make figures -> figures,
    python scripts/run.py -> run; unique among `taken`."""
    try:
        words = shlex.split(command)
    except ValueError:
        words = command.split()
    while words and ENV_ASSIGNMENT.match(words[0]):
        words = words[1:]
    base = "main"
    if words:
        if words[0] == "make":
            targets = [w for w in words[1:] if not w.startswith("-") and "=" not in w]
            base = targets[0] if targets else "make"
        else:
            script = next(
                (w for w in words if w.endswith((".py", ".sh")) or w.startswith("./")), None
            )
            if script:
                base = Path(script).stem
    base = re.sub(r"[^A-Za-z0-9_.-]", "-", base).strip("-.") or "main"
    if not base[0].isalnum() or base.startswith("notebook"):
        base = f"run-{base}".replace("run--", "run-")
    name, n = base, 2
    while name in taken:
        name, n = f"{base}-{n}", n + 1
    return name
