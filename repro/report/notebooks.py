"""The report's notebook sections: every cell's verdict, and for each cell that differs its
source with the recorded and the replayed outputs side by side (images with a difference
image). HTML from a notebook is shown as source, never rendered."""

from __future__ import annotations

import base64
import binascii
import io
import json
import re
from html import escape
from pathlib import Path
from typing import Any

from repro.compare.verdict import Verdict
from repro.errors import ReproError
from repro.report.evidence import (
    absent_figure,
    data_uri,
    differences_table,
    figure,
    image_figure,
    locate,
)
from repro.report.replay import CellVerdict, NotebookReplay, NotebookVerdict

IMAGE_MIME = ("image/png", "image/jpeg", "image/gif")
TEXT_CHARS = 20_000
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")

CSS = """
table.cells { table-layout: fixed; }
col.c-cell { width: 90px; }
.sides { display: grid; grid-template-columns: repeat(2, minmax(0, 1fr)); gap: 14px;
  margin: 8px 0; }
.sides pre { max-height: 28em; }
pre.source { background: #f6f8ff; border-color: #c8d1f0; }
.out-label { font-size: 13px; font-weight: 600; color: var(--muted); margin: 10px 0 2px; }
"""


def notebook_tone(verdict: NotebookVerdict | Verdict) -> str:
    """The colour class of a notebook's or a cell's verdict."""
    if verdict in ("identical", "within_tolerance"):
        return "good"
    return "warn" if verdict == "not_verified" else "bad"


def _badge(verdict: str, tone: str) -> str:
    return f'<span class="badge {tone}">{verdict.replace("_", " ")}</span>'


def _load(path: Path | None) -> Any:
    if path is None:
        return None
    from repro.notebooks.notebook import normalise, read_executed

    node = read_executed(path)
    return None if node is None else normalise(node)


def _cells(nb: Any) -> list[Any]:
    from repro.notebooks.notebook import original_cells

    return [] if nb is None else original_cells(nb)


def render_notebooks(notebooks: list[NotebookReplay], capsule_root: Path, project: Path) -> str:
    if not notebooks:
        return ""
    parts = ['<h2 id="notebooks">Notebooks</h2>']
    for i, nb in enumerate(notebooks, start=1):
        expected, _ = locate(capsule_root, nb.expected_path)
        executed = locate(project, nb.executed_path)[0] if nb.executed_path else None
        parts.append(_notebook(i, nb, _cells(_load(expected)), _cells(_load(executed))))
    return "".join(parts)


def _notebook(index: int, nb: NotebookReplay, cells_e: list[Any], cells_a: list[Any]) -> str:
    facts = f"ran {nb.duration_s:.1f} s"
    if nb.captured_duration_s is not None:
        facts += f" (captured {nb.captured_duration_s:.1f} s)"
    head = (
        f'<div class="point-head"><h3>{escape(nb.path)}</h3>'
        f"{_badge(nb.verdict, notebook_tone(nb.verdict))}"
        f'<span class="facts">{facts}</span></div>'
    )
    body = [f'<p class="note">{escape(nb.detail)}</p>']
    if nb.executed_path:
        body.append(
            f'<p class="command">executed notebook: <code>{escape(nb.executed_path)}</code> '
            "(in the replayed project)</p>"
        )
    if nb.error:
        body.append(
            "<details open><summary>error (last lines of the traceback)</summary>"
            f'<pre class="stderr">{escape(_ANSI.sub("", nb.error))}</pre></details>'
        )
    rows = []
    for cell in nb.cells:
        rows.append(
            f"<tr><td>{cell_label(cell.index, cells_e or cells_a)}</td>"
            f"<td>{_badge(cell.verdict, notebook_tone(cell.verdict))}</td>"
            f"<td>{escape(cell.detail)}</td></tr>"
        )
        if cell.verdict in ("different", "missing", "within_tolerance"):
            cell_e = cells_e[cell.index - 1] if cell.index <= len(cells_e) else None
            cell_a = cells_a[cell.index - 1] if cell.index <= len(cells_a) else None
            evidence = _cell_evidence(cell, cell_e, cell_a)
            if cell.verdict == "within_tolerance":
                evidence = (
                    f"<details><summary>Evidence (within tolerance)</summary>{evidence}</details>"
                )
            rows.append(f'<tr class="evidence"><td colspan="3">{evidence}</td></tr>')
    if rows:
        body.append(
            '<table class="cells"><colgroup><col class="c-cell"><col class="c-verdict"><col>'
            "</colgroup><thead><tr><th>cell</th><th>verdict</th><th>detail</th></tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table>"
        )
    return (
        f'<section class="point" id="notebook-{index}">{head}'
        f'<div class="point-body">{"".join(body)}</div></section>'
    )


def cell_label(index: int, cells: list[Any]) -> str:
    """A cell as Jupyter numbers it: `In [N]` by its recorded execution count, else its
    number among the code cells; the position over every cell (markdown too) in the title.
    `index` counts every cell from 1 (CellVerdict.index)."""
    cell = cells[index - 1] if 0 < index <= len(cells) else None
    where = f"cell {index} of the notebook, counting every cell"
    if cell is None or cell.get("cell_type") != "code":
        return f'<span title="{where}">cell {index}</span>'
    code_number = sum(1 for c in cells[:index] if c.get("cell_type") == "code")
    count = cell.get("execution_count")
    where = f"code cell {code_number}; {where}"
    shown = f"In [{count}]" if isinstance(count, int) else f"code cell {code_number}"
    return f'<span title="{where}">{shown}</span>'


