"""Declared notebooks: read and validate them, run them as internal runs, normalise outputs.

A notebook executes through the same machinery as a run (local, docker or Slurm): its
command is `driver.py` (copied into the project) run by the environment's own Python, which
executes it with nbclient and writes the executed notebook under .repro-notebooks/.
"""

from __future__ import annotations

import json
import math
import re
import shlex
import warnings
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from repro.capsule.manifest import KernelInfo
from repro.config.models import NotebookSpec, Run
from repro.errors import NotebookError

if TYPE_CHECKING:
    from nbformat import NotebookNode

WORK_DIR = ".repro-notebooks"
"""Where the driver and the executed notebooks go, inside the project being run."""
DRIVER = f"{WORK_DIR}/run_notebook.py"
INJECTED_TAG = "injected-parameters"
KERNEL_STARTUP_S = 120
KERNEL_PACKAGES = ("ipykernel", "nbclient")
"""What the environment needs to execute notebooks (added to the lock when missing)."""

_ADDRESS = re.compile(r"\b0x[0-9a-fA-F]{6,16}\b")
_WIDGET = "application/vnd.jupyter.widget-view+json"
_TEXT_KEYS = ("text/plain", "text/html", "text/markdown", "text/latex")


def executed_path(spec: NotebookSpec) -> str:
    """Where the executed notebook is written, relative to the project."""
    return f"{WORK_DIR}/{spec.path}"


def read_notebook(path: Path, rel: str) -> NotebookNode:
    """The notebook as nbformat v4, validated; a one-line NotebookError otherwise."""
    import nbformat

    if not path.is_file():
        raise NotebookError(
            f"notebook {rel} is not in the project",
            hint="fix [[notebooks]] path in repro.toml (relative to the project)",
        )
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise NotebookError(f"notebook {rel} is not UTF-8 text: {exc.reason}") from None
    try:
        raw = json.loads(text)
    except ValueError as exc:
        raise NotebookError(f"notebook {rel} is not valid JSON: {exc}") from None
    try:
        if isinstance(raw, dict) and raw.get("nbformat") == 4:
            nbformat.validate(nbformat.from_dict(raw))  # before reads: errors keep their path
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # nbformat warns of (and invents) missing cell ids
            nb = nbformat.reads(text, as_version=4)
        nbformat.validate(nb)
        _stable_ids(nb, raw)
    except nbformat.ValidationError as exc:
        location = getattr(exc, "absolute_path", None)
        where = "/".join(str(p) for p in location) if location else ""
        raise NotebookError(
            f"notebook {rel} is not a valid notebook"
            + (f" at {where}" if where else "")
            + f": {_one_line(exc.message, 160)}"
        ) from None
    except Exception as exc:  # nbformat raises reader and version errors alike
        raise NotebookError(f"notebook {rel} cannot be read: {_one_line(str(exc))}") from None
    return nb


def _stable_ids(nb: NotebookNode, raw: Any) -> None:
    """Cells of a 4.5+ notebook saved without ids get cell-N, as the driver gives them, not
    the random ids nbformat invents: the expectation must not change from one read to the
    next."""
    cells = raw.get("cells", []) if isinstance(raw, dict) else []
    if nb.nbformat_minor < 5 or len(cells) != len(nb.cells):
        return
    for i, cell in enumerate(cells):
        if isinstance(cell, dict) and "id" not in cell:
            nb.cells[i].id = f"cell-{i + 1}"


def read_executed(path: Path) -> NotebookNode | None:
    """A notebook the driver wrote, or None when it is absent or cannot be read."""
    import nbformat

    if not path.is_file():
        return None
    try:
        return nbformat.read(path, as_version=4)
    except Exception:  # half-written or garbled: the caller reports the run's stderr
        return None


def _one_line(text: str, limit: int = 240) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def kernel_info(nb: NotebookNode, spec: NotebookSpec) -> KernelInfo:
    kernelspec = nb.metadata.get("kernelspec", {})
    language_info = nb.metadata.get("language_info", {})
    name = spec.kernel or kernelspec.get("name") or "python3"
    language = kernelspec.get("language") or language_info.get("name") or "python"
    if spec.kernel and spec.kernel not in ("python", "python3", kernelspec.get("name")):
        # Another kernel than the notebook's: the environment must provide it, by name.
        language = "unknown"
    return KernelInfo(
        name=name,
        display_name=kernelspec.get("display_name"),
        language=str(language).lower(),
        language_version=language_info.get("version"),
    )


def code_cells(nb: NotebookNode) -> int:
    return sum(1 for cell in nb.cells if cell.cell_type == "code")


