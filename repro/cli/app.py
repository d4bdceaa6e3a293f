"""The typer app: registers each command module, maps ReproError to its exit code, main()."""

from __future__ import annotations

import functools
import signal
import sys
from collections.abc import Callable
from typing import Annotated, ParamSpec, TypeVar

import typer

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
from repro.errors import MachineFaultError, ReproError
from repro.paths import sweep_scratch
from repro.report import terminal

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
    help="Make a computational study reproducible in one signed, deterministic capsule file.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    add_completion=False,
)


@app.callback(invoke_without_command=True)
def _root(
    version: Annotated[bool, typer.Option("--version", help="Print the version.")] = False,
) -> None:
    if version:
        terminal.out.print(f"repro {__version__}")
        raise typer.Exit(0)


app.command("init")(handles_errors(init.init_command))
app.command("capture", cls=capture.CaptureCommand)(handles_errors(capture.capture_command))
app.command("verify")(handles_errors(verify.verify_command))
app.command("inspect")(handles_errors(inspect_cmd.inspect_command))
app.command("replay", cls=replay.ReplayCommand)(handles_errors(replay.replay_command))
app.command("diff")(handles_errors(diff.diff_command))

keys_app = typer.Typer(help="Signing keys and the trust store.", no_args_is_help=True)
keys_app.command("generate")(handles_errors(keys.generate_command))
keys_app.command("list")(handles_errors(keys.list_command))
keys_app.command("export")(handles_errors(keys.export_command))
keys_app.command("trust")(handles_errors(keys.trust_command))
keys_app.command("untrust")(handles_errors(keys.untrust_command))
app.add_typer(keys_app, name="keys")

app.command("publish")(handles_errors(publish.publish_command))
app.command("fetch")(handles_errors(fetch.fetch_command))
app.command("verify-attestation")(handles_errors(verify_attestation.verify_attestation_command))
app.command("history")(handles_errors(history.history_command))
app.command("status")(handles_errors(collect.status_command))
app.command("collect")(handles_errors(collect.collect_command))

# Working with a capsule short of replaying it.
app.command("cat")(handles_errors(cat.cat_command))
app.command("extract")(handles_errors(extract.extract_command))
app.command("shell")(handles_errors(shell.shell_command))
app.command("exec")(handles_errors(shell.exec_command))
app.command("restamp")(handles_errors(restamp.restamp_command))
cache_app = typer.Typer(help="repro's caches: sizes, last uses, pruning.", no_args_is_help=True)
cache_app.command("list")(handles_errors(cache.list_command))
cache_app.command("prune")(handles_errors(cache.prune_command))
app.add_typer(cache_app, name="cache")


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point (`repro`, `python -m repro`)."""
    signal.signal(signal.SIGTERM, _on_sigterm)
    sweep_scratch()  # what repro processes killed earlier (SIGKILL) left in the temp folder
    app(args=list(sys.argv[1:] if argv is None else argv), prog_name="repro")
