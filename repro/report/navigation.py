"""Finding one's way in a report page: each point's verdict, a table of contents, and for
sweeps a grid of points coloured by verdict with a filter; plus the page's one small script
(enlarge an image, filter, open the point a link leads to), allowed by its hash."""

from __future__ import annotations

import base64
import hashlib
from html import escape
from typing import Literal, assert_never

from repro.config.models import format_value
from repro.report.replay import PointReplay, ReplayReport

PointVerdict = Literal["reproduced", "different", "failed", "not_verified"]
"""One point as a whole: it ran and every output compared the same (reproduced), an output
differs or is missing (different), the command failed or timed out (failed), or nothing
of it could be checked (not_verified)."""
POINT_VERDICTS: tuple[PointVerdict, ...] = ("reproduced", "different", "failed", "not_verified")
OPEN_ALL_UP_TO = 20
"""Sweeps up to this many points show every card open; larger ones only those that did not
reproduce (the grid and the list open the others)."""


def point_verdict(point: PointReplay) -> PointVerdict:
    if point.status != "ok":
        return "failed"
    verdicts = {o.verdict for o in point.outputs}
    if verdicts & {"different", "missing"}:
        return "different"
    if verdicts and verdicts <= {"identical", "within_tolerance"}:
        return "reproduced"
    return "not_verified"


def point_tone(verdict: PointVerdict) -> str:
    match verdict:
        case "reproduced":
            return "good"
        case "different" | "failed":
            return "bad"
        case "not_verified":
            return "warn"
        case _:
            assert_never(verdict)


def point_words(verdict: PointVerdict) -> str:
    return "not reproduced" if verdict == "different" else verdict.replace("_", " ")


def card_open(report: ReplayReport, point: PointReplay) -> bool:
    return len(report.points) <= OPEN_ALL_UP_TO or point_verdict(point) != "reproduced"


def label(point: PointReplay) -> str:
    return ", ".join(f"{k}={format_value(v)}" for k, v in point.point.items())


def contents(report: ReplayReport, sections: list[tuple[str, str]]) -> str:
    """The table of contents: the page's sections (id, title), in order."""
    links = "".join(f'<a href="#{escape(i)}">{escape(t)}</a>' for i, t in sections)
    return f'<nav class="toc" aria-label="Contents">{links}</nav>'


def sweep_overview(report: ReplayReport) -> str:
    """For more than one point: the filter, the grid (one square per point, coloured by its
    verdict, a link to its card) and the list of points; nothing for a single point."""
    if len(report.points) < 2:
        return ""
    verdicts = [point_verdict(p) for p in report.points]
    buttons = [
        f'<button type="button" data-filter="all" aria-pressed="true">all {len(verdicts)}</button>'
    ]
    for v in POINT_VERDICTS:
        n = verdicts.count(v)
        if n:
            buttons.append(
                f'<button type="button" class="{point_tone(v)}" data-filter="{v}" '
                f'aria-pressed="false">{point_words(v)} {n}</button>'
            )
    cells = []
    rows = []
    for i, (point, v) in enumerate(zip(report.points, verdicts, strict=True), start=1):
        text = escape(f"{point.run} {label(point)}".strip())
        words = point_words(v)
        cells.append(
            f'<a class="cell {point_tone(v)} {v}" href="#point-{i}" data-verdict="{v}" '
            f'title="{text}: {words}" aria-label="point {i}, {text}: {words}">{i}</a>'
        )
        rows.append(
            f'<tr data-verdict="{v}"><td class="num">{i}</td><td><a href="#point-{i}">'
            f"{escape(point.run)}</a> <code>{escape(label(point))}</code></td>"
            f'<td><span class="badge {point_tone(v)}">{words}</span></td></tr>'
        )
    legend = "".join(
        f'<span><i class="cell {point_tone(v)} {v}"></i>{point_words(v)}</span>'
        for v in POINT_VERDICTS
    )
    return (
        '<section id="sweep" class="sweep"><h2>Points</h2>'
        f'<div class="filters" role="group" aria-label="Show points">{"".join(buttons)}</div>'
        f'<div class="grid" role="list">{"".join(cells)}</div>'
        f'<p class="legend">{legend}</p>'
        f"<details><summary>All {len(verdicts)} points as a list</summary>"
        '<table class="toc-points"><thead><tr><th class="num">#</th><th>point</th>'
        f"<th>verdict</th></tr></thead><tbody>{''.join(rows)}</tbody></table></details>"
        "</section>"
    )


ZOOM = '<dialog id="zoom" aria-label="Enlarged image"><img alt="enlarged"></dialog>'

