"""Render a ReplayReport as one self-contained HTML page: inline CSS, embedded images, one
small inline script (repro.report.navigation) allowed by its hash, nothing fetched."""

from __future__ import annotations

from html import escape
from pathlib import Path
from typing import assert_never

from repro import __version__
from repro.atomic import write_atomically
from repro.attestation.badge import badge_svg
from repro.attestation.check import CheckedAttestation, summarise
from repro.compare.verdict import OutputVerdict, Verdict
from repro.report import navigation
from repro.report.evidence import IMAGE_TYPES, Sides, evidence, locate, number, thumbnail
from repro.report.notebooks import CSS as NOTEBOOK_CSS
from repro.report.notebooks import notebook_tone, render_notebooks
from repro.report.replay import EnvironmentDifference, PointReplay, PointStatus, ReplayReport
from repro.report.resources_page import RESOURCES_CSS, point_resources, resources_section

VERDICT_ORDER: tuple[Verdict, ...] = (
    "identical",
    "within_tolerance",
    "different",
    "missing",
    "not_verified",
)

CSS = """
:root { --good:#1a7f37; --good-bg:#dafbe1; --bad:#cf222e; --bad-bg:#ffebe9;
  --warn:#9a6700; --warn-bg:#fff8c5; --line:#d0d7de; --muted:#57606a; --soft:#f6f8fa; }
* { box-sizing: border-box; }
body { margin: 0; background: #fff; color: #1f2328; line-height: 1.5;
  font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial,
  sans-serif; }
main { max-width: 1180px; margin: 0 auto; padding: 24px 28px 48px; }
h1 { font-size: 26px; margin: 2px 0 14px; line-height: 1.25; overflow-wrap: anywhere; }
.eyebrow { margin: 0; color: var(--muted); font-size: 13px; text-transform: uppercase;
  letter-spacing: .06em; }
h2 { font-size: 19px; margin: 34px 0 10px; padding-bottom: 6px;
  border-bottom: 1px solid var(--line); }
h3 { font-size: 16px; margin: 0; }
code, pre { font: 13px/1.45 ui-monospace, SFMono-Regular, Menlo, Consolas,
  "Liberation Mono", monospace; }
.banner { display: flex; align-items: center; gap: 14px; padding: 14px 18px;
  border-radius: 8px; border: 1px solid; font-weight: 700; font-size: 20px;
  letter-spacing: .04em; margin-bottom: 14px; }
.banner small { font-weight: 400; font-size: 14px; letter-spacing: 0; }
.banner.good { color: var(--good); background: var(--good-bg); border-color: #aceebb; }
.banner.bad { color: var(--bad); background: var(--bad-bg); border-color: #ffcecb; }
dl.meta { display: grid; grid-template-columns: max-content 1fr; gap: 4px 18px;
  margin: 0; }
dl.meta dt { color: var(--muted); }
dl.meta dd { margin: 0; overflow-wrap: anywhere; }
.chips { display: flex; flex-wrap: wrap; gap: 8px; margin: 4px 0 12px; }
.badge, .chip { display: inline-block; border-radius: 999px; padding: 1px 10px;
  font-size: 13px; font-weight: 600; white-space: nowrap; border: 1px solid transparent; }
.chip { font-size: 14px; padding: 3px 12px; }
.good { color: var(--good); background: var(--good-bg); border-color: #aceebb; }
.bad { color: var(--bad); background: var(--bad-bg); border-color: #ffcecb; }
.warn { color: var(--warn); background: var(--warn-bg); border-color: #f5e0a0; }
.none { color: var(--muted); background: var(--soft); border-color: var(--line); }
table { border-collapse: collapse; width: 100%; margin: 6px 0; }
th, td { text-align: left; vertical-align: top; padding: 6px 10px;
  border-bottom: 1px solid var(--line); overflow-wrap: anywhere; }
th { background: var(--soft); font-weight: 600; font-size: 13px; color: var(--muted); }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.muted, .note, .hashes { color: var(--muted); }
.note, .hashes { margin: 6px 0; font-size: 14px; }
.hashes { font-size: 12px; }
ul.warnings { margin: 0; padding: 10px 14px 10px 32px; background: var(--warn-bg);
  border: 1px solid #f5e0a0; border-radius: 8px; color: #4d3800; }
section.point { margin-top: 26px; border: 1px solid var(--line); border-radius: 8px;
  overflow: hidden; }
.point-head { display: flex; flex-wrap: wrap; align-items: center; gap: 8px 12px;
  padding: 10px 14px; background: var(--soft); border-bottom: 1px solid var(--line); }
.point-head .facts { margin-left: auto; color: var(--muted); font-size: 13px; }
.point-body { padding: 8px 14px 12px; }
.command { margin: 4px 0 8px; font-size: 13px; color: var(--muted); overflow-wrap: anywhere; }
.command code { color: #1f2328; }
pre { margin: 6px 0; padding: 10px 12px; background: var(--soft); border: 1px solid
  var(--line); border-radius: 6px; overflow-x: auto; white-space: pre; }
pre.stderr { background: #fff5f5; border-color: #ffcecb; max-height: 24em; }
pre.diff { padding: 6px 0; max-height: 36em; }
pre.diff span { display: block; padding: 0 12px; min-width: max-content; }
pre.diff .add { background: #e6ffec; color: #116329; }
pre.diff .del { background: #ffebe9; color: #82071e; }
pre.diff .hunk { background: #ddf4ff; color: #0550ae; }
pre.diff .file, pre.diff .meta { color: var(--muted); font-weight: 600; }
tr.evidence > td { background: #fbfcfd; padding: 4px 14px 14px; }
details > summary { cursor: pointer; color: var(--muted); font-size: 14px; margin: 6px 0; }
.images { display: grid; grid-template-columns: repeat(3, minmax(0, 1fr)); gap: 14px;
  margin: 8px 0; }
figure { margin: 0; }
figcaption { font-size: 13px; font-weight: 600; color: var(--muted); margin-bottom: 4px; }
figure img { display: block; width: 100%; height: auto; max-height: 560px;
  object-fit: contain; image-rendering: pixelated;
  border: 1px solid var(--line); border-radius: 4px;
  background: repeating-conic-gradient(#eee 0% 25%, #fff 0% 50%) 0 0 / 16px 16px; }
.absent { padding: 24px 10px; text-align: center; color: var(--muted); font-size: 13px;
  border: 1px dashed var(--line); border-radius: 4px; }
table.outputs { table-layout: fixed; }
col.c-path { width: 28%; } col.c-verdict { width: 130px; } col.c-dev { width: 140px; }
table.diffs td, table.diffs th { font-size: 13px; padding: 4px 8px; }
footer { margin-top: 40px; color: var(--muted); font-size: 12px; }
"""

