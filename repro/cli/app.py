"""The typer app: registers each command module, maps ReproError to its exit code, main()."""

from __future__ import annotations

import copy
import functools
import inspect
import os
import signal
import sys
from collections.abc import Callable
from typing import Annotated, ParamSpec, TypeVar

import typer
from typer.models import CommandInfo

from repro import __version__
from repro.cli import (
    cache,
    capture,
    cat,
    collect,
    diff,
    extract,
    fetch,
    history,
    init,
    inspect_cmd,
    keys,
    publish,
    replay,
    restamp,
    shell,
    verify,
    verify_attestation,
)
from repro.cli.examples import SHORT_HELP, epilog
from repro.cli.group import ReproGroup
from repro.cli.lazy import terminal
from repro.cli.options import Verbosity, set_verbosity, verbosity
from repro.errors import MachineFaultError, ReproError

P = ParamSpec("P")
R = TypeVar("R")

TERMINATED_EXIT = 128 + signal.SIGTERM
"""143, as a shell reports a process ended by SIGTERM."""


class Terminated(KeyboardInterrupt):
    """SIGTERM (timeout, CI cancellation, systemd, Slurm): stopped like Ctrl-C, by the same
    cleanup path (runs' process groups killed, containers killed, temporary folders removed)."""


def _on_sigterm(_signum: int, _frame: object) -> None:
    # Later SIGTERMs must not interrupt the cleanup this one starts. A handler (not SIG_IGN,
    # which exec keeps) so that anything started during the cleanup can still be stopped.
    signal.signal(signal.SIGTERM, lambda _s, _f: None)
    raise Terminated


def _fail(exc: ReproError, as_json: bool) -> typer.Exit:
    if verbosity().verbose:
        terminal.say(f"{type(exc).__name__}: exit {exc.exit_code}")
    if as_json:
        from repro.report.models import ErrorOutput

        terminal.emit_json(
            ErrorOutput(
                ok=False,
                error=exc.message,
                hint=exc.hint,
                exit_code=exc.exit_code,
                kind=type(exc).__name__,
                details=list(exc.details),
            )
        )
    terminal.error(exc.message, exc.hint, exc.details)
    return typer.Exit(exc.exit_code)


