"""`repro cat` and `repro extract`: members of a capsule, out through the safe reader.

Nothing leaves a capsule before all of it verified: the members asked for are unpacked by
repro.capsule.reader into a fresh folder that exists only once every checksum, the manifest
and the signature held; `cat` then reads from there, `extract` moves it into place.
"""

from __future__ import annotations

import difflib
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from repro.capsule.layout import (
    MANIFEST_NAME,
    PAYLOAD_DIR,
    PROJECT_PREFIX,
    SIGNATURE_NAME,
    TAG_FILES,
)
from repro.capsule.manifest import Manifest
from repro.capsule.reader import peek_manifest, read_capsule
from repro.errors import OutputWriteError, UsageError
from repro.paths import scratch_prefix
from repro.verify import Policy, VerifyReport, open_capsule


class MemberNotFoundError(UsageError):
    """A path asked of a capsule that it does not hold."""

    default_hint = "list what it holds: repro inspect CAPSULE --files"


class DestinationExistsError(UsageError):
    default_hint = "choose a new folder, or pass --force to overwrite these files"


def member_names(manifest: Manifest) -> list[str]:
    """Every member a capsule may hold (repro.sig when signed), in the capsule's order."""
    return [MANIFEST_NAME, SIGNATURE_NAME, *TAG_FILES, *(f.path for f in manifest.files)]


def resolve(manifest: Manifest, wanted: str, *, folders: bool) -> list[str]:
    """The member names `wanted` names: a member name (`data/project/analyse.py`), a path in
    the project (`analyse.py`) or under data/ (`results/...`), or with `folders` everything
    below such a folder. MemberNotFoundError with the closest names when none."""
    names = member_names(manifest)
    known = set(names)
    clean = wanted.strip()
    while clean.startswith(("./", "/")):  # ./analyse.py, /analyse.py: the project's
        clean = clean.removeprefix(".").lstrip("/")
    clean = "" if clean == "." else clean.rstrip("/")
    for candidate in (clean, PROJECT_PREFIX + clean, f"{PAYLOAD_DIR}/{clean}"):
        if candidate in known:
            return [candidate]
    if folders:
        for candidate in (clean, PROJECT_PREFIX + clean, f"{PAYLOAD_DIR}/{clean}"):
            prefix = candidate.rstrip("/") + "/" if candidate.rstrip("/") else ""
            below = [n for n in names if n.startswith(prefix)]
            if below:
                return below
    elif any(
        n.startswith(c.rstrip("/") + "/")
        for c in (clean, PROJECT_PREFIX + clean, f"{PAYLOAD_DIR}/{clean}")
        if c
        for n in names
    ):
        raise UsageError(
            f"{wanted} is a folder in the capsule, not a file",
            hint=f"extract it: repro extract CAPSULE {wanted} -o DIR",
        )
    short = [n.removeprefix(PROJECT_PREFIX) for n in names]
    close = difflib.get_close_matches(clean, short, n=3, cutoff=0.5)
    close += [s for s in short if clean and s.endswith("/" + clean.rsplit("/", 1)[-1])]
    close = list(dict.fromkeys(close))[:3]
    hint = (
        f"did you mean {' or '.join(close)}? (all files: repro inspect CAPSULE --files)"
        if close
        else MemberNotFoundError.default_hint
    )
    raise MemberNotFoundError(f"the capsule holds no file {wanted}", hint=hint)


def _resolve_all(capsule: Path, manifest: Manifest, paths: list[str], *, folders: bool) -> set[str]:
    """resolve() for each path; when one names nothing, the capsule is verified first, so a
    changed capsule is reported as one (exit 4), never as a missing file."""
    names: set[str] = set()
    try:
        for wanted in paths:
            names.update(resolve(manifest, wanted, folders=folders))
    except UsageError:
        read_capsule(capsule)
        raise
    return names


@dataclass(frozen=True)
class Member:
    """One member, verified, in a scratch folder that lives as long as the `with` block."""

    name: str
    path: Path
    size: int
    report: VerifyReport


@contextmanager
def open_member(capsule: Path, wanted: str, policy: Policy | None = None) -> Iterator[Member]:
    """The member `wanted` names, unpacked (alone) after the whole capsule verified."""
    manifest = peek_manifest(capsule)
    (name,) = _resolve_all(capsule, manifest, [wanted], folders=False)
    with tempfile.TemporaryDirectory(prefix=scratch_prefix("cat")) as tmp:
        root = Path(tmp) / "capsule"
        report, _ = open_capsule_only(capsule, root, policy, manifest, {name})
        path = root / name
        if not path.is_symlink() and not path.exists():
            raise MemberNotFoundError(
                f"the capsule is unsigned: it holds no {name}",
                hint="sign it with your key: repro restamp CAPSULE --in-place",
            )
        entry = next((f for f in report.capsule.manifest.files if f.path == name), None)
        if entry is not None and entry.link is not None:
            path = _follow(root, name)
        yield Member(name, path, path.stat().st_size, report)


