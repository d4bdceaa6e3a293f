"""Guess a project's dependencies from what its Python files and notebooks import, when it
declares none: third-party imports only (no standard library, no module of the project, no
optional import), under their distribution names (sklearn -> scikit-learn)."""

from __future__ import annotations

import ast
import json
import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

# Import name (or dotted prefix) -> the distribution that provides it, where they differ.
RENAMES: dict[str, str] = {
    "sklearn": "scikit-learn",
    "cv2": "opencv-python",
    "PIL": "pillow",
    "yaml": "pyyaml",
    "bs4": "beautifulsoup4",
    "skimage": "scikit-image",
    "skbio": "scikit-bio",
    "Bio": "biopython",
    "dateutil": "python-dateutil",
    "attr": "attrs",
    "mpl_toolkits": "matplotlib",
    "mpl_toolkits.basemap": "basemap",
    "dotenv": "python-dotenv",
    "Crypto": "pycryptodome",
    "serial": "pyserial",
    "jwt": "PyJWT",
    "google.protobuf": "protobuf",
    "google.cloud.storage": "google-cloud-storage",
    "google.cloud.bigquery": "google-cloud-bigquery",
    "tables": "tables",
    "IPython": "ipython",
    "docx": "python-docx",
    "pptx": "python-pptx",
    "magic": "python-magic",
    "gi": "PyGObject",
    "MySQLdb": "mysqlclient",
    "psycopg2": "psycopg2-binary",
    "OpenSSL": "pyOpenSSL",
    "zmq": "pyzmq",
    "usb": "pyusb",
    "github": "PyGithub",
    "git": "GitPython",
    "slugify": "python-slugify",
    "fitz": "PyMuPDF",
    "umap": "umap-learn",
    "community": "python-louvain",
    "faiss": "faiss-cpu",
    "cairo": "pycairo",
    "wx": "wxPython",
    "osgeo": "GDAL",
    "pkg_resources": "setuptools",
    "ruamel.yaml": "ruamel.yaml",
    "sentence_transformers": "sentence-transformers",
    "Levenshtein": "levenshtein",
    "lightgbm": "lightgbm",
    "multipart": "python-multipart",
    "jose": "python-jose",
    "telegram": "python-telegram-bot",
    "nacl": "PyNaCl",
    "Cython": "cython",
    "pydantic_settings": "pydantic-settings",
    "igraph": "igraph",
}
# Namespace roots that name no distribution by themselves (only through a RENAMES prefix).
NAMESPACES = frozenset({"google", "ruamel", "azure", "zope", "backports"})
# Python 2's standard library names that Python 3 renamed: old files import them.
PY2_STDLIB = frozenset(
    {
        "urllib2", "urlparse", "ConfigParser", "cPickle", "StringIO", "cStringIO", "Queue",
        "Tkinter", "tkMessageBox", "httplib", "commands", "__builtin__", "HTMLParser",
        "SocketServer", "xmlrpclib", "cookielib", "thread", "dummy_thread", "copy_reg",
        "repr", "anydbm", "dbhash", "whichdb", "md5", "sha", "sets", "exceptions", "new",
        "UserDict", "UserList", "UserString", "htmlentitydefs", "BaseHTTPServer",
        "SimpleHTTPServer", "CGIHTTPServer", "Cookie", "robotparser", "string",
    }
)  # fmt: skip
_OPTIONAL = ("ImportError", "ModuleNotFoundError", "Exception", "BaseException")
_IMPORT_LINE = re.compile(r"^\s*(?:from\s+([A-Za-z_][\w.]*)\s+import\b|import\s+([\w., ]+))")


@dataclass(frozen=True)
class PackageGuess:
    """Distributions the project's imports need, guessed."""

    packages: list[str]
    """Distribution names, sorted case-insensitively."""
    where: dict[str, list[str]]
    """Distribution -> the files importing it (first few)."""
    unparsed: list[str]
    """Files that are not valid Python 3 (read line by line instead)."""


