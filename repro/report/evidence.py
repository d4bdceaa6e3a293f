"""Evidence for one differing output: images side by side, a table of differences, a text diff."""

from __future__ import annotations

import base64
import difflib
from dataclasses import dataclass
from html import escape
from pathlib import Path, PurePosixPath

from repro.compare import difference_image, difference_summary
from repro.compare.verdict import Difference, OutputVerdict
from repro.errors import ReproError

IMAGE_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg"}
IMAGE_LIMIT = 5 << 20
"""Larger images are described, not embedded: the page must stay openable."""
TEXT_LIMIT = 1 << 20
DIFF_LINES = 200
LINE_CHARS = 400
"""Long lines (minified JSON) are cut so one line cannot swamp the page."""


@dataclass(frozen=True)
class Sides:
    """Where the expected and the replayed file of one output are, when they exist."""

    expected: Path | None
    actual: Path | None
    note: str = ""
    """Why a side is unavailable beyond simply not existing (a path escaping its root)."""


def locate(root: Path, rel: str) -> tuple[Path | None, str]:
    """The regular file `rel` under `root`, or None and why; never a path outside `root`.

    Output paths come from the capsule manifest, so a hostile capsule must not be able to
    pull an arbitrary file of the replaying machine into the report.
    """
    candidate = root.joinpath(*PurePosixPath(rel).parts)
    try:
        resolved = candidate.resolve()
    except (OSError, RuntimeError):
        return None, "cannot be resolved"
    if not resolved.is_relative_to(root.resolve()):
        return None, "points outside its folder, so it was not read"
    return (resolved if resolved.is_file() else None), ""


def _size(n: int) -> str:
    if n < 1 << 10:
        return f"{n} B"
    if n < 1 << 20:
        return f"{n / (1 << 10):.1f} KiB"
    return f"{n / (1 << 20):.1f} MiB"


def number(x: float | None) -> str:
    return "" if x is None else f"{x:.4g}"


def _note(text: str) -> str:
    return f'<p class="note">{escape(text)}</p>'


def data_uri(mime: str, data: bytes) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def figure(caption: str, body: str) -> str:
    return f"<figure><figcaption>{escape(caption)}</figcaption>{body}</figure>"


def _embeddable(path: Path | None) -> tuple[Path | None, str]:
    """The path when it can be embedded, else None and what to show instead."""
    if path is None:
        return None, "not available"
    size = path.stat().st_size
    if size > IMAGE_LIMIT:
        return None, f"{_size(size)}: larger than {_size(IMAGE_LIMIT)}, not embedded"
    return path, ""


def image_figure(caption: str, mime: str, data: bytes) -> str:
    """An embedded image; a click shows it enlarged (the page's script, `img.zoom`)."""
    return figure(
        caption, f'<img class="zoom" alt="{escape(caption)}" src="{data_uri(mime, data)}">'
    )


def thumbnail(caption: str, path: Path | None) -> str:
    """A reproduced figure, small (a click enlarges it); described when it cannot be shown."""
    embeddable, why = _embeddable(path)
    suffix = PurePosixPath(caption).suffix.lower()
    if embeddable is None or suffix not in IMAGE_TYPES:
        return f'<div class="thumb">{absent_figure(caption, why or "not an image")}</div>'
    shown = image_figure(caption, IMAGE_TYPES[suffix], embeddable.read_bytes())
    return f'<div class="thumb">{shown}</div>'


def absent_figure(caption: str, why: str) -> str:
    return figure(caption, f'<div class="absent">{escape(why)}</div>')


def image_evidence(sides: Sides, suffix: str) -> str:
    """Expected, replayed and (when both could be embedded) their difference image."""
    mime = IMAGE_TYPES[suffix]
    expected, why_expected = _embeddable(sides.expected)
    actual, why_actual = _embeddable(sides.actual)
    figures = [
        image_figure("expected", mime, expected.read_bytes())
        if expected
        else absent_figure("expected", why_expected),
        image_figure("replayed", mime, actual.read_bytes())
        if actual
        else absent_figure("replayed", why_actual),
    ]
    summary = ""
    if expected is None or actual is None:
        figures.append(absent_figure("difference", "needs both images"))
    else:
        try:
            difference = difference_image(expected, actual)
            figures.append(image_figure("difference", "image/png", difference))
            summary = pixel_summary(expected, actual)
        except (OSError, ValueError, ReproError) as exc:
            # An unreadable or truncated image is itself evidence; the page still renders.
            figures.append(absent_figure("difference", f"cannot compute: {exc}"))
    return f'<div class="images">{"".join(figures)}</div>{summary}'


