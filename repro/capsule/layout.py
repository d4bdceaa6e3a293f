"""Names and derived files of the capsule layout: BagIt tag files and the RO-Crate metadata."""

from __future__ import annotations

import hashlib
import json
import posixpath
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from repro.capsule.manifest import FileEntry, Manifest, RunRecord
from repro.config.models import Metadata, Run
from repro.errors import CapsuleTooLargeError
from repro.resource_usage import ResourceUsage

MANIFEST_NAME = "repro.json"
SIGNATURE_NAME = "repro.sig"
PAYLOAD_DIR = "data"
PROJECT_PREFIX = "data/project/"
RESULTS_PREFIX = "data/results/"
ENV_PREFIX = "data/env/"
LOCAL_WHEELS = ENV_PREFIX + "local-wheels/"
"""The project's own wheels (local packages), installed with no index."""
JOBS_PREFIX = "data/jobs/"
ROCRATE_PATH = "data/ro-crate-metadata.json"
TAG_FILES = ("bagit.txt", "bag-info.txt", "manifest-sha256.txt", "tagmanifest-sha256.txt")
MAX_SIGNATURE_BYTES = 1 << 20

# --- how large a capsule may be ------------------------------------------------------------
# The reader refuses anything beyond these before it trusts a byte; capture refuses, before it
# hashes anything, a project the reader would refuse, so every capsule capture writes verifies.
HARD_MAX_MEMBERS = 1_000_000
"""Payload files a capsule may list."""
HARD_MAX_BYTES = 1 << 40
"""Payload bytes a capsule may declare (1 TiB: no capsule repro writes comes near it)."""
MANIFEST_BYTES_PER_FILE = 192
"""repro.json's allowance per listed file. An entry takes about 140 bytes plus its path (173 in
all for the benchmark's paths of 36 bytes)."""
MAX_MANIFEST_BYTES = 64 * 1024**2 + HARD_MAX_MEMBERS * MANIFEST_BYTES_PER_FILE
"""Bytes of repro.json the reader accepts (about 247 MiB): 64 MiB for everything but the file
list (runs, results, notes), plus the allowance for HARD_MAX_MEMBERS files. So a million files
fit when their capsule paths average up to about 115 bytes, and fewer files may have longer
paths (capture refuses what would not fit, check_capsule_size). Before, 64 MiB in all: about
390,000 files, while capture wrote more.

It is the bound on the reader's memory: the manifest is read whole and refused unread above
the cap; parsed, it takes about 13 bytes of memory per byte of JSON (100,000 files: 17 MB of
JSON, verify's peak RSS 290 MB), so about 3 GB at the cap: what a million-file capsule needs
anyway for its FileEntry objects. Hostile JSON built for the worst ratio ([{},{},...], 3
bytes for a 64-byte dict and its pointer) would make about 6 GB (1.6 GB at the old 64 MiB) if it
were parsed; above 64 MiB a manifest denser in objects and arrays than a real one is refused
unparsed (manifest_too_dense), which leaves strings, at about the real manifest's ratio: reading
a million-file manifest whole costs that until it is streamed."""
DENSE_ABOVE = 64 * 1024**2
"""Above this size (the old cap), repro.json must not be denser in JSON objects and arrays
than one per MIN_BYTES_PER_CONTAINER bytes: a file entry is one object in about 170 bytes."""
MIN_BYTES_PER_CONTAINER = 64


def manifest_too_dense(data: bytes) -> bool:
    """True for a repro.json over DENSE_ABOVE bytes with more `{` and `[` than a manifest of
    its size can hold, refused before it is parsed: hostile JSON such as [{},{},...] (a
    64-byte dict for 3 bytes) would otherwise take twice the memory a real manifest of that
    size takes. Brackets inside strings count too, which only makes the bound stricter."""
    if len(data) <= DENSE_ABOVE:
        return False
    bound = len(data) // MIN_BYTES_PER_CONTAINER
    if data.count(b"{") + data.count(b"[") <= bound:
        return False  # the common case: one pass each in C
    # Brackets in strings (paths such as run[1]/p[2].csv) hold no memory: count the others.
    return sum(1 for m in _STRING_OR_OPENING.finditer(data) if m.end() - m.start() == 1) > bound


_STRING_OR_OPENING = re.compile(rb'"(?:[^"\\]|\\.)*"|[{\[]')
"""A JSON string (at least 2 bytes) or an opening bracket outside one (1 byte)."""


_ENTRY_FLOOR = len(
    b'{"link":null,"mode":0,"path":"","role":"env","sha256":"' + b"0" * 64 + b'","size":0},'
)
"""The fewest bytes one file entry takes in repro.json, its path aside."""


