"""`repro status` and `repro collect`: detached slurm replays (this machine's cluster or one
reached over SSH), and `replay --host/--detach`, which start them."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from repro.cli.lazy import terminal
from repro.cli.options import AsJson
from repro.errors import ExitCode

if TYPE_CHECKING:
    from repro.replay.pipeline import ReplayOptions
    from repro.report.replay import ReplayReport

ReplayId = Annotated[str, typer.Argument(help="The replay id `repro replay --detach` printed.")]


def submit_detached(opts: ReplayOptions, host: str | None, as_json: bool) -> None:
    """`replay --detach`: submit here or over SSH, print the id."""
    from repro.replay import detached

    if host is None:
        record, path = detached.submit(opts, terminal.say)
    else:
        from repro.replay import remote

        record, connection = remote.submit(opts, host, terminal.say)
        connection.close()
        path = detached.record_path(record.id)
    result = record.detached(path)
    terminal.warn(result.warnings)
    if as_json:
        terminal.emit_json(result)
    else:
        terminal.render_detached(result)


def finish_replay(
    opts: ReplayOptions, host: str | None, report_html: Path | None, as_json: bool
) -> None:
    """`replay --host` (attached): submit there, wait, gather, judge here; exit 0 or 3."""
    from repro.replay import remote

    if host is None:  # pragma: no cover - the caller passes --host or --detach
        raise RuntimeError("finish_replay needs a host")
    _render(remote.replay(opts, host, terminal.say), report_html, as_json)


def _render(result: ReplayReport, report_html: Path | None, as_json: bool) -> None:
    terminal.warn(result.warnings)
    if as_json:
        terminal.emit_json(result)
    else:
        terminal.render_replay(result, report_html)
    raise typer.Exit(ExitCode.OK if result.reproduced else ExitCode.NOT_REPRODUCED)


def status_command(
    replay_id: Annotated[
        str | None, typer.Argument(help="A replay id; none: list the detached replays.")
    ] = None,
    as_json: AsJson = False,
) -> None:
    """Where a detached replay is: queued, running, done or failed, point by point."""
    from repro.replay import detached

    if replay_id is None:
        listing = detached.list_replays()
        if as_json:
            terminal.emit_json(listing)
        else:
            terminal.render_replay_list(listing)
        return
    record = detached.load(replay_id)
    if record.remote is None:
        result = detached.status(record)
    else:
        from repro.replay import remote

        connection = remote.connect(record)
        try:
            result = remote.status(record, connection)
        finally:
            connection.close()
    if as_json:
        terminal.emit_json(result)
    else:
        terminal.render_status(result)


def collect_command(
    replay_id: ReplayId,
    report: Annotated[
        Path | None, typer.Option("--report", help="Write a self-contained HTML report.")
    ] = None,
    no_wait: Annotated[
        bool, typer.Option("--no-wait", help="Fail (exit 1) instead of waiting when not done.")
    ] = False,
    as_json: AsJson = False,
) -> None:
    """Wait for a detached replay, gather its outputs, compare them (exit 0 or 3)."""
    from repro.replay import detached

    record = detached.load(replay_id)
    if record.remote is None:
        result = detached.collect(record, terminal.say, report, block=not no_wait)
    else:
        from repro.replay import remote
        from repro.report.detached import tally

        connection = remote.connect(record)
        try:
            if no_wait:
                now = remote.status(record, connection)
                if now.state not in ("done", "failed"):
                    raise detached.ReplayNotFinishedError(
                        f"replay {record.id} is not finished: " + tally(now.counts)
                    )
            result = remote.collect(record, connection, terminal.say, report)
        finally:
            connection.close()
    _render(result, report, as_json)