def _optional_nodes(tree: ast.AST) -> set[int]:
    """Imports inside `try:` blocks whose handlers catch ImportError (optional imports)."""
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.Try):
            continue
        names = set()
        for handler in node.handlers:
            kind = handler.type
            if kind is None:
                names.add("BaseException")
            for part in kind.elts if isinstance(kind, ast.Tuple) else [kind]:
                if isinstance(part, ast.Name):
                    names.add(part.id)
        if names & set(_OPTIONAL):
            for inner in node.body:
                skipped |= {id(n) for n in ast.walk(inner)}
    return skipped


def imports_in_source(text: str) -> tuple[set[str], bool]:
    """Absolute imports (dotted names) of a Python source, and whether it parsed as
    Python 3 (when not, `import` lines are read one by one, as Python 2 files need)."""
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):
        return _imports_by_line(text), False
    optional = _optional_nodes(tree)
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in optional:
            continue
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            found.add(node.module)
            # from google import protobuf: the dotted name says which distribution
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return found, True


def _imports_by_line(text: str) -> set[str]:
    found: set[str] = set()
    for line in text.splitlines():
        match = _IMPORT_LINE.match(line)
        if not match:
            continue
        if match.group(1):
            found.add(match.group(1))
        else:
            for part in match.group(2).split(","):
                name = part.strip().split(" ")[0]
                if name:
                    found.add(name)
    return found


def notebook_source(text: str) -> str:
    """A notebook's code cells as one Python source; IPython magics and shell lines left
    out."""
    try:
        node = json.loads(text)
    except ValueError:
        return ""
    cells = node.get("cells", []) if isinstance(node, dict) else []
    if not isinstance(cells, list):  # nbformat 3 keeps them under worksheets
        return ""
    chunks = []
    for cell in cells:
        if not isinstance(cell, dict) or cell.get("cell_type") != "code":
            continue
        source = cell.get("source", "")
        lines = "".join(source) if isinstance(source, list) else str(source)
        kept = [ln for ln in lines.splitlines() if not ln.lstrip().startswith(("%", "!", "?"))]
        chunks.append("\n".join(kept))
    return "\n\n".join(chunks)


def local_names(files: Iterable[str]) -> set[str]:
    """Top-level names the project's own modules can be imported under: every .py file's
    stem and every folder holding Python files (scripts import their siblings)."""
    names: set[str] = set()
    for rel in files:
        parts = Path(rel).parts
        if not rel.endswith(".py"):
            continue
        names.add(Path(rel).stem)
        names.update(parts[:-1])
    return names


def distribution(name: str) -> str | None:
    """The distribution an import needs, or None (standard library, namespace root)."""
    top = name.split(".")[0]
    if not top or top.startswith("_") or top == "__future__":
        return None
    if top in sys.stdlib_module_names or top in PY2_STDLIB:
        return None
    parts = name.split(".")
    for n in range(len(parts), 0, -1):
        prefix = ".".join(parts[:n])
        if prefix in RENAMES:
            return RENAMES[prefix]
    if top in NAMESPACES:
        return None
    return top


def guess_packages(project: Path, files: list[str]) -> PackageGuess:
    """The distributions the project's .py files and notebooks import (listed files,
    project-relative)."""
    own = local_names(files)
    where: dict[str, list[str]] = {}
    unparsed = []
    for rel in files:
        if not rel.endswith((".py", ".ipynb")):
            continue
        try:
            text = (project / rel).read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        if rel.endswith(".ipynb"):
            text = notebook_source(text)
        names, parsed = imports_in_source(text)
        if not parsed:
            unparsed.append(rel)
        dists = set()
        for name in names:
            if name.split(".")[0] in own:
                continue
            dist = distribution(name)
            if dist is not None:
                dists.add(dist)
        for dist in dists:
            where.setdefault(dist, []).append(rel)
    packages = sorted(where, key=str.lower)
    return PackageGuess(packages, {p: where[p][:3] for p in packages}, unparsed)