def manifest_floor(files: int, path_bytes: int) -> int:
    """The fewest bytes a repro.json listing `files` files, whose capsule paths take
    `path_bytes` bytes together, can have (JSON escapes only add to them)."""
    return files * _ENTRY_FLOOR + path_bytes


def check_capsule_size(files: int, path_bytes: int) -> None:
    """CapsuleTooLargeError when a capsule of `files` payload files (paths of `path_bytes`
    bytes, data/project/... included) could not be verified: called by capture on its file
    list, before any slow work."""
    if files > HARD_MAX_MEMBERS:
        raise CapsuleTooLargeError(
            f"the capsule would hold {files:,} files; repro reads at most {HARD_MAX_MEMBERS:,}"
        )
    floor = manifest_floor(files, path_bytes)
    if floor > MAX_MANIFEST_BYTES:
        raise CapsuleTooLargeError(
            f"the capsule's repro.json would take at least {floor / 2**20:,.0f} MiB for "
            f"{files:,} files; repro reads at most {MAX_MANIFEST_BYTES / 2**20:,.0f} MiB"
        )


def check_project_listing(rels: Sequence[str]) -> None:
    """check_capsule_size for the project files `rels` (relative paths) alone; the
    characters counted as bytes, which JSON and UTF-8 only add to."""
    files = len(rels)
    check_capsule_size(files, sum(map(len, rels)) + files * len(PROJECT_PREFIX))


def check_manifest(data: bytes) -> None:
    """CapsuleTooLargeError when the reader would refuse these repro.json bytes for their
    size or their density (capture's last check, on the exact bytes, before it writes)."""
    check_manifest_size(len(data))
    if manifest_too_dense(data):
        raise CapsuleTooLargeError(
            f"the capsule's repro.json ({len(data) / 2**20:,.0f} MiB) holds more JSON objects "
            "and arrays than repro reads in a manifest of that size"
        )


def check_manifest_size(size: int) -> None:
    """CapsuleTooLargeError when repro.json bytes of `size` are more than the reader accepts
    (capture's last check, on the exact bytes, before it writes)."""
    if size > MAX_MANIFEST_BYTES:
        raise CapsuleTooLargeError(
            f"the capsule's repro.json is {size / 2**20:,.1f} MiB; repro reads at most "
            f"{MAX_MANIFEST_BYTES / 2**20:,.1f} MiB"
        )


PROCESS_RUN_CRATE = "https://w3id.org/ro/wfrun/process/0.5"
RO_CRATE_SPEC = "https://w3id.org/ro/crate/1.1"


def member_order(manifest: Manifest, signed: bool) -> list[str]:
    """The one order the writer emits members in; the reader insists on it."""
    head = [MANIFEST_NAME] + ([SIGNATURE_NAME] if signed else []) + list(TAG_FILES)
    return head + sorted((f.path for f in manifest.files), key=lambda p: p.encode())


def _bag_escape(path: str) -> str:
    # RFC 8493 section 2.1.3: percent-encode CR, LF and % in manifest paths.
    return path.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _content_entries(by_path: dict[str, FileEntry]) -> dict[str, FileEntry | None]:
    """For every entry, the regular file its bytes come from (following links), or None
    for links to folders, to nothing or in a loop. Each link is resolved once, so a chain
    of n links costs n steps, not n squared."""
    resolved: dict[str, FileEntry | None] = {}
    for path, entry in by_path.items():
        chain: list[str] = []
        on_chain: set[str] = set()
        current: FileEntry | None = entry
        while (
            current is not None
            and (link := current.link) is not None
            and current.path not in resolved
        ):
            if current.path in on_chain:
                current = None  # a loop
                break
            chain.append(current.path)
            on_chain.add(current.path)
            target = posixpath.normpath(posixpath.join(posixpath.dirname(current.path), link))
            current = by_path.get(target)
        if current is not None and current.link is not None:
            current = resolved[current.path]
        for walked in chain:
            resolved[walked] = current
        if entry.link is None:
            resolved[path] = entry
    return resolved


