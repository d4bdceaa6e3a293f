"""Execute one notebook with nbclient, inside the study's environment.

This file is standalone on purpose: repro copies it into the project it runs (at capture and
at replay, on this machine, in a container or on a cluster node) and runs it with the
environment's own Python, where only nbformat, nbclient and the kernel are installed.

    python run_notebook.py NOTEBOOK OUTPUT --timeout S [--kernel NAME] [--language L]
                           [--parameters JSON]

Exit codes: 0 executed; 1 a cell raised (or the kernel died); 2 bad input; 124 a cell timed
out. The executed notebook (as far as it got) is written to OUTPUT in every case but 2.
"""

from __future__ import annotations

import argparse
import json
import os
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


def _inject(nb, parameters):  # type: ignore[no-untyped-def]
    """papermill's convention: a cell tagged injected-parameters after the 'parameters' one."""
    import nbformat

    if not parameters:
        return
    source = "# Parameters (injected by repro)\n" + "".join(
        f"{key} = {value!r}\n" for key, value in parameters.items()
    )
    cell = nbformat.v4.new_code_cell(source)
    cell.metadata["tags"] = [INJECTED_TAG]
    cell.pop("id", None)
    where = 0
    for i, existing in enumerate(nb.cells):
        if "parameters" in existing.get("metadata", {}).get("tags", []):
            where = i + 1
            break
    nb.cells.insert(where, cell)


def _error_tail(nb) -> str:  # type: ignore[no-untyped-def]
    import re

    for index, cell in enumerate(nb.cells, start=1):
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                lines = "\n".join(output.get("traceback", []))
                plain = re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", lines).rstrip().splitlines()
                tail = "\n".join(plain[-TAIL_LINES:])
                head = f"cell {index} raised {output.get('ename')}: {output.get('evalue')}"
                return f"{head}\n{tail}"
    return ""


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("notebook")
    parser.add_argument("output")
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument("--kernel", default=None)
    parser.add_argument("--language", default="python")
    parser.add_argument("--parameters", default="{}")
    args = parser.parse_args()
    _isolate()
    try:
        import nbformat
        from nbclient import NotebookClient
        from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError
    except ImportError as exc:
        print(f"repro: cannot run notebooks here: {exc}", file=sys.stderr)
        return 2
    try:
        nb = nbformat.read(args.notebook, as_version=4)
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
    client = NotebookClient(
        nb,
        timeout=args.timeout,
        kernel_name=kernel,
        resources={"metadata": {"path": str(Path(args.notebook).resolve().parent)}},
        record_timing=False,
        coalesce_streams=True,
    )
    code = 0
    try:
        client.execute()
    except CellTimeoutError as exc:
        print(f"repro: a cell ran longer than {args.timeout:g} s: {exc}", file=sys.stderr)
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
