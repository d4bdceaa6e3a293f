"""Execute one notebook with nbclient, inside the study's environment.

This file is standalone on purpose: repro copies it into the project it runs (at capture and
at replay, on this machine, in a container or on a cluster node) and runs it with the
environment's own Python, where only nbformat, nbclient and the kernel are installed.

    python run_notebook.py NOTEBOOK OUTPUT --timeout S [--kernel NAME] [--language L]
                           [--parameters JSON] [--allow-errors]

--allow-errors executes every cell even when some raise (the errors stay in the outputs).

Exit codes: 0 executed; 1 a cell raised (or the kernel died); 2 bad input; 124 a cell timed
out. The executed notebook (as far as it got) is written to OUTPUT in every case but 2.
"""

# No `from __future__ import annotations`: this runs under every Python a study may use,
# 3.6 included (no annotation here needs it).
import argparse
import json
import math
import os
import shutil
import sys
import tempfile
import traceback
from pathlib import Path

INJECTED_TAG = "injected-parameters"
PYTHON_KERNEL = "repro-python"
TAIL_LINES = 12


def _isolate() -> Path:
    """A private Jupyter/IPython home: no user profile, startup file or kernelspec leaks in,
    and matplotlib draws with the kernel's inline backend whatever MPLBACKEND says."""
    home = Path(tempfile.mkdtemp(prefix="repro-jupyter-"))
    for name, sub in (
        ("JUPYTER_RUNTIME_DIR", "runtime"),
        ("JUPYTER_DATA_DIR", "data"),
        ("JUPYTER_CONFIG_DIR", "config"),
        ("IPYTHONDIR", "ipython"),
        ("MPLCONFIGDIR", "matplotlib"),
    ):
        (home / sub).mkdir(parents=True, exist_ok=True)
        os.environ[name] = str(home / sub)
    # matplotlib's font cache is costly to build (0.2 s a notebook): keep it in the venv
    # repro built (cached by lock), never in an interpreter of the user's own.
    if sys.prefix != sys.base_prefix:
        fonts = Path(sys.prefix) / "var" / "repro-matplotlib"
        try:
            fonts.mkdir(parents=True, exist_ok=True)
            if os.access(fonts, os.W_OK):
                os.environ["MPLCONFIGDIR"] = str(fonts)
        except OSError:
            pass
    os.environ["JUPYTER_PLATFORM_DIRS"] = "1"
    os.environ.pop("MPLBACKEND", None)
    # A Python kernel is always this environment's interpreter, whatever kernelspecs the
    # machine has installed elsewhere.
    spec_dir = home / "data" / "kernels" / PYTHON_KERNEL
    spec_dir.mkdir(parents=True)
    with (spec_dir / "kernel.json").open("w", encoding="utf-8") as fh:
        json.dump(
            {
                "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                "display_name": "Python 3 (repro)",
                "language": "python",
                "env": {"PYDEVD_DISABLE_FILE_VALIDATION": "1"},
            },
            fh,
        )
    return home


def _literal(value):  # type: ignore[no-untyped-def]
    """A parameter as Python source (nan and inf have no literal of their own)."""
    if isinstance(value, float) and not math.isfinite(value):
        return f"float({str(value)!r})"
    return repr(value)


def _inject(nb, parameters):  # type: ignore[no-untyped-def]
    """papermill's convention: a cell tagged injected-parameters after the 'parameters' one
    (first when there is none), replacing any injected by an earlier papermill run."""
    import nbformat

    nb.cells = [c for c in nb.cells if INJECTED_TAG not in c.get("metadata", {}).get("tags", [])]
    if not parameters:
        return
    source = "# Parameters (injected by repro)\n" + "".join(
        f"{key} = {_literal(value)}\n" for key, value in parameters.items()
    )
    cell = nbformat.v4.new_code_cell(source)
    cell.metadata["tags"] = [INJECTED_TAG]
    if nb.nbformat_minor >= 5:
        cell.id = INJECTED_TAG  # a fixed id: the executed notebook must be deterministic
    else:
        cell.pop("id", None)
    where = 0
    for i, existing in enumerate(nb.cells):
        if "parameters" in existing.get("metadata", {}).get("tags", []):
            where = i + 1
            break
    nb.cells.insert(where, cell)


def _read(path):  # type: ignore[no-untyped-def]
    """The notebook; cells of a 4.5+ notebook saved without ids get stable ones (cell-N),
    not the random ids nbformat would invent."""
    import warnings

    import nbformat

    text = Path(path).read_text(encoding="utf-8")
    raw = json.loads(text)
    cells = raw.get("cells", []) if isinstance(raw, dict) else []
    missing = [i for i, c in enumerate(cells) if isinstance(c, dict) and "id" not in c]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        nb = nbformat.reads(text, as_version=4)
    if nb.nbformat_minor >= 5 and len(nb.cells) == len(cells):
        for i in missing:
            nb.cells[i].id = f"cell-{i + 1}"
    return nb


