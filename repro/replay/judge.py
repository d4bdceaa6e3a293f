"""Replay stage 4, judge: a verdict for every output and notebook, and whether the study
reproduced."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from repro.capsule.manifest import ExpectedOutput, Manifest, RunRecord
from repro.compare import compare_output
from repro.compare.exact import sha256_of
from repro.compare.verdict import OutputVerdict
from repro.config.models import CompareRule, NotebookSpec, Run, render
from repro.errors import CapsuleIntegrityError
from repro.execution.outputs import expand, is_pattern, matches
from repro.execution.runs import CommandResult, PointOutcome
from repro.replay.open import Selection
from repro.report.replay import NotebookReplay, PointReplay, PointStatus
from repro.resource_usage import Efficiency, efficiency, efficiency_warnings, walltime_s

PASSING = {"identical", "within_tolerance", "not_verified"}
"""Verdicts that do not stop a replay from counting as reproduced (outputs and notebooks)."""


@dataclass(frozen=True)
class Judgement:
    points: list[PointReplay]
    notebooks: list[NotebookReplay]
    counts: dict[str, int]
    """Output verdicts by kind (notebooks not included)."""
    reproduced: bool
    verified: int
    """Outputs and notebooks compared with an expectation and found the same."""
    warnings: list[str]


def judge(
    manifest: Manifest,
    selection: Selection,
    outcomes: list[PointOutcome],
    root: Path,
    project: Path,
) -> Judgement:
    """Compare what the replay produced in `project` with what the capsule at `root` expects."""
    by_name = {r.name: r for r in selection.runs}
    records = {(r.run, r.point_id): r for r in manifest.results}
    notebooks = _notebook_verdicts(
        manifest,
        selection.notebooks,
        [o for o in outcomes if o.run not in by_name],
        root,
        project,
    )
    points = [
        point_replay(by_name[o.run], o, records.get((o.run, o.point_id)), root, project)
        for o in outcomes
        if o.run in by_name
    ]
    counts = count_verdicts(points)
    return Judgement(
        points=points,
        notebooks=notebooks,
        counts=counts,
        reproduced=reproduced(points, notebooks),
        verified=verified_count(points, notebooks),
        warnings=[
            *unchecked_warnings(counts, notebooks, points),
            *resource_warnings(points, by_name),
        ],
    )


def status_of(result: CommandResult) -> PointStatus:
    if result.timed_out:
        return "timed_out"
    return "ok" if result.exit_code == 0 else "failed"


def point_replay(
    run: Run, outcome: PointOutcome, record: RunRecord | None, root: Path, project: Path
) -> PointReplay:
    """One point: how its command ended, and a verdict for each of its outputs."""
    result = outcome.result
    status = status_of(result)
    return PointReplay(
        run=outcome.run,
        point=outcome.point,
        point_id=outcome.point_id,
        command=outcome.command,
        status=status,
        exit_code=result.exit_code,
        duration_s=round(result.duration_s, 3),
        captured_duration_s=record.duration_s if record else None,
        usage=result.usage,
        captured_usage=record.usage if record else None,
        efficiency=_efficiency(run, result),
        stderr_tail=result.stderr_tail if status != "ok" else "",
        outputs=output_verdicts(run, outcome, record, root, project),
        accounting=outcome.accounting,
    )


def _efficiency(run: Run, result: CommandResult) -> Efficiency | None:
    if result.usage is None or (result.usage.samples == 0 and result.usage.method == "sampling"):
        return None  # nothing measured (a container that ended before it could be seen)
    res = run.resources
    return efficiency(result.usage, res.cpus, res.memory, walltime_s(res.walltime) or run.timeout)


def resource_warnings(points: list[PointReplay], runs: dict[str, Run]) -> list[str]:
    """A point that used under a quarter of what its run requests, or came within 10 % of a
    limit (docs/resources.md)."""
    out: list[str] = []
    for p in points:
        if p.usage is None or p.efficiency is None or p.run not in runs:
            continue
        label = p.run if not p.point else f"{p.run} [{p.point_id}]"
        out += efficiency_warnings(label, p.usage, p.efficiency, runs[p.run].resources.cpus)
    return out


def output_verdicts(
    run: Run, outcome: PointOutcome, record: RunRecord | None, root: Path, project: Path
) -> list[OutputVerdict]:
    """A verdict per file: each declared path, and each file a folder or glob entry matched
    at capture or at this replay (expected and not produced: missing; produced and not
    expected: different, as a new file)."""
    expected: dict[str, ExpectedOutput] = {o.path: o for o in record.outputs} if record else {}
    verdicts = []
    seen: set[str] = set()
    for template in run.outputs:
        rendered = render(template, outcome.point)
        if is_pattern(rendered):
            names = sorted(
                {p for p in expected if matches(rendered, p)} | set(expand(rendered, project))
            )
        else:
            names = [rendered]
        for rel in names:
            if rel in seen:
                continue
            seen.add(rel)
            rule = run.compare.get(template) or CompareRule()
            new = is_pattern(rendered) and record is not None and record.executed
            verdicts.append(_verdict(rel, expected.get(rel), rule, root, project, new))
    return verdicts


def _verdict(
    rel: str,
    exp: ExpectedOutput | None,
    rule: CompareRule,
    root: Path,
    project: Path,
    new_is_different: bool,
) -> OutputVerdict:
    """One file's verdict; `new_is_different`: it was matched by a pattern of a point that
    ran at capture, so a file without an expectation is one the capture did not produce."""
    actual = project / rel
    inside = actual.resolve().is_relative_to(project.resolve())
    produced = actual if inside and actual.is_file() and not actual.is_symlink() else None
    if exp is None and produced is not None and new_is_different:
        # Matched by a folder or glob now, but not at capture: the study wrote another set
        # of files than the one recorded.
        return OutputVerdict(
            path=rel,
            verdict="different",
            method=rule.method,
            detail="new file: not produced at capture (matched by the run's output pattern)",
            actual_sha256=sha256_of(produced),
        )
    verdict = compare_output(
        rel,
        root / exp.capsule_path if exp else None,
        # Never an output that leads out of the project (a link the run made to a file
        # of this machine): it would be read, and shown, as if the run had written it.
        actual if inside and actual.is_file() else None,
        exp.rule if exp else rule,
    )
    if exp is not None and verdict.expected_sha256 != exp.sha256:
        # Runs execute inside the unpacked capsule; what they are compared with must be
        # exactly what was verified before they ran (the comparison hashed it anyway).
        raise CapsuleIntegrityError(f"expected result changed during the replay: {rel}")
    return verdict


def count_verdicts(points: list[PointReplay]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for p in points:
        for v in p.outputs:
            counts[v.verdict] = counts.get(v.verdict, 0) + 1
    return counts


def reproduced(points: list[PointReplay], notebooks: list[NotebookReplay]) -> bool:
    """Every point ran to success, no output or notebook came out different or missing, and
    something was compared at all: a replay that verified nothing reproduced nothing."""
    return (
        all(v.verdict in PASSING for p in points for v in p.outputs)
        and all(p.status == "ok" for p in points)
        and all(nb.verdict in PASSING for nb in notebooks)
        and verified_count(points, notebooks) > 0
    )


VERIFIED = {"identical", "within_tolerance"}


def verified_count(points: Sequence[PointReplay], notebooks: Sequence[NotebookReplay]) -> int:
    """Outputs and notebooks compared with an expectation and found the same."""
    return sum(1 for p in points for v in p.outputs if v.verdict in VERIFIED) + sum(
        1 for nb in notebooks if nb.verdict in VERIFIED
    )


def unchecked_warnings(
    counts: dict[str, int], notebooks: list[NotebookReplay], points: Sequence[PointReplay] = ()
) -> list[str]:
    """What was not compared, so a replay does not claim more than it checked."""
    found = []
    if not verified_count(points, notebooks) and (points or notebooks):
        found.append(
            "nothing was verified: no output or notebook was compared with a recorded "
            "expectation, so this replay is not counted as reproduced (exit 3)"
        )
    bare = sorted({p.run for p in points if not p.outputs})
    if bare:
        found.append(
            f"run(s) {', '.join(bare)} declare no outputs: only their exit status was checked"
        )
    if counts.get("not_verified"):
        found.append(f"{counts['not_verified']} output(s) had no recorded expectation")
    unchecked = sum(1 for nb in notebooks for c in nb.cells if c.verdict == "not_verified")
    if unchecked:
        found.append(
            f"{unchecked} notebook cell(s) had no recorded outputs (not run before capture)"
        )
    return found


def _notebook_verdicts(
    manifest: Manifest,
    notebooks: list[NotebookSpec],
    outcomes: list[PointOutcome],
    root: Path,
    project: Path,
) -> list[NotebookReplay]:
    if not notebooks:
        return []
    from repro.hashing import sha256_file
    from repro.notebooks.compare import compare_notebook
    from repro.notebooks.notebook import executed_path

    records = {r.path: r for r in manifest.notebook_results}
    by_run = {o.run: o for o in outcomes}
    replays = []
    for nb in notebooks:
        record = records[nb.path]
        expected = root / record.capsule_path
        # The notebook ran inside the unpacked capsule: what it is compared with must be
        # exactly what was verified before it ran.
        if not expected.is_file() or sha256_file(expected)[0] != record.sha256:
            raise CapsuleIntegrityError(
                f"expected notebook changed during the replay: {record.capsule_path}"
            )
        rel = executed_path(nb)
        replays.append(compare_notebook(nb, record, expected, project, rel, by_run[nb.run_name]))
    return replays
