"""`repro diff A B`: what changed between two capsules — code, data, dependencies, runs,
environment and expected results (results compared with replay's comparators)."""

from __future__ import annotations

import difflib
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from repro.capsule.layout import PROJECT_PREFIX
from repro.capsule.manifest import ExpectedOutput, Manifest, NotebookRecord
from repro.compare import compare_output
from repro.paths import scratch_prefix
from repro.report.diff import CapsuleDiff, DiffEntry, DiffKind
from repro.verify import Policy, open_capsule

TEXT_CAP = 256 << 10
"""Larger files get no unified diff (their hashes still differ)."""
DIFF_LINES = 400


def _text(path: Path | None) -> str | None:
    """A file's text when it is small, UTF-8 and has no NUL; '' for a side that is absent."""
    if path is None:
        return ""
    if path.is_symlink() or not path.is_file() or path.stat().st_size > TEXT_CAP:
        return None
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        return None
    return None if "\x00" in text else text


def unified(a: Path | None, b: Path | None, name: str) -> str | None:
    """The unified diff of two text files (None: one side is not small text)."""
    before, after = _text(a), _text(b)
    if before is None or after is None:
        return None
    lines = list(
        difflib.unified_diff(
            before.splitlines(),
            after.splitlines(),
            fromfile=f"a/{name}" if a is not None else "/dev/null",
            tofile=f"b/{name}" if b is not None else "/dev/null",
            lineterm="",
        )
    )
    if len(lines) > DIFF_LINES:
        lines = [*lines[:DIFF_LINES], f"... {len(lines) - DIFF_LINES} more diff lines"]
    return "\n".join(lines) or None


def _changes(kind: DiffKind, before: dict[str, str], after: dict[str, str]) -> list[DiffEntry]:
    entries = []
    for name in sorted(set(before) | set(after)):
        a, b = before.get(name), after.get(name)
        if a == b:
            continue
        change = "added" if a is None else "removed" if b is None else "changed"
        entries.append(DiffEntry(kind=kind, name=name, change=change, before=a, after=b))
    return entries


def _files(m: Manifest, data: bool) -> dict[str, str]:
    return {
        f.path.removeprefix(PROJECT_PREFIX): (f"-> {f.link}" if f.link else f.sha256[:12])
        for f in m.files
        if f.path.startswith(PROJECT_PREFIX) and (f.role == "data") == data
    }


def _environment(m: Manifest) -> dict[str, str]:
    e, p = m.environment, m.platform
    return {
        "python": e.python_version,
        "lock source": e.lock_source,
        "base image": e.base_image,
        "apt packages": " ".join(e.apt_packages),
        "captured on": f"{p.distribution or p.system} {p.machine}, {p.python_implementation} "
        f"{p.python_version}",
    }


def _results(m: Manifest) -> dict[tuple[str, str, str], ExpectedOutput]:
    return {(r.run, r.point_id, o.path): o for r in m.results for o in r.outputs}


K = TypeVar("K", str, tuple[str, str, str])
R = TypeVar("R", ExpectedOutput, NotebookRecord)


def _result_changes(
    before: dict[K, R],
    after: dict[K, R],
    name: Callable[[K], str],
    judge: Callable[[K, R, R], tuple[str, str]],
) -> list[DiffEntry]:
    """Expected results recorded under the same keys: added, removed, or changed with the
    verdict and detail the replay's comparison gives (`judge`)."""
    entries = []
    for key in sorted(set(before) | set(after)):
        ea, eb = before.get(key), after.get(key)
        if ea is None or eb is None:
            change = "added" if ea is None else "removed"
            entries.append(DiffEntry(kind="result", name=name(key), change=change))
            continue
        if ea.sha256 == eb.sha256:
            continue
        verdict, detail = judge(key, ea, eb)
        entries.append(
            DiffEntry(
                kind="result",
                name=name(key),
                change="changed",
                before=ea.sha256[:12],
                after=eb.sha256[:12],
                detail=f"{verdict.replace('_', ' ')}: {detail}",
            )
        )
    return entries


def _result_name(key: tuple[str, str, str]) -> str:
    return f"{key[0]} [{key[1]}] {key[2]}"


