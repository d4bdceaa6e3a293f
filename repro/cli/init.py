"""`repro init`: write repro.toml from what the project has; choose its runs on a terminal
(or --run / --yes) and, with --try, run them once to find what they write."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from repro.cli.lazy import terminal
from repro.cli.options import AsJson, ProjectDir

if TYPE_CHECKING:
    from repro.capture.trial import Trial
    from repro.init.candidates import Candidate

RunCommands = Annotated[
    list[str] | None,
    typer.Option(
        "--run",
        help="A command to record as a run (repeatable; replaces the candidates found).",
    ),
]
Yes = Annotated[
    bool, typer.Option("--yes", "-y", help="Accept the top-ranked run proposal without asking.")
]
Try = Annotated[
    bool,
    typer.Option(
        "--try",
        help="Run the chosen runs once, in the environment capture builds, from a scratch "
        "copy, and record the files they write as their outputs.",
    ),
]


def parse_choice(answer: str, candidates: list[Candidate]) -> list[str]:
    """What was typed at the prompt: Enter = the top proposal; numbers (1, 1,3 or 1 3) =
    those candidates; none / 0 = no run; anything else = a command."""
    from repro.init.candidates import accepted_by_yes

    text = answer.strip()
    if not text:
        return [c.command for c in accepted_by_yes(candidates)]
    if text.lower() in ("none", "no", "n", "0", "-"):
        return []
    if re.fullmatch(r"\d+([\s,]+\d+)*", text):
        picked = []
        for part in re.split(r"[\s,]+", text):
            index = int(part)
            if not 1 <= index <= len(candidates):
                raise ValueError(f"{index} is not one of 1-{len(candidates)}")
            picked.append(candidates[index - 1].command)
        return list(dict.fromkeys(picked))
    return [text]


class TerminalAsker:
    """init's questions, asked on the terminal."""

    def choose_runs(self, candidates: list[Candidate]) -> list[str]:
        if candidates:
            terminal.err.print("Run candidates found, best first:")
            terminal.render_candidates(candidates)
            prompt = "Runs to record: numbers (e.g. 1 or 1,3), a command, or none [Enter: 1]:"
        else:
            prompt = "No run candidate found. The command that makes the results [Enter: none]:"
        while True:
            answer = terminal.ask(prompt)
            if not candidates and not answer.strip():
                return []
            try:
                return parse_choice(answer, candidates)
            except ValueError as exc:
                terminal.warn([str(exc)])

    def write_anyway(self, trial: Trial) -> bool:
        from repro.init import failure_of

        message, details = failure_of(trial)
        terminal.render_trial_failure(message, details)
        answer = terminal.ask("Write repro.toml anyway, the failed run without outputs? [y/N]")
        return answer.strip().lower() in ("y", "yes")


def init_command(
    directory: ProjectDir = Path(),
    run: RunCommands = None,
    yes: Yes = False,
    try_: Try = False,
    as_json: AsJson = False,
) -> None:
    """Write repro.toml from what the project has (never overwrites one)."""
    from repro.capture.trial import try_runs
    from repro.init import InitOptions, init_project
    from repro.report.models import InitOutput

    options = InitOptions(directory, tuple(run or ()), yes=yes, try_runs=try_)
    interactive = sys.stdin.isatty() and not as_json and not run and not yes
    # a failed trial is an error like any other: the run's output tail comes as its details
    result = init_project(
        options,
        ask=TerminalAsker() if interactive else None,
        trial=try_runs,
        say=terminal.say,
    )
    if as_json:
        terminal.emit_json(InitOutput.build(result))
    else:
        terminal.render_init(result)
