"""`repro cache list|prune`: repro's caches (environments, wheels, remote data, tool venvs,
downloaded capsules, repro-env Docker images), their sizes and last uses; pruned safely."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Annotated

import typer

from repro.cli.lazy import terminal
from repro.cli.options import AsJson

if TYPE_CHECKING:
    from repro.cache import Entry, Kind
    from repro.engines import ContainerEngine
    from repro.report.tools import CacheEntryOutput

KindOption = Annotated[
    list[str] | None,
    typer.Option(
        "--kind",
        metavar="KIND",
        help="Only this kind (repeatable): venvs, wheels, data, tools, zenodo, blocks, images; "
        "default: all.",
        show_default=False,
    ),
]


def _engine(kinds: list[Kind]) -> ContainerEngine | None:
    if "images" not in kinds:
        return None
    from repro.engines.docker_engine import DockerEngine

    return DockerEngine()


def _out(entry: Entry) -> CacheEntryOutput:
    from repro.report.tools import CacheEntryOutput

    return CacheEntryOutput(
        kind=entry.kind,
        name=entry.name,
        size=entry.size,
        last_used=entry.last_used,
        in_use=entry.in_use,
        path=entry.path,
    )


def _ago(stamp: float) -> str:
    seconds = max(0.0, time.time() - stamp)
    for unit, length in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= length:
            return f"{seconds / length:.0f}{unit} ago"
    return "just now"


def _rows(entries: list[Entry]) -> list[list[str]]:
    return [
        [
            e.kind,
            e.name if e.kind != "images" else f"{e.name[:12]} {e.path}",
            terminal.size(e.size),
            _ago(e.last_used),
            "in use" if e.in_use else "",
        ]
        for e in entries
    ]


HEADER = ("kind", "entry", "size", "last used", "")


def _totals(entries: list[Entry]) -> list[str]:
    """One line per kind, then the total (an image's size counts the layers it shares with
    other images, so the image total is an upper bound)."""
    kinds: dict[str, tuple[int, int]] = {}
    for e in entries:
        count, total = kinds.get(e.kind, (0, 0))
        kinds[e.kind] = (count + 1, total + e.size)
    lines = [
        f"{kind:<7}{count:>5} entries {terminal.size(total):>10}"
        + ("  (layers shared between images counted in each)" if kind == "images" else "")
        for kind, (count, total) in kinds.items()
    ]
    size = terminal.size(sum(e.size for e in entries))
    return [*lines, f"total  {len(entries):>5} entries {size:>10}"]


def list_command(kind: KindOption = None, as_json: AsJson = False) -> None:
    """Every cache entry with its size and last use, and the total."""
    from repro.cache import list_cache, parse_kinds
    from repro.paths import cache_dir
    from repro.report.tools import CacheListOutput

    kinds = parse_kinds(kind)
    engine = _engine(kinds)
    try:
        listing = list_cache(kinds, engine)
    finally:
        if engine is not None:
            engine.close()
    if as_json:
        terminal.emit_json(
            CacheListOutput(
                ok=True,
                cache_dir=str(cache_dir()),
                total=listing.total,
                entries=[_out(e) for e in listing.entries],
                warnings=listing.warnings,
            )
        )
        return
    terminal.warn(listing.warnings)
    terminal.render_rows(f"cache {cache_dir()}", HEADER, _rows(listing.entries))
    terminal.render_lines(
        [f"total {terminal.size(listing.total)} in {len(listing.entries)} entries"]
    )


def prune_command(
    older_than: Annotated[
        str | None,
        typer.Option(
            "--older-than", metavar="AGE", help="Entries not used for AGE (30d, 12h, 2w)."
        ),
    ] = None,
    keep_last: Annotated[
        int | None,
        typer.Option(
            "--keep-last", metavar="N", min=0, help="Keep the N most recently used of each kind."
        ),
    ] = None,
    everything: Annotated[bool, typer.Option("--all", help="Every entry not in use.")] = False,
    kind: KindOption = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Say what would go; remove nothing.")
    ] = False,
    as_json: AsJson = False,
) -> None:
    """Remove cache entries, never one in use.

    With --older-than and --keep-last both, an entry goes only when both say so."""
    from repro.cache import parse_age, parse_kinds, prune_cache
    from repro.report.tools import CachePruneOutput

    age = parse_age(older_than) if older_than is not None else None
    kinds = parse_kinds(kind)
    engine = _engine(kinds)
    try:
        result = prune_cache(
            older_than_s=age,
            keep_last=keep_last,
            everything=everything,
            kinds=kinds,
            dry_run=dry_run,
            engine=engine,
        )
    finally:
        if engine is not None:
            engine.close()
    if as_json:
        terminal.emit_json(
            CachePruneOutput(
                ok=True,
                dry_run=result.dry_run,
                freed=result.freed,
                removed=[_out(e) for e in result.removed],
                skipped=[_out(e) for e in result.skipped],
                kept=[_out(e) for e in result.kept],
                warnings=result.warnings,
            )
        )
        return
    terminal.warn(result.warnings)
    verb = "would remove" if dry_run else "removed"
    if result.removed:
        terminal.render_rows(verb, HEADER, _rows(result.removed))
    if result.skipped:
        terminal.render_rows("skipped: in use", HEADER, _rows(result.skipped))
    terminal.render_lines(
        [
            f"{verb} {len(result.removed)} entries, {terminal.size(result.freed)}; "
            f"kept {len(result.kept)}, skipped {len(result.skipped)} in use"
        ]
    )
