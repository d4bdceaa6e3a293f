"""The architecture as a test: what may import what inside repro/, and what core code never does.

Every module under repro/ is parsed with `ast` (nothing is imported or run). Imports count
wherever they are written: module level, inside functions, under `TYPE_CHECKING`. Dynamic
imports (`importlib`) are not seen.

Each rule is one row of a table below; tighten a rule by editing its row. A rule that the
current tree breaks is not weakened: the breach is listed in KNOWN_EXCEPTIONS with the reason,
and a test fails once that exception is no longer needed, so the list only shrinks.
"""

from __future__ import annotations

import ast
import functools
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "repro"

# --- the rules -----------------------------------------------------------------------------
# Names are dotted module names. A scope (`repro.capsule`) covers the module or package and
# everything below it; `docker` covers `docker.errors` too.

# Who alone may import a module: (imported, the scopes that may import it, why).
ONLY_IMPORTED_BY: tuple[tuple[str, tuple[str, ...], str], ...] = (
    (
        "docker",
        ("repro.engines.docker_engine",),
        "the container engine sits behind one small interface (its one implementation)",
    ),
    (
        "requests",
        ("repro.engines.docker_engine",),
        "docker-py's transport errors only; HTTP of our own goes through httpx",
    ),
    (
        "httpx",
        (
            "repro.publish.client",
            "repro.publish.transport",
            "repro.remote_data",
            "repro.env.local_packages",
        ),
        "HTTP: the Zenodo client, the remote-data fetcher, archive dependencies",
    ),
    ("nbclient", ("repro.notebooks.driver",), "kernels are driven only in the study's env"),
    ("nbformat", ("repro.notebooks",), "notebook files are read and written in one package"),
    ("repro.cli", ("repro.__main__", "repro.cli"), "the CLI is the outermost adapter"),
    ("typer", ("repro.cli",), "the CLI is a thin typer adapter over the core"),
    (
        "rich",
        ("repro.report.terminal", "repro.report.live"),
        "rendering and progress bars stay in the CLI's terminal renderers",
    ),
    ("repro.capture", ("repro.capture", "repro.cli"), "an operation; only the CLI starts it"),
    (
        "repro.replay",
        ("repro.replay", "repro.cli", "repro.capture.on_slurm"),
        "an operation; only the CLI starts it (and capture on a cluster, which submits through"
        " the slurm target's arrays: one submit/poll/cancel code for both)",
    ),
    ("repro.publish", ("repro.publish", "repro.cli"), "an operation; only the CLI starts it"),
)

# What a scope must never import: (importer scope, forbidden scopes, why).
NEVER_IMPORTS: tuple[tuple[str, tuple[str, ...], str], ...] = (
    (
        "repro.capsule",
        ("repro.capture", "repro.replay"),
        "the capsule format sits below the operations that write and read it",
    ),
    (
        "repro.env",
        ("repro.capture", "repro.replay"),
        "environments are built for capture and replay, never by calling back into them",
    ),
    (
        "repro.compare",
        ("repro.capture", "repro.replay", "repro.report", "repro.publish", "repro.env"),
        "comparison is pure: two outputs and a rule in, a verdict out",
    ),
    (
        "repro.execution",
        ("repro.capture", "repro.replay", "repro.capsule"),
        "running commands knows nothing of capsules or the operations using it",
    ),
    (
        "repro.engines",
        ("repro.capture", "repro.replay", "repro.env", "repro.execution", "repro.capsule"),
        "the container engine interface knows nothing of what is built or run with it",
    ),
    ("repro.scheduler", ("repro.capture", "repro.replay"), "the Slurm interface is a service"),
    ("repro.notebooks", ("repro.capture", "repro.replay"), "shared by capture and replay"),
    ("repro.report", ("repro.capture", "repro.replay"), "renders a report it is given"),
)

