"""The typer app: registers each command module, maps ReproError to its exit code, main()."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Annotated, ParamSpec, TypeVar

import typer

from repro import __version__
from repro.cli import (
    capture,
    diff,
    fetch,
    history,
    init,
    inspect_cmd,
    keys,
    publish,
    replay,
    verify,
    verify_attestation,
)
from repro.errors import ReproError
from repro.report import terminal

P = ParamSpec("P")
R = TypeVar("R")


def handles_errors(func: Callable[P, R]) -> Callable[P, R]:
    """ReproError -> one line on stderr (and JSON on stdout with --json) and its exit code."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except ReproError as exc:
            if kwargs.get("as_json"):
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
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            terminal.interrupted()
            raise typer.Exit(130) from None

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


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point (`repro`, `python -m repro`)."""
    app(args=list(sys.argv[1:] if argv is None else argv), prog_name="repro")