def tag_files(manifest: Manifest, manifest_bytes: bytes) -> dict[str, bytes]:
    """bagit.txt, bag-info.txt, manifest-sha256.txt and tagmanifest-sha256.txt, derived."""
    bag_lines = []
    octets = count = 0
    ordered = sorted(manifest.files, key=lambda f: f.path.encode())
    if any(f.link is not None for f in manifest.files):
        contents = _content_entries({f.path: f for f in manifest.files})
        for entry in ordered:
            # A link is hashed by bagit as the file it points at; links to folders are
            # walked past by bagit (os.walk does not follow them), so they are not listed.
            content = contents[entry.path]
            if content is None:
                continue
            bag_lines.append(f"{content.sha256}  {_bag_escape(entry.path)}\n")
            octets += content.size
            count += 1
    else:
        # Without links every entry is its own content (what _content_entries gives), and
        # no path needs escaping unless one holds a character that does.
        paths = [f.path for f in ordered]
        joined = "".join(paths)
        if "%" in joined or "\r" in joined or "\n" in joined:
            paths = [_bag_escape(path) for path in paths]
        bag_lines = [f"{f.sha256}  {path}\n" for f, path in zip(ordered, paths, strict=True)]
        octets = sum(f.size for f in ordered)
        count = len(ordered)
    bagit = b"BagIt-Version: 1.0\nTag-File-Character-Encoding: UTF-8\n"
    info_lines = [
        f"Bag-Software-Agent: repro {manifest.repro_version}",
        f"Bagging-Date: {manifest.created[:10]}",
        f"Payload-Oxum: {octets}.{count}",
        f"External-Description: {_one_line(manifest.metadata.title)}",
    ]
    bag_info = ("\n".join(info_lines) + "\n").encode()
    manifest_txt = "".join(bag_lines).encode()
    tags = {"bagit.txt": bagit, "bag-info.txt": bag_info, "manifest-sha256.txt": manifest_txt}
    tag_manifest = "".join(
        f"{hashlib.sha256(content).hexdigest()}  {name}\n"
        for name, content in sorted({**tags, MANIFEST_NAME: manifest_bytes}.items())
    ).encode()
    tags["tagmanifest-sha256.txt"] = tag_manifest
    return tags


def _one_line(text: str) -> str:
    return " ".join(text.split())


CREATED_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def created_timestamp(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, tz=UTC).strftime(CREATED_FORMAT)


def created_epoch(created: str) -> int:
    """The member mtime of a capsule created at `created` (ValueError when malformed)."""
    return int(datetime.strptime(created, CREATED_FORMAT).replace(tzinfo=UTC).timestamp())


def _crate_id(capsule_path: str) -> str:
    return capsule_path.removeprefix(PAYLOAD_DIR + "/")


USAGE_TERMS = "https://repro.dev/terms/resource-usage#"
"""The namespace of the resourceUsage property ids (docs/resources.md)."""
_QUDT = "http://qudt.org/vocab/unit/"
_USAGE_PROPERTIES: tuple[tuple[str, str, str, str], ...] = (
    # (field, name, QUDT unit, unit text)
    ("wall_s", "wall time", "SEC", "s"),
    ("cpu_user_s", "CPU user time", "SEC", "s"),
    ("cpu_system_s", "CPU system time", "SEC", "s"),
    ("cores_mean", "cores used (CPU time / wall time)", "NUM", "cores"),
    ("cores_peak", "cores used, peak", "NUM", "cores"),
    ("peak_rss_bytes", "peak resident memory of the process tree", "BYTE", "B"),
    ("memory_peak_bytes", "peak memory of the cgroup", "BYTE", "B"),
    ("read_bytes", "bytes read from storage", "BYTE", "B"),
    ("written_bytes", "bytes written to storage", "BYTE", "B"),
    ("processes", "processes", "NUM", "processes"),
    ("gpu_util_peak", "GPU utilisation, peak", "PERCENT", "%"),
    ("gpu_mem_peak_bytes", "GPU memory, peak", "BYTE", "B"),
)


def usage_values(action_id: str, usage: ResourceUsage) -> list[dict[str, Any]]:
    """A run's resource usage as schema.org PropertyValues (the Workflow Run Crate's
    `resourceUsage`), one per figure that was measured, plus how it ended and how it was
    measured."""
    values: list[dict[str, Any]] = []
    for name, label, unit, text in _USAGE_PROPERTIES:
        value = getattr(usage, name)
        if value is None:
            continue
        values.append(
            {
                "@id": f"{action_id}-{name}",
                "@type": "PropertyValue",
                "name": label,
                "propertyID": USAGE_TERMS + name,
                "value": value,
                "unitCode": _QUDT + unit,
                "unitText": text,
            }
        )
    for name, value in (("ending", usage.ending.words), ("method", usage.method)):
        values.append(
            {
                "@id": f"{action_id}-{name}",
                "@type": "PropertyValue",
                "name": name,
                "propertyID": USAGE_TERMS + name,
                "value": value,
            }
        )
    return values