# No network of any kind: images are data: URIs and the policy forbids everything else; the
# one script that may run is the page's own, by its hash.
CSP = (
    "default-src 'none'; img-src data:; style-src 'unsafe-inline'; "
    f"script-src '{navigation.SCRIPT_HASH}'"
)


def _tone(verdict: Verdict) -> str:
    """The colour class of a verdict: passing green, failing red, unchecked amber."""
    match verdict:
        case "identical" | "within_tolerance":
            return "good"
        case "different" | "missing":
            return "bad"
        case "not_verified":
            return "warn"
        case _:
            assert_never(verdict)


def _words(verdict: Verdict) -> str:
    return verdict.replace("_", " ")


def _verdict_badge(verdict: Verdict) -> str:
    return f'<span class="badge {_tone(verdict)}">{_words(verdict)}</span>'


def _status_badge(point: PointReplay) -> str:
    status: PointStatus = point.status
    match status:
        case "ok":
            return '<span class="badge good">ok</span>'
        case "failed":
            code = "" if point.exit_code is None else f" · exit {point.exit_code}"
            return f'<span class="badge bad">failed{code}</span>'
        case "timed_out":
            code = "" if point.exit_code is None else f" · exit {point.exit_code}"
            return f'<span class="badge bad">timed out{code}</span>'
        case _:
            assert_never(status)


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


def _point_label(point: PointReplay) -> str:
    return navigation.label(point)


def _header(report: ReplayReport) -> str:
    tone, word = ("good", "REPRODUCED") if report.reproduced else ("bad", "NOT REPRODUCED")
    n_out = sum(len(p.outputs) for p in report.points)
    meta = [
        ("Capsule id", f"<code>{escape(report.capsule_id)}</code>"),
        ("Capsule file", escape(report.capsule)),
        ("Signature", escape(report.signature)),
        ("Target", escape(report.target)),
        ("Isolation", escape(report.isolation)),
        ("Started", escape(report.started)),
        ("Duration", _duration(report.duration_s)),
    ]
    if report.workdir is not None:
        meta.append(("Workdir", f"<code>{escape(report.workdir)}</code>"))
    rows = "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in meta)
    return (
        '<p class="eyebrow">repro · replay report</p>'
        f"<h1>{escape(report.title)}</h1>"
        f'<div class="banner {tone}">{word}'
        f"<small>{len(report.points)} run point(s), {n_out} output(s)"
        + (f", {len(report.notebooks)} notebook(s)" if report.notebooks else "")
        + "</small></div>"
        f'<dl class="meta">{rows}</dl>'
    )


