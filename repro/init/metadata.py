"""The study's metadata as the project already states it: the licence from a LICENSE file
(SPDX id), title and authors from CITATION.cff, pyproject.toml or the README's heading.
What none of them says stays a question for the author: never a default filled in."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

LICENSE_FILES = (
    "LICENSE", "LICENSE.txt", "LICENSE.md", "LICENSE.rst", "LICENCE", "LICENCE.txt",
    "LICENCE.md", "COPYING", "COPYING.txt", "LICENSE-MIT", "LICENSE.MIT",
)  # fmt: skip
ORCID = re.compile(r"(\d{4}-\d{4}-\d{4}-\d{3}[\dX])")


@dataclass(frozen=True)
class Found:
    """A value and where it was read."""

    value: str
    source: str


@dataclass(frozen=True)
class FoundAuthor:
    name: str
    """'Family, Given' when the source says which is which."""
    orcid: str | None = None
    affiliation: str | None = None


@dataclass(frozen=True)
class FoundMetadata:
    title: Found | None = None
    license: Found | None = None
    authors: list[FoundAuthor] = field(default_factory=list)
    authors_source: str | None = None

    def questions(self) -> list[str]:
        """What the author must still say before publishing."""
        asked = []
        if self.title is None:
            asked.append("title: what is the study called? ([capsule] title)")
        if not self.authors:
            asked.append(
                "authors: who are they, 'Family, Given' with ORCID iDs? ([capsule] authors)"
            )
        if self.license is None:
            asked.append(
                "license: under which licence may others reuse it? an SPDX id, e.g. "
                "CC-BY-4.0, MIT ([capsule] license)"
            )
        return asked


def license_id(text: str) -> str | None:
    """The SPDX id of a common licence's text, or None when it is not recognised."""
    flat = " ".join(text.split())
    low = flat.lower()
    if "gnu affero general public license" in low:
        return "AGPL-3.0-or-later"
    if "gnu lesser general public license" in low:
        return "LGPL-3.0-or-later" if "version 3" in low else "LGPL-2.1-or-later"
    if "gnu general public license" in low:
        if "version 3" in low:
            return "GPL-3.0-or-later"
        if "version 2" in low:
            return "GPL-2.0-or-later"
        return None
    if "apache license" in low and "version 2.0" in low:
        return "Apache-2.0"
    if "mozilla public license" in low and "2.0" in low:
        return "MPL-2.0"
    if "permission is hereby granted, free of charge" in low:
        return "MIT"
    if "redistribution and use in source and binary forms" in low:
        return (
            "BSD-3-Clause"
            if "neither the name" in low or "endorse or promote" in low
            else ("BSD-2-Clause")
        )
    if "cc0 1.0" in low or "creative commons zero" in low:
        return "CC0-1.0"
    cc = re.search(
        r"attribution((?:-(?:noncommercial|sharealike|noderivatives))*) 4\.0 international", low
    )
    if cc:
        parts = cc.group(1).split("-")[1:]
        short = {"noncommercial": "NC", "sharealike": "SA", "noderivatives": "ND"}
        return "-".join(["CC-BY", *(short[p] for p in parts), "4.0"])
    if "this is free and unencumbered software released into the public domain" in low:
        return "Unlicense"
    if "permission to use, copy, modify, and/or distribute this software" in low:
        return "ISC"
    return None


def _license_file(project: Path) -> Found | None:
    for name in LICENSE_FILES:
        path = project / name
        if path.is_file():
            spdx = license_id(path.read_text(encoding="utf-8", errors="replace")[:20000])
            return Found(spdx, name) if spdx else None
    return None


def _cff(project: Path) -> dict[str, Any]:
    path = project / "CITATION.cff"
    if not path.is_file():
        return {}
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8", errors="replace"))
    except yaml.YAMLError:
        return {}
    return data if isinstance(data, dict) else {}


def _pyproject(project: Path) -> dict[str, Any]:
    path = project / "pyproject.toml"
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    except (tomllib.TOMLDecodeError, UnicodeDecodeError):
        return {}
    table = data.get("project")
    return table if isinstance(table, dict) else {}


def _cff_authors(cff: dict[str, Any]) -> list[FoundAuthor]:
    authors = []
    for item in cff.get("authors") or []:
        if not isinstance(item, dict):
            continue
        family, given = item.get("family-names"), item.get("given-names")
        name = ", ".join(str(p) for p in (family, given) if p) or str(item.get("name") or "")
        if not name.strip():
            continue
        orcid = ORCID.search(str(item.get("orcid") or ""))
        affiliation = item.get("affiliation")
        authors.append(
            FoundAuthor(name.strip(), orcid.group(1) if orcid else None, affiliation or None)
        )
    return authors


def family_first(name: str) -> str:
    """'Jane Q. Doe' -> 'Doe, Jane Q.' (the form Zenodo expects); names with a comma, or of
    one word, are kept."""
    parts = name.split()
    if "," in name or len(parts) < 2:
        return name.strip()
    return f"{parts[-1]}, {' '.join(parts[:-1])}"


def _pyproject_authors(table: dict[str, Any]) -> list[FoundAuthor]:
    authors = []
    for item in table.get("authors") or []:
        if isinstance(item, dict) and isinstance(item.get("name"), str) and item["name"].strip():
            authors.append(FoundAuthor(family_first(item["name"])))
    return authors


def _pyproject_license(table: dict[str, Any]) -> str | None:
    value = table.get("license")
    if isinstance(value, str) and re.fullmatch(r"[A-Za-z0-9.+-]+", value):
        return value  # PEP 639: an SPDX expression (a single id is all we take)
    return None


def readme_title(project: Path) -> str | None:
    """The README's first level-one heading (Markdown '# Title' or 'Title' over '===')."""
    for name in ("README.md", "README.markdown", "Readme.md", "readme.md"):
        path = project / name
        if not path.is_file():
            continue
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
        for i, line in enumerate(lines[:60]):
            match = re.match(r"^#\s+(.+?)\s*#*\s*$", line)
            if match:
                return _plain(match.group(1))
            if i + 1 < len(lines) and re.fullmatch(r"=+\s*", lines[i + 1]) and line.strip():
                return _plain(line.strip())
    return None


def _plain(text: str) -> str | None:
    """A heading without Markdown links, images and emphasis; None when nothing is left."""
    text = re.sub(r"!\[[^\]]*\]\([^)]*\)", "", text)  # badges
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)
    text = re.sub(r"[*_`]", "", text).strip()
    return text or None


def find_metadata(project: Path) -> FoundMetadata:
    cff = _cff(project)
    table = _pyproject(project)
    title = None
    if isinstance(cff.get("title"), str) and cff["title"].strip():
        title = Found(cff["title"].strip(), "CITATION.cff")
    elif (heading := readme_title(project)) is not None:
        title = Found(heading, "the README's heading")
    elif isinstance(table.get("name"), str):
        title = Found(table["name"], "pyproject.toml")

    license_found = None
    if isinstance(cff.get("license"), str) and cff["license"].strip():
        license_found = Found(cff["license"].strip(), "CITATION.cff")
    else:
        license_found = _license_file(project)
        if license_found is None and (spdx := _pyproject_license(table)):
            license_found = Found(spdx, "pyproject.toml")

    authors = _cff_authors(cff)
    source = "CITATION.cff" if authors else None
    if not authors:
        authors = _pyproject_authors(table)
        source = "pyproject.toml" if authors else None
    return FoundMetadata(title, license_found, authors, source)