def _number(nb, index):  # type: ignore[no-untyped-def]
    """The position of nb.cells[index] as the notebook stores it (injected cell not counted)."""
    injected = sum(
        1 for c in nb.cells[:index] if INJECTED_TAG in c.get("metadata", {}).get("tags", [])
    )
    return index + 1 - injected


def _error_tail(nb) -> str:  # type: ignore[no-untyped-def]
    """The first unexpected error: its cell (counted as the notebook stores them) and the
    traceback's last lines."""
    import re

    cells = [c for c in nb.cells if INJECTED_TAG not in c.get("metadata", {}).get("tags", [])]
    for index, cell in enumerate(cells, start=1):
        if "raises-exception" in cell.get("metadata", {}).get("tags", []):
            continue
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                lines = "\n".join(output.get("traceback", []))
                plain = re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", lines).rstrip().splitlines()
                tail = "\n".join(plain[-TAIL_LINES:])
                head = f"cell {index} raised {output.get('ename')}: {output.get('evalue')}"
                return f"{head}\n{tail}"
    injected = [c for c in nb.cells if c not in cells]
    for output in (o for c in injected for o in c.get("outputs", [])):
        if output.get("output_type") == "error":
            return (
                f"the injected parameters cell raised {output.get('ename')}: {output.get('evalue')}"
            )
    return ""


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("notebook")
    parser.add_argument("output")
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument("--kernel", default=None)
    parser.add_argument("--language", default="python")
    parser.add_argument("--parameters", default="{}")
    parser.add_argument("--allow-errors", action="store_true")
    args = parser.parse_args()
    home = _isolate()
    try:
        return _execute(args)
    finally:
        shutil.rmtree(home, ignore_errors=True)


def _execute(args):  # type: ignore[no-untyped-def]
    try:
        import nbformat
        from nbclient import NotebookClient
        from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError
    except ImportError as exc:
        print(f"repro: cannot run notebooks here: {exc}", file=sys.stderr)
        return 2
    try:
        nb = _read(args.notebook)
    except Exception as exc:
        print(f"repro: cannot read {args.notebook}: {exc}", file=sys.stderr)
        return 2
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
            cell.metadata.pop("execution", None)
    _inject(nb, json.loads(args.parameters))
    kernel = PYTHON_KERNEL if args.language == "python" else args.kernel
    running = {"index": None}
    code_cells = [i for i, c in enumerate(nb.cells) if c.cell_type == "code"]

    def on_cell_execute(cell, cell_index):  # type: ignore[no-untyped-def]
        running["index"] = cell_index
        # Progress on stdout (stderr is the driver's interface to repro): repro shows it live.
        if cell_index in code_cells:
            ordinal = code_cells.index(cell_index) + 1
            print(f"executing code cell {ordinal} of {len(code_cells)}", flush=True)

    options: dict = {  # type: ignore[type-arg]
        "kernel_name": kernel,
        "resources": {"metadata": {"path": str(Path(args.notebook).resolve().parent)}},
        "record_timing": False,
        "allow_errors": args.allow_errors,
        "coalesce_streams": True,
        "on_cell_execute": on_cell_execute,
    }
    try:
        client = NotebookClient(nb, timeout=args.timeout, **options)
    except Exception:  # nbclient < 0.6 (Python 3.6) takes whole seconds only
        client = NotebookClient(nb, timeout=math.ceil(args.timeout), **options)
    code = 0
    try:
        client.execute()
    except CellTimeoutError:
        where = "a cell"
        if running["index"] is not None:
            number = _number(nb, running["index"])
            nb.metadata["repro"] = {"stopped_at": number, "reason": "timed out"}
            where = f"cell {number}"
        print(f"repro: {where} ran longer than {args.timeout:g} s", file=sys.stderr)
        code = 124
    except CellExecutionError:
        print(_error_tail(nb) or "repro: a cell raised an error", file=sys.stderr)
        code = 1
    except DeadKernelError as exc:
        print(f"repro: the kernel died: {exc}", file=sys.stderr)
        code = 1
    except Exception:  # a kernel that cannot start, a missing kernelspec, ...
        print("repro: the notebook could not be executed:", file=sys.stderr)
        traceback.print_exc(limit=3)
        code = 1
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(output.name + ".tmp")
    nbformat.write(nb, str(tmp))
    tmp.replace(output)
    return code


if __name__ == "__main__":
    sys.exit(main())