def _summary(report: ReplayReport) -> str:
    parts = ['<h2 id="summary">Summary</h2>']
    if report.points:
        chips = []
        for verdict in VERDICT_ORDER:
            n = report.counts.get(verdict, 0)
            tone = _tone(verdict) if n else "none"
            chips.append(f'<span class="chip {tone}">{n} {_words(verdict)}</span>')
        failed = sum(1 for p in report.points if p.status != "ok")
        parts.append(
            f'<div class="chips">{"".join(chips)}</div><div class="chips">'
            f'<span class="chip {_clean_tone(report, failed)}">'
            f"{len(report.points) - failed} of {len(report.points)} run point(s) ran cleanly"
            "</span></div>"
        )
    if report.notebooks:
        notebooks = "".join(
            f'<span class="chip {notebook_tone(nb.verdict)}">notebook {escape(nb.path)}: '
            f"{nb.verdict.replace('_', ' ')}</span>"
            for nb in report.notebooks
        )
        parts.append(f'<div class="chips">{notebooks}</div>')
    return "".join(parts)


def _clean_tone(report: ReplayReport, failed: int) -> str:
    """Points that ran cleanly are no good news in a report that did not reproduce: the
    headline verdict wins, so no green there."""
    if failed:
        return "bad"
    return "good" if report.reproduced else "none"


def _point_badge(point: PointReplay) -> str:
    """The point as a whole: failed / timed out, else its outputs' verdict (never a green
    "ok" for a point whose outputs differ)."""
    if point.status != "ok":
        return _status_badge(point)
    verdict = navigation.point_verdict(point)
    return (
        f'<span class="badge {navigation.point_tone(verdict)}">'
        f"{navigation.point_words(verdict)}</span>"
    )


def _thumbnails(point: PointReplay, capsule_root: Path, project: Path) -> str:
    """The figures that reproduced, small; a click enlarges them."""
    expected_root = capsule_root / "data" / "results" / point.run / point.point_id
    shown = []
    for output in point.outputs:
        if output.verdict != "identical":
            continue
        if Path(output.path).suffix.lower() not in IMAGE_TYPES:
            continue
        path = locate(project, output.path)[0] or locate(expected_root, output.path)[0]
        shown.append(thumbnail(output.path, path))
    if not shown:
        return ""
    return f'<p class="out-label">reproduced figures</p><div class="thumbs">{"".join(shown)}</div>'


def _warnings(report: ReplayReport) -> str:
    if not report.warnings:
        return ""
    items = "".join(f"<li>{escape(w)}</li>" for w in report.warnings)
    return f'<h2 id="warnings">Warnings</h2><ul class="warnings">{items}</ul>'


def _environment(diffs: list[EnvironmentDifference]) -> str:
    if not diffs:
        return (
            '<h2 id="environment">Environment</h2>'
            '<p class="note">Same as the captured environment.</p>'
        )

    def cell(value: str | None) -> str:
        return '<span class="muted">absent</span>' if value is None else escape(value)

    rows = "".join(
        f"<tr><td>{escape(d.what)}</td><td>{cell(d.captured)}</td><td>{cell(d.replayed)}</td></tr>"
        for d in diffs
    )
    return (
        '<h2 id="environment">Environment differences</h2><table><thead><tr><th>what</th>'
        "<th>captured</th>"
        f"<th>replayed</th></tr></thead><tbody>{rows}</tbody></table>"
    )


def _deviation(output: OutputVerdict) -> str:
    parts = []
    if output.max_abs_deviation is not None:
        parts.append(f"abs {number(output.max_abs_deviation)}")
    if output.max_rel_deviation is not None:
        parts.append(f"rel {number(output.max_rel_deviation)}")
    return "<br>".join(parts)


def _output_rows(point: PointReplay, capsule_root: Path, project: Path) -> str:
    expected_root = capsule_root / "data" / "results" / point.run / point.point_id
    rows = []
    for output in point.outputs:
        rows.append(
            f"<tr><td><code>{escape(output.path)}</code></td>"
            f"<td>{_verdict_badge(output.verdict)}</td>"
            f"<td>{escape(output.detail)}</td>"
            f'<td class="num">{_deviation(output)}</td></tr>'
        )
        if output.verdict not in ("different", "within_tolerance"):
            continue
        expected, why_e = locate(expected_root, output.path)
        actual, why_a = locate(project, output.path)
        why = [f"{side} file {w}" for side, w in (("expected", why_e), ("replayed", why_a)) if w]
        sides = Sides(expected, actual, "; ".join(why))
        body = evidence(output, sides)
        if output.verdict == "within_tolerance":
            body = f"<details><summary>Evidence (within tolerance)</summary>{body}</details>"
        rows.append(f'<tr class="evidence"><td colspan="4">{body}</td></tr>')
    return "".join(rows)