# The bottom of the stack: the only repro modules each may import (exact names; `repro` is
# the package's own __init__, which holds FORMAT and __version__).
MAY_IMPORT_ONLY: tuple[tuple[str, tuple[str, ...], str], ...] = (
    ("repro", (), "the package root holds constants only"),
    ("repro.errors", (), "every module may raise these"),
    ("repro.paths", (), "where repro keeps its files"),
    (
        "repro.hashing",
        ("repro", "repro.errors", "repro.forking"),
        "hashing files is a utility (its listing record is keyed by __version__)",
    ),
    ("repro.forking", ("repro.errors",), "worker processes for per-file work"),
    ("repro.model_base", (), "the base of every boundary model; depends on nothing"),
    (
        "repro.resource_usage",
        ("repro.model_base",),
        "what a run used, recorded in manifests and reports; depends on nothing but the base",
    ),
    (
        "repro.config.models",
        ("repro.model_base",),
        "what repro.toml says; depends on nothing but the base",
    ),
    (
        "repro.capsule.manifest",
        ("repro", "repro.model_base", "repro.config.models", "repro.resource_usage"),
        "the capsule format; depends on nothing but FORMAT, the base, the config it embeds "
        "and the resource usage it records",
    ),
    ("repro.compare.verdict", ("repro.model_base",), "a comparator's output; only the base"),
    (
        "repro.report.replay",
        (
            "repro.model_base",
            "repro.compare.verdict",
            "repro.resource_usage",
            "repro.scheduler.records",
        ),
        "the replay report; the base, the verdicts, the resource usage and Slurm's accounting records it collects",
    ),
    (
        "repro.scheduler.records",
        ("repro.model_base",),
        "what sacct recorded for a task; only the base",
    ),
    ("repro.report.diff", ("repro.model_base",), "the diff report; only the base"),
)

# Copied into the study's environment and run by its Python, where repro is not installed:
# (module, the third-party packages it may import besides the standard library).
STANDALONE: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("repro.notebooks.driver", ("nbclient", "nbformat")),
)

# Core code never writes to the terminal and never exits: it returns results and raises
# ReproError; the CLI renders them. Only these modules are not core.
NOT_CORE = ("repro.cli", "repro.__main__", "repro.report.terminal", "repro.report.live")

# Breaches of the rules above in the current tree: (module, what it does) -> why.
# `what` is an imported module, or "print-or-exit".
KNOWN_EXCEPTIONS: dict[tuple[str, str], str] = {
    # init writes a repro.toml from the files capture would take: it needs capture's file
    # listing and ignores. The listing belongs below both (e.g. a repro/project_files.py).
    ("repro.init.listing", "repro.capture.files"): "init reuses capture's project listing",
    # A standalone program copied into the study's environment: its stderr lines and exit
    # code are its interface to repro (see repro/notebooks/notebook.py, driver_message).
    ("repro.notebooks.driver", "print-or-exit"): "a program run in the study's environment",
    # `python -m repro.schemas` is a developer command inside the package; its
    # `if __name__ == "__main__"` block reports the files written (could move to scripts/).
    ("repro.schemas", "print-or-exit"): "the developer command's __main__ block",
}

# --- reading the tree ----------------------------------------------------------------------


@dataclass(frozen=True)
class Module:
    name: str
    path: Path
    imports: dict[str, int]  # imported module -> first line importing it
    print_or_exit: tuple[tuple[str, int], ...]  # (what, line)


def within(name: str, scope: str) -> bool:
    return name == scope or name.startswith(scope + ".")


