"""Notebooks end to end: captured, re-executed with nbclient in the study's environment (a
real kernel, local, Docker and Slurm) and compared cell by cell."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from repro.capsule.reader import read_capsule
from tests.conftest import ROOT, copy_project, run_cli

pytestmark = pytest.mark.network

PLAIN_TOML = """\
[capsule]
title = "Notebook test"

[environment]
requirements = "requirements.txt"

[[notebooks]]
path = "{path}"
timeout = 120
"""


def notebook(*cells: Any) -> nbformat.NotebookNode:
    nb = new_notebook(cells=list(cells))
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nb.metadata["language_info"] = {"name": "python"}
    return nb


def make_project(
    root: Path, cells: list[Any], requirements: str = "", extra_toml: str = ""
) -> Path:
    root.mkdir(parents=True)
    (root / "requirements.txt").write_text(requirements)
    (root / "data").mkdir()
    (root / "data" / "values.txt").write_text("3 1 4 1 5 9 2 6\n")
    nbformat.write(notebook(*cells), str(root / "study.ipynb"))
    (root / "repro.toml").write_text(PLAIN_TOML.format(path="study.ipynb") + extra_toml)
    return root


def capture(project: Path, out: Path, *extra: str, env: dict[str, str] | None = None) -> Any:
    result = run_cli(
        "capture", str(project), "-o", str(out), "--no-sign", *extra, env=env, timeout=900
    )
    assert result.returncode == 0, result.stderr
    return result


def replay(capsule: Path, *extra: str) -> tuple[int, dict[str, Any], str]:
    result = run_cli("replay", str(capsule), "--json", *extra, timeout=900)
    assert result.returncode in (0, 3), result.stderr
    return result.returncode, json.loads(result.stdout), result.stderr


def cells_by_index(report: dict[str, Any]) -> dict[int, dict[str, Any]]:
    [nb] = report["notebooks"]
    return {c["index"]: c for c in nb["cells"]}


STEADY = [
    new_markdown_cell("# A study"),
    new_code_cell('values = [int(v) for v in open("data/values.txt").read().split()]'),
    new_code_cell("print('n =', len(values), 'mean =', sum(values) / len(values))"),
    new_code_cell("{'max': max(values), 'sorted': sorted(values)}"),
    new_code_cell("print(object())  # a memory address, masked"),
]


def test_a_notebook_replays_identical_and_keeps_the_executed_copy(
    tmp_path: Path, pypi: None
) -> None:
    project = make_project(tmp_path / "study", STEADY)
    out = tmp_path / "nb.tgz"
    captured = capture(project, out)
    assert "notebook  study.ipynb: 4 code cell(s), executed" in captured.stdout
    # The driver's progress, shown live while the notebook ran.
    assert "  executing code cell 4 of 4\n" in captured.stderr

    capsule = read_capsule(out, tmp_path / "unpacked")
    m = capsule.manifest
    [record] = m.notebook_results
    assert record.executed and record.kernel.language == "python"
    assert record.kernel.language_version and record.kernel.language_version.startswith("3.")
    names = {p.name for p in m.environment.packages}
    assert {"ipykernel", "nbclient"} <= names  # added to the (empty) lock for the kernel
    assert any("added to the lock to execute notebooks" in n for n in m.notes)
    assert capsule.root is not None
    expected = nbformat.read(str(capsule.root / record.capsule_path), as_version=4)
    printed = expected.cells[2].outputs[0]
    assert printed.output_type == "stream" and printed.text == "n = 8 mean = 3.875\n"
    assert "0x…" in expected.cells[4].outputs[0].text  # normalised at capture
    assert expected.cells[3].outputs[0].output_type == "execute_result"

    code, report, _ = replay(out, "--target", "local", "--workdir", str(tmp_path / "work"))
    assert code == 0 and report["reproduced"]
    [nb] = report["notebooks"]
    assert nb["verdict"] == "identical" and nb["status"] == "ok"
    assert [c["verdict"] for c in nb["cells"]] == ["identical"] * 4
    assert [c["index"] for c in nb["cells"]] == [2, 3, 4, 5]
    kept = Path(report["workdir"]) / "capsule" / "data" / "project" / nb["executed_path"]
    executed = nbformat.read(str(kept), as_version=4)
    assert executed.cells[2].outputs[0].text == "n = 8 mean = 3.875\n"


def test_an_unseeded_random_cell_replays_different_naming_that_cell(
    tmp_path: Path, pypi: None
) -> None:
    cells = [
        new_code_cell("print(2 + 2)"),
        new_code_cell("import random\nprint(random.random())"),
        new_code_cell("print('done')"),
    ]
    project = make_project(tmp_path / "study", cells)
    out = tmp_path / "nb.tgz"
    capture(project, out)
    report_html = tmp_path / "report.html"
    code, report, _ = replay(out, "--target", "local", "--keep", "--report", str(report_html))
    assert code == 3 and not report["reproduced"]
    [nb] = report["notebooks"]
    assert nb["verdict"] == "different" and nb["status"] == "ok"
    assert "cell 2" in nb["detail"]
    by_index = cells_by_index(report)
    assert by_index[1]["verdict"] == "identical" and by_index[3]["verdict"] == "identical"
    random_cell = by_index[2]
    assert random_cell["verdict"] == "different"
    [output] = random_cell["outputs"]
    assert output["path"] == "output 1: stdout" and output["method"] == "numeric"
    assert output["max_abs_deviation"] > 0
    page = report_html.read_text()
    assert "random.random()" in page  # the differing cell's source
    assert "recorded" in page and "replayed" in page
    assert page.count('<tr class="evidence">') == 1  # only the differing cell has evidence

    again = tmp_path / "again.tgz"
    capture(project, again)
    diffed = run_cli("diff", str(out), str(again), "--json")
    entries = json.loads(diffed.stdout)["entries"]
    [entry] = [e for e in entries if e["name"] == "notebook study.ipynb"]
    assert entry["change"] == "changed"
    assert entry["detail"].startswith("different: 3 code cell(s)")
    assert entry["detail"].endswith("first at cell 2")
    inspected = run_cli("inspect", str(out))
    assert "study.ipynb: 3 code cell(s), executed, kernel python3 (python 3." in inspected.stdout


def test_a_figure_that_changes_shows_both_images_and_their_difference(
    tmp_path: Path, pypi: None
) -> None:
    cells = [
        new_code_cell("import matplotlib.pyplot as plt\nimport numpy as np"),
        # Fixed axis limits: the picture keeps its size, only the line moves.
        new_code_cell(
            "plt.figure(figsize=(3, 2))\nplt.ylim(0, 1)\nplt.plot(np.random.rand(10))\nplt.show()"
        ),
    ]
    project = make_project(tmp_path / "study", cells, requirements="numpy\nmatplotlib\n")
    out = tmp_path / "nb.tgz"
    capture(project, out)
    report_html = tmp_path / "report.html"
    code, report, _ = replay(out, "--target", "local", "--report", str(report_html))
    assert code == 3
    figure = cells_by_index(report)[2]
    assert figure["verdict"] == "different"
    image = next(o for o in figure["outputs"] if o["path"].endswith("image/png"))
    assert image["method"] == "image", image
    assert 0 < image["differing_fraction"] < 1, image
    page = report_html.read_text()
    for caption in ("recorded", "replayed", "difference"):
        assert f"<figcaption>{caption}</figcaption><img" in page


def test_a_notebook_that_raises_replays_failed_with_the_traceback_tail(
    tmp_path: Path, pypi: None
) -> None:
    # Saved outputs that the code no longer produces: captured with --no-run, as found.
    ok = new_code_cell("x = 10\nprint(x)", execution_count=1)
    ok.outputs = [new_output("stream", name="stdout", text="10\n")]
    boom = new_code_cell("def ratio(a, b):\n    return a / b\n\nprint(ratio(x, 0))")
    boom.execution_count = 2
    boom.outputs = [new_output("stream", name="stdout", text="inf\n")]
    after = new_code_cell("print('after')", execution_count=3)
    after.outputs = [new_output("stream", name="stdout", text="after\n")]
    project = make_project(tmp_path / "study", [ok, boom, after])
    out = tmp_path / "nb.tgz"
    captured = capture(project, out, "--no-run")
    assert "saved outputs (--no-run)" in captured.stdout

    code, report, _ = replay(out, "--target", "local")
    assert code == 3 and not report["reproduced"]
    [nb] = report["notebooks"]
    assert nb["verdict"] == "failed" and nb["status"] == "failed" and nb["exit_code"] == 1
    assert nb["detail"] == "failed: cell 2 raised ZeroDivisionError: division by zero"
    assert "return a / b" in nb["error"]  # the traceback's tail, ANSI colours removed
    assert "\x1b[" not in nb["error"]
    by_index = cells_by_index(report)
    assert by_index[1]["verdict"] == "identical"
    assert by_index[2]["verdict"] == "different" and "ZeroDivisionError" in by_index[2]["detail"]
    assert by_index[3]["verdict"] == "missing"
    assert "stopped at cell 2" in by_index[3]["detail"]
    shown = run_cli("replay", str(out), "--target", "local")
    assert shown.returncode == 3
    assert "study.ipynb: cell 2 raised ZeroDivisionError: division by zero" in shown.stderr
    assert "cell 2" in shown.stdout and "failed" in shown.stdout


def test_a_notebook_that_raises_at_capture_fails_it_naming_the_cell(
    tmp_path: Path, pypi: None
) -> None:
    cells = [new_code_cell("print(1)"), new_code_cell("import json\njson.loads('{oops')")]
    project = make_project(tmp_path / "study", cells)
    out = tmp_path / "nb.tgz"
    result = run_cli("capture", str(project), "-o", str(out), "--no-sign", timeout=900)
    assert result.returncode == 1
    error = [ln for ln in result.stderr.splitlines() if ln.startswith("error")]
    assert error == [
        "error: 1 of 1 run point(s) and notebook(s) failed at capture; nothing was written"
    ]
    assert (
        "  notebook study.ipynb: cell 2 raised JSONDecodeError: Expecting property name "
        "enclosed in double quotes: line 1 column 2 (char 1)"
    ) in result.stderr.splitlines()
    assert "allow_errors" in result.stderr  # the hint
    assert not out.exists()


def test_a_cell_tagged_raises_exception_is_compared_as_an_error(tmp_path: Path, pypi: None) -> None:
    expected_error = new_code_cell("raise ValueError('by design')")
    expected_error.metadata["tags"] = ["raises-exception"]
    cells = [expected_error, new_code_cell("print('still runs')")]
    project = make_project(tmp_path / "study", cells)
    out = tmp_path / "nb.tgz"
    capture(project, out)
    code, report, _ = replay(out, "--target", "local")
    assert code == 0
    by_index = cells_by_index(report)
    assert by_index[1]["verdict"] == "identical"
    assert by_index[1]["outputs"][0]["path"] == "output 1: error"


def test_parameters_are_injected_after_the_parameters_cell(tmp_path: Path, pypi: None) -> None:
    params = new_code_cell("alpha = 1\nlabel = 'default'")
    params.metadata["tags"] = ["parameters"]
    cells = [params, new_code_cell("print(label, alpha * 10)")]
    toml = '[notebooks.parameters]\nalpha = 3\nlabel = "swept"\n'
    project = make_project(tmp_path / "study", cells, extra_toml=toml)
    out = tmp_path / "nb.tgz"
    capture(project, out)
    capsule = read_capsule(out, tmp_path / "unpacked")
    assert capsule.root is not None
    expected = nbformat.read(
        str(capsule.root / capsule.manifest.notebook_results[0].capsule_path), as_version=4
    )
    assert expected.cells[1].metadata["tags"] == ["injected-parameters"]
    assert expected.cells[2].outputs[0].text == "swept 30\n"
    code, report, _ = replay(out, "--target", "local")
    assert code == 0
    assert [c["index"] for c in report["notebooks"][0]["cells"]] == [1, 2]


def test_a_secret_printed_by_a_notebook_fails_the_capture(tmp_path: Path, pypi: None) -> None:
    # The token is assembled at run time, so only the output (not the source) carries it.
    cells = [new_code_cell("print('ghp_' + 'Ab1' * 12)")]
    project = make_project(tmp_path / "study", cells)
    out = tmp_path / "nb.tgz"
    result = run_cli("capture", str(project), "-o", str(out), "--no-sign", timeout=900)
    assert result.returncode == 1
    assert "outputs of notebook study.ipynb" in result.stderr
    assert "Ab1Ab1Ab1Ab1" not in result.stderr  # masked
    assert not out.exists()


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ('{"cells": [', "is not valid JSON"),
        ('{"nbformat": 9, "cells": []}', "cannot be read"),
        (
            json.dumps(
                {
                    "nbformat": 4,
                    "nbformat_minor": 5,
                    "metadata": {},
                    "cells": [{"cell_type": "code", "id": "a", "source": "1"}],
                }
            ),
            "is not a valid notebook at cells/0",
        ),
    ],
)
def test_a_malformed_notebook_fails_capture_with_one_line(
    tmp_path: Path, content: str, problem: str
) -> None:
    project = make_project(tmp_path / "study", [new_code_cell("1")])
    (project / "study.ipynb").write_text(content)
    out = tmp_path / "nb.tgz"
    result = run_cli("capture", str(project), "-o", str(out), "--no-sign")
    assert result.returncode == 1
    lines = [ln for ln in result.stderr.strip().splitlines() if not ln.startswith("·")]
    assert lines[0].startswith(f"error: notebook study.ipynb {problem}"), result.stderr
    assert lines[1].startswith("hint:") and len(lines) == 2
    assert not out.exists()


def test_the_sample_notebook_study_replays_identical_cell_by_cell(
    tmp_path: Path, pypi: None
) -> None:
    project = copy_project(ROOT / "sample_papers" / "notebook-study", tmp_path / "paper")
    out, again = tmp_path / "paper.tgz", tmp_path / "again.tgz"
    epoch = {"SOURCE_DATE_EPOCH": "1700000000"}
    capture(project, out, env=epoch)
    capture(project, again, "--no-hash-cache", env=epoch)
    # Executed twice, figure included: the same bytes (normalised outputs are deterministic).
    assert out.read_bytes() == again.read_bytes()
    code, report, _ = replay(out, "--target", "local")
    assert code == 0
    [nb] = report["notebooks"]
    assert nb["verdict"] == "identical", json.dumps(nb, indent=1)[:3000]
    methods = {o["path"].split(": ")[1]: o["method"] for c in nb["cells"] for o in c["outputs"]}
    assert methods == {"stdout": "numeric", "image/png": "image", "text/plain": "numeric"}


def test_notebooks_replay_in_docker(tmp_path: Path, pypi: None, docker_engine: str) -> None:
    project = make_project(tmp_path / "study", STEADY)
    out = tmp_path / "nb.tgz"
    capture(project, out)
    code, report, _ = replay(out, "--target", "docker", "--base-image", docker_engine)
    assert report["target"] == "docker"
    assert code == 0, json.dumps(report["notebooks"], indent=1)[:3000]
    assert [c["verdict"] for c in report["notebooks"][0]["cells"]] == ["identical"] * 4


def test_notebooks_replay_on_slurm_one_job_each(tmp_path: Path, pypi: None, slurm: None) -> None:
    project = make_project(tmp_path / "study", STEADY)
    shutil.copy(project / "study.ipynb", project / "second.ipynb")
    with (project / "repro.toml").open("a") as fh:
        fh.write('\n[[notebooks]]\npath = "second.ipynb"\n')
    out = tmp_path / "nb.tgz"
    capture(project, out)
    result = run_cli(
        "replay", str(out), "--target", "slurm", "--workdir", str(tmp_path / "work"), timeout=900
    )
    assert result.returncode == 0, result.stdout + result.stderr
    submitted = [ln for ln in result.stderr.splitlines() if "as Slurm job array" in ln]
    assert len(submitted) == 2 and all("(1 task(s))" in ln for ln in submitted)
    assert "notebooks: 2 identical" in result.stdout
