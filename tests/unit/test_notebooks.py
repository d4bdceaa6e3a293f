"""Notebook reading, normalisation and the cell-by-cell comparison (no kernel needed)."""

from __future__ import annotations

import base64
import io
import json
import re
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output
from PIL import Image
from pydantic import ValidationError

from repro.capsule.manifest import KernelInfo, NotebookRecord
from repro.config.models import CompareRule, NotebookSpec, ProjectConfig
from repro.env.lock import Lock, parse_packages, with_packages
from repro.errors import NotebookError
from repro.execution.runs import CommandResult, PointOutcome
from repro.notebooks.compare import compare_notebook
from repro.notebooks.notebook import error_summary, normalise, notebook_run, read_notebook
from repro.report.replay import NotebookReplay

SHA = "0" * 64


def stdout(text: str) -> Any:
    return new_output("stream", name="stdout", text=text)


def result(data: dict[str, Any], count: int = 1) -> Any:
    return new_output("execute_result", data=data, execution_count=count)


def cell(*outputs: Any, source: str = "x", count: int | None = 1) -> Any:
    c = new_code_cell(source, execution_count=count)
    c.outputs = list(outputs)
    return c


def png(colour: tuple[int, int, int], odd_pixel: tuple[int, int, int] | None = None) -> str:
    image = Image.new("RGB", (10, 10), colour)
    if odd_pixel is not None:
        image.putpixel((3, 4), odd_pixel)
    out = io.BytesIO()
    image.save(out, format="PNG")
    return base64.b64encode(out.getvalue()).decode()


def record(path: str = "nb.ipynb", capsule_path: str = "x") -> NotebookRecord:
    return NotebookRecord(
        path=path,
        capsule_path=capsule_path,
        sha256=SHA,
        size=1,
        kernel=KernelInfo(name="python3", language="python"),
        executed=True,
        code_cells=1,
    )


def compare(
    expected_cells: list[Any],
    actual_cells: list[Any] | None,
    tmp_path: Path,
    spec: NotebookSpec | None = None,
    exit_code: int | None = 0,
    stderr: str = "boom",
) -> NotebookReplay:
    spec = spec or NotebookSpec(path="nb.ipynb")
    expected_file, actual_file = tmp_path / "expected.ipynb", tmp_path / "actual.ipynb"
    nbformat.write(new_notebook(cells=expected_cells), str(expected_file))
    if actual_cells is not None:
        nbformat.write(new_notebook(cells=actual_cells), str(actual_file))
    recorded = record(spec.path, "data/results/notebook.nb.ipynb/nb.ipynb")
    outcome = PointOutcome(
        spec.run_name,
        {},
        "_",
        "python ...",
        CommandResult(exit_code, 1.0, "", stderr if exit_code else ""),
        [],
        [],
    )
    return compare_notebook(spec, recorded, expected_file, tmp_path, "actual.ipynb", outcome)


# --- reading -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b'{"cells": [', "notebook nb.ipynb is not valid JSON: "),
        (b"\xff\xfe{}", "notebook nb.ipynb is not UTF-8 text"),
        (
            json.dumps(
                {"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": [{"id": "a"}]}
            ).encode(),
            "notebook nb.ipynb is not a valid notebook at cells/0",
        ),
        (b'{"nbformat": 9}', "notebook nb.ipynb cannot be read"),
    ],
)
def test_unreadable_notebooks_are_one_line_errors(
    tmp_path: Path, content: bytes, message: str
) -> None:
    (tmp_path / "nb.ipynb").write_bytes(content)
    with pytest.raises(NotebookError) as caught:
        read_notebook(tmp_path / "nb.ipynb", "nb.ipynb")
    assert caught.value.message.startswith(message)
    assert "\n" not in caught.value.message and caught.value.hint


def test_a_missing_notebook_names_the_config_entry(tmp_path: Path) -> None:
    with pytest.raises(NotebookError, match="not in the project") as caught:
        read_notebook(tmp_path / "gone.ipynb", "gone.ipynb")
    assert "[[notebooks]]" in caught.value.hint