def handles_errors(func: Callable[P, R]) -> Callable[P, R]:
    """ReproError -> one line on stderr (and JSON on stdout with --json) and its exit code;
    Ctrl-C -> 130, SIGTERM -> 143, after the same cleanup."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except ReproError as exc:
            raise _fail(exc, bool(kwargs.get("as_json"))) from None
        except Terminated:
            terminal.interrupted("terminated")
            raise typer.Exit(TERMINATED_EXIT) from None
        except KeyboardInterrupt:
            terminal.interrupted()
            raise typer.Exit(130) from None
        except OSError as exc:
            # A full disk or a read-only file system anywhere is this machine's fault, not a
            # bug: one line. Any other OSError reaching here is a bug and keeps its traceback.
            command = func.__name__.removesuffix("_command")
            fault = MachineFaultError.from_os_error(exc, f"running repro {command}")
            if fault is None:
                raise
            raise _fail(fault, bool(kwargs.get("as_json"))) from None

    return wrapper


app = typer.Typer(
    name="repro",
    cls=ReproGroup,
    help="Make a computational study reproducible in one signed, deterministic capsule file.",
    epilog=epilog("repro"),
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    rich_markup_mode=None,  # plain help, as git and uv print it (and no rich import for it)
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)


def _show_version(value: bool) -> None:
    if value:
        sys.stdout.write(f"repro {__version__}\n")
        raise typer.Exit(0)


@app.callback(invoke_without_command=True)
def _root(
    quiet: Annotated[
        bool,
        typer.Option(
            "-q", "--quiet", help="No progress lines, bars or run output; results and errors only."
        ),
    ] = False,
    verbose: Annotated[
        int,
        typer.Option(
            "-v",
            "--verbose",
            count=True,
            show_default=False,
            help="More detail: the commands being run, an error's kind (repeatable).",
        ),
    ] = 0,
    _version: Annotated[
        bool,
        typer.Option(
            "-V",
            "--version",
            is_eager=True,
            callback=_show_version,
            help="Print the version and exit.",
        ),
    ] = False,
) -> None:
    set_verbosity(Verbosity(quiet=quiet, verbose=verbose))


def _register(
    group: typer.Typer,
    name: str,
    func: Callable[..., None],
    cls: type | None = None,
    group_name: str = "keys",
) -> None:
    full = f"repro {name}" if group is app else f"repro {group_name} {name}"
    group.command(name, cls=cls, epilog=epilog(full), short_help=SHORT_HELP.get(full))(
        handles_errors(func)
    )


_register(app, "init", init.init_command)
_register(app, "capture", capture.capture_command, capture.CaptureCommand)
_register(app, "verify", verify.verify_command)
_register(app, "inspect", inspect_cmd.inspect_command)
_register(app, "replay", replay.replay_command, replay.ReplayCommand)
_register(app, "diff", diff.diff_command)

keys_app = typer.Typer(
    help="Signing keys and the trust store.", no_args_is_help=True, epilog=epilog("repro keys")
)
_register(keys_app, "generate", keys.generate_command)
_register(keys_app, "list", keys.list_command)
_register(keys_app, "export", keys.export_command)
_register(keys_app, "trust", keys.trust_command)
_register(keys_app, "untrust", keys.untrust_command)
app.add_typer(keys_app, name="keys")

_register(app, "publish", publish.publish_command)
_register(app, "fetch", fetch.fetch_command)
_register(app, "verify-attestation", verify_attestation.verify_attestation_command)
_register(app, "history", history.history_command)
_register(app, "status", collect.status_command)
_register(app, "collect", collect.collect_command)

# Working with a capsule short of replaying it.
_register(app, "cat", cat.cat_command)
_register(app, "extract", extract.extract_command)
_register(app, "shell", shell.shell_command)
_register(app, "exec", shell.exec_command)
_register(app, "restamp", restamp.restamp_command)
cache_app = typer.Typer(
    help="repro's caches: sizes, last uses, pruning.",
    no_args_is_help=True,
    epilog=epilog("repro cache"),
)
_register(cache_app, "list", cache.list_command, group_name="cache")
_register(cache_app, "prune", cache.prune_command, group_name="cache")
app.add_typer(cache_app, name="cache")


def _help_only(info: CommandInfo) -> CommandInfo:
    """A stand-in for a command that is not being run: its help line, no parameters."""
    stub = copy.copy(info)
    stub.help = info.help or inspect.getdoc(info.callback)
    stub.callback, stub.cls, stub.epilog = _not_run, None, None
    return stub


def _not_run() -> None:
    raise RuntimeError("a help-only stand-in was invoked")


def only(name: str | None) -> typer.Typer:
    """`app` with every command but `name` (and every group but `name`) as a help-only
    stand-in: typer builds a command by inspecting its function's signature, which is most
    of the start-up once the imports are lazy, and one command line runs one command."""
    pruned = copy.copy(app)
    pruned.registered_commands = [
        c if c.name == name else _help_only(c) for c in app.registered_commands
    ]
    groups = []
    for group in app.registered_groups:
        if group.name != name and group.typer_instance is not None:
            sub = copy.copy(group.typer_instance)
            sub.registered_commands = [_help_only(c) for c in sub.registered_commands]
            group = copy.copy(group)
            group.typer_instance = sub
        groups.append(group)
    pruned.registered_groups = groups
    return pruned


def _command_name(argv: list[str]) -> str | None:
    """The command a command line runs: its first word that is not an option (the global
    options take no value)."""
    for word in argv:
        if word == "--":
            return None
        if not word.startswith("-"):
            return word
    return None


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point (`repro`, `python -m repro`)."""
    from repro.paths import sweep_scratch

    signal.signal(signal.SIGTERM, _on_sigterm)
    sweep_scratch()  # what repro processes killed earlier (SIGKILL) left in the temp folder
    args = list(sys.argv[1:] if argv is None else argv)
    # Shell completion walks every command: the whole app for it.
    runs = app if "_REPRO_COMPLETE" in os.environ else only(_command_name(args))
    runs(args=args, prog_name="repro")
