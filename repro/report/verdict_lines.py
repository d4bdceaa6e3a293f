"""The replay's verdicts laid out for a terminal of a given width: one line per output.

`✓ results/metrics.json  identical`, `✗ results/figure.png  different: 1.2% of pixels`,
under a line per run point, the failed points' stderr tails beneath them. Nothing is wider
than the terminal and no word is cut by the terminal's own wrapping (a fingerprint, a
digest, a path): the layout wraps at spaces itself, and a path too long for its line is
shortened in the middle. Pure layout (a line is a list of (text, style) pieces); the
terminal renderer colours and prints it. Every piece of capsule text is passed through
`printable` here.
"""

from __future__ import annotations

import re
import textwrap

from repro.report.replay import NotebookReplay, PointReplay, ReplayReport
from repro.report.text import printable

Piece = tuple[str, str]
Line = list[Piece]

STDERR_LINES = 15
"""Lines of a failed point's stderr shown under it."""
MIN_WIDTH = 40

STYLE = {
    "identical": "green",
    "within_tolerance": "green",
    "different": "bold red",
    "missing": "bold red",
    "not_verified": "yellow",
    "failed": "bold red",
}
UNICODE_MARKS = {"good": "✓", "bad": "✗", "unknown": "?"}
ASCII_MARKS = {"good": "+", "bad": "x", "unknown": "?"}
_GOOD = {"identical", "within_tolerance"}
_NBSP = "\u00a0"
# Runs of text no wrap may cut: a key fingerprint (SHA256:abcd ef01 ...), an arrow's sides.
_UNBREAKABLE = re.compile(r"SHA256:[0-9a-f]{4}(?: [0-9a-f]{4})*")


def _mark(verdict: str, marks: dict[str, str]) -> str:
    if verdict in _GOOD:
        return marks["good"]
    return marks["unknown"] if verdict == "not_verified" else marks["bad"]


def wrap(text: str, width: int, indent: str = "", *, first: str | None = None) -> list[str]:
    """`text` (made printable) in lines of at most `width` columns, cut only at spaces (a
    word longer than a whole line is folded, as nothing else can fit it); a fingerprint is
    never cut. `first` is the first line's indent (default `indent`)."""
    protected = _UNBREAKABLE.sub(lambda m: m.group().replace(" ", _NBSP), printable(text))
    lines = textwrap.wrap(
        protected,
        width=max(MIN_WIDTH, width),
        initial_indent=indent if first is None else first,
        subsequent_indent=indent,
        break_on_hyphens=False,
        break_long_words=True,
    )
    return [line.replace(_NBSP, " ") for line in lines] or [indent if first is None else first]


def shorten_middle(text: str, width: int) -> str:
    """A path that fits in `width`: its start and its end, joined by an ellipsis."""
    if len(text) <= width:
        return text
    keep = max(1, width - 1)
    head = keep // 3
    return text[:head] + "…" + text[len(text) - (keep - head) :]


def _verdict_line(
    mark: str, what: str, verdict: str, detail: str, width: int, always_detail: bool
) -> list[Line]:
    """`  ✓ PATH  VERDICT: DETAIL`; the detail wrapped under it when it does not fit (for a
    good verdict it is left out then: the verdict says it)."""
    word = verdict.replace("_", " ")
    style = STYLE.get(verdict, "")
    room = width - len(f"  {mark} ") - len(f"  {word}")
    path = shorten_middle(printable(what), max(8, room))
    head: Line = [("  ", ""), (f"{mark} ", style), (path, ""), (f"  {word}", style)]
    used = sum(len(t) for t, _ in head)
    detail = printable(detail).strip()
    if not detail:
        return [head]
    if used + 2 + len(detail) <= width:
        return [[*head, (f": {detail}", "dim" if verdict in _GOOD else "")]]
    if not always_detail:
        return [head]
    return [head, *([(ln, "")] for ln in wrap(detail, width, " " * 6))]


def _point_header(p: PointReplay, width: int) -> list[Line]:
    label = p.run if not p.point_id or not p.point else f"{p.run} [{p.point_id}]"
    line: Line = [(shorten_middle(printable(label), width - 24), "bold")]
    if p.status == "failed":
        line.append((f"  run failed (exit {p.exit_code})", "bold red"))
    elif p.status == "timed_out":
        line.append((f"  run timed out after {p.duration_s:.0f} s", "bold red"))
    return [line]


def fold_output(line: str, width: int, first: str, rest: str) -> list[str]:
    """One line a program printed, made printable, in lines of at most `width` columns:
    its own indentation kept (a traceback's), cut at spaces where it can be."""
    body = printable(line.rstrip().expandtabs(4))
    folded = textwrap.wrap(
        body,
        width=max(MIN_WIDTH, width),
        initial_indent=first,
        subsequent_indent=rest,
        drop_whitespace=False,
        break_on_hyphens=False,
    )
    return [ln.rstrip() for ln in folded] or [first.rstrip()]