def test_a_version_3_notebook_is_upgraded(tmp_path: Path) -> None:
    v3 = {
        "nbformat": 3,
        "nbformat_minor": 0,
        "metadata": {},
        "worksheets": [{"cells": [{"cell_type": "code", "input": "1", "outputs": []}]}],
    }
    (tmp_path / "old.ipynb").write_text(json.dumps(v3))
    nb = read_notebook(tmp_path / "old.ipynb", "old.ipynb")
    assert nb.nbformat == 4 and nb.cells[0].source == "1"


# --- config ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"path": "analysis.py"}, "must be an .ipynb file"),
        ({"path": "../up.ipynb"}, "plain relative path"),
        ({"path": "a.ipynb", "compare": {"plain": {}}}, "is not a MIME type"),
        ({"path": "a.ipynb", "timeout": 0}, "greater than 0"),
        ({"path": "a.ipynb", "parameters": {"1x": 1}}, "not a valid Python variable name"),
        ({"path": "a.ipynb", "parameters": {"class": 1}}, "not a valid Python variable name"),
    ],
)
def test_notebook_config_is_checked(entry: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        NotebookSpec.model_validate(entry)


def test_notebook_names_are_reserved_and_unique() -> None:
    with pytest.raises(ValidationError, match="reserved"):
        ProjectConfig.model_validate({"runs": [{"name": "notebook.x", "command": "true"}]})
    with pytest.raises(ValidationError, match="declared twice"):
        ProjectConfig.model_validate({"notebooks": [{"path": "a.ipynb"}, {"path": "a.ipynb"}]})
    with pytest.raises(ValidationError, match="would both run as 'notebook.a_b.ipynb'"):
        ProjectConfig.model_validate({"notebooks": [{"path": "a b.ipynb"}, {"path": "a/b.ipynb"}]})


def test_a_notebook_runs_as_one_internal_run() -> None:
    spec = NotebookSpec(path="nb/My Study.ipynb", timeout=30, parameters={"alpha": 0.5})
    run = notebook_run(spec, KernelInfo(name="python3", language="python"), 4)
    assert run.name == "notebook.nb_My_Study.ipynb" and run.points() == [{}]
    assert run.outputs == [".repro-notebooks/nb/My Study.ipynb"]
    assert "'nb/My Study.ipynb'" in run.command  # quoted for the shell
    assert """--parameters '{"alpha": 0.5}'""" in run.command
    assert run.timeout == 30 * 4 + 120


# --- normalisation -----------------------------------------------------------------------


def test_normalise_masks_what_is_volatile_and_keeps_the_rest() -> None:
    widget = {"model_id": "9f3c2a", "version_major": 2, "version_minor": 0}
    c = cell(
        stdout("<object at 0x7f3a2b1c9d10>\n"),
        stdout("more\n"),
        new_output("stream", name="stderr", text="warn\n"),
        stdout("last\n"),
        result({"text/plain": "<Foo at 0x7ffe12345678>"}),
        new_output(
            "display_data",
            data={"application/vnd.jupyter.widget-view+json": widget, "text/plain": "w"},
        ),
        new_output("error", ename="E", evalue="at 0x55d1c0ffee00", traceback=[]),
        count=7,
    )
    c.metadata["execution"] = {"iopub.execute_input": "2026-11-25T10:00:00Z"}
    nb = new_notebook(cells=[c])
    nb.metadata["widgets"] = {"state": {"9f3c2a": {}}}
    out = normalise(nb)
    outputs = out.cells[0].outputs
    assert [o.get("name") for o in outputs[:3]] == ["stdout", "stderr", "stdout"]
    assert outputs[0].text == "<object at 0x…>\nmore\n"  # merged, address masked
    assert outputs[3].data["text/plain"] == "<Foo at 0x…>"
    assert outputs[4].data["application/vnd.jupyter.widget-view+json"]["model_id"] == "<widget>"
    assert outputs[5].evalue == "at 0x…"
    assert "execution" not in out.cells[0].metadata and "widgets" not in out.metadata
    assert out.cells[0].execution_count == 7  # kept: it shows the cell ran
    assert nb.cells[0].outputs[0].text.startswith("<object at 0x7f3a")  # the input is untouched


def test_error_summary_names_the_cell_and_skips_expected_errors() -> None:
    tagged = cell(new_output("error", ename="ValueError", evalue="fine", traceback=[]))
    tagged.metadata["tags"] = ["raises-exception"]
    raised = cell(
        new_output(
            "error",
            ename="KeyError",
            evalue="'x'",
            traceback=["\x1b[0;31mKeyError\x1b[0m", "  line 3", "KeyError: 'x'"],
        )
    )
    summary = error_summary(new_notebook(cells=[new_markdown_cell("m"), tagged, raised]))
    assert summary is not None
    assert summary.splitlines()[0] == "cell 3 raised KeyError: 'x'"
    assert "\x1b" not in summary and summary.endswith("KeyError: 'x'")


# --- comparison --------------------------------------------------------------------------


def test_identical_notebooks(tmp_path: Path) -> None:
    cells = [new_markdown_cell("# t"), cell(stdout("n = 3\n")), cell(count=2)]
    replay = compare(cells, cells, tmp_path)
    assert replay.verdict == "identical" and replay.status == "ok"
    assert [(c.index, c.verdict) for c in replay.cells] == [(2, "identical"), (3, "identical")]


def test_numbers_in_text_use_the_declared_tolerance(tmp_path: Path) -> None:
    expected = [cell(stdout("mean 1.000000\n"), result({"text/plain": "0.3333333"}))]
    actual = [cell(stdout("mean 1.000001\n"), result({"text/plain": "0.3333334"}))]
    strict = compare(expected, actual, tmp_path)
    assert strict.verdict == "different" and strict.cells[0].verdict == "different"
    loose = NotebookSpec(
        path="nb.ipynb",
        compare={"stream": CompareRule(rtol=1e-5), "text/plain": CompareRule(rtol=1e-5)},
    )
    tolerant = compare(expected, actual, tmp_path, spec=loose)
    assert tolerant.verdict == "within_tolerance"
    assert {o.path for o in tolerant.cells[0].outputs} == {
        "output 1: stdout",
        "output 2: text/plain",
    }
    words = [cell(stdout("mean is 1\n"))]
    assert compare(words, [cell(stdout("median is 1\n"))], tmp_path, loose).verdict == "different"


def test_json_outputs_are_compared_numerically(tmp_path: Path) -> None:
    expected = [cell(result({"application/json": {"auc": 0.9, "n": [1, 2]}}))]
    near = [cell(result({"application/json": {"auc": 0.9000001, "n": [1, 2]}}))]
    spec = NotebookSpec(path="nb.ipynb", compare={"application/json": CompareRule(atol=1e-3)})
    within = compare(expected, near, tmp_path, spec)
    assert within.cells[0].outputs[0].method == "numeric"
    assert within.verdict == "within_tolerance"
    reshaped = [cell(result({"application/json": {"auc": 0.9, "n": [1]}}))]
    assert compare(expected, reshaped, tmp_path, spec).verdict == "different"


def test_images_are_compared_by_pixels(tmp_path: Path) -> None:
    expected = [cell(result({"image/png": png((255, 255, 255)), "text/plain": "<Figure>"}))]
    one_pixel = [
        cell(result({"image/png": png((255, 255, 255), (0, 0, 0)), "text/plain": "<Figure>"}))
    ]
    exact = compare(expected, one_pixel, tmp_path)
    image = next(o for o in exact.cells[0].outputs if o.path == "output 1: image/png")
    assert exact.verdict == "different" and image.method == "image"
    assert image.differing_fraction == pytest.approx(0.01)
    spec = NotebookSpec(path="nb.ipynb", compare={"image/png": CompareRule(pixel_tolerance=0.02)})
    assert compare(expected, one_pixel, tmp_path, spec).verdict == "within_tolerance"


def test_errors_compare_by_name_and_message(tmp_path: Path) -> None:
    def raised(evalue: str) -> Any:
        c = cell(new_output("error", ename="ValueError", evalue=evalue, traceback=["other"]))
        c.metadata["tags"] = ["raises-exception"]
        return c

    same = compare([raised("bad")], [raised("bad")], tmp_path)
    assert same.verdict == "identical" and same.cells[0].outputs[0].path == "output 1: error"
    assert compare([raised("bad")], [raised("worse")], tmp_path).verdict == "different"


def test_changed_kinds_and_counts_of_outputs(tmp_path: Path) -> None:
    expected = [cell(stdout("a\n"), stdout2 := new_output("stream", name="stderr", text="b\n"))]
    kinds = compare(expected, [cell(stdout("a\n"), result({"text/plain": "b"}))], tmp_path)
    assert "recorded stream stderr, replayed execute_result (text/plain)" in kinds.cells[0].detail
    fewer = compare(expected, [cell(stdout("a\n"))], tmp_path)
    assert fewer.cells[0].verdict == "missing"
    assert fewer.cells[0].detail.startswith("2 output(s) recorded, 1 replayed")
    # (two chunks of one stream are one output: normalisation joins them)
    more = compare(expected, [cell(stdout("a\n"), stdout2, result({"text/plain": "c"}))], tmp_path)
    assert more.verdict == "different" and "not recorded at capture" in more.cells[0].detail
    mimes = compare(
        [cell(result({"text/plain": "t"}))],
        [cell(result({"text/plain": "t", "text/html": "<b>t</b>"}))],
        tmp_path,
    )
    assert "recorded types text/plain; replayed text/html, text/plain" in mimes.cells[0].detail


def test_cells_never_run_before_capture_are_not_verified(tmp_path: Path) -> None:
    expected = [cell(count=None), cell(count=None)]
    replay = compare(expected, [cell(stdout("1\n")), cell()], tmp_path)
    assert [c.verdict for c in replay.cells] == ["not_verified", "not_verified"]
    assert replay.verdict == "not_verified"
    mixed = compare(
        [cell(stdout("1\n")), cell(count=None)], [cell(stdout("1\n")), cell()], tmp_path
    )
    assert mixed.verdict == "identical"


def test_a_replay_that_raised_is_failed_and_later_cells_missing(tmp_path: Path) -> None:
    expected = [cell(stdout("1\n")), cell(stdout("2\n"), count=2), cell(stdout("3\n"), count=3)]
    boom = new_output(
        "error", ename="ZeroDivisionError", evalue="division by zero", traceback=["1/0"]
    )
    actual = [cell(stdout("1\n")), cell(boom, count=2), cell(count=None)]
    replay = compare(expected, actual, tmp_path, exit_code=1)
    assert replay.verdict == "failed" and replay.status == "failed"
    assert replay.detail == "failed: cell 2 raised ZeroDivisionError: division by zero"
    assert replay.error is not None and replay.error.endswith("1/0")
    assert [c.verdict for c in replay.cells] == ["identical", "different", "missing"]
    assert replay.cells[2].detail == "not executed in the replay (the notebook stopped at cell 2)"


def test_no_executed_notebook_at_all_is_failed(tmp_path: Path) -> None:
    replay = compare([cell(stdout("1\n"))], None, tmp_path, exit_code=2)
    assert replay.verdict == "failed" and replay.executed_path is None
    assert replay.detail == "did not run: boom" and replay.cells == []


def test_timed_out_is_failed(tmp_path: Path) -> None:
    replay = compare([cell(stdout("1\n"))], [cell(count=None)], tmp_path, exit_code=None)
    assert replay.verdict == "failed" and replay.status == "timed_out"
    assert replay.detail.startswith("timed out")


def test_a_cell_past_its_timeout_is_timed_out_and_where_it_stopped(tmp_path: Path) -> None:
    expected_error = cell(new_output("error", ename="E", evalue="ok", traceback=[]))
    expected_error.metadata["tags"] = ["raises-exception"]
    expected = [expected_error, cell(stdout("2\n"), count=2), cell(stdout("3\n"), count=3)]
    actual = [expected_error, cell(count=2), cell(count=None)]
    stderr = "repro: cell 2 ran longer than 5 s\n[IPKernelApp] WARNING | kernel noise"
    expected_file, actual_file = tmp_path / "expected.ipynb", tmp_path / "actual.ipynb"
    replay = compare(expected, actual, tmp_path, exit_code=124, stderr=stderr)
    assert replay.status == "timed_out" and replay.verdict == "failed"
    assert replay.detail == "timed out: cell 2 ran longer than 5 s"
    # the driver records where it stopped in the executed notebook's metadata
    stopped = nbformat.read(str(actual_file), as_version=4)
    stopped.metadata["repro"] = {"stopped_at": 2, "reason": "timed out"}
    nbformat.write(stopped, str(actual_file))
    outcome = PointOutcome("r", {}, "_", "c", CommandResult(124, 1.0, "", stderr), [], [])
    replay = compare_notebook(None, record(), expected_file, tmp_path, "actual.ipynb", outcome)
    assert [c.verdict for c in replay.cells] == ["identical", "different", "missing"]
    assert replay.cells[1].detail == "did not finish: ran longer than the notebook's timeout"
    # the expected error in cell 1 is not where it stopped
    assert replay.cells[2].detail.endswith("(the notebook stopped at cell 2)")


def test_an_executed_notebook_that_is_a_link_is_not_read(tmp_path: Path) -> None:
    secret = tmp_path.parent / f"{tmp_path.name}-outside.ipynb"
    nbformat.write(new_notebook(cells=[cell(stdout("private\n"))]), str(secret))
    project = tmp_path / "p"
    project.mkdir()
    (project / "actual.ipynb").symlink_to(secret)
    nbformat.write(new_notebook(cells=[cell(stdout("1\n"))]), str(tmp_path / "expected.ipynb"))
    outcome = PointOutcome("r", {}, "_", "c", CommandResult(0, 1.0, "", ""), [], [])
    replay = compare_notebook(
        None, record(), tmp_path / "expected.ipynb", project, "actual.ipynb", outcome
    )
    assert replay.verdict == "failed" and "symlink" in replay.detail
    assert "private" not in replay.model_dump_json()


def test_a_malformed_expected_notebook_is_a_malformed_capsule(tmp_path: Path) -> None:
    from repro.errors import MalformedCapsuleError
    from repro.notebooks.compare import load_expected

    bad = tmp_path / "e.ipynb"
    bad.write_text(
        json.dumps(
            {
                "nbformat": 4,
                "nbformat_minor": 5,
                "metadata": {},
                "cells": [
                    {
                        "cell_type": "code",
                        "id": "a",
                        "source": "",
                        "metadata": {},
                        "execution_count": 1,
                    }
                ],
            }
        )
    )
    with pytest.raises(MalformedCapsuleError, match="not a valid notebook"):
        load_expected(bad, "data/results/x/e.ipynb")
    bad.write_text("not json")
    with pytest.raises(MalformedCapsuleError):
        load_expected(bad, "data/results/x/e.ipynb")


# --- the lock gets the kernel ------------------------------------------------------------


def test_kernel_packages_are_added_with_every_pin_kept(offline_index: Path) -> None:
    text = (
        "reprotest-core==1.0.0 \\\n    --hash=sha256:"
        + "1" * 64
        + "\n"  # a deliberately unresolvable hash would fail install, not resolution
    )
    lock = Lock(text, "existing-lock", "requirements.txt", parse_packages(text))
    added, notes = with_packages(lock, ("reprotest_stats",), "3.11", "uv")
    assert {p.name: p.version for p in added.packages} == {
        "reprotest-core": "1.0.0",
        "reprotest-stats": "2.1.0",
    }
    assert added.source == "existing-lock" and "--hash=sha256:" in added.text
    assert notes == ["added to the lock to execute notebooks: reprotest_stats"]
    same, none = with_packages(added, ("reprotest-stats",), "3.11", "uv")
    assert same is added and none == []


def test_adding_kernel_packages_keeps_the_locks_index_options(
    offline_index: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Only the lock says where its packages are: the resolver must still look there.
    monkeypatch.delenv("UV_FIND_LINKS")
    text = f"--find-links {offline_index}\nreprotest-core==1.0.0 \\\n    --hash=sha256:{'1' * 64}\n"
    lock = Lock(text, "existing-lock", "requirements.txt", parse_packages(text))
    added, _ = with_packages(lock, ("reprotest_stats",), "3.11", "uv")
    assert "reprotest-stats==2.1.0" in added.text


# --- the report --------------------------------------------------------------------------


def test_the_report_shows_differing_cells_side_by_side_and_never_renders_their_html(
    tmp_path: Path,
) -> None:
    from repro.report.page import render_html
    from repro.report.replay import ReplayReport

    hostile = "<script>alert(1)</script><img src=http://example.org/x.png>"
    expected = [
        cell(result({"text/html": "<b>ok</b>", "text/plain": "ok"}), source="show()"),
        cell(result({"image/png": png((255, 255, 255))}), source="plot()", count=2),
        cell(stdout("same\n"), source="print('same')", count=3),
    ]
    actual = [
        cell(result({"text/html": hostile, "text/plain": "ok"}), source="show()"),
        cell(result({"image/png": png((255, 255, 255), (255, 0, 0))}), source="plot()", count=2),
        cell(stdout("same\n"), source="print('same')", count=3),
    ]
    replay = compare(expected, actual, tmp_path)
    root, project = tmp_path / "capsule", tmp_path / "project"
    (root / "data/results/notebook.nb.ipynb").mkdir(parents=True)
    project.mkdir()
    (tmp_path / "expected.ipynb").rename(root / replay.expected_path)
    (tmp_path / "actual.ipynb").rename(project / "actual.ipynb")
    report = ReplayReport(
        capsule="c.tgz",
        capsule_id="0" * 64,
        title="t",
        signature="unsigned",
        target="local",
        reproduced=False,
        counts={},
        points=[],
        notebooks=[replay],
        started="2026-11-25T00:00:00Z",
        duration_s=1.0,
    )
    page = render_html(report, root, project)
    assert "notebook nb.ipynb: different" in page
    # no script but the report's own; the notebook's HTML is never rendered
    assert page.count("<script") == 1 and "<img src=http" not in page
    sources = re.findall(r"<img [^>]*src=\"([^\"]*)\"", page)
    assert sources and all(src.startswith("data:image/png;base64,") for src in sources)
    # the differing type, side by side and as its source, never rendered
    assert '<figcaption>replayed</figcaption><pre title="text/html">&lt;script&gt;' in page
    assert "show()" in page and "plot()" in page  # the differing cells' sources
    assert "print(&#x27;same&#x27;)" not in page  # identical cells get no evidence
    assert page.count("<figcaption>recorded</figcaption><img") == 1
    assert page.count("<figcaption>difference</figcaption><img") == 1
    assert page.count("data:image/png;base64,") == 3
    assert render_html(report, root, project) == page  # deterministic


def test_report_cells_are_numbered_as_jupyter_does() -> None:
    from repro.report.notebooks import cell_label

    cells = [
        new_markdown_cell("# Title"),
        cell(source="a = 1", count=1),
        new_markdown_cell("Some words"),
        cell(source="b = 2", count=5),  # re-run: Jupyter shows its execution count
        cell(source="c = 3", count=None),  # never executed
    ]
    assert ">In [1]</span>" in cell_label(2, cells)
    assert 'title="code cell 1; cell 2 of the notebook' in cell_label(2, cells)
    assert ">In [5]</span>" in cell_label(4, cells)
    assert ">code cell 3</span>" in cell_label(5, cells)
    assert ">cell 3</span>" in cell_label(3, cells)  # a markdown cell keeps its position
    assert ">cell 9</span>" in cell_label(9, cells)  # beyond the notebook read
