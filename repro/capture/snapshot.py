"""Capture's snapshot stage: list the project, check sizes, read the notebooks, hash every
file (through the stat cache) and scan it for secrets, before anything runs."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from repro import progress
from repro.capsule.layout import PROJECT_PREFIX, check_project_listing
from repro.capsule.manifest import KernelInfo
from repro.capture.files import Listing, ProjectFile, list_project
from repro.capture.options import Observer
from repro.capture.plan import Plan
from repro.capture.secret_scan import Hit, SecretScanner, fail_on_hits
from repro.config.models import NotebookSpec
from repro.errors import FileTooLargeError, NotebookError
from repro.hashing import (
    FileStat,
    StatCache,
    any_racy,
    cache_prefix,
    digest_files,
    listing_fingerprint,
    sha256_bytes,
)
from repro.notebooks import notebook as nbk
from repro.paths import cache_dir


@dataclass(frozen=True)
class Notebook:
    spec: NotebookSpec
    node: Any
    """The notebook as read and validated (an nbformat NotebookNode)."""
    kernel: KernelInfo
    code_cells: int


@dataclass(frozen=True)
class Snapshot:
    """The project's files as captured: listed, hashed and scanned."""

    listing: Listing
    regular: tuple[ProjectFile, ...]
    """The listed files that are not symlinks."""
    sha256: tuple[str, ...]
    """Of each of `regular`'s files (aligned with it)."""
    sizes: tuple[int, ...]
    """The bytes hashed of each of `regular`'s files."""
    notebooks: tuple[Notebook, ...]
    scanner: SecretScanner
    notes: tuple[str, ...]
    timings: Mapping[str, float]

    @property
    def hashed_bytes(self) -> int:
        return sum(self.sizes)

    def capsule_digests(self) -> dict[str, str]:
        """Capsule path -> sha256 of each project file (of its target, for a symlink)."""
        shas = dict(zip((f.rel for f in self.regular), self.sha256, strict=True))
        return {
            PROJECT_PREFIX + f.rel: (
                sha256_bytes(f.link_target.encode()) if f.link_target is not None else shas[f.rel]
            )
            for f in self.listing.files
        }


