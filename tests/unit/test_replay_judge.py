"""Replay judging: verdicts per output, point statuses, counts, warnings and the reproduced
flag, from in-memory manifests and outcomes (no target, no engine)."""

from __future__ import annotations

from pathlib import Path

import pytest

from repro.compare.verdict import OutputVerdict, Verdict
from repro.config.models import CompareRule, Run
from repro.errors import CapsuleIntegrityError
from repro.replay.judge import count_verdicts, judge, reproduced, unchecked_warnings
from repro.replay.open import select
from repro.report.replay import (
    CellVerdict,
    NotebookReplay,
    NotebookVerdict,
    PointReplay,
    PointStatus,
)
from tests.unit.replay_values import expected, manifest, outcome, record

TABLE = Run(
    name="table",
    command="python t.py",
    outputs=["out/table.json"],
    compare={"out/table.json": CompareRule(method="numeric", rtol=1e-6)},
)
SWEEP = Run(
    name="sweep", command="python s.py {seed}", outputs=["out/{seed}.txt"], sweep={"seed": [0, 1]}
)


@pytest.fixture
def dirs(tmp_path: Path) -> tuple[Path, Path]:
    """(root, project): an unpacked capsule and the project inside it, as the open stage makes."""
    root = tmp_path / "capsule"
    project = root / "data" / "project"
    project.mkdir(parents=True)
    return root, project


def write(project: Path, rel: str, content: str) -> None:
    (project / rel).parent.mkdir(parents=True, exist_ok=True)
    (project / rel).write_text(content, encoding="utf-8")


def test_identical_within_tolerance_different_and_missing(dirs: tuple[Path, Path]) -> None:
    root, project = dirs
    rule = CompareRule(method="numeric", rtol=1e-6)
    m = manifest(
        runs=[TABLE, SWEEP],
        results=[
            record(TABLE, {}, [expected(root, "out/table.json", '{"x": 1.0}', rule)]),
            record(SWEEP, {"seed": 0}, [expected(root, "out/0.txt", "zero\n")]),
            record(SWEEP, {"seed": 1}, [expected(root, "out/1.txt", "one\n")]),
        ],
    )
    write(project, "out/table.json", '{"x": 1.0000000001}')
    write(project, "out/0.txt", "zero\n")
    outcomes = [outcome(TABLE), outcome(SWEEP, {"seed": 0}), outcome(SWEEP, {"seed": 1})]
    judged = judge(m, select(m, [], {}), outcomes, root, project)
    got = {(p.run, p.point_id, v.path): v.verdict for p in judged.points for v in p.outputs}
    assert got == {
        ("table", "_", "out/table.json"): "within_tolerance",
        ("sweep", "seed=0", "out/0.txt"): "identical",
        ("sweep", "seed=1", "out/1.txt"): "missing",
    }
    assert judged.counts == {"within_tolerance": 1, "identical": 1, "missing": 1}
    assert not judged.reproduced
    assert judged.warnings == []
    assert [p.status for p in judged.points] == ["ok", "ok", "ok"]
    assert judged.points[0].captured_duration_s == 1.5


def test_a_different_output_does_not_reproduce(dirs: tuple[Path, Path]) -> None:
    root, project = dirs
    run = Run(name="r", command="true", outputs=["a.txt"])
    m = manifest(runs=[run], results=[record(run, {}, [expected(root, "a.txt", "42\n")])])
    write(project, "a.txt", "43\n")
    judged = judge(m, select(m, [], {}), [outcome(run)], root, project)
    assert judged.counts == {"different": 1}
    assert not judged.reproduced


def test_a_failed_point_does_not_reproduce_and_keeps_its_stderr(dirs: tuple[Path, Path]) -> None:
    root, project = dirs
    run = Run(name="r", command="false", outputs=["a.txt"])
    m = manifest(runs=[run], results=[record(run, {}, [expected(root, "a.txt", "42\n")])])
    write(project, "a.txt", "42\n")  # even with its output in place
    judged = judge(m, select(m, [], {}), [outcome(run, exit_code=2, stderr="boom")], root, project)
    (point,) = judged.points
    assert (point.status, point.exit_code, point.stderr_tail) == ("failed", 2, "boom")
    assert judged.counts == {"identical": 1}
    assert not judged.reproduced


