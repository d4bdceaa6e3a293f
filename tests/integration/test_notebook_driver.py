"""The notebook driver on its own: run by this interpreter (which has nbclient and ipykernel,
from the test extras) on real kernels, as repro runs it in a study's environment.

Integration, not unit: every test starts a Python subprocess and a Jupyter kernel (2-8 s
each); offline, no service needed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

DRIVER = Path(__file__).resolve().parents[2] / "repro" / "notebooks" / "driver.py"

pytestmark = pytest.mark.slow


def run_driver(
    folder: Path, notebook: str, *args: str, timeout: float = 120
) -> tuple[subprocess.CompletedProcess[str], Any]:
    tmp = folder / "tmp"
    tmp.mkdir(exist_ok=True)
    out = folder / "out" / notebook
    proc = subprocess.run(
        [sys.executable, str(DRIVER), notebook, str(out), *args],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "TMPDIR": str(tmp), "MPLBACKEND": "Agg"},
        check=False,
    )
    executed = nbformat.read(str(out), as_version=4) if out.is_file() else None
    return proc, executed


def write(path: Path, *cells: Any) -> None:
    nb = new_notebook(cells=list(cells))
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, str(path))


def test_parameters_go_after_the_parameters_cell_and_replace_old_ones(tmp_path: Path) -> None:
    params = new_code_cell("alpha = 1")
    params.metadata["tags"] = ["parameters"]
    stale = new_code_cell("alpha = 5")  # left by an earlier papermill run
    stale.metadata["tags"] = ["injected-parameters"]
    write(tmp_path / "nb.ipynb", params, stale, new_code_cell("print(alpha, beta, gamma)"))
    parameters = json.dumps({"alpha": 3, "beta": float("nan"), "gamma": "it's"})
    proc, nb = run_driver(tmp_path, "nb.ipynb", "--parameters", parameters)
    assert proc.returncode == 0, proc.stderr
    assert [c.metadata.get("tags") for c in nb.cells] == [
        ["parameters"],
        ["injected-parameters"],
        None,
    ]
    assert nb.cells[1].id == "injected-parameters"
    assert nb.cells[2].outputs[0].text == "3 nan it's\n"
    assert list((tmp_path / "tmp").iterdir()) == []  # its private Jupyter home is removed


def test_without_a_parameters_cell_they_come_first(tmp_path: Path) -> None:
    write(tmp_path / "nb.ipynb", new_code_cell("print(n * 2)"))
    proc, nb = run_driver(tmp_path, "nb.ipynb", "--parameters", '{"n": 21}')
    assert proc.returncode == 0, proc.stderr
    assert nb.cells[0].metadata["tags"] == ["injected-parameters"]
    assert nb.cells[1].outputs[0].text == "42\n"


def test_missing_cell_ids_become_stable_and_the_output_is_deterministic(tmp_path: Path) -> None:
    raw = {
        "nbformat": 4,
        "nbformat_minor": 5,
        "metadata": {},
        "cells": [
            {"cell_type": "code", "source": "print(1)", "metadata": {}, "outputs": [],
             "execution_count": None},
            {"cell_type": "markdown", "source": "# t", "metadata": {}},
        ],
    }  # fmt: skip
    (tmp_path / "nb.ipynb").write_text(json.dumps(raw))
    first, nb = run_driver(tmp_path, "nb.ipynb")
    assert first.returncode == 0, first.stderr
    assert [c.id for c in nb.cells] == ["cell-1", "cell-2"]
    assert "MissingIDFieldWarning" not in first.stderr
    before = (tmp_path / "out" / "nb.ipynb").read_bytes()
    run_driver(tmp_path, "nb.ipynb")
    assert (tmp_path / "out" / "nb.ipynb").read_bytes() == before


def test_an_old_notebook_without_ids_and_one_in_a_subfolder(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "numbers.txt").write_text("1 2 3\n")
    old = {
        "nbformat": 4,
        "nbformat_minor": 4,
        "metadata": {},
        "cells": [
            {"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None,
             "source": "print(sum(int(x) for x in open('numbers.txt').read().split()))"}
        ],
    }  # fmt: skip
    (tmp_path / "sub" / "nb.ipynb").write_text(json.dumps(old))
    proc, nb = run_driver(tmp_path, "sub/nb.ipynb")
    assert proc.returncode == 0, proc.stderr
    assert nb.nbformat_minor == 4 and "id" not in nb.cells[0]
    assert nb.cells[0].outputs[0].text == "6\n"  # run from the notebook's own folder


def test_a_cell_past_the_timeout_is_exit_124_naming_it(tmp_path: Path) -> None:
    write(
        tmp_path / "nb.ipynb", new_code_cell("x = 1"), new_code_cell("import time; time.sleep(30)")
    )
    proc, nb = run_driver(tmp_path, "nb.ipynb", "--timeout", "2")
    assert proc.returncode == 124
    own = [ln for ln in proc.stderr.splitlines() if ln.startswith("repro: ")]
    assert own == ["repro: cell 2 ran longer than 2 s"]
    assert nb.metadata["repro"] == {"stopped_at": 2, "reason": "timed out"}
    assert nb.cells[0].execution_count == 1


@pytest.mark.parametrize(
    ("cells", "message"),
    [
        (
            [new_code_cell("1"), new_code_cell("def f():\n    return {}['k']\nf()")],
            "cell 2 raised KeyError: 'k'",
        ),
        ([new_code_cell("print(undefined_name)")], "cell 1 raised NameError"),
    ],
)
def test_a_raising_cell_is_exit_1_with_the_cell_and_traceback(
    tmp_path: Path, cells: list[Any], message: str
) -> None:
    write(tmp_path / "nb.ipynb", *cells)
    proc, nb = run_driver(tmp_path, "nb.ipynb")
    assert proc.returncode == 1
    assert message in proc.stderr and "\x1b[" not in proc.stderr.split(message)[1]
    assert nb is not None  # written as far as it got


def test_a_python_kernel_is_this_interpreter_whatever_the_notebook_names(
    tmp_path: Path,
) -> None:
    nb = new_notebook(cells=[new_code_cell("import sys; print(sys.executable)")])
    nb.metadata["kernelspec"] = {"name": "my-old-env", "language": "python", "display_name": "x"}
    nbformat.write(nb, str(tmp_path / "nb.ipynb"))
    proc, executed = run_driver(tmp_path, "nb.ipynb", "--kernel", "my-old-env")
    assert proc.returncode == 0, proc.stderr
    assert executed.cells[0].outputs[0].text.strip() == sys.executable


def test_another_kernel_must_exist_in_the_environment(tmp_path: Path) -> None:
    write(tmp_path / "nb.ipynb", new_code_cell("1"))
    proc, _ = run_driver(tmp_path, "nb.ipynb", "--kernel", "ir", "--language", "R")
    assert proc.returncode == 1
    assert "No such kernel named ir" in proc.stderr
