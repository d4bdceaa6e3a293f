"""Zenodo deposition metadata from a capsule (and the project's CITATION.cff), checked locally.

Precedence: the capsule's metadata ([capsule] in repro.toml) wins where it is set;
CITATION.cff fills what it leaves empty (title, authors, license, keywords, description) and
adds what repro.toml has no field for (version, date-released, type, repository-code, the
preferred citation's DOI). Every problem is reported at once, one per field, before any
request is made.
"""

from __future__ import annotations

import hashlib
import html
import re
import tarfile
from datetime import date
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field

from repro import __version__
from repro.capsule.layout import PROJECT_PREFIX
from repro.capsule.manifest import Manifest, SourceState
from repro.model_base import Model
from repro.publish.errors import PublishValidationError

CFF_NAME = "CITATION.cff"
CFF_MAX_BYTES = 1 << 20
DEFAULT_UPLOAD_TYPE = "software"
UPLOAD_TYPES = frozenset(
    {
        "publication",
        "poster",
        "presentation",
        "dataset",
        "image",
        "video",
        "software",
        "lesson",
        "physicalobject",
        "other",
    }
)
# License ids Zenodo accepts (SPDX ids, compared case-insensitively). Zenodo knows more; an
# id missing here is refused locally rather than with Zenodo's terse "Invalid license
# provided" half-way through a publication. Extend the list when a real one is missing.
_LICENSE_IDS = """
CC-BY-4.0 CC-BY-SA-4.0 CC-BY-NC-4.0 CC-BY-ND-4.0 CC-BY-NC-SA-4.0 CC-BY-NC-ND-4.0
CC-BY-3.0 CC-BY-SA-3.0 CC-BY-NC-3.0 CC-BY-ND-3.0 CC-BY-NC-SA-3.0 CC-BY-NC-ND-3.0
CC-BY-2.5 CC-BY-2.0 CC-BY-1.0 CC0-1.0 CC-PDDC PDDL-1.0 ODbL-1.0 ODC-By-1.0
MIT MIT-0 Apache-2.0 Apache-1.1 BSD-2-Clause BSD-3-Clause BSD-3-Clause-Clear
BSD-4-Clause 0BSD ISC Zlib Unlicense WTFPL BSL-1.0 Artistic-2.0 PSF-2.0
Python-2.0 PostgreSQL NCSA UPL-1.0 MPL-1.1 MPL-2.0 EPL-1.0 EPL-2.0 EUPL-1.1
EUPL-1.2 CECILL-2.1 CECILL-B CECILL-C OFL-1.1 LPPL-1.3c AFL-3.0 OSL-3.0
GPL-2.0 GPL-2.0-only GPL-2.0-or-later GPL-3.0 GPL-3.0-only GPL-3.0-or-later
LGPL-2.1 LGPL-2.1-only LGPL-2.1-or-later LGPL-3.0 LGPL-3.0-only LGPL-3.0-or-later
AGPL-3.0 AGPL-3.0-only AGPL-3.0-or-later etalab-2.0 OGL-UK-3.0 DL-DE-BY-2.0
other-open other-at other-pd other-closed other-nc
"""
LICENSES = frozenset(_LICENSE_IDS.lower().split())
DOI_PATTERN = re.compile(r"^10\.\d{4,9}/\S+$")
COMMUNITY_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
Relation = Literal["isSupplementTo", "isNewVersionOf", "isDerivedFrom"]


class Creator(Model):
    name: str
    """'Family, Given', or an organisation's name."""
    affiliation: str | None = None
    orcid: str | None = None


class RelatedIdentifier(Model):
    identifier: str
    relation: Relation
    scheme: Literal["doi", "url"]


class Community(Model):
    identifier: str


class ZenodoMetadata(Model):
    """What is sent as a deposition's metadata (PUT replaces all of it, so it is complete)."""

    upload_type: str
    title: str = Field(min_length=1)
    creators: list[Creator] = Field(min_length=1)
    description: str = Field(min_length=1)
    """HTML, as Zenodo stores it."""
    access_right: Literal["open"] = "open"
    license: str
    publication_date: str
    version: str | None = None
    keywords: list[str] = Field(default_factory=list)
    related_identifiers: list[RelatedIdentifier] = Field(default_factory=list)
    communities: list[Community] = Field(default_factory=list)
    notes: str | None = None

    def to_api(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True, exclude_defaults=False)

    def for_doi(self, doi: str) -> ZenodoMetadata:
        """The final metadata once the DOI is known: notes tell readers how to replay it."""
        return self.model_copy(
            update={
                "notes": (
                    f"Reproducibility capsule made with repro {__version__}. "
                    f"Verify and re-run it with: repro replay {doi}"
                )
            }
        )

    def with_marker(self, marker: str) -> ZenodoMetadata:
        """The metadata a deposition is created with: notes carry a one-off marker, so a
        create whose answer was lost can be recognised among the drafts (the metadata PUT
        that follows replaces it)."""
        return self.model_copy(update={"notes": f"repro publish in progress ({marker})"})