SCRIPT = """(function () {
  var d = document, zoom = d.getElementById("zoom");
  function openTarget() {
    var el = location.hash && d.getElementById(location.hash.slice(1));
    if (el && el.tagName === "DETAILS") { el.open = true; }
  }
  d.addEventListener("click", function (e) {
    var t = e.target, img = t.closest && t.closest("img.zoom");
    if (img && zoom && zoom.showModal) {
      zoom.querySelector("img").src = img.src; zoom.showModal(); return;
    }
    if (zoom && t.closest && t.closest("#zoom")) { zoom.close(); return; }
    var f = t.closest && t.closest("button[data-filter]");
    if (f) {
      var v = f.getAttribute("data-filter");
      d.querySelectorAll("[data-verdict]").forEach(function (el) {
        el.hidden = v !== "all" && el.getAttribute("data-verdict") !== v;
      });
      d.querySelectorAll("button[data-filter]").forEach(function (b) {
        b.setAttribute("aria-pressed", String(b === f));
      });
    }
  });
  window.addEventListener("hashchange", openTarget);
  openTarget();
})();"""

SCRIPT_HASH = "sha256-" + base64.b64encode(hashlib.sha256(SCRIPT.encode()).digest()).decode()
"""The script's hash for the page's Content-Security-Policy: this script runs, no other."""

CSS = """
nav.toc { display: flex; flex-wrap: wrap; gap: 4px 14px; margin: 14px 0 0; font-size: 14px; }
nav.toc a, table.toc-points a { color: #0550ae; text-decoration: none; }
nav.toc a:hover, table.toc-points a:hover { text-decoration: underline; }
.filters { display: flex; flex-wrap: wrap; gap: 6px; margin: 6px 0 10px; }
.filters button { font: inherit; font-size: 13px; font-weight: 600; padding: 2px 12px;
  border-radius: 999px; border: 1px solid var(--line); background: #fff; cursor: pointer; }
.filters button[aria-pressed="true"] { outline: 2px solid #1f2328; outline-offset: 1px; }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(34px, 1fr));
  gap: 4px; margin: 6px 0; }
.grid .cell { display: block; text-align: center; font-size: 12px; line-height: 28px;
  border-radius: 4px; border: 1px solid; text-decoration: none; font-weight: 600; }
.grid .cell:hover, .grid .cell:focus { outline: 2px solid #1f2328; }
.legend { display: flex; flex-wrap: wrap; gap: 4px 16px; font-size: 13px;
  color: var(--muted); margin: 4px 0; }
.legend i.cell { display: inline-block; width: 12px; height: 12px; border: 1px solid;
  border-radius: 3px; margin-right: 5px; vertical-align: -1px; }
.grid .cell.failed, .legend i.failed { background: var(--bad); color: #fff; }
[hidden] { display: none !important; }
details.point > summary { list-style: none; cursor: pointer; }
details.point > summary::-webkit-details-marker { display: none; }
details.point > summary::before { content: "\\25B8"; color: var(--muted); }
details.point[open] > summary::before { content: "\\25BE"; }
details.point:target { outline: 3px solid #0969da; }
.thumbs { display: flex; flex-wrap: wrap; gap: 10px; margin: 8px 0; }
.thumb figure { width: 168px; }
.thumb figure img { max-height: 126px; }
img.zoom { cursor: zoom-in; }
dialog#zoom { padding: 0; border: 0; max-width: 96vw; max-height: 96vh; background: #fff; }
dialog#zoom::backdrop { background: rgba(0, 0, 0, .7); }
dialog#zoom img { display: block; max-width: 96vw; max-height: 96vh; cursor: zoom-out;
  image-rendering: pixelated; min-width: min(640px, 96vw); object-fit: contain; }
dl.pixels { font-size: 14px; margin: 6px 0; }
@media (max-width: 640px) {
  main { padding: 14px 12px 32px; }
  h1 { font-size: 21px; }
  .banner { font-size: 17px; flex-wrap: wrap; }
  dl.meta { grid-template-columns: 1fr; }
  dl.meta dt { margin-top: 4px; }
  .images, .sides { grid-template-columns: 1fr; }
  col.c-path { width: 34%; } col.c-verdict { width: 92px; } col.c-dev { width: 64px; }
  col.c-cell { width: 64px; }
  td.num, th.num { white-space: normal; }
  th, td { padding: 5px 6px; }
  .point-head .facts { margin-left: 0; }
  .thumb figure { width: 140px; }
  /* the outputs table as stacked rows: output and verdict, then the detail, full width */
  table.outputs, table.outputs > tbody, table.outputs > tbody > tr.evidence,
  table.outputs > tbody > tr.evidence > td { display: block; width: auto; }
  table.outputs > thead, table.outputs > colgroup { display: none; }
  table.outputs > tbody > tr:not(.evidence) { display: grid;
    grid-template-columns: minmax(0, 1fr) auto; border-bottom: 1px solid var(--line);
    padding: 4px 0; }
  table.outputs > tbody > tr:not(.evidence) > td { border: 0; padding: 2px 6px; }
  table.outputs > tbody > tr:not(.evidence) > td:nth-child(n+3) { grid-column: 1 / -1; }
  table.outputs > tbody > tr > td.num { text-align: left; }
  table.outputs > tbody > tr > td.num:empty { display: none; }
}
"""