def _point(
    index: int, point: PointReplay, capsule_root: Path, project: Path, is_open: bool = True
) -> str:
    label = _point_label(point)
    facts = f"ran {_duration(point.duration_s)}"
    if point.status == "ok":
        facts = f"exit 0 · {facts}"
    if point.captured_duration_s is not None:
        facts += f" (captured {_duration(point.captured_duration_s)})"
    head = (
        f'<summary class="point-head"><h3>{escape(point.run)}</h3>'
        + (f"<code>{escape(label)}</code>" if label else "")
        + f'{_point_badge(point)}<span class="facts">{facts}</span></summary>'
    )
    body = [f'<p class="command">$ <code>{escape(point.command)}</code></p>']
    body.append(point_resources(point))
    if point.stderr_tail:
        body.append(
            f'<details open><summary>stderr (last lines)</summary><pre class="stderr">'
            f"{escape(point.stderr_tail)}</pre></details>"
        )
    if point.outputs:
        body.append(
            '<table class="outputs"><colgroup><col class="c-path"><col class="c-verdict"><col>'
            '<col class="c-dev"></colgroup>'
            "<thead><tr><th>output</th><th>verdict</th><th>detail</th>"
            '<th class="num">max deviation</th></tr></thead>'
            f"<tbody>{_output_rows(point, capsule_root, project)}</tbody></table>"
        )
    else:
        body.append('<p class="note">No outputs compared for this run point.</p>')
    body.append(_thumbnails(point, capsule_root, project))
    verdict = navigation.point_verdict(point)
    return (
        f'<details class="point" id="point-{index}" data-verdict="{verdict}"'
        f"{' open' if is_open else ''}>{head}"
        f'<div class="point-body">{"".join(body)}</div></details>'
    )


def _attestation(att: CheckedAttestation | None) -> str:
    """The signed attestation of this replay: its summary, and the badge derived from it."""
    if att is None:
        return ""
    summary = summarise([att])[0].sentence()
    return (
        '<h2 id="attestation">Attestation</h2><section class="attestation">'
        f'<div class="badge-svg">{badge_svg(att)}</div>'
        f"<p>{escape(att.describe())}</p>"
        f'<p class="note">Signed attestation: <code>{escape(att.source)}</code> '
        f"({escape(summary)}); check it with <code>repro verify-attestation "
        f"{escape(Path(att.source).name)}</code>.</p></section>"
    )


def _sections(
    report: ReplayReport, attestation: CheckedAttestation | None
) -> list[tuple[str, str]]:
    """The page's sections, for the table of contents: (id, title)."""
    sections = [("attestation", "Attestation")] if attestation is not None else []
    sections.append(("summary", "Summary"))
    if len(report.points) > 1:
        sections.append(("sweep", f"Points grid ({len(report.points)})"))
    if report.warnings:
        sections.append(("warnings", f"Warnings ({len(report.warnings)})"))
    sections.append(("environment", "Environment"))
    if report.points:
        sections.append(("points", "Run points"))
    if report.notebooks:
        sections.append(("notebooks", f"Notebooks ({len(report.notebooks)})"))
    return sections


def render_html(
    report: ReplayReport,
    capsule_root: Path,
    project: Path,
    attestation: CheckedAttestation | None = None,
) -> str:
    """The whole page; the same report and files always give the same text."""
    points = "".join(
        _point(i, p, capsule_root, project, navigation.card_open(report, p))
        for i, p in enumerate(report.points, start=1)
    )
    verdict = "reproduced" if report.reproduced else "not reproduced"
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{CSP}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Replay {escape(verdict)}: {escape(report.title)}</title>
<style>{CSS}{NOTEBOOK_CSS}{navigation.CSS}{RESOURCES_CSS}</style>
</head>
<body><main>
{_header(report)}
{navigation.contents(report, _sections(report, attestation))}
{_attestation(attestation)}
{_summary(report)}
{navigation.sweep_overview(report)}
{_warnings(report)}
{_environment(report.environment_differences)}
{resources_section(report)}
{'<h2 id="points">Run points</h2>' if report.points else ""}
{points}
{render_notebooks(report.notebooks, capsule_root, project)}
<footer>Written by repro {escape(__version__)}; self-contained, nothing fetched.</footer>
</main>
{navigation.ZOOM}
<script>{navigation.SCRIPT}</script>
</body>
</html>
"""


def write_html_report(
    report: ReplayReport,
    capsule_root: Path,
    project: Path,
    dest: Path,
    attestation: CheckedAttestation | None = None,
) -> None:
    """Write the report page to `dest` atomically (a temp file in its folder, then a rename)."""
    text = render_html(report, capsule_root, project, attestation)
    write_atomically(dest, text.encode("utf-8"), "the report")