def take_snapshot(plan: Plan, say: Observer) -> Snapshot:
    opts, config, project = plan.options, plan.config, plan.project
    timings: dict[str, float] = {}
    say("listing project files")
    t0 = time.perf_counter()
    listed_at_ns = time.time_ns()
    listing = list_project(
        project,
        data_paths=list(plan.local_data),
        extra_ignores=config.capture.ignore,
        exclude=set(plan.exclude),
        allow_secrets=set(plan.allowed_secrets),
    )
    regular = [f for f in listing.files if not f.is_link]
    check_sizes(regular, config.capture.max_file_size)
    check_project_listing([f.rel for f in listing.files])  # what verify can read
    timings["list"] = time.perf_counter() - t0
    notebooks = read_notebooks(project, config.notebooks, {f.rel for f in listing.files})
    notes = [] if opts.execute else saved_outputs_notes(notebooks)

    say(f"hashing {len(regular)} files")
    t0 = time.perf_counter()
    cache = hash_cache(say) if opts.use_hash_cache else None
    scanner = SecretScanner()
    allowed = set(plan.allowed_secrets)
    rels = [f.rel for f in regular]
    stats = [_stat(f) for f in regular]
    root = os.fspath(project)
    prefix = "" if root == "." else root if root.endswith("/") else root + "/"
    scan_key = _scan_key(scanner, allowed)
    fingerprint = listing_fingerprint(rels, stats) if cache is not None else ""
    if cache is not None:
        # The whole listing as the last capture saw it: its digests at once (and its clean
        # scan), not a stat cache lookup per file.
        listed = cache.listing(cache_prefix(prefix), fingerprint, len(rels))
        if listed is not None:
            timings["hash"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            if listed.scanned != scan_key:
                scan_project(scanner, cache, regular, listed.sha256, allowed)
            timings["scan"] = time.perf_counter() - t0
            return Snapshot(
                listing,
                tuple(regular),
                tuple(listed.sha256),
                tuple(st.st_size for st in stats),
                tuple(notebooks),
                scanner,
                tuple(notes),
                timings,
            )
    clean = cache.clean_scans(scanner.rules_digest) if cache else set()

    def scan_while_hashing(index: int, sha: str, data: bytes) -> list[Hit] | None:
        # Run by the worker that read the file: the secret scan looks at the bytes the
        # hashing read, not a second read. None: not to scan; [] (or ()): scanned clean.
        rel = rels[index]
        if rel in allowed or sha in clean:
            return None
        return scanner.scan_content(data, rel) or _CLEAN

    with progress.meter("hashing and scanning", total=len(regular)) as shown:
        hashed = digest_files(
            prefix, rels, stats, cache=cache, inspect=scan_while_hashing, progress=shown.advance
        )
    timings["hash"] = time.perf_counter() - t0

    say("scanning for secrets")
    t0 = time.perf_counter()
    scan_project(scanner, cache, regular, hashed.sha256, allowed, clean=clean, scanned=hashed.found)
    # Recorded only when every file's stat vouches for the bytes hashed: none changed too
    # recently, none grew or shrank while it was read.
    same_sizes = all(size == st.st_size for size, st in zip(hashed.sizes, stats, strict=True))
    if cache is not None and same_sizes and not any_racy(stats, listed_at_ns):
        cache.store_listing(cache_prefix(prefix), fingerprint, hashed.sha256, scan_key)
    timings["scan"] = time.perf_counter() - t0
    return Snapshot(
        listing,
        tuple(regular),
        tuple(hashed.sha256),
        tuple(hashed.sizes),
        tuple(notebooks),
        scanner,
        tuple(notes),
        timings,
    )


_CLEAN: list[Hit] = []
"""A clean verdict from a worker (shared: a file's own empty list would cost 56 bytes)."""


def _scan_key(scanner: SecretScanner, allowed: set[str]) -> str:
    """What a clean secret scan of a listing depends on besides its files: the rules and
    the files allowed to hold secrets (one no longer allowed must be scanned)."""
    text = "\0".join([scanner.rules_digest, *sorted(allowed)])
    return sha256_bytes(text.encode("utf-8", "surrogateescape"))


def _stat(f: ProjectFile) -> FileStat:
    if f.stat is not None:
        return f.stat
    st = os.stat(f.where)  # noqa: PTH116 (a str: no Path per file)
    return FileStat(st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns)


def hash_cache(warn: Observer) -> StatCache:
    """The stat cache of file digests, under the user cache."""
    return StatCache(cache_dir() / "hashes.sqlite", warn=warn)


def check_sizes(files: list[ProjectFile], limit: int) -> None:
    for f in files:
        size = f.stat.st_size if f.stat is not None else f.path.stat().st_size
        if size > limit:
            raise FileTooLargeError(
                f"{f.rel} is {size / 2**30:.1f} GiB, over the {limit / 2**30:.1f} GiB "
                "per-file limit for embedded data"
            )


def read_notebooks(project: Path, specs: list[NotebookSpec], listed: set[str]) -> list[Notebook]:
    """Every declared notebook read and validated by nbformat, before any slow work."""
    found = []
    for spec in specs:
        node = nbk.read_notebook(project / spec.path, spec.path)
        if spec.path not in listed:
            raise NotebookError(
                f"notebook {spec.path} is not among the captured files (ignored or excluded)",
                hint="remove it from .reproignore / [capture] ignore, or from [[notebooks]]",
            )
        found.append(Notebook(spec, node, nbk.kernel_info(node, spec), nbk.code_cells(node)))
    return found


def saved_outputs_notes(notebooks: list[Notebook]) -> list[str]:
    """--no-run: the saved outputs become the expectation; refuse what cannot hold."""
    notes = []
    for nb in notebooks:
        if nb.spec.parameters:
            raise NotebookError(
                f"notebook {nb.spec.path} has parameters, but with --no-run its saved outputs "
                "(computed without them) would be the expectation",
                hint="capture without --no-run, or remove [notebooks.parameters]",
            )
        if nbk.out_of_order(nb.node):
            notes.append(
                f"{nb.spec.path}: its saved outputs come from cells run out of order "
                "(execution counts not increasing)"
            )
    return notes


def scan_project(
    scanner: SecretScanner,
    cache: StatCache | None,
    files: list[ProjectFile],
    sha256: Sequence[str],
    allowed: set[str],
    *,
    clean: set[str] | None = None,
    scanned: Mapping[int, list[Hit]] | None = None,
) -> None:
    """Every file not allowed to hold a secret, except those the cache knows are clean.

    `sha256` is aligned with `files`; `scanned` holds the files (by index in `files`)
    already scanned from the bytes the hashing read ([] when clean); `clean` the sha256 the
    cache knows clean (read here when not given)."""
    if clean is None:
        clean = cache.clean_scans(scanner.rules_digest) if cache else set()
    done = scanned or {}
    hits: list[Hit] = []
    newly_clean: set[str] = set()
    with progress.meter("scanning for secrets", total=len(files)) as shown:
        for index, f in enumerate(files):
            shown.advance()
            sha = sha256[index]
            found = done.get(index)
            if found is None:
                if f.rel in allowed or sha in clean:
                    continue
                found = scanner.scan_file(f.path, f.rel)
            if found:
                hits += found
            else:
                newly_clean.add(sha)
    if cache is not None and newly_clean:
        cache.store_clean(scanner.rules_digest, newly_clean - clean)
    fail_on_hits(hits)
