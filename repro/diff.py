"""`repro diff A B`: what changed between two capsules — code, data, dependencies, runs,
environment and expected results (results compared with replay's comparators)."""

from __future__ import annotations

import tempfile
from pathlib import Path

from repro.capsule.layout import PROJECT_PREFIX
from repro.compare import compare_output
from repro.models import CapsuleDiff, DiffEntry, DiffKind, ExpectedOutput, Manifest
from repro.verify import Policy, open_capsule


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


def _notebook_changes(ma: Manifest, mb: Manifest, tmp: Path) -> list[DiffEntry]:
    """Recorded notebook outputs, compared cell by cell under B's rules."""
    from repro.notebooks.compare import compare_expectations

    na = {r.path: r for r in ma.notebook_results}
    nb = {r.path: r for r in mb.notebook_results}
    specs = {s.path: s for s in mb.notebooks}
    entries = []
    for path in sorted(set(na) | set(nb)):
        ea, eb = na.get(path), nb.get(path)
        name = f"notebook {path}"
        if ea is None or eb is None:
            change = "added" if ea is None else "removed"
            entries.append(DiffEntry(kind="result", name=name, change=change))
            continue
        if ea.sha256 == eb.sha256:
            continue
        verdict, detail = compare_expectations(
            specs.get(path), tmp / "a" / ea.capsule_path, tmp / "b" / eb.capsule_path
        )
        entries.append(
            DiffEntry(
                kind="result",
                name=name,
                change="changed",
                before=ea.sha256[:12],
                after=eb.sha256[:12],
                detail=f"{verdict.replace('_', ' ')}: {detail}",
            )
        )
    return entries


def diff_capsules(a_path: Path, b_path: Path, policy: Policy | None = None) -> CapsuleDiff:
    with tempfile.TemporaryDirectory(prefix="repro-diff-") as tmp:
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
        ra, rb = _results(ma), _results(mb)
        for key in sorted(set(ra) | set(rb)):
            run, point, path = key
            name = f"{run} [{point}] {path}"
            ea, eb = ra.get(key), rb.get(key)
            if ea is None or eb is None:
                entries.append(
                    DiffEntry(kind="result", name=name, change="added" if ea is None else "removed")
                )
                continue
            if ea.sha256 == eb.sha256:
                continue
            verdict = compare_output(
                path, Path(tmp) / "a" / ea.capsule_path, Path(tmp) / "b" / eb.capsule_path, eb.rule
            )
            entries.append(
                DiffEntry(
                    kind="result",
                    name=name,
                    change="changed",
                    before=ea.sha256[:12],
                    after=eb.sha256[:12],
                    detail=f"{verdict.verdict.replace('_', ' ')}: {verdict.detail}",
                )
            )
        entries += _notebook_changes(ma, mb, Path(tmp))
    return CapsuleDiff(
        a=str(a_path),
        b=str(b_path),
        a_id=a.capsule_id,
        b_id=b.capsule_id,
        identical=a.capsule_id == b.capsule_id,
        entries=entries,
    )