def notebook_run(spec: NotebookSpec, kernel: KernelInfo, n_code: int) -> Run:
    """The notebook as an internal run: one point, one output (the executed notebook)."""
    args = [
        "python",
        DRIVER,
        spec.path,
        executed_path(spec),
        "--timeout",
        f"{spec.timeout:g}",
        "--kernel",
        kernel.name,
        "--language",
        kernel.language,
    ]
    if spec.parameters:
        args += ["--parameters", json.dumps(spec.parameters, sort_keys=True)]
    if spec.allow_errors:
        args.append("--allow-errors")
    return Run(
        name=spec.run_name,
        command=shlex.join(args),
        outputs=[executed_path(spec)],
        resources=spec.resources,
        timeout=math.ceil(spec.timeout * max(1, n_code) + KERNEL_STARTUP_S),
        network=spec.network,
    )


def install_driver(project: Path) -> None:
    """Put the driver where notebook runs expect it (fresh each time)."""
    target = project / DRIVER
    target.parent.mkdir(parents=True, exist_ok=True)
    target.unlink(missing_ok=True)
    target.write_bytes(resources.files("repro.notebooks").joinpath("driver.py").read_bytes())


# --- normalisation -----------------------------------------------------------------------


def normalise(nb: NotebookNode) -> NotebookNode:
    """The expectation form of an executed notebook (a copy): what is volatile by nature is
    made equal. Cell timing metadata and widget state are dropped, widget ids and memory
    addresses (0x7f...) masked, consecutive stream chunks of one stream joined.
    Execution counts are kept (they show which cells ran) and never compared."""
    import copy

    nb = copy.deepcopy(nb)
    for key in ("widgets", "papermill"):
        nb.metadata.pop(key, None)
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
        cell.metadata.pop("papermill", None)
        if cell.cell_type != "code":
            continue
        outputs: list[Any] = []
        for output in cell.outputs:
            output = _normalise_output(output)
            previous = outputs[-1] if outputs else None
            if (
                output.output_type == "stream"
                and previous is not None
                and previous.output_type == "stream"
                and previous.name == output.name
            ):
                previous.text += output.text
                continue
            outputs.append(output)
        cell.outputs = outputs
    return nb


def _normalise_output(output: Any) -> Any:
    kind = output.output_type
    if kind == "stream":
        output.text = mask_addresses(output.text)
    elif kind in ("display_data", "execute_result"):
        output.pop("transient", None)
        data = output.get("data", {})
        for key in _TEXT_KEYS:
            if isinstance(data.get(key), str):
                data[key] = mask_addresses(data[key])
        widget = data.get(_WIDGET)
        if isinstance(widget, dict) and "model_id" in widget:
            widget["model_id"] = "<widget>"
    elif kind == "error":
        output.evalue = mask_addresses(output.evalue)
    return output


def mask_addresses(text: str) -> str:
    return _ADDRESS.sub("0x…", text)


def expectation_bytes(nb: NotebookNode) -> bytes:
    """The normalised notebook as stored in the capsule (nbformat's sorted, stable JSON)."""
    import nbformat

    return (nbformat.writes(normalise(nb)) + "\n").encode()


def error_summary(nb: NotebookNode) -> str | None:
    """'cell N raised Name: value' and the traceback's last lines, for the first error in an
    untagged cell (errors in cells tagged raises-exception are expected)."""
    index = 0
    for cell in nb.cells:
        tags = cell.metadata.get("tags", [])
        injected = INJECTED_TAG in tags
        index += 0 if injected else 1
        if cell.cell_type != "code" or "raises-exception" in tags:
            continue
        for output in cell.outputs:
            if output.output_type == "error":
                trace = re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", "\n".join(output.traceback))
                tail = "\n".join(trace.rstrip().splitlines()[-12:])
                where = "the injected parameters cell" if injected else f"cell {index}"
                return f"{where} raised {output.ename}: {output.evalue}\n{tail}".rstrip()
    return None


def driver_message(stderr: str) -> str:
    """The driver's own last word ('repro: ...'), else the last line of stderr: the kernel
    writes there too, and may have the last line."""
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    own = [ln.removeprefix("repro: ") for ln in lines if ln.startswith("repro: ")]
    return own[-1] if own else lines[-1] if lines else "(no output on stderr)"


def original_cells(nb: NotebookNode) -> list[Any]:
    """The cells as the notebook stores them: the injected parameters cell left out."""
    return [c for c in nb.cells if INJECTED_TAG not in c.metadata.get("tags", [])]


def cell_was_run(cell: Any) -> bool:
    return cell.get("execution_count") is not None or bool(cell.get("outputs"))


def out_of_order(nb: NotebookNode) -> bool:
    """Whether the saved execution counts show cells run out of order (or re-run)."""
    counts = [
        c.execution_count
        for c in nb.cells
        if c.cell_type == "code" and c.get("execution_count") is not None
    ]
    return counts != sorted(counts) or len(set(counts)) != len(counts)