def test_a_timed_out_point(dirs: tuple[Path, Path]) -> None:
    root, project = dirs
    run = Run(name="r", command="sleep 9", outputs=["a.txt"])
    m = manifest(runs=[run], results=[record(run, {}, [expected(root, "a.txt", "42\n")])])
    judged = judge(
        m, select(m, [], {}), [outcome(run, exit_code=None, stderr="late")], root, project
    )
    (point,) = judged.points
    assert (point.status, point.exit_code, point.stderr_tail) == ("timed_out", None, "late")
    assert [v.verdict for v in point.outputs] == ["missing"]
    assert not judged.reproduced


def test_a_successful_point_keeps_no_stderr(dirs: tuple[Path, Path]) -> None:
    root, project = dirs
    run = Run(name="r", command="true", outputs=["a.txt"])
    m = manifest(runs=[run], results=[record(run, {}, [expected(root, "a.txt", "42\n")])])
    write(project, "a.txt", "42\n")
    judged = judge(m, select(m, [], {}), [outcome(run, stderr="chatter")], root, project)
    assert judged.points[0].stderr_tail == ""
    assert judged.reproduced


def test_an_output_without_expectation_is_not_verified_and_warned(dirs: tuple[Path, Path]) -> None:
    root, project = dirs
    run = Run(name="r", command="true", outputs=["a.txt"])
    m = manifest(runs=[run])  # no result recorded for the run (captured with --no-run)
    write(project, "a.txt", "42\n")
    judged = judge(m, select(m, [], {}), [outcome(run)], root, project)
    (point,) = judged.points
    assert point.captured_duration_s is None
    assert [v.verdict for v in point.outputs] == ["not_verified"]
    assert judged.counts == {"not_verified": 1}
    # Nothing was found different, but nothing was compared either: no false green.
    assert not judged.reproduced and judged.verified == 0
    assert judged.warnings[0].startswith("nothing was verified")
    assert judged.warnings[1:] == ["1 output(s) had no recorded expectation"]


def test_one_unverified_output_beside_a_verified_one_still_reproduces(
    dirs: tuple[Path, Path],
) -> None:
    root, project = dirs
    run = Run(name="r", command="true", outputs=["a.txt", "b.txt"])
    m = manifest(runs=[run], results=[record(run, {}, [expected(root, "a.txt", "42\n")])])
    write(project, "a.txt", "42\n")
    write(project, "b.txt", "7\n")
    judged = judge(m, select(m, [], {}), [outcome(run)], root, project)
    assert judged.counts == {"identical": 1, "not_verified": 1}
    assert judged.reproduced and judged.verified == 1
    assert judged.warnings == ["1 output(s) had no recorded expectation"]


def test_a_run_without_outputs_verifies_nothing(dirs: tuple[Path, Path]) -> None:
    root, project = dirs
    run = Run(name="bare", command="true")
    m = manifest(runs=[run], results=[record(run, {}, [])])
    judged = judge(m, select(m, [], {}), [outcome(run)], root, project)
    assert not judged.reproduced and judged.verified == 0
    assert judged.warnings[0].startswith("nothing was verified")
    assert "run(s) bare declare no outputs: only their exit status was checked" in judged.warnings


def test_a_folder_output_reports_each_new_and_missing_file(dirs: tuple[Path, Path]) -> None:
    root, project = dirs
    run = Run(name="r", command="true", outputs=["results/", "figures/*.pdf"])
    exp = [
        expected(root, "results/a b.txt", "1\n"),
        expected(root, "results/sub/gone.txt", "2\n"),
        expected(root, "figures/f 1.pdf", "%PDF-1.4 x\n"),
    ]
    m = manifest(runs=[run], results=[record(run, {}, exp)])
    write(project, "results/a b.txt", "1\n")
    write(project, "results/new.txt", "3\n")
    write(project, "figures/f 1.pdf", "%PDF-1.4 x\n")
    write(project, "figures/notes.txt", "not matched by *.pdf\n")
    judged = judge(m, select(m, [], {}), [outcome(run)], root, project)
    verdicts = {v.path: (v.verdict, v.detail) for v in judged.points[0].outputs}
    assert set(verdicts) == {
        "results/a b.txt",
        "results/new.txt",
        "results/sub/gone.txt",
        "figures/f 1.pdf",
    }
    assert verdicts["results/a b.txt"][0] == "identical"
    assert verdicts["figures/f 1.pdf"][0] == "identical"
    assert verdicts["results/sub/gone.txt"][0] == "missing"
    assert verdicts["results/new.txt"][0] == "different"
    assert verdicts["results/new.txt"][1].startswith("new file")
    assert not judged.reproduced