def rocrate_metadata(
    metadata: Metadata,
    created: str,
    runs: list[Run],
    results: list[RunRecord],
    data_paths: list[str],
    files: list[FileEntry],
    base_image: str,
    extra_parts: list[str],
) -> bytes:
    """data/ro-crate-metadata.json: a Process Run Crate with one CreateAction per run point."""
    graph: list[dict[str, Any]] = [
        {
            "@id": "ro-crate-metadata.json",
            "@type": "CreativeWork",
            "conformsTo": {"@id": RO_CRATE_SPEC},
            "about": {"@id": "./"},
        }
    ]
    people: list[dict[str, Any]] = []
    for author in metadata.authors:
        pid = f"https://orcid.org/{author.orcid}" if author.orcid else f"#author-{len(people)}"
        person: dict[str, object] = {"@id": pid, "@type": "Person", "name": author.name}
        if author.affiliation:
            person["affiliation"] = author.affiliation
        people.append(person)

    parts: dict[str, dict[str, Any]] = {}
    by_path = {f.path: f for f in files}
    for data in data_paths:
        capsule_path = PROJECT_PREFIX + data
        if capsule_path in by_path:
            entry = by_path[capsule_path]
            parts[capsule_path] = {
                "@id": _crate_id(capsule_path),
                "@type": "File",
                "name": data,
                "contentSize": entry.size,
                "sha256": entry.sha256,
            }
        else:
            parts[capsule_path] = {
                "@id": _crate_id(capsule_path) + "/",
                "@type": "Dataset",
                "name": data,
            }
    for path in extra_parts:
        entry = by_path[path]
        parts[path] = {
            "@id": _crate_id(path),
            "@type": "File",
            "name": posixpath.basename(path),
            "contentSize": entry.size,
            "sha256": entry.sha256,
        }
    container: dict[str, Any] = {
        "@id": "#container-image",
        "@type": "ContainerImage",
        "additionalType": {"@id": "https://w3id.org/ro/terms/workflow-run#DockerImage"},
        "name": base_image,
    }
    actions: list[dict[str, Any]] = []
    usage_entities: list[dict[str, Any]] = []
    apps: list[dict[str, Any]] = []
    for run in runs:
        app_id = f"#app-{run.name}"
        apps.append(
            {
                "@id": app_id,
                "@type": "SoftwareApplication",
                "name": run.name,
                "description": run.command,
            }
        )
    for record in results:
        outputs = []
        for out in record.outputs:
            parts[out.capsule_path] = {
                "@id": _crate_id(out.capsule_path),
                "@type": "File",
                "name": out.path,
                "contentSize": out.size,
                "sha256": out.sha256,
            }
            outputs.append({"@id": _crate_id(out.capsule_path)})
        action: dict[str, object] = {
            "@id": f"#run-{record.run}-{record.point_id}",
            "@type": "CreateAction",
            "name": f"{record.run} {record.point_id}" if record.point else record.run,
            "description": record.command,
            "instrument": {"@id": f"#app-{record.run}"},
            "object": [{"@id": p["@id"]} for k, p in parts.items() if k.startswith(PROJECT_PREFIX)],
            "result": outputs,
            "containerImage": {"@id": "#container-image"},
            "actionStatus": {"@id": "http://schema.org/CompletedActionStatus"}
            if record.executed
            else {"@id": "http://schema.org/PotentialActionStatus"},
        }
        if record.usage is not None:
            used = usage_values(str(action["@id"]), record.usage)
            action["resourceUsage"] = [{"@id": v["@id"]} for v in used]
            usage_entities += used
        actions.append(action)
    root: dict[str, object] = {
        "@id": "./",
        "@type": "Dataset",
        "name": metadata.title,
        "datePublished": created,
        "conformsTo": {"@id": PROCESS_RUN_CRATE},
        "hasPart": [{"@id": p["@id"]} for _, p in sorted(parts.items())],
        "mentions": [{"@id": a["@id"]} for a in actions],
    }
    if metadata.description:
        root["description"] = metadata.description
    if metadata.license:
        root["license"] = {"@id": f"https://spdx.org/licenses/{metadata.license}"}
    if metadata.keywords:
        root["keywords"] = ", ".join(metadata.keywords)
    if people:
        root["author"] = [{"@id": p["@id"]} for p in people]
    profile: dict[str, Any] = {
        "@id": PROCESS_RUN_CRATE,
        "@type": "CreativeWork",
        "name": "Process Run Crate",
        "version": "0.5",
    }
    graph += [
        root,
        profile,
        *people,
        *apps,
        container,
        *actions,
        *usage_entities,
        *[p for _, p in sorted(parts.items())],
    ]
    doc = {"@context": "https://w3id.org/ro/crate/1.1/context", "@graph": graph}
    return (json.dumps(doc, indent=1, sort_keys=True, ensure_ascii=False) + "\n").encode()
