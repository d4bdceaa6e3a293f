"""Replay stage 1, open: verify and unpack the capsule, select the runs, sweep points and
notebooks to replay, and complete the project (remote data, the notebook driver)."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from repro.capsule.layout import PROJECT_PREFIX
from repro.capsule.manifest import Manifest
from repro.config.models import DataSpec, NotebookSpec, Run, format_value
from repro.errors import CapsuleIntegrityError, MachineFaultError, UsageError
from repro.model_base import SweepValue
from repro.own_captures import captured_here
from repro.remote_data import fetch_remote, reporting
from repro.replay.targets import Observer
from repro.verify import Policy, open_capsule


@dataclass(frozen=True)
class Selection:
    """What a replay runs: --run names runs (or notebooks), --point filters sweep points."""

    runs: list[Run]
    notebooks: list[NotebookSpec]
    points: dict[str, str]
    """k=v filters (--point seed=3), values as format_value writes them."""

    def selects(self, _run: Run, point: dict[str, SweepValue]) -> bool:
        """Whether a sweep point is selected (a point without the parameter is)."""
        return all(k not in point or format_value(point[k]) == v for k, v in self.points.items())

    def point_count(self) -> int:
        return sum(1 for r in self.runs for p in r.points() if self.selects(r, p))


@dataclass(frozen=True)
class Opened:
    """A verified capsule unpacked in the working directory, and what of it to replay."""

    manifest: Manifest
    capsule_id: str
    signature: str
    """How the capsule is signed, in words."""
    root: Path
    """The unpacked capsule."""
    project: Path
    """The study's files inside it, where the runs execute."""
    selection: Selection
    notebook_runs: list[Run]
    """Each selected notebook as an internal run, as at capture."""
    warnings: list[str]
    trusted: bool = False
    """Signed by a key in the trust store (such a capsule may run unsandboxed where no
    sandbox works)."""


def parse_points(filters: list[str]) -> dict[str, str]:
    wanted: dict[str, str] = {}
    for item in filters:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--point {item!r} is not KEY=VALUE", hint="e.g. --point seed=3")
        wanted[key.strip()] = value.strip()
    return wanted


def select_runs(manifest: Manifest, names: list[str], points: dict[str, str]) -> list[Run]:
    """The runs to replay: --run names runs (or notebooks, by path); --point keeps the runs
    that sweep over the parameter, plus those named."""
    known = [r.name for r in manifest.runs] + [nb.path for nb in manifest.notebooks]
    what = "run or notebook" if manifest.notebooks else "run"
    for name in names:
        if name not in known:
            raise UsageError(
                f"no {what} named {name!r} in this capsule",
                hint=f"{what.replace(' or ', 's and ')}s: {', '.join(known) or '(none)'}",
            )
    runs = [r for r in manifest.runs if not names or r.name in names]
    if points:
        swept = [r for r in runs if set(points) <= set(r.sweep)]
        if not swept:
            raise UsageError(f"no selected run sweeps over {', '.join(sorted(points))}")
        # Runs that do not sweep over the parameter only run when named explicitly.
        runs = [r for r in runs if r in swept or r.name in names]
    return runs


def select_notebooks(
    manifest: Manifest, names: list[str], points: dict[str, str]
) -> list[NotebookSpec]:
    """Notebooks replay unless --run names others only, or --point selects sweep points."""
    recorded = {r.path for r in manifest.notebook_results}
    chosen = [nb for nb in manifest.notebooks if nb.path in recorded]
    if names:
        return [nb for nb in chosen if nb.path in names]
    return [] if points else chosen


def select(manifest: Manifest, names: list[str], points: dict[str, str]) -> Selection:
    return Selection(
        select_runs(manifest, names, points), select_notebooks(manifest, names, points), points
    )


def open_for_replay(
    capsule: Path,
    workdir: Path,
    policy: Policy,
    names: list[str],
    points: dict[str, str],
    offline: bool,
    say: Observer,
) -> Opened:
    """Verify `capsule` into workdir/capsule, select what to replay, complete the project."""
    say(f"verifying {capsule.name}")
    root = workdir / "capsule"
    try:
        verified = open_capsule(capsule, root, policy=policy)
    except OSError as exc:
        fault = MachineFaultError.from_os_error(exc, f"unpacking the capsule into {root.parent}")
        if fault is None:
            raise
        raise fault from None
    manifest = verified.capsule.manifest
    warnings = []
    if verified.signature.state == "unknown":
        warnings.append(
            f"capsule is {verified.signature.describe()}: its author is not confirmed "
            "(if the key is theirs: repro keys trust THEIR-KEY.pub)"
        )
    elif verified.signature.state == "unsigned":
        warnings.append(
            "capsule is unsigned: its author is not confirmed (to sign a capsule: "
            "repro keys generate, then repro capture)"
        )
    selection = select(manifest, names, points)
    project = root / PROJECT_PREFIX.rstrip("/")
    project.mkdir(parents=True, exist_ok=True)
    _fetch_remote_data(manifest, project, offline, say)
    return Opened(
        manifest=manifest,
        capsule_id=verified.capsule.capsule_id,
        signature=verified.signature.describe(),
        root=root,
        project=project,
        selection=selection,
        notebook_runs=_notebook_runs(manifest, selection.notebooks, project),
        warnings=warnings,
        # a trusted signer's capsule, or one this user captured here: their own code
        trusted=verified.signature.state == "trusted" or captured_here(verified.capsule.capsule_id),
    )


def _fetch_remote_data(manifest: Manifest, project: Path, offline: bool, say: Observer) -> None:
    for ref in manifest.remote_data:
        say(f"fetching {ref.url}")
        spec = DataSpec(path=ref.path, url=ref.url, sha256=ref.sha256)
        _, cached = fetch_remote(
            spec, offline=offline, size=ref.size, progress=reporting(say, ref.path)
        )
        target = project / ref.path
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.parent.resolve().is_relative_to(project.resolve()):
            raise CapsuleIntegrityError(f"remote data path leads out of the project: {ref.path}")
        shutil.copyfile(cached, target, follow_symlinks=False)


def _notebook_runs(manifest: Manifest, notebooks: list[NotebookSpec], project: Path) -> list[Run]:
    """Each notebook as an internal run, as at capture; the driver goes into the project
    before the target is prepared (docker hands the project to the container's user)."""
    if not notebooks:
        return []
    from repro.notebooks.notebook import install_driver, notebook_run

    install_driver(project)
    records = {r.path: r for r in manifest.notebook_results}
    return [
        notebook_run(nb, records[nb.path].kernel, records[nb.path].code_cells) for nb in notebooks
    ]