def _name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _type_only(tree: ast.Module) -> set[int]:
    """Nodes under `if TYPE_CHECKING:`: annotations only, no import at run time."""
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and (
            (isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING")
            or (isinstance(node.test, ast.Attribute) and node.test.attr == "TYPE_CHECKING")
        ):
            for inner in node.body:
                skipped |= {id(n) for n in ast.walk(inner)}
    return skipped


def _imports(tree: ast.Module, name: str, is_package: bool, known: set[str]) -> dict[str, int]:
    found: dict[str, int] = {}
    package = name.split(".") if is_package else name.split(".")[:-1]
    type_only = _type_only(tree)
    for node in ast.walk(tree):
        if id(node) in type_only:
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                found.setdefault(alias.name, node.lineno)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                source = ".".join([*base, *([node.module] if node.module else [])])
            else:
                source = node.module or ""
            found.setdefault(source, node.lineno)
            for alias in node.names:  # `from repro import cli` imports the module repro.cli
                if f"{source}.{alias.name}" in known:
                    found.setdefault(f"{source}.{alias.name}", node.lineno)
    return found


def _print_or_exit(tree: ast.Module) -> tuple[tuple[str, int], ...]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            if node.func.id in {"print", "exit", "quit", "input", "breakpoint"}:
                found.append((f"{node.func.id}()", node.lineno))
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            dotted = f"{node.value.id}.{node.attr}"
            if dotted in {"sys.exit", "sys.stdout", "sys.stderr", "os._exit", "os.abort"}:
                found.append((dotted, node.lineno))
        elif isinstance(node, ast.Raise) and node.exc is not None:
            exc = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
            if isinstance(exc, ast.Name) and exc.id in {"SystemExit", "KeyboardInterrupt"}:
                found.append((f"raise {exc.id}", node.lineno))
    return tuple(sorted(found, key=lambda f: f[1]))


@functools.cache
def modules() -> dict[str, Module]:
    paths = sorted(PACKAGE.rglob("*.py"))
    known = {_name(p) for p in paths}
    result = {}
    for path in paths:
        name = _name(path)
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        imports = _imports(tree, name, path.name == "__init__.py", known)
        result[name] = Module(name, path, imports, _print_or_exit(tree))
    return result


Breach = tuple[str, str, str]  # (module, what it does, message)


def where(module: Module, line: int) -> str:
    return f"{module.path.relative_to(PACKAGE.parent)}:{line}"


def importing(module: Module, name: str, line: int) -> Breach:
    return (module.name, name, f"{where(module, line)}: {module.name} imports {name}")


def only_imported_by(imported: str, allowed: tuple[str, ...]) -> list[Breach]:
    return [
        importing(module, name, line)
        for module in modules().values()
        if not any(within(module.name, scope) for scope in allowed)
        for name, line in module.imports.items()
        if within(name, imported)
    ]


def never_imports(importer: str, forbidden: tuple[str, ...]) -> list[Breach]:
    return [
        importing(module, name, line)
        for module in modules().values()
        if within(module.name, importer)
        for name, line in module.imports.items()
        if any(within(name, scope) for scope in forbidden)
    ]


def may_import_only(name: str, allowed: tuple[str, ...]) -> list[Breach]:
    module = modules()[name]
    return [
        importing(module, imported, line)
        for imported, line in module.imports.items()
        if within(imported, "repro") and imported not in allowed
    ]


def standalone(name: str, third_party: tuple[str, ...]) -> list[Breach]:
    module = modules()[name]
    return [
        importing(module, imported, line)
        for imported, line in module.imports.items()
        if imported.split(".")[0] not in {*sys.stdlib_module_names, "__future__", *third_party}
    ]


def printing_or_exiting() -> list[Breach]:
    return [
        (module.name, "print-or-exit", f"{where(module, line)}: {module.name} uses {what}")
        for module in modules().values()
        if not any(module.name == n or module.name.startswith(n + ".") for n in NOT_CORE)
        for what, line in module.print_or_exit
    ]


def every_breach() -> list[Breach]:
    return [
        *(
            b
            for imported, allowed, _ in ONLY_IMPORTED_BY
            for b in only_imported_by(imported, allowed)
        ),
        *(
            b
            for importer, forbidden, _ in NEVER_IMPORTS
            for b in never_imports(importer, forbidden)
        ),
        *(b for name, allowed, _ in MAY_IMPORT_ONLY for b in may_import_only(name, allowed)),
        *(b for name, third_party in STANDALONE for b in standalone(name, third_party)),
        *printing_or_exiting(),
    ]


def unexpected(found: list[Breach]) -> list[str]:
    """The messages of the breaches that are not known exceptions."""
    return [message for module, what, message in found if (module, what) not in KNOWN_EXCEPTIONS]


# --- the checks ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("imported", "allowed", "why"), ONLY_IMPORTED_BY, ids=[r[0] for r in ONLY_IMPORTED_BY]
)
def test_only_these_modules_import(imported: str, allowed: tuple[str, ...], why: str) -> None:
    breaches = unexpected(only_imported_by(imported, allowed))
    assert breaches == [], f"only {', '.join(allowed)} may import {imported}: {why}"


