"""The HTML report's resource parts: per point a compact capture-vs-replay comparison, and for
sweeps (several measured points) a timeline (queue wait, run) and resource bars. Plain HTML
and CSS (the page's CSP allows no script); the same report always gives the same text."""

from __future__ import annotations

from collections.abc import Callable
from html import escape

from repro.report.replay import PointReplay, ReplayReport
from repro.resource_usage import ResourceUsage, human_bytes

RESOURCES_CSS = """
table.usage{border-collapse:collapse;margin:.4em 0;font-size:.9em}
table.usage th,table.usage td{padding:.15em .7em;text-align:right;border-bottom:1px solid #eee}
table.usage th:first-child,table.usage td:first-child{text-align:left}
p.ended{margin:.2em 0;font-size:.9em}
p.ended.bad{color:#a40000}
.timeline{margin:.5em 0 1em}
.tl-row{display:flex;align-items:center;font-size:.85em;margin:2px 0}
.tl-label{width:14em;overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
.tl-track{position:relative;flex:1;height:12px;background:#f4f4f4}
.tl-wait,.tl-run{position:absolute;top:0;height:12px}
.tl-wait{background:#d8d8d8}
.tl-run{background:#3465a4}
.tl-run.bad{background:#cc0000}
.bars{display:grid;grid-template-columns:14em 1fr 7em;gap:2px 8px;font-size:.85em}
.bar{height:10px;background:#73d216;margin-top:4px}
"""

_ROWS: tuple[tuple[str, str], ...] = (
    ("wall", "wall time"),
    ("cpu", "CPU time"),
    ("cores", "cores (mean / peak)"),
    ("peak", "peak memory"),
    ("io", "read / written"),
    ("procs", "processes"),
)


def _cell(usage: ResourceUsage | None, row: str) -> str:
    if usage is None:
        return "—"
    match row:
        case "wall":
            return f"{usage.wall_s:.2f} s"
        case "cpu":
            return f"{usage.cpu_s:.2f} s"
        case "cores":
            return f"{usage.cores_mean:.1f} / {usage.cores_peak:.1f}"
        case "peak":
            return human_bytes(usage.peak_rss_bytes)
        case "io":
            return f"{human_bytes(usage.read_bytes)} / {human_bytes(usage.written_bytes)}"
        case _:
            return str(usage.processes)


def point_resources(point: PointReplay) -> str:
    """A small table, captured beside replayed, and what ended the replayed run; nothing when
    neither side was measured."""
    cap, rep = point.captured_usage, point.usage
    if cap is None and rep is None:
        return ""
    rows = "".join(
        f"<tr><td>{label}</td><td>{_cell(cap, key)}</td><td>{_cell(rep, key)}</td></tr>"
        for key, label in _ROWS
    )
    ended = ""
    if rep is not None:
        tone = "" if rep.ending.exit_code == 0 else " bad"
        ended = f'<p class="ended{tone}">ended: {escape(rep.ending.words)} ({rep.method})</p>'
    eff = ""
    if point.efficiency is not None and point.efficiency.cpu is not None:
        parts = [f"CPU {point.efficiency.cpu:.0%}"]
        if point.efficiency.memory is not None:
            parts.append(f"memory {point.efficiency.memory:.0%}")
        eff = f'<p class="ended">of what it requests: {", ".join(parts)}</p>'
    return (
        '<details class="resources" open><summary>resources</summary>'
        '<table class="usage"><thead><tr><th></th><th>captured</th><th>replayed</th></tr>'
        f"</thead><tbody>{rows}</tbody></table>{ended}{eff}</details>"
    )


def _label(point: PointReplay) -> str:
    return f"{point.run} {point.point_id}".strip()


def resources_section(report: ReplayReport) -> str:
    """For a replay of several measured points: when each waited and ran, and the peak
    memory and CPU time of each as bars; nothing for fewer than two."""
    measured = [(p, p.usage) for p in report.points if p.usage is not None]
    timed = [(p, u) for p, u in measured if u.started_at is not None]
    if len(measured) < 2:
        return ""
    parts = ['<h2>Resources</h2><section class="resources-all">']
    if timed:
        origin = min((u.started_at or 0) - (u.queue_wait_s or 0) for _, u in timed)
        end = max((u.started_at or 0) + u.wall_s for _, u in timed)
        span = max(end - origin, 1e-3)
        parts.append(
            f'<p class="note">Timeline: {span:.1f} s from the first submission or start; grey '
            "is the wait in the queue, blue the run (red: it did not exit 0).</p>"
            '<div class="timeline">'
        )
        for p, u in timed:
            start = (u.started_at or 0) - origin
            wait = u.queue_wait_s or 0.0
            tone = "" if u.ending.exit_code == 0 else " bad"
            parts.append(
                f'<div class="tl-row"><span class="tl-label">{escape(_label(p))}</span>'
                '<span class="tl-track">'
                f'<span class="tl-wait" style="left:{100 * (start - wait) / span:.2f}%;'
                f'width:{100 * wait / span:.2f}%"></span>'
                f'<span class="tl-run{tone}" style="left:{100 * start / span:.2f}%;'
                f'width:{max(0.3, 100 * u.wall_s / span):.2f}%" '
                f'title="{u.wall_s:.2f} s"></span></span></div>'
            )
        parts.append("</div>")
    bars: tuple[tuple[str, Callable[[ResourceUsage], float], Callable[[ResourceUsage], str]], ...]
    bars = (
        ("Peak memory", lambda u: float(u.peak_rss_bytes), lambda u: human_bytes(u.peak_rss_bytes)),
        ("CPU time", lambda u: u.cpu_s, lambda u: f"{u.cpu_s:.2f} s"),
    )
    for title, value, text in bars:
        top = max(value(u) for _, u in measured) or 1.0
        parts.append(f'<h3>{title}</h3><div class="bars">')
        for p, u in measured:
            parts.append(
                f"<span>{escape(_label(p))}</span>"
                f'<span><div class="bar" style="width:{100 * value(u) / top:.1f}%"></div></span>'
                f"<span>{text(u)}</span>"
            )
        parts.append("</div>")
    parts.append("</section>")
    return "".join(parts)