def _with_patch(entries: list[DiffEntry], root: Path) -> list[DiffEntry]:
    """Code and data files changed, added or removed, with their unified diff when text."""
    out = []
    for e in entries:
        if e.kind in ("code", "data") and not e.name.startswith("remote "):
            member = PROJECT_PREFIX + e.name
            a = root / "a" / member if e.change != "added" else None
            b = root / "b" / member if e.change != "removed" else None
            e = e.model_copy(
                update={
                    "unified": unified(a, b, e.name),
                    "a_path": member if a is not None else None,
                    "b_path": member if b is not None else None,
                }
            )
        out.append(e)
    return out


def diff_capsules(
    a_path: Path,
    b_path: Path,
    policy: Policy | None = None,
    report_html: Path | None = None,
) -> CapsuleDiff:
    """What changed from capsule A to B (both verified and unpacked by the safe reader);
    with `report_html`, also an HTML page of it, figures side by side with their difference."""
    with tempfile.TemporaryDirectory(prefix=scratch_prefix("diff")) as tmp:
        a = open_capsule(a_path, Path(tmp) / "a", policy=policy).capsule
        b = open_capsule(b_path, Path(tmp) / "b", policy=policy).capsule
        ma, mb = a.manifest, b.manifest
        entries: list[DiffEntry] = []
        entries += _changes("code", _files(ma, data=False), _files(mb, data=False))
        entries += _changes("data", _files(ma, data=True), _files(mb, data=True))
        entries += _changes(
            "data",
            {f"remote {r.path}": f"{r.url} {r.sha256[:12]}" for r in ma.remote_data},
            {f"remote {r.path}": f"{r.url} {r.sha256[:12]}" for r in mb.remote_data},
        )
        entries += _changes(
            "dependency",
            {p.name: p.version for p in ma.environment.packages},
            {p.name: p.version for p in mb.environment.packages},
        )
        entries += _changes("environment", _environment(ma), _environment(mb))
        entries += _changes(
            "run", {r.name: r.command for r in ma.runs}, {r.name: r.command for r in mb.runs}
        )
        entries += _changes(
            "metadata",
            {"title": ma.metadata.title, "license": ma.metadata.license or ""},
            {"title": mb.metadata.title, "license": mb.metadata.license or ""},
        )
        root = Path(tmp)
        entries = _with_patch(entries, root)

        def judge_output(
            key: tuple[str, str, str], ea: ExpectedOutput, eb: ExpectedOutput
        ) -> tuple[str, str]:
            v = compare_output(
                key[2], root / "a" / ea.capsule_path, root / "b" / eb.capsule_path, eb.rule
            )
            return v.verdict, v.detail

        def judge_notebook(path: str, ea: NotebookRecord, eb: NotebookRecord) -> tuple[str, str]:
            from repro.notebooks.compare import compare_expectations

            spec = next((s for s in mb.notebooks if s.path == path), None)
            return compare_expectations(
                spec, root / "a" / ea.capsule_path, root / "b" / eb.capsule_path
            )

        results_a, results_b = _results(ma), _results(mb)
        keys = {_result_name(k): k for k in {*results_a, *results_b}}
        for e in _result_changes(results_a, results_b, _result_name, judge_output):
            key = keys[e.name]
            ea, eb = results_a.get(key), results_b.get(key)
            pa = root / "a" / ea.capsule_path if ea else None
            pb = root / "b" / eb.capsule_path if eb else None
            entries.append(
                e.model_copy(
                    update={
                        "unified": unified(pa, pb, key[2]) if e.change == "changed" else None,
                        "a_path": ea.capsule_path if ea else None,
                        "b_path": eb.capsule_path if eb else None,
                    }
                )
            )
        entries += _result_changes(
            {r.path: r for r in ma.notebook_results},
            {r.path: r for r in mb.notebook_results},
            lambda path: f"notebook {path}",
            judge_notebook,
        )
        result = CapsuleDiff(
            a=str(a_path),
            b=str(b_path),
            a_id=a.capsule_id,
            b_id=b.capsule_id,
            identical=a.capsule_id == b.capsule_id,
            entries=entries,
        )
        if report_html is not None:
            from repro.report.diff_page import write_diff_report

            write_diff_report(result, root / "a", root / "b", report_html)
    return result