# --- CITATION.cff ------------------------------------------------------------------------


def cff_from_capsule(capsule: Path, manifest: Manifest) -> str | None:
    """The project's CITATION.cff as the (already verified) capsule holds it, or None."""
    name = PROJECT_PREFIX + CFF_NAME
    entry = next((f for f in manifest.files if f.path == name and f.link is None), None)
    if entry is None or entry.size > CFF_MAX_BYTES:
        return None
    with tarfile.open(capsule, "r:gz") as tar:
        for member in tar:
            if member.name != name:
                continue
            fh = tar.extractfile(member)
            data = fh.read(CFF_MAX_BYTES + 1) if fh is not None else b""
            # The capsule was verified before; check again, cheaply, that these are the bytes
            # the manifest names.
            if hashlib.sha256(data).hexdigest() != entry.sha256:
                return None
            return data.decode("utf-8", "replace")
    return None


def parse_cff(text: str) -> dict[str, Any]:
    """CITATION.cff as a mapping of strings, lists and mappings (no YAML type guessing: the
    BaseLoader keeps `version: 1.10` and `date-released: 2024-01-02` as written)."""
    try:
        data = yaml.load(text, Loader=yaml.BaseLoader)  # noqa: S506 (BaseLoader builds only str/list/dict)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise PublishValidationError([f"{CFF_NAME}: not valid YAML{where}"]) from None
    if not isinstance(data, dict):
        raise PublishValidationError([f"{CFF_NAME}: not a YAML mapping"])
    return data


def _cff_str(data: dict[str, Any], key: str) -> str | None:
    value = data.get(key)
    return value.strip() if isinstance(value, str) and value.strip() else None


def _cff_creators(data: dict[str, Any], problems: list[str]) -> list[tuple[Creator, bool]]:
    """(creator, is an organisation) from CFF authors."""
    authors = data.get("authors")
    if authors is None:
        return []
    if not isinstance(authors, list):
        problems.append(f"{CFF_NAME}: authors: not a list")
        return []
    out: list[tuple[Creator, bool]] = []
    for i, author in enumerate(authors):
        if not isinstance(author, dict):
            problems.append(f"{CFF_NAME}: authors[{i}]: not a mapping")
            continue
        family = _cff_str(author, "family-names")
        given = _cff_str(author, "given-names")
        orcid = _cff_str(author, "orcid")
        if orcid:
            orcid = re.sub(r"^https?://orcid\.org/", "", orcid)
        affiliation = _cff_str(author, "affiliation")
        if family:
            full = " ".join(
                x
                for x in (
                    _cff_str(author, "name-particle"),
                    family,
                    _cff_str(author, "name-suffix"),
                )
                if x
            )
            name = f"{full}, {given}" if given else full
            out.append((Creator(name=name, affiliation=affiliation, orcid=orcid), False))
        elif _cff_str(author, "name"):
            entity = _cff_str(author, "name") or ""
            out.append((Creator(name=entity, affiliation=affiliation, orcid=orcid), True))
        else:
            problems.append(f"{CFF_NAME}: authors[{i}]: neither family-names nor name")
    return out


# --- checks ------------------------------------------------------------------------------


def orcid_ok(orcid: str) -> bool:
    """Form and ISO 7064 mod 11-2 check digit of an ORCID iD."""
    if not re.fullmatch(r"\d{4}-\d{4}-\d{4}-\d{3}[\dX]", orcid):
        return False
    digits = orcid.replace("-", "")
    total = 0
    for d in digits[:-1]:
        total = (total + int(d)) * 2
    check = (12 - total % 11) % 11
    return digits[-1] == ("X" if check == 10 else str(check))


def _person_name_ok(name: str) -> bool:
    family, sep, given = name.partition(",")
    return bool(sep and family.strip() and given.strip())


