"""Replay selection: what --run and --point choose, and the usage errors (no capsule needed)."""

from __future__ import annotations

import pytest

from repro.config.models import NotebookSpec, Run
from repro.errors import ExitCode, UsageError
from repro.replay.open import parse_points, select, select_notebooks, select_runs
from tests.unit.replay_values import manifest, notebook_record

ANALYSE = Run(name="analyse", command="python a.py", outputs=["a.json"])
SWEEP = Run(name="sweep", command="python s.py {seed}", sweep={"seed": [0, 1, 2]})
GRID = Run(name="grid", command="python g.py {seed} {lr}", sweep={"seed": [0, 1], "lr": [0.1, 0.5]})
NOTEBOOK = NotebookSpec(path="nb/explore.ipynb")
UNRECORDED = NotebookSpec(path="nb/draft.ipynb")


def test_parse_points_reads_key_value_filters() -> None:
    assert parse_points([]) == {}
    assert parse_points(["seed=3", " lr = 0.5 "]) == {"seed": "3", "lr": "0.5"}
    assert parse_points(["seed=1", "seed=2"]) == {"seed": "2"}  # the last one wins
    assert parse_points(["tag="]) == {"tag": ""}


@pytest.mark.parametrize("bad", ["seed", "=3", ""])
def test_a_point_filter_that_is_not_key_value_is_a_usage_error(bad: str) -> None:
    with pytest.raises(UsageError, match="is not KEY=VALUE") as err:
        parse_points([bad])
    assert err.value.exit_code == ExitCode.USAGE
    assert "--point seed=3" in err.value.hint


def test_no_selection_replays_every_run_and_every_recorded_notebook() -> None:
    m = manifest(
        runs=[ANALYSE, SWEEP],
        notebooks=[NOTEBOOK, UNRECORDED],
        notebook_results=[notebook_record(NOTEBOOK.path)],
    )
    chosen = select(m, [], {})
    assert chosen.runs == [ANALYSE, SWEEP]
    # A notebook with no recorded result (not executed at capture) has nothing to compare.
    assert chosen.notebooks == [NOTEBOOK]
    assert chosen.point_count() == 1 + 3


def test_run_names_runs_only_and_keeps_the_manifest_order() -> None:
    m = manifest(
        runs=[ANALYSE, SWEEP, GRID],
        notebooks=[NOTEBOOK],
        notebook_results=[notebook_record(NOTEBOOK.path)],
    )
    assert select_runs(m, ["grid", "analyse"], {}) == [ANALYSE, GRID]
    assert select_notebooks(m, ["grid", "analyse"], {}) == []  # notebooks not named: not run


def test_run_names_a_notebook_by_its_path() -> None:
    m = manifest(
        runs=[ANALYSE], notebooks=[NOTEBOOK], notebook_results=[notebook_record(NOTEBOOK.path)]
    )
    chosen = select(m, [NOTEBOOK.path], {})
    assert chosen.runs == []
    assert chosen.notebooks == [NOTEBOOK]
    assert chosen.point_count() == 0


def test_an_unknown_run_name_is_a_usage_error_listing_the_runs() -> None:
    with pytest.raises(UsageError, match="no run named 'nope' in this capsule") as err:
        select_runs(manifest(runs=[ANALYSE, SWEEP]), ["nope"], {})
    assert err.value.hint == "runs: analyse, sweep"


def test_an_unknown_name_in_a_capsule_with_notebooks_lists_runs_and_notebooks() -> None:
    m = manifest(runs=[ANALYSE], notebooks=[NOTEBOOK], notebook_results=[])
    with pytest.raises(UsageError, match="no run or notebook named 'nope'") as err:
        select_runs(m, ["nope"], {})
    assert err.value.hint == f"runs and notebooks: analyse, {NOTEBOOK.path}"


def test_an_unknown_name_in_a_capsule_without_runs_says_none() -> None:
    with pytest.raises(UsageError) as err:
        select_runs(manifest(), ["analyse"], {})
    assert err.value.hint == "runs: (none)"


def test_a_point_filter_keeps_the_runs_sweeping_over_it_and_drops_notebooks() -> None:
    m = manifest(
        runs=[ANALYSE, SWEEP, GRID],
        notebooks=[NOTEBOOK],
        notebook_results=[notebook_record(NOTEBOOK.path)],
    )
    chosen = select(m, [], {"seed": "1"})
    assert chosen.runs == [SWEEP, GRID]
    assert chosen.notebooks == []
    assert chosen.point_count() == 1 + 2  # seed=1 in sweep; seed=1 x two lr in grid
    assert select_runs(m, [], {"seed": "1", "lr": "0.5"}) == [GRID]


def test_a_named_run_that_does_not_sweep_over_the_filter_still_runs_whole() -> None:
    chosen = select(manifest(runs=[ANALYSE, SWEEP]), ["analyse", "sweep"], {"seed": "2"})
    assert chosen.runs == [ANALYSE, SWEEP]
    assert chosen.selects(ANALYSE, {})  # a point without the parameter is not filtered out
    assert [p for p in SWEEP.points() if chosen.selects(SWEEP, p)] == [{"seed": 2}]
    assert chosen.point_count() == 1 + 1


def test_a_point_filter_no_selected_run_sweeps_over_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="no selected run sweeps over lr, seed"):
        select_runs(manifest(runs=[ANALYSE, SWEEP]), [], {"seed": "1", "lr": "0.1"})
    with pytest.raises(UsageError, match="no selected run sweeps over seed"):
        select_runs(manifest(runs=[ANALYSE, SWEEP]), ["analyse"], {"seed": "1"})


def test_point_values_match_as_they_are_written() -> None:
    chosen = select(manifest(runs=[GRID]), [], {"lr": "0.5"})
    assert [p["lr"] for p in GRID.points() if chosen.selects(GRID, p)] == [0.5, 0.5]
    nothing = select(manifest(runs=[SWEEP]), [], {"seed": "7"})
    assert nothing.runs == [SWEEP]
    assert nothing.point_count() == 0  # the execute stage refuses an empty selection
