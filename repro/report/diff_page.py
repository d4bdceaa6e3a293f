"""The HTML page of `repro diff A B --report FILE.html`: every change in a table, each text
file's unified diff, and figures (PNG, JPEG) of both capsules side by side with their
difference image, as replay's report shows them. Self-contained, nothing fetched."""

from __future__ import annotations

from html import escape
from pathlib import Path, PurePosixPath

from repro import __version__
from repro.atomic import write_atomically
from repro.compare import difference_image
from repro.errors import ReproError
from repro.report.diff import CapsuleDiff, DiffEntry
from repro.report.evidence import (
    IMAGE_LIMIT,
    IMAGE_TYPES,
    absent_figure,
    image_figure,
    locate,
)
from repro.report.page import CSP, CSS

DIFF_CSS = """
table.changes td:nth-child(1), table.changes td:nth-child(3), table.changes td:nth-child(4),
  table.changes td:nth-child(5), table.changes th { white-space: nowrap; }
section.change { margin-top: 22px; border: 1px solid var(--line); border-radius: 8px;
  padding: 8px 14px 12px; }
@media (max-width: 700px) { .images { grid-template-columns: 1fr; } }
"""


def _side(root: Path, member: str | None) -> tuple[Path | None, str]:
    if member is None:
        return None, "not in this capsule"
    path, why = locate(root, member)
    if path is not None and path.stat().st_size > IMAGE_LIMIT:
        return None, f"larger than {IMAGE_LIMIT >> 20} MiB, not embedded"
    return path, why or "not available"


def _figures(entry: DiffEntry, root_a: Path, root_b: Path) -> str:
    """A's image, B's, and the difference (B's pixels that differ from A's, in red)."""
    mime = IMAGE_TYPES[PurePosixPath(entry.name).suffix.lower()]
    a, why_a = _side(root_a, entry.a_path)
    b, why_b = _side(root_b, entry.b_path)
    figures = [
        image_figure("A", mime, a.read_bytes()) if a else absent_figure("A", why_a),
        image_figure("B", mime, b.read_bytes()) if b else absent_figure("B", why_b),
    ]
    if a is None or b is None:
        figures.append(absent_figure("difference", "needs both images"))
    else:
        try:
            figures.append(image_figure("difference", "image/png", difference_image(a, b)))
        except (OSError, ValueError, ReproError) as exc:
            figures.append(absent_figure("difference", f"cannot compute: {exc}"))
    return f'<div class="images">{"".join(figures)}</div>'


def _patch(text: str) -> str:
    spans = []
    for line in text.splitlines():
        kind = (
            "file"
            if line.startswith(("+++", "---"))
            else "hunk"
            if line.startswith("@@")
            else "add"
            if line.startswith("+")
            else "del"
            if line.startswith("-")
            else "ctx"
        )
        spans.append(f'<span class="{kind}">{escape(line) or " "}</span>')
    return f'<pre class="diff">{"".join(spans)}</pre>'


def _row(e: DiffEntry) -> str:
    cells = (e.kind, e.name, e.change, e.before or "", e.after or "", e.detail or "")
    return "<tr>" + "".join(f"<td>{escape(c)}</td>" for c in cells) + "</tr>"


def _section(e: DiffEntry, root_a: Path, root_b: Path) -> str:
    is_image = PurePosixPath(e.name).suffix.lower() in IMAGE_TYPES
    body = ""
    if is_image and (e.a_path or e.b_path):
        body = _figures(e, root_a, root_b)
    elif e.unified:
        body = _patch(e.unified)
    if not body:
        return ""
    detail = f'<p class="note">{escape(e.detail)}</p>' if e.detail else ""
    return (
        f'<section class="change"><h3>{escape(e.kind)}: <code>{escape(e.name)}</code> '
        f'<span class="badge none">{escape(e.change)}</span></h3>{detail}{body}</section>'
    )


def render_diff_html(diff: CapsuleDiff, root_a: Path, root_b: Path) -> str:
    """The whole page; the same two capsules always give the same text."""
    rows = "".join(_row(e) for e in diff.entries)
    sections = "".join(_section(e, root_a, root_b) for e in diff.entries)
    verdict = "same capsule" if diff.identical else f"{len(diff.entries)} change(s)"
    table = (
        '<table class="changes"><thead><tr><th>kind</th><th>name</th><th>change</th>'
        f"<th>A</th><th>B</th><th>detail</th></tr></thead><tbody>{rows}</tbody></table>"
        if diff.entries
        else '<p class="note">No differences.</p>'
    )
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{CSP}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>repro diff: {escape(verdict)}</title>
<style>{CSS}{DIFF_CSS}</style>
</head>
<body><main>
<p class="eyebrow">repro diff</p>
<h1>{escape(Path(diff.a).name)} → {escape(Path(diff.b).name)}: {escape(verdict)}</h1>
<dl class="meta"><dt>A</dt><dd><code>{escape(diff.a_id)}</code></dd>
<dt>B</dt><dd><code>{escape(diff.b_id)}</code></dd></dl>
<h2>Changes</h2>
{table}
{sections}
<footer>Written by repro {escape(__version__)}; self-contained, nothing fetched.</footer>
</main></body>
</html>
"""


def write_diff_report(diff: CapsuleDiff, root_a: Path, root_b: Path, dest: Path) -> None:
    write_atomically(
        dest, render_diff_html(diff, root_a, root_b).encode("utf-8"), "the diff report"
    )