def _html(text: str) -> str:
    """Plain text as the HTML Zenodo stores descriptions in: escaped paragraphs."""
    paragraphs = [p.strip() for p in re.split(r"\n\s*\n", text.strip()) if p.strip()]
    return "".join(f"<p>{html.escape(' '.join(p.split()))}</p>" for p in paragraphs)


def source_url(source: SourceState) -> str | None:
    """The capsule's source repository as a browsable https URL (at its commit on GitHub)."""
    remote = source.remote
    if not remote:
        return None
    scp = re.fullmatch(r"(?:[\w.-]+@)?([\w.-]+):(?!//)(.+)", remote)
    if scp and "://" not in remote:
        remote = f"https://{scp.group(1)}/{scp.group(2)}"
    remote = re.sub(r"^(ssh|git)://(?:[\w.-]+@)?", "https://", remote)
    if not remote.startswith(("https://", "http://")):
        return None
    remote = remote.removesuffix("/").removesuffix(".git")
    if source.commit and remote.startswith("https://github.com/"):
        return f"{remote}/tree/{source.commit}"
    return remote


def build_metadata(
    manifest: Manifest,
    cff_text: str | None,
    *,
    today: date,
    upload_type: str | None = None,
    communities: list[str] | None = None,
    new_version_of_doi: str | None = None,
) -> ZenodoMetadata:
    """The complete deposition metadata, or PublishValidationError listing every problem."""
    problems: list[str] = []
    meta = manifest.metadata
    cff = parse_cff(cff_text) if cff_text is not None else {}

    title = meta.title.strip() if meta.title and meta.title != "Untitled study" else None
    title = title or _cff_str(cff, "title")
    if not title:
        problems.append(
            "title: not set (the capsule is an 'Untitled study'); set [capsule] title in "
            "repro.toml or title in CITATION.cff"
        )

    creators: list[tuple[Creator, bool]] = [
        (Creator(name=a.name.strip(), affiliation=a.affiliation, orcid=a.orcid), False)
        for a in meta.authors
    ] or _cff_creators(cff, problems)
    if not creators:
        problems.append("creators: no authors; set [capsule] authors in repro.toml")
    for i, (creator, organisation) in enumerate(creators):
        if not organisation and not _person_name_ok(creator.name):
            problems.append(
                f"creators[{i}].name: {creator.name!r} is not in the form 'Family, Given'"
            )
        if creator.orcid and not orcid_ok(creator.orcid):
            problems.append(
                f"creators[{i}].orcid: {creator.orcid!r} is not a valid ORCID iD "
                "(form 0000-0000-0000-000X, check digit)"
            )

    license_id = meta.license or _license_from_cff(cff, problems)
    if not license_id:
        problems.append(
            "license: not set; open access on Zenodo needs one, e.g. CC-BY-4.0 or MIT "
            "([capsule] license in repro.toml)"
        )
    elif license_id.lower() not in LICENSES:
        problems.append(
            f"license: {license_id!r} is not a license id Zenodo knows "
            "(use an SPDX id such as CC-BY-4.0, MIT, Apache-2.0)"
        )

    kind = upload_type or _cff_type(cff) or DEFAULT_UPLOAD_TYPE
    if kind not in UPLOAD_TYPES:
        problems.append(f"upload_type: {kind!r} is not one of {', '.join(sorted(UPLOAD_TYPES))}")

    published = _cff_str(cff, "date-released") or today.isoformat()
    try:
        published = date.fromisoformat(published).isoformat()
    except ValueError:
        problems.append(f"publication_date: {published!r} is not a date (YYYY-MM-DD)")

    keywords = list(meta.keywords) or _cff_list(cff, "keywords")
    for i, word in enumerate(keywords):
        if not word.strip():
            problems.append(f"keywords[{i}]: empty")

    for i, community in enumerate(communities or []):
        if not COMMUNITY_PATTERN.fullmatch(community):
            problems.append(
                f"communities[{i}]: {community!r} is not a community identifier "
                "(lower-case letters, digits, - and _)"
            )

    related: list[RelatedIdentifier] = []
    repo = source_url(manifest.source) or _cff_str(cff, "repository-code")
    if repo and repo.startswith(("https://", "http://")):
        related.append(RelatedIdentifier(identifier=repo, relation="isDerivedFrom", scheme="url"))
    paper = meta.related_doi or _cff_paper_doi(cff)
    if paper:
        paper = normalise_doi(paper)
        if not DOI_PATTERN.fullmatch(paper):
            problems.append(f"related_doi: {paper!r} is not a DOI (10.NNNN/...)")
        else:
            related.append(
                RelatedIdentifier(identifier=paper, relation="isSupplementTo", scheme="doi")
            )
    if new_version_of_doi:
        related.append(
            RelatedIdentifier(
                identifier=new_version_of_doi, relation="isNewVersionOf", scheme="doi"
            )
        )

    description = meta.description or _cff_str(cff, "abstract")
    if problems:
        raise PublishValidationError(problems)
    assert title is not None and license_id is not None  # noqa: S101 (checked above)
    if not description:
        description = (
            f"Reproducibility capsule of \u201c{title}\u201d: the code, the locked "
            "dependencies (with hashes), the data, the commands that produce the results "
            "and the expected results, in one signed, verifiable file made with repro."
        )
    return ZenodoMetadata(
        upload_type=kind,
        title=title,
        creators=[c for c, _ in creators],
        description=_html(description),
        license=license_id,
        publication_date=published,
        version=_cff_str(cff, "version"),
        keywords=[k.strip() for k in keywords],
        related_identifiers=related,
        communities=[Community(identifier=c) for c in communities or []],
    )


