"""Compare a replayed notebook with the one recorded at capture, cell by cell.

Per output kind: streams and text/plain as text with the numbers in them compared under a
tolerance, JSON numerically, images by pixels, errors by name and message, anything else as
text. A cell's verdict is its worst output's; the notebook's is its worst cell's, or
"failed" when the replay raised, timed out or never produced a notebook.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from repro.capsule.manifest import NotebookRecord
from repro.compare.finding import Finding, shown
from repro.compare.numeric import compare_json, compare_text_numbers
from repro.compare.text import compare_text
from repro.compare.tolerance import Tolerance
from repro.compare.verdict import OutputVerdict, Verdict
from repro.config.models import CompareRule, NotebookSpec
from repro.notebooks.notebook import (
    cell_was_run,
    driver_message,
    error_summary,
    normalise,
    original_cells,
    read_executed,
)
from repro.report.replay import CellVerdict, NotebookReplay, NotebookVerdict, PointStatus

if TYPE_CHECKING:
    from nbformat import NotebookNode

    from repro.execution.runs import PointOutcome

TIMED_OUT = 124
"""The driver's exit code when a cell ran past the notebook's timeout."""
RASTER = ("image/png", "image/jpeg", "image/gif", "image/bmp", "image/webp")
_SEVERITY: dict[Verdict, int] = {
    "identical": 0,
    "not_verified": 0,
    "within_tolerance": 1,
    "missing": 2,
    "different": 3,
}


def default_rule(kind: str) -> CompareRule:
    """Numbers in text compared as numbers (exactly unless a tolerance is declared), JSON
    numerically, raster images pixel-exact, other types as text."""
    if kind in ("stream", "text/plain", "application/json") or kind.endswith("+json"):
        return CompareRule(method="numeric")
    if kind in RASTER:
        return CompareRule(method="image", pixel_tolerance=0.0)
    return CompareRule(method="text")


def rule_for(spec: NotebookSpec | None, kind: str) -> CompareRule:
    if spec is not None and kind in spec.compare:
        return spec.compare[kind]
    return default_rule(kind)


def load_expected(path: Path, what: str) -> NotebookNode:
    """An expected notebook from a (verified) capsule; junk in it is a malformed capsule."""
    import nbformat

    from repro.errors import MalformedCapsuleError

    try:
        nb = nbformat.read(path, as_version=4)
        nbformat.validate(nb)
        return normalise(nb)
    except Exception as exc:
        raise MalformedCapsuleError(
            f"the expected notebook {what} is not a valid notebook: {type(exc).__name__}"
        ) from None


def _load_replayed(path: Path, project: Path) -> tuple[NotebookNode | None, str | None]:
    """The executed notebook, only as a regular file inside the project (code the replay ran
    must not be able to point the comparison at another file of this machine)."""
    if path.is_symlink() or not path.exists():
        return None, None if not path.is_symlink() else "the executed notebook is a symlink"
    if not path.resolve().is_relative_to(project.resolve()) or not path.is_file():
        return None, "the executed notebook is not a regular file inside the project"
    node = read_executed(path)
    if node is None:
        return None, "the executed notebook cannot be read (half-written or not a notebook)"
    try:
        return normalise(node), None
    except Exception:  # schema-valid but odd content: the replay produced no usable notebook
        return None, "the executed notebook cannot be read (half-written or not a notebook)"


def compare_notebook(
    spec: NotebookSpec | None,
    record: NotebookRecord,
    expected_file: Path,
    project: Path,
    executed_rel: str,
    outcome: PointOutcome,
) -> NotebookReplay:
    """The verdict on one replayed notebook (the executed copy may not exist)."""
    result = outcome.result
    status: PointStatus = (
        "timed_out"
        if result.timed_out or result.exit_code == TIMED_OUT
        else "ok"
        if result.exit_code == 0
        else "failed"
    )
    base: dict[str, Any] = {
        "path": record.path,
        "status": status,
        "exit_code": result.exit_code,
        "duration_s": round(result.duration_s, 3),
        "captured_duration_s": record.duration_s,
        "usage": result.usage,
        "captured_usage": record.usage,
        "expected_path": record.capsule_path,
    }
    expected = load_expected(expected_file, record.capsule_path)
    actual, problem = _load_replayed(project / executed_rel, project)
    if actual is None:
        stderr = result.stderr_tail.strip()
        error = problem or stderr or "the notebook produced no executed copy"
        head = "timed out" if status == "timed_out" else "did not run"
        return NotebookReplay(
            **base,
            verdict="failed",
            detail=f"{head}: {problem or driver_message(error)}",
            executed_path=None,
            error=error[-4000:],
        )
    cells = list(_cells(spec, expected, actual))
    if status != "ok":
        summary = error_summary(actual)
        why = summary.splitlines()[0] if summary else driver_message(result.stderr_tail)
        head = "timed out" if status == "timed_out" else "failed"
        return NotebookReplay(
            **base,
            verdict="failed",
            detail=f"{head}: {why}",
            executed_path=executed_rel,
            error=(summary or result.stderr_tail.strip())[-4000:] or None,
            cells=cells,
        )
    verdict, detail = _roll_up(cells)
    return NotebookReplay(
        **base, verdict=verdict, detail=detail, executed_path=executed_rel, cells=cells
    )


def compare_expectations(
    spec: NotebookSpec | None, before: Path, after: Path
) -> tuple[NotebookVerdict, str]:
    """Two recorded notebooks (repro diff): the verdict and summary a replay would give."""
    cells = list(_cells(spec, load_expected(before, "A"), load_expected(after, "B")))
    return _roll_up(cells)


def _roll_up(cells: list[CellVerdict]) -> tuple[NotebookVerdict, str]:
    counts: dict[str, int] = {}
    for cell in cells:
        counts[cell.verdict] = counts.get(cell.verdict, 0) + 1
    summary = ", ".join(f"{n} {v.replace('_', ' ')}" for v, n in sorted(counts.items()))
    text = f"{len(cells)} code cell(s): {summary or 'none'}"
    bad = [c for c in cells if c.verdict in ("different", "missing")]
    if bad:
        return "different", f"{text}; first at cell {bad[0].index}"
    if any(c.verdict == "within_tolerance" for c in cells):
        return "within_tolerance", text
    if cells and all(c.verdict == "not_verified" for c in cells):
        return "not_verified", f"{text} (no outputs were recorded to compare with)"
    return "identical", text


def _cells(
    spec: NotebookSpec | None, expected: NotebookNode, actual: NotebookNode
) -> Iterable[CellVerdict]:
    cells_e, cells_a = original_cells(expected), original_cells(actual)
    # The driver says where it stopped when a cell ran out of time; an error says it itself.
    recorded = actual.metadata.get("repro", {})
    timed_out = recorded.get("stopped_at") if recorded.get("reason") == "timed out" else None
    stopped = timed_out or next(
        (
            i
            for i, c in enumerate(cells_a, start=1)
            if c.cell_type == "code"
            and "raises-exception" not in c.metadata.get("tags", [])
            and any(o.output_type == "error" for o in c.outputs)
        ),
        None,
    )
    for index, cell_e in enumerate(cells_e, start=1):
        if cell_e.cell_type != "code":
            continue
        cell_a = cells_a[index - 1] if index <= len(cells_a) else None
        cell_id = cell_e.get("id")
        if not cell_was_run(cell_e):
            yield CellVerdict(
                index=index,
                cell_id=cell_id,
                verdict="not_verified",
                detail="not compared: the cell had not been run when the notebook was captured",
            )
            continue
        if index == timed_out:
            yield CellVerdict(
                index=index,
                cell_id=cell_id,
                verdict="different",
                detail="did not finish: ran longer than the notebook's timeout",
            )
            continue
        if cell_a is None or cell_a.cell_type != "code" or not cell_was_run(cell_a):
            where = f" (the notebook stopped at cell {stopped})" if stopped else ""
            yield CellVerdict(
                index=index,
                cell_id=cell_id,
                verdict="missing",
                detail=f"not executed in the replay{where}",
            )
            continue
        yield _cell(spec, index, cell_id, cell_e.outputs, cell_a.outputs)


def _cell(
    spec: NotebookSpec | None, index: int, cell_id: str | None, outs_e: list[Any], outs_a: list[Any]
) -> CellVerdict:
    verdicts: list[OutputVerdict] = []
    for n in range(max(len(outs_e), len(outs_a))):
        out_e = outs_e[n] if n < len(outs_e) else None
        out_a = outs_a[n] if n < len(outs_a) else None
        verdicts += _output(spec, n + 1, out_e, out_a)
    if not verdicts:
        return CellVerdict(
            index=index, cell_id=cell_id, verdict="identical", detail="no output, as recorded"
        )
    worst = max(verdicts, key=lambda v: _SEVERITY[v.verdict])
    if _SEVERITY[worst.verdict] == 0:
        detail = f"{len(outs_e)} output(s) identical"
    else:
        detail = f"{worst.path}: {worst.detail}"
        if len(outs_e) != len(outs_a):
            detail = f"{len(outs_e)} output(s) recorded, {len(outs_a)} replayed; {detail}"
    return CellVerdict(
        index=index, cell_id=cell_id, verdict=worst.verdict, detail=detail, outputs=verdicts
    )


def describe_output(output: Any) -> str:
    """What an output is, in a few words: 'stream stdout', 'error ZeroDivisionError', ..."""
    kind = output.output_type
    if kind == "stream":
        return f"stream {output.name}"
    if kind == "error":
        return f"error {output.ename}: {shown(output.evalue, 120)}"
    return f"{kind} ({', '.join(sorted(output.get('data', {})))})"


def _output(spec: NotebookSpec | None, n: int, out_e: Any, out_a: Any) -> list[OutputVerdict]:
    if out_e is None or out_a is None:
        present = out_e if out_a is None else out_a
        verdict: Verdict = "missing" if out_a is None else "different"
        what = "not produced by the replay" if out_a is None else "not recorded at capture"
        return [
            OutputVerdict(
                path=f"output {n}",
                verdict=verdict,
                method="exact",
                detail=f"{describe_output(present)}: {what}",
            )
        ]
    kind_e, kind_a = out_e.output_type, out_a.output_type
    same_kind = kind_e == kind_a and (kind_e != "stream" or out_e.name == out_a.name)
    if not same_kind:
        return [
            OutputVerdict(
                path=f"output {n}",
                verdict="different",
                method="exact",
                detail=f"recorded {describe_output(out_e)}, replayed {describe_output(out_a)}",
            )
        ]
    if kind_e == "stream":
        return [_value(spec, f"output {n}: {out_e.name}", "stream", out_e.text, out_a.text)]
    if kind_e == "error":
        expected = f"{out_e.ename}: {out_e.evalue}"
        actual = f"{out_a.ename}: {out_a.evalue}"
        return [_value(None, f"output {n}: error", "error", expected, actual)]
    data_e, data_a = out_e.get("data", {}), out_a.get("data", {})
    if set(data_e) != set(data_a):
        return [
            OutputVerdict(
                path=f"output {n}",
                verdict="different",
                method="exact",
                detail=f"recorded types {', '.join(sorted(data_e))}; replayed "
                f"{', '.join(sorted(data_a))}",
            )
        ]
    return [
        _value(spec, f"output {n}: {mime}", mime, data_e[mime], data_a[mime])
        for mime in sorted(data_e)
    ]


def _value(
    spec: NotebookSpec | None, path: str, kind: str, expected: Any, actual: Any
) -> OutputVerdict:
    rule = rule_for(spec, kind) if kind != "error" else CompareRule(method="text")
    if expected == actual:
        finding = Finding(verdict="identical", detail="equal")
    else:
        finding = _finding(kind, rule, expected, actual)
    return OutputVerdict(
        path=path,
        verdict=finding.verdict,
        method=rule.method,
        detail=finding.detail,
        max_abs_deviation=finding.max_abs_deviation,
        max_rel_deviation=finding.max_rel_deviation,
        differing_fraction=finding.differing_fraction,
        differences=list(finding.differences),
    )


def _text(value: Any) -> bytes:
    if isinstance(value, str):
        return value.encode("utf-8", "surrogateescape")
    return json.dumps(value, sort_keys=True, indent=1, ensure_ascii=False).encode()


def _finding(kind: str, rule: CompareRule, expected: Any, actual: Any) -> Finding:
    method = rule.method
    if method == "image" and kind in RASTER:
        try:
            image_e = base64.b64decode(expected)
            image_a = base64.b64decode(actual)
        except (binascii.Error, TypeError, ValueError) as exc:
            return Finding(verdict="different", detail=f"not base64 image data: {exc}")
        from repro.compare.images import compare_images

        return compare_images(io.BytesIO(image_e), io.BytesIO(image_a), rule.pixel_tolerance or 0)
    if method == "numeric":
        tolerance = Tolerance.of(rule)
        if not isinstance(expected, str) and not isinstance(actual, str):
            return compare_json(_text(expected), _text(actual), tolerance)
        return compare_text_numbers(_text(expected), _text(actual), tolerance, rule.normalize)
    finding = compare_text(_text(expected), _text(actual), rule.normalize)
    if method == "exact" and finding.verdict == "identical":
        return Finding(verdict="different", detail="equal as text but not character for character")
    return finding
