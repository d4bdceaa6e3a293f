"""The root click group: help screens without Python type names, usage errors in repro's style.

Typer renders a value's type (`--json <bool>`, `--run <list[str]>`, `{capsule}`); every
argument and option here gets a metavar instead (CMD, PATH, FILE, ...: METAVARS, else the
name in capitals), as git and uv print them. A usage error prints one `error:` line and a
`hint:` naming the next command, exits 2, and with --json also prints the error document on
stdout -- not typer's boxed panel, not pydantic's "Value error," prefix.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Collection, Sequence
from typing import Any

from typer import Abort

# typer >= 0.29 runs on its vendored click (see repro/cli/capture.py).
from typer._click import Command, Parameter
from typer._click.exceptions import ClickException, NoArgsIsHelpError, UsageError
from typer.core import TyperArgument, TyperGroup, TyperOption

from repro.errors import ExitCode

METAVARS = {
    # options
    "out": "FILE",
    "out_file": "FILE",
    "out_dir": "DIR",
    "run": "CMD",
    "output": "PATH",
    "data": "PATH",
    "requirements": "FILE",
    "python": "X.Y",
    "key": "FILE",
    "base_image": "IMAGE",
    "jobs": "N",
    "allow_secret": "PATH",
    "package": "SPEC",
    "workdir": "DIR",
    "report": "FILE",
    "point": "KEY=VALUE",
    "array_limit": "N",
    "zenodo_url": "URL",
    "new_version_of": "DOI",
    "community": "ID",
    "upload_type": "TYPE",
    "attestation": "FILE",
    "creator": "'FAMILY, GIVEN'",
    "badge": "FILE",
    "capsule": "CAPSULE",
    # arguments
    "directory": "DIR",
    "capsule_a": "A",
    "capsule_b": "B",
    "public_key": "FILE",
    "name_or_id": "KEY",
    "reference": "DOI",
    "attestations": "ATTESTATION",
}
"""The metavar of a parameter (by its Python name) that does not declare one."""


def metavar_of(param: Parameter) -> str | None:
    """What a parameter's value is called in help: None for a flag."""
    if isinstance(param, TyperOption) and (param.is_flag or param.count):
        return None
    if param.metavar is not None:
        return param.metavar
    choices = getattr(getattr(param, "type_descriptor", None), "choices", None)
    if choices:
        return "|".join(str(getattr(c, "value", c)) for c in choices)
    name = param.name or "value"
    return METAVARS.get(name, name.upper())


class ReproArgument(TyperArgument):
    """An argument shown by its metavar: CAPSULE, [DIR], ATTESTATION..."""

    def display_type_rich(self, ctx: Any) -> str | None:
        return None

    def _rich_display_name(self) -> str:
        name = self.display_name_raw
        return f"{name}..." if self.nargs != 1 else name

    def _usage_display_name(self) -> str:
        name = self._rich_display_name()
        return name if self.required else f"[{name}]"


class ReproOption(TyperOption):
    """An option shown with its metavar (`--run CMD`), a flag with none."""

    def display_type_rich(self, ctx: Any) -> str | None:
        return metavar_of(self)


def tidy(command: Command) -> None:
    """Metavars on every parameter of `command` and of its subcommands."""
    for param in command.params:
        if isinstance(param, TyperArgument):
            param.__class__ = ReproArgument
            param.metavar = metavar_of(param)
        elif isinstance(param, TyperOption):
            param.__class__ = ReproOption
    for sub in getattr(command, "commands", {}).values():
        tidy(sub)


def _first_line(text: str) -> str:
    text = " ".join(text.split())
    text = text.replace("Value error, ", "")  # pydantic's prefix, through typer's coercion
    text = re.sub(r"'(-\w)' / '(--[\w-]+)'", r"\1/\2", text)
    text = re.sub(r"'(--?[\w-]+)'", r"\1", text).rstrip(".")
    return text[:1].lower() + text[1:]


def usage_error_lines(
    exc: UsageError, argv: Sequence[str] = (), commands: Collection[str] = ()
) -> tuple[str, str]:
    """The one-line message and the hint of a command-line mistake."""
    message = _first_line(exc.format_message())
    path = exc.ctx.command_path if exc.ctx is not None else "repro"
    if path == "repro":
        # some mistakes come with no context though a command was named (`repro capture
        # --run` with no value: capture's own pre-parse): point to that command's help
        named = next((w for w in argv if not w.startswith("-")), None)
        if named in commands:
            path = f"repro {named}"
    hint = f"see {path} --help"
    if ". did you mean" in message.lower():
        message, _, suggestion = message.partition(". Did you mean ")
        hint = f"did you mean {suggestion.rstrip('?')}? ({path} --help lists the commands)"
    return message, hint


class ReproGroup(TyperGroup):
    """repro's root command: tidy help, repro-style usage errors."""

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        tidy(self)

    def main(  # type: ignore[override]
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        argv = list(sys.argv[1:] if args is None else args)
        try:
            rv = super().main(
                args=argv,
                prog_name=prog_name,
                complete_var=complete_var,
                standalone_mode=False,
                **extra,
            )
        except NoArgsIsHelpError as exc:
            exc.show()
            sys.exit(ExitCode.USAGE)
        except UsageError as exc:
            message, hint = usage_error_lines(exc, argv, self.commands)
            _report_usage_error(message, hint, "--json" in argv)
            sys.exit(ExitCode.USAGE)
        except Abort:
            sys.stderr.write("aborted\n")
            sys.exit(ExitCode.ERROR)
        except ClickException as exc:
            exc.show()
            sys.exit(exc.exit_code)
        if not standalone_mode:
            return rv
        sys.exit(rv if isinstance(rv, int) else 0)


def _report_usage_error(message: str, hint: str, as_json: bool) -> None:
    from repro.errors import UsageError as ReproUsageError
    from repro.report import terminal

    if as_json:
        from repro.report.models import ErrorOutput

        terminal.emit_json(
            ErrorOutput(
                ok=False,
                error=message,
                hint=hint,
                exit_code=ExitCode.USAGE,
                kind=ReproUsageError.__name__,
                details=[],
            )
        )
    terminal.error(message, hint)