def _license_from_cff(cff: dict[str, Any], problems: list[str]) -> str | None:
    value = cff.get("license")
    if isinstance(value, list):
        if len(value) > 1:
            problems.append(
                f"license: {CFF_NAME} lists {len(value)} licenses; Zenodo takes one "
                "(set [capsule] license in repro.toml)"
            )
            return None
        value = value[0] if value else None
    return value.strip() if isinstance(value, str) and value.strip() else None


def _cff_type(cff: dict[str, Any]) -> str | None:
    value = _cff_str(cff, "type")
    return value if value in ("software", "dataset") else None


def _cff_list(cff: dict[str, Any], key: str) -> list[str]:
    value = cff.get(key)
    return [str(v) for v in value] if isinstance(value, list) else []


def _cff_paper_doi(cff: dict[str, Any]) -> str | None:
    preferred = cff.get("preferred-citation")
    if isinstance(preferred, dict):
        return _cff_str(preferred, "doi")
    return None


def normalise_doi(text: str) -> str:
    """'doi:10.x/y', 'https://doi.org/10.x/y' -> '10.x/y'."""
    text = text.strip()
    text = re.sub(r"^(?:doi:|https?://(?:dx\.)?doi\.org/)", "", text, flags=re.IGNORECASE)
    return text


# --- reading back ------------------------------------------------------------------------


def _plain(text: Any) -> str:
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", str(text or ""))).split())


def _related(items: Any) -> set[tuple[str, str]]:
    if not isinstance(items, list):
        return set()
    return {
        (str(i.get("identifier", "")).lower(), str(i.get("relation", "")).lower())
        for i in items
        if isinstance(i, dict)
    }


def metadata_differences(sent: dict[str, Any], got: dict[str, Any]) -> list[str]:
    """The fields Zenodo does not hold as sent (allowing for its normalisations: HTML
    sanitising of the description, license id case, added defaults)."""
    found: list[str] = []

    def same(name: str, a: Any, b: Any) -> None:
        if a != b:
            found.append(f"{name}: sent {a!r}, Zenodo has {b!r}")

    for key in ("title", "upload_type", "publication_date", "version"):
        if key in sent:
            same(key, sent[key], got.get(key))
    same(
        "creators",
        [c["name"] for c in sent.get("creators", [])],
        [c.get("name") for c in got.get("creators", []) if isinstance(c, dict)],
    )
    lic = got.get("license")
    lic_id = lic.get("id") if isinstance(lic, dict) else lic
    same("license", str(sent.get("license", "")).lower(), str(lic_id or "").lower())
    same("description", _plain(sent.get("description")), _plain(got.get("description")))
    same("keywords", sorted(sent.get("keywords", [])), sorted(got.get("keywords", []) or []))
    if _related(sent.get("related_identifiers")) - _related(got.get("related_identifiers")):
        found.append("related_identifiers: some sent identifiers are missing")
    sent_c = {c["identifier"] for c in sent.get("communities", [])}
    got_c = {c.get("identifier") for c in got.get("communities", []) or [] if isinstance(c, dict)}
    if sent_c - got_c:
        found.append(f"communities: {sorted(sent_c - got_c)} missing")
    return found