def pixel_summary(expected: Path, actual: Path) -> str:
    """The numbers under a difference image: how many pixels differ, by how much, where
    (instead of a list of single pixels)."""
    s = difference_summary(expected, actual)
    if s.box is None:
        return _note("No pixel differs in the first frame.")
    left, top, right, bottom = s.box
    facts = [
        ("differing pixels", f"{s.differing:,} of {s.total:,} ({s.differing / s.total:.3%})"),
    ]
    if s.same_size:
        facts.append(("largest channel difference", number(s.max_difference)))
        facts.append(("mean difference of those pixels", number(s.mean_difference)))
    else:
        facts.append(("sizes", "differ: pixels present on one side only count as differing"))
    facts.append(
        (
            "where",
            f"x {left} to {right}, y {top} to {bottom} "
            f"(a box of {right - left + 1} by {bottom - top + 1} px)",
        )
    )
    rows = "".join(f"<dt>{escape(k)}</dt><dd>{escape(v)}</dd>" for k, v in facts)
    return f'<dl class="meta pixels">{rows}</dl>'


def differences_table(output: OutputVerdict) -> str:
    """The bounded sample of differences the comparison recorded, one row each."""
    rows = "".join(_difference_row(d) for d in output.differences)
    return (
        '<table class="diffs"><thead><tr><th>where</th><th>expected</th><th>replayed</th>'
        '<th class="num">|Δ|</th><th class="num">rel Δ</th></tr></thead>'
        f"<tbody>{rows}</tbody></table>"
    )


def _difference_row(d: Difference) -> str:
    def cell(value: str | None) -> str:
        return '<span class="muted">—</span>' if value is None else escape(value)

    return (
        f"<tr><td><code>{escape(d.where)}</code></td><td>{cell(d.expected)}</td>"
        f'<td>{cell(d.actual)}</td><td class="num">{number(d.abs_deviation)}</td>'
        f'<td class="num">{number(d.rel_deviation)}</td></tr>'
    )


def _read_text(path: Path) -> str | None:
    """The file as text when it is small enough and UTF-8 without NULs, else None."""
    if path.stat().st_size > TEXT_LIMIT:
        return None
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        return None
    return None if "\x00" in text else text


def _clip(line: str) -> str:
    return line if len(line) <= LINE_CHARS else line[:LINE_CHARS] + " …"


def text_diff(sides: Sides, rel: str) -> str | None:
    """A unified diff with added and removed lines coloured, or None when not text-like."""
    if sides.expected is None or sides.actual is None:
        return None
    before, after = _read_text(sides.expected), _read_text(sides.actual)
    if before is None or after is None:
        return None
    lines = list(
        difflib.unified_diff(
            before.splitlines(),
            after.splitlines(),
            fromfile=f"expected/{rel}",
            tofile=f"replayed/{rel}",
            lineterm="",
        )
    )
    if not lines:
        return _note("Line by line the text is the same: the files differ in line endings only.")
    shown = [_diff_line(line) for line in lines[:DIFF_LINES]]
    if len(lines) > DIFF_LINES:
        shown.append(
            f'<span class="meta">… {len(lines) - DIFF_LINES} more diff lines not shown</span>'
        )
    return f'<pre class="diff">{"".join(shown)}</pre>'


def _diff_line(line: str) -> str:
    if line.startswith(("+++", "---")):
        kind = "file"
    elif line.startswith("@@"):
        kind = "hunk"
    elif line.startswith("+"):
        kind = "add"
    elif line.startswith("-"):
        kind = "del"
    else:
        kind = "ctx"
    return f'<span class="{kind}">{escape(_clip(line)) or " "}</span>'


def _sha(value: str | None) -> str:
    return "—" if value is None else value[:12] + "…"


def evidence(output: OutputVerdict, sides: Sides) -> str:
    """Everything that shows how one output differs, as an HTML fragment."""
    parts: list[str] = []
    if sides.note:
        parts.append(_note(sides.note))
    suffix = PurePosixPath(output.path).suffix.lower()
    is_image = suffix in IMAGE_TYPES
    if output.differing_fraction is not None:
        unit = "pixels" if is_image else "values"
        parts.append(_note(f"{output.differing_fraction * 100:.3g} % of {unit} differ."))
    if is_image:
        parts.append(image_evidence(sides, suffix))
    # "line 7" with nothing else says less than the diff below it: only tabulate real values;
    # single pixels say less than the difference image and its summary.
    tabulate = not is_image and any(
        d.expected is not None or d.actual is not None or d.abs_deviation is not None
        for d in output.differences
    )
    if tabulate:
        parts.append(differences_table(output))
    diff = None if is_image else text_diff(sides, output.path)
    if diff is not None and tabulate and output.method == "numeric":
        parts.append(f"<details><summary>Unified diff</summary>{diff}</details>")
    elif diff is not None:
        parts.append(diff)
    elif not is_image and not tabulate:
        parts.append(_note("Not shown as text (binary, larger than 1 MiB, or a side is absent)."))
    parts.append(
        f'<p class="hashes">sha256 expected <code>{_sha(output.expected_sha256)}</code>'
        f" · replayed <code>{_sha(output.actual_sha256)}</code></p>"
    )
    return "".join(parts)