def test_an_output_linking_out_of_the_project_is_not_read(dirs: tuple[Path, Path]) -> None:
    root, project = dirs
    run = Run(name="r", command="true", outputs=["a.txt"])
    m = manifest(runs=[run], results=[record(run, {}, [expected(root, "a.txt", "42\n")])])
    host_file = root.parent / "host.txt"
    host_file.write_text("42\n")
    (project / "a.txt").symlink_to(host_file)
    judged = judge(m, select(m, [], {}), [outcome(run)], root, project)
    assert [v.verdict for v in judged.points[0].outputs] == ["missing"]


def test_an_expected_result_changed_during_the_replay_is_refused(dirs: tuple[Path, Path]) -> None:
    root, project = dirs
    run = Run(name="r", command="true", outputs=["a.txt"])
    exp = expected(root, "a.txt", "42\n")
    m = manifest(runs=[run], results=[record(run, {}, [exp])])
    (root / exp.capsule_path).write_text("43\n")  # what a run writing into the capsule does
    write(project, "a.txt", "43\n")
    with pytest.raises(
        CapsuleIntegrityError, match=r"expected result changed during the replay: a\.txt"
    ):
        judge(m, select(m, [], {}), [outcome(run)], root, project)


def test_outcomes_of_unselected_runs_are_not_judged(dirs: tuple[Path, Path]) -> None:
    root, project = dirs
    m = manifest(runs=[TABLE, SWEEP])
    write(project, "out/1.txt", "one\n")
    judged = judge(
        m, select(m, ["sweep"], {"seed": "1"}), [outcome(SWEEP, {"seed": 1})], root, project
    )
    assert [(p.run, p.point_id) for p in judged.points] == [("sweep", "seed=1")]
    assert judged.notebooks == []


# --- the decision and the tallies, from report values -----------------------------------


def point(status: PointStatus = "ok", *verdicts: Verdict) -> PointReplay:
    return PointReplay(
        run="r",
        point_id="",
        command="c",
        status=status,
        exit_code=0 if status == "ok" else 1,
        duration_s=0.1,
        outputs=[
            OutputVerdict(path=f"o{i}", verdict=v, method="exact", detail="")
            for i, v in enumerate(verdicts)
        ],
    )


def notebook(verdict: NotebookVerdict, *cells: Verdict) -> NotebookReplay:
    return NotebookReplay(
        path="nb.ipynb",
        verdict=verdict,
        detail="",
        status="ok",
        exit_code=0,
        duration_s=0.1,
        executed_path="nb.out.ipynb",
        expected_path="data/results/nb.ipynb",
        cells=[CellVerdict(index=i + 1, verdict=c, detail="") for i, c in enumerate(cells)],
    )


@pytest.mark.parametrize(
    ("points", "notebooks", "expected"),
    [
        ([], [], False),  # nothing compared: no false green
        ([point("ok")], [], False),  # a run without outputs verifies nothing
        ([point("ok", "not_verified")], [notebook("not_verified")], False),  # --no-run
        ([point("ok", "identical", "within_tolerance", "not_verified")], [], True),
        ([point("ok", "identical"), point("ok", "different")], [], False),
        ([point("ok", "missing")], [], False),
        ([point("failed", "identical")], [], False),
        ([point("timed_out")], [], False),
        ([point("ok", "identical")], [notebook("identical"), notebook("within_tolerance")], True),
        ([point("ok", "identical")], [notebook("not_verified", "not_verified")], True),
        ([point("ok", "identical")], [notebook("different")], False),
        ([], [notebook("failed")], False),
    ],
)
def test_reproduced_needs_every_point_ok_nothing_different_and_something_verified(
    points: list[PointReplay], notebooks: list[NotebookReplay], expected: bool
) -> None:
    assert reproduced(points, notebooks) is expected


def test_counts_tally_output_verdicts_only() -> None:
    points = [point("ok", "identical", "identical"), point("failed", "missing", "not_verified")]
    assert count_verdicts(points) == {"identical": 2, "missing": 1, "not_verified": 1}
    assert count_verdicts([point("ok")]) == {}


def test_warnings_say_what_was_not_compared() -> None:
    assert unchecked_warnings({"identical": 3}, [notebook("identical", "identical")]) == []
    assert unchecked_warnings(
        {"not_verified": 2},
        [
            notebook("within_tolerance", "not_verified", "identical"),
            notebook("not_verified", "not_verified"),
        ],
    ) == [
        "2 output(s) had no recorded expectation",
        "2 notebook cell(s) had no recorded outputs (not run before capture)",
    ]