@pytest.mark.parametrize(
    ("importer", "forbidden", "why"), NEVER_IMPORTS, ids=[r[0] for r in NEVER_IMPORTS]
)
def test_never_imports(importer: str, forbidden: tuple[str, ...], why: str) -> None:
    breaches = unexpected(never_imports(importer, forbidden))
    assert breaches == [], f"{importer} must not import {', '.join(forbidden)}: {why}"


@pytest.mark.parametrize(
    ("name", "allowed", "why"), MAY_IMPORT_ONLY, ids=[r[0] for r in MAY_IMPORT_ONLY]
)
def test_bottom_modules_import_little(name: str, allowed: tuple[str, ...], why: str) -> None:
    breaches = unexpected(may_import_only(name, allowed))
    assert breaches == [], f"{name} may import only {list(allowed)} of repro: {why}"


@pytest.mark.parametrize(("name", "third_party"), STANDALONE, ids=[r[0] for r in STANDALONE])
def test_standalone_modules_need_only_the_stdlib(name: str, third_party: tuple[str, ...]) -> None:
    breaches = unexpected(standalone(name, third_party))
    assert breaches == [], f"{name} runs where only {', '.join(third_party)} are installed"


def test_core_modules_never_print_or_exit() -> None:
    breaches = unexpected(printing_or_exiting())
    assert breaches == [], "core code returns results and raises ReproError; the CLI prints"


# --- the tables themselves -----------------------------------------------------------------


def test_every_rule_names_modules_that_exist() -> None:
    """A rename must not leave a rule guarding nothing."""
    names = set(modules())
    scopes = [
        *(s for imported, allowed, _ in ONLY_IMPORTED_BY for s in (imported, *allowed)),
        *(s for importer, forbidden, _ in NEVER_IMPORTS for s in (importer, *forbidden)),
        *(s for name, allowed, _ in MAY_IMPORT_ONLY for s in (name, *allowed)),
        *(name for name, _ in STANDALONE),
        *NOT_CORE,
        *(module for module, _ in KNOWN_EXCEPTIONS),
        *(what for _, what in KNOWN_EXCEPTIONS if what != "print-or-exit"),
    ]
    missing = [s for s in scopes if within(s, "repro") and not any(within(n, s) for n in names)]
    assert missing == []


def test_every_allowed_importer_still_imports() -> None:
    """An allowance nobody uses any more is a rule to tighten: remove it from its row."""
    unused = [
        f"{scope} no longer imports {imported}"
        for imported, allowed, _ in ONLY_IMPORTED_BY
        for scope in allowed
        if not any(
            within(module.name, scope) and any(within(n, imported) for n in module.imports)
            for module in modules().values()
        )
    ]
    assert unused == []


def test_every_known_exception_is_still_needed() -> None:
    """A breach that was fixed leaves KNOWN_EXCEPTIONS, so the rule holds from then on."""
    current = {(module, what) for module, what, _ in every_breach()}
    assert [e for e in KNOWN_EXCEPTIONS if e not in current] == []