def _cell_evidence(cell: CellVerdict, cell_e: Any, cell_a: Any) -> str:
    parts = []
    if cell_e is not None:
        parts.append(f'<pre class="source">{escape(_clip(cell_e.source))}</pre>')
    outs_e = list(cell_e.outputs) if cell_e is not None else []
    outs_a = list(cell_a.outputs) if cell_a is not None else []
    shown_any = False
    for n in range(max(len(outs_e), len(outs_a))):
        out_e = outs_e[n] if n < len(outs_e) else None
        out_a = outs_a[n] if n < len(outs_a) else None
        verdicts = [v for v in cell.outputs if v.path.split(":")[0] == f"output {n + 1}"]
        if verdicts and all(v.verdict == "identical" for v in verdicts):
            continue
        shown_any = True
        differing = [
            v.path.split(": ", 1)[1]
            for v in verdicts
            if v.verdict != "identical" and ": " in v.path
        ]
        parts.append(f'<p class="out-label">output {n + 1}</p>')
        parts.append(_side_by_side(out_e, out_a, differing))
        for v in verdicts:
            if v.method == "image":
                continue  # the difference image says it better than a list of pixels
            if v.differences and any(d.expected or d.actual for d in v.differences):
                parts.append(differences_table(v))
    if not shown_any and cell.verdict == "missing":
        parts.append('<p class="note">The replay did not execute this cell.</p>')
    return "".join(parts)


def _side_by_side(out_e: Any, out_a: Any, differing: list[str]) -> str:
    if not any(kind not in IMAGE_MIME for kind in differing):
        images = _image_pair(out_e, out_a)
        if images is not None:
            return images
    return (
        f'<div class="sides">{figure("recorded", _render(out_e, differing))}'
        f"{figure('replayed', _render(out_a, differing))}</div>"
    )


def _image_of(output: Any) -> tuple[str, bytes] | None:
    if output is None or output.output_type not in ("display_data", "execute_result"):
        return None
    for mime in IMAGE_MIME:
        value = output.get("data", {}).get(mime)
        if isinstance(value, str):
            try:
                return mime, base64.b64decode(value)
            except (binascii.Error, ValueError):
                return None
    return None


def _image_pair(out_e: Any, out_a: Any) -> str | None:
    image_e, image_a = _image_of(out_e), _image_of(out_a)
    if image_e is None and image_a is None:
        return None
    figures = []
    for caption, image in (("recorded", image_e), ("replayed", image_a)):
        if image is None:
            other = out_e if caption == "recorded" else out_a
            figures.append(figure(caption, _render(other)))
        else:
            figures.append(image_figure(caption, *image))
    if image_e is not None and image_a is not None:
        from repro.compare import difference_image

        try:
            diff = difference_image(io.BytesIO(image_e[1]), io.BytesIO(image_a[1]))
            figures.append(image_figure("difference", "image/png", diff))
        except (OSError, ValueError, ReproError) as exc:
            figures.append(absent_figure("difference", f"cannot compute: {exc}"))
    else:
        figures.append(absent_figure("difference", "needs both images"))
    return f'<div class="images">{"".join(figures)}</div>'


def _clip(text: str) -> str:
    return text if len(text) <= TEXT_CHARS else text[:TEXT_CHARS] + "\n…"


def _render(output: Any, differing: list[str] | None = None) -> str:
    """One output as safe HTML: text as text, HTML as its source, images embedded; of a rich
    display, the types that differ (else the first of image, plain text, ...)."""
    if output is None:
        return '<div class="absent">no such output</div>'
    kind = output.output_type
    if kind == "stream":
        return f'<pre title="{escape(output.name)}">{escape(_clip(output.text))}</pre>'
    if kind == "error":
        trace = _ANSI.sub("", "\n".join(output.get("traceback", [])))
        tail = "\n".join(trace.rstrip().splitlines()[-12:])
        head = f"{output.ename}: {output.evalue}"
        return f'<pre class="stderr">{escape(_clip(head + chr(10) + tail))}</pre>'
    data = output.get("data", {})
    shown = [k for k in differing or [] if k in data and k not in IMAGE_MIME]
    if shown:
        return "".join(
            f'<pre title="{escape(k)}">{escape(_clip(_as_text(data[k])))}</pre>' for k in shown
        )
    image = _image_of(output)
    if image is not None:
        return f'<img alt="{escape(image[0])}" src="{data_uri(*image)}">'
    for mime in ("text/plain", "text/markdown", "text/latex", "text/html"):
        if isinstance(data.get(mime), str):
            return f'<pre title="{mime}">{escape(_clip(data[mime]))}</pre>'

    if data:
        mime = sorted(data)[0]
        return f'<pre title="{escape(mime)}">{escape(_clip(_as_text(data[mime])))}</pre>'
    return '<div class="absent">empty output</div>'


def _as_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, indent=1, sort_keys=True)