def _follow(root: Path, name: str) -> Path:
    """A symlink member's target: inside the capsule (the reader checked), and unpacked."""
    target = (root / name).resolve()
    if not target.is_relative_to(root.resolve()) or not target.is_file():
        link = (root / name).readlink()
        raise UsageError(
            f"{name} is a link to {link}, not a file this can print",
            hint=f"print its target instead: repro cat CAPSULE {link}",
        )
    return target


def open_capsule_only(
    capsule: Path, dest: Path, policy: Policy | None, manifest: Manifest, names: set[str]
) -> tuple[VerifyReport, set[str]]:
    """open_capsule unpacking only `names` (and, for links among them, what they point at;
    `manifest` as peeked: the reader checks the capsule's own against the archive)."""
    by_path = {f.path: f for f in manifest.files}
    wanted = set(names)
    for name in names:
        entry = by_path.get(name)
        if entry is not None and entry.link is not None:
            target = os.path.normpath(os.path.join(os.path.dirname(name), entry.link))  # noqa: PTH118, PTH120
            wanted |= {n for n in by_path if n == target or n.startswith(target + "/")}
    return open_capsule(capsule, dest, policy=policy, only=wanted.__contains__), wanted


@dataclass(frozen=True)
class Extracted:
    """What `repro extract` wrote."""

    capsule_id: str
    dest: Path
    files: list[str]
    """Member names written under dest (their paths inside it)."""
    replaced: list[str]
    """Of those, the ones that replaced a file already there (--force)."""


def extract_members(
    capsule: Path,
    dest: Path,
    paths: list[str],
    *,
    force: bool = False,
    policy: Policy | None = None,
) -> Extracted:
    """Unpack all of a capsule (or the members `paths` name, folders included) into `dest`,
    at their paths inside the capsule, after all of it verified.

    Never outside `dest`; atomic: everything goes into a fresh folder beside `dest` first,
    then a new `dest` is that folder renamed, and an existing one gets each file renamed in
    (each file is the old one or the whole new one, never half of either). Files already
    there are refused unless `force`, before anything moves."""
    if dest.exists() and not dest.is_dir():
        raise DestinationExistsError(f"-o {dest} is a file, not a folder", hint="choose a folder")
    manifest = peek_manifest(capsule)
    names = _resolve_all(capsule, manifest, paths, folders=True)
    if not paths:
        names = set(member_names(manifest))
    parent = dest.absolute().parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".repro-extract-", dir=parent))
    except OSError as exc:
        raise OutputWriteError(f"cannot create {dest}: {exc.strerror or exc}") from None
    try:
        report, wanted = open_capsule_only(capsule, staging / "c", policy, manifest, names)
        tree = staging / "c"
        # What the reader unpacked: the members asked for, and repro.json, repro.sig and
        # the tag files, always; the latter removed unless asked for. Found by name, not by
        # walking the tree (100,000 files), in the order sorting their paths gives.
        root = str(tree)
        written = sorted(
            (rel for rel in wanted if os.path.lexists(f"{root}/{rel}")),
            key=lambda rel: rel.split("/"),
        )
        for rel in (MANIFEST_NAME, SIGNATURE_NAME, *TAG_FILES):
            if rel not in wanted and os.path.lexists(f"{root}/{rel}"):
                (tree / rel).unlink()
        if not dest.exists():
            tree.rename(dest)
            return Extracted(report.capsule.capsule_id, dest, written, [])
        replaced = _conflicts(dest, written)
        if replaced and not force:
            more = f" (and {len(replaced) - 3} more)" if len(replaced) > 3 else ""
            raise DestinationExistsError(
                f"{dest} already has {', '.join(replaced[:3])}{more}",
            )
        for rel in written:
            target = dest / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            (tree / rel).replace(target)
        return Extracted(report.capsule.capsule_id, dest, written, replaced)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _conflicts(dest: Path, written: list[str]) -> list[str]:
    """Files of `written` already at dest; UsageError when a folder on the way is a link
    (a file moved through it could land outside dest) or a file."""
    found = []
    for rel in written:
        here = dest
        for part in Path(rel).parts[:-1]:
            here = here / part
            if here.is_symlink():
                raise DestinationExistsError(
                    f"{here} is a symbolic link: extracting through it could write outside {dest}",
                    hint="extract into a new folder",
                )
            if here.exists() and not here.is_dir():
                raise DestinationExistsError(
                    f"{here} is a file where the capsule has a folder",
                    hint="extract into a new folder",
                )
        if (dest / rel).exists() or (dest / rel).is_symlink():
            found.append(rel)
    return found
