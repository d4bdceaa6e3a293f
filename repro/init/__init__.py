"""`repro init`: write repro.toml from what the project has (never overwrites): the
environment capture will build, the runs a researcher would point at (chosen on a terminal,
with --run or --yes) and, with --try, the files each run writes, found by running it once.

Detection is `repro.init.detect`, run candidates `candidates`, the import guess `imports`,
metadata `metadata`, the file `writer`. The trial itself is capture's stages
(`repro.capture.trial.try_runs`), passed in by the caller: init never starts an operation.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from repro.config import CONFIG_NAME, parse_config
from repro.config.models import ProjectConfig
from repro.errors import ConfigExistsError, NoRunToTryError, ProjectNotFoundError, UsageError
from repro.init.candidates import Candidate, accepted_by_yes, run_name
from repro.init.detect import Detected, detect
from repro.init.writer import ChosenRun, render_config

if TYPE_CHECKING:
    from repro.capture.trial import Trial

__all__ = [
    "Asker",
    "ChosenRun",
    "Detected",
    "InitOptions",
    "InitResult",
    "detect",
    "init_project",
    "render_config",
]

Observer = Callable[[str], None]
TrialFn = Callable[[Path, ProjectConfig, Observer], "Trial"]


class Asker(Protocol):
    """Questions init asks on a terminal (the CLI implements them; none without one)."""

    def choose_runs(self, candidates: list[Candidate]) -> list[str]:
        """The commands to record: some candidates', or one typed in; [] for none."""
        ...

    def write_anyway(self, trial: Trial) -> bool:
        """A run failed in the trial: write repro.toml all the same?"""
        ...


@dataclass(frozen=True)
class InitOptions:
    project: Path
    runs: tuple[str, ...] = ()
    """--run: the commands to record, in order (they replace the candidates)."""
    yes: bool = False
    """--yes: accept the top-ranked proposal without asking."""
    try_runs: bool = False
    """--try: run the chosen runs once and record what they write."""


@dataclass(frozen=True)
class InitResult:
    config: Path
    detected: Detected
    runs: list[ChosenRun]
    trial: Trial | None
    questions: list[str]
    """What the author must still answer (before publishing, or before replay compares)."""


def _quiet(_msg: str) -> None:
    pass


def chosen_runs(options: InitOptions, found: Detected, ask: Asker | None) -> list[tuple[str, str]]:
    """(command, where it came from) of each run to record."""
    for command in options.runs:
        if not command.strip():
            raise UsageError(
                "--run needs a command, got an empty one",
                hint="repro init --run 'python analyse.py'",
            )
    if options.runs:
        return [(c.strip(), "--run") for c in options.runs]
    if options.yes:
        return [(c.command, c.source) for c in accepted_by_yes(found.candidates)]
    if ask is not None:
        sources = {c.command: c.source for c in found.candidates}
        picked = ask.choose_runs(found.candidates)
        return [(c, sources.get(c, "typed in")) for c in picked if c.strip()]
    return []


def _named(commands: list[tuple[str, str]]) -> list[ChosenRun]:
    taken: set[str] = set()
    runs = []
    for command, source in commands:
        name = run_name(command, taken)
        taken.add(name)
        runs.append(ChosenRun(name, command, source))
    return runs


def outputs_of(written: tuple[str, ...]) -> tuple[str, ...]:
    """The written files a run can declare: a name with {braces} would read as a sweep
    placeholder, so it is left to the author."""
    return tuple(w for w in written if "{" not in w and "}" not in w)


def _config(project: Path, found: Detected, runs: list[ChosenRun]) -> tuple[str, ProjectConfig]:
    text = render_config(project, found, runs)
    return text, parse_config(tomllib.loads(text), CONFIG_NAME, text)  # what we write, we read


def failure_of(trial: Trial) -> tuple[str, str]:
    """The one-line message and the output tail of the trial's failed run."""
    failed = next(r for r in trial.runs if not r.ok)
    how = "timed out" if failed.exit_code is None else f"failed with exit code {failed.exit_code}"
    lines = [ln.strip() for ln in failed.stderr_tail.splitlines() if ln.strip()]
    last = lines[-1] if lines else "(no output on stderr)"
    message = f"run {failed.name} ({failed.command}) {how} when tried: {last}"
    tail = ""
    for label, text in (("stderr", failed.stderr_tail), ("stdout", failed.stdout_tail)):
        kept = text.strip().splitlines()[-15:]
        if kept:
            tail += f"--- {label} (last lines) ---\n" + "\n".join(kept) + "\n"
    return message, tail


def init_project(
    options: InitOptions,
    *,
    ask: Asker | None = None,
    trial: TrialFn | None = None,
    say: Observer | None = None,
) -> InitResult:
    """Write DIR/repro.toml; refuse when one exists. With `options.try_runs`, `trial` runs
    the chosen runs (capture's stages) and their outputs are what they wrote."""
    from repro.errors import TrialFailedError

    project = options.project
    if project.exists() and not project.is_dir():
        raise ProjectNotFoundError(
            f"not a directory: {project}",
            hint=f"pass the project folder: repro init {project.parent}",
        )
    if not project.is_dir():
        raise ProjectNotFoundError(
            f"project directory not found: {project}",
            hint="pass the project folder (repro init DIR), or run repro init inside it",
        )
    target = project / CONFIG_NAME
    if target.exists():
        raise ConfigExistsError(f"{target} already exists; repro init never overwrites it")
    resolved = project.resolve()
    found = detect(resolved)
    runs = _named(chosen_runs(options, found, ask))
    tried = None
    if options.try_runs:
        if not runs and not found.notebooks:
            top = found.candidates[0].command if found.candidates else None
            raise NoRunToTryError(
                "--try: no run to try (none was found or chosen)"
                if top is None
                else f"--try: no run was chosen (the top candidate is: {top})",
                hint=(
                    f"pass --yes to try {top!r}, or --run CMD"
                    if top
                    else "name the command: repro init --try --run 'python analyse.py'"
                ),
            )
        if trial is None:
            raise TypeError("init_project(try_runs=True) needs the trial function")
        _, config = _config(resolved, found, runs)
        tried = trial(resolved, config, say or _quiet)
        by_name = {t.name: t for t in tried.runs if t.ok}
        runs = [
            replace(r, outputs=outputs_of(by_name[r.name].written), tried=True)
            if r.name in by_name
            else r
            for r in runs
        ]
        if not tried.ok and (ask is None or not ask.write_anyway(tried)):
            message, tail = failure_of(tried)
            raise TrialFailedError(message, details=[tail] if tail else [])
    text, _ = _config(resolved, found, runs)
    if target.exists():  # written while the trial ran
        raise ConfigExistsError(f"{target} already exists; repro init never overwrites it")
    with target.open("x", encoding="utf-8") as fh:
        fh.write(text)
    questions = found.metadata.questions()
    for run in runs:
        if not run.outputs:
            questions.append(f"outputs of run {run.name}: which files does it write?")
    if not runs:
        questions.append("runs: which command produces the results? ([[runs]])")
    return InitResult(target, found, runs, tried, questions)