def stderr_tail(text: str, width: int, lines: int = STDERR_LINES) -> list[Line]:
    """The last `lines` non-empty lines of a failed run's stderr, under a heading, each
    made printable and wrapped at the width."""
    kept = [ln.rstrip() for ln in text.splitlines() if ln.strip()][-lines:]
    if not kept:
        return [[("    stderr: (empty)", "dim")]]
    out: list[Line] = [[(f"    stderr (last {len(kept)} line(s)):", "dim")]]
    for raw in kept:
        out += [[(ln, "")] for ln in fold_output(raw, width, " " * 6, " " * 10)]
    return out


def _point_lines(p: PointReplay, width: int, marks: dict[str, str]) -> list[Line]:
    lines = _point_header(p, width)
    if not p.outputs:
        lines.append([("  (no outputs)", "dim")])
    for v in p.outputs:
        mark = _mark(v.verdict, marks)
        lines += _verdict_line(mark, v.path, v.verdict, v.detail, width, v.verdict not in _GOOD)
    if p.status != "ok":
        lines += stderr_tail(p.stderr_tail, width)
    return lines


FOLD_POINTS = 20
"""A run with more sweep points than this shows the points that reproduced as one line."""


def _by_run(points: list[PointReplay]) -> list[tuple[str, list[PointReplay]]]:
    """The points grouped by run, runs and points in their order."""
    groups: dict[str, list[PointReplay]] = {}
    for p in points:
        groups.setdefault(p.run, []).append(p)
    return list(groups.items())


def _reproduced(p: PointReplay) -> bool:
    return p.status == "ok" and bool(p.outputs) and all(v.verdict in _GOOD for v in p.outputs)


def _folded_line(
    run: str, good: list[PointReplay], total: int, width: int, marks: dict[str, str]
) -> list[Line]:
    """`tiny  ✓ 998 of 1000 points reproduced: 998 outputs identical`."""
    tally: dict[str, int] = {}
    for p in good:
        for v in p.outputs:
            tally[v.verdict] = tally.get(v.verdict, 0) + 1
    outputs = ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in sorted(tally.items()))
    which = "every point" if len(good) == total else f"{len(good)} of {total} points"
    head = shorten_middle(printable(run), max(8, width // 3))
    text = f"{which} reproduced ({outputs})"
    prefix = f"{head}  {marks['good']} "
    rows = wrap(text, width, " " * 6, first=prefix)
    first: Line = [(head, "bold"), (f"  {marks['good']} ", "green"), (rows[0][len(prefix) :], "")]
    return [first, *([(ln, "")] for ln in rows[1:])]


def _notebook_lines(nb: NotebookReplay, width: int, marks: dict[str, str]) -> list[Line]:
    lines: list[Line] = [[(shorten_middle(printable(f"notebook {nb.path}"), width), "bold")]]
    mark = _mark(nb.verdict, marks)
    lines += _verdict_line(mark, "(notebook)", nb.verdict, nb.detail, width, True)
    for cell in nb.cells:
        if cell.verdict != "identical":
            lines += _verdict_line(
                _mark(cell.verdict, marks),
                f"cell {cell.index}",
                cell.verdict,
                cell.detail,
                width,
                True,
            )
    return lines  # its error (a traceback's tail) goes to stderr: terminal.render_replay


def _shown(what: str, value: str | None, side: str) -> str:
    """A side of an environment difference; an absent one in words, never `None`."""
    if value is not None and value != "None":
        return value
    if what.startswith("package "):
        return "(not in the lock)" if side == "captured" else "(not installed)"
    return "(none)"


def replay_lines(result: ReplayReport, width: int, *, unicode: bool = True) -> list[Line]:
    """Everything `repro replay` prints before its summary line, in lines shorter than
    `width` (a terminal's last column is left free: writing there wraps on some)."""
    width = max(MIN_WIDTH, width - 1)
    marks = UNICODE_MARKS if unicode else ASCII_MARKS
    lines: list[Line] = [[(ln, "bold")] for ln in wrap(result.title, width)]
    lines += [
        [(ln, "dim")]
        for ln in wrap(f"replay on {result.target} (isolation: {result.isolation})", width)
    ]
    for run, points in _by_run(result.points):
        if len(points) <= FOLD_POINTS:
            for p in points:
                lines += _point_lines(p, width, marks)
            continue
        # A large sweep: the points that reproduced fold into one line, the others in full.
        good = [p for p in points if _reproduced(p)]
        for p in points:
            if not _reproduced(p):
                lines += _point_lines(p, width, marks)
        if good:
            lines += _folded_line(run, good, len(points), width, marks)
    for nb in result.notebooks:
        lines += _notebook_lines(nb, width, marks)
    for d in result.environment_differences:
        before = _shown(d.what, d.captured, "captured")
        text = f"{d.what}: {before} -> {_shown(d.what, d.replayed, 'replayed')}"
        lines += [[(ln, "dim")] for ln in wrap(text, width, " " * 6, first="env   ")]
    return lines
