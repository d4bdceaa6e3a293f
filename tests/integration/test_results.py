"""Results found, compared fairly, every failure reported at once (issue 14), end to end with
the real CLI, resolver, venvs, kernels and Docker engine, on the projects under
tests/projects/results/:

- figures-matplotlib: PDF and PNG figures in a folder (`outputs = ["figures/"]`) replay
  byte-identical with no normalisation rule, because every run gets the capsule's
  SOURCE_DATE_EPOCH (local and docker);
- globs-and-spaces: a folder and a `**` glob, names with spaces; a new and a missing file at
  replay are reported per file;
- notebook-failures: two of three notebooks fail in different cells; one capture names both;
- teaching-notebook: `allow_errors = true`, raising on purpose, captures and replays identical;
- a --no-run capsule and a run without outputs are not "reproduced" (exit 3).
"""

from __future__ import annotations

import json
import re
import tarfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from repro.compare import compare_output
from repro.config.models import CompareRule
from tests.conftest import run_cli
from tests.projects.helpers import prepare_project

NOT_REPRODUCED = 3


def capture(project: Path, out: Path, *extra: str) -> dict[str, Any]:
    result = run_cli("capture", str(project), "-o", str(out), "--no-sign", "--json", *extra)
    assert result.returncode == 0, result.stderr[-4000:]
    return json.loads(result.stdout)


def replay(
    capsule: Path, *extra: str, env: dict[str, str] | None = None
) -> tuple[int, dict[str, Any], str]:
    result = run_cli("replay", str(capsule), "--json", *extra, env=env, timeout=900)
    assert result.returncode in (0, NOT_REPRODUCED), result.stderr[-4000:]
    return result.returncode, json.loads(result.stdout), result.stderr


def verdicts(report: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {o["path"]: (o["verdict"], o["detail"]) for p in report["points"] for o in p["outputs"]}


def manifest_of(capsule: Path) -> dict[str, Any]:
    with tarfile.open(capsule) as tar:
        member = tar.extractfile("repro.json")
        assert member is not None
        return json.loads(member.read())


def member(capsule: Path, name: str) -> bytes:
    with tarfile.open(capsule) as tar:
        fh = tar.extractfile(name)
        assert fh is not None
        return fh.read()


# --- figures: SOURCE_DATE_EPOCH tames matplotlib ------------------------------------------


@pytest.fixture(scope="module")
def figures_capsule(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.conftest import pypi_reachable, require_service

    require_service(pypi_reachable(), "PyPI (https://pypi.org)")
    root = tmp_path_factory.mktemp("figures")
    project = prepare_project("figures-matplotlib", root / "figures-matplotlib", results=True)
    out = root / "figures.capsule.tgz"
    capture(project, out)
    return out


FIGURES = {"figures/curve one.pdf", "figures/curve one.png", "figures/detail/scatter.pdf"}


@pytest.mark.network
def test_every_file_in_an_output_folder_is_an_expected_result(figures_capsule: Path) -> None:
    manifest = manifest_of(figures_capsule)
    (record,) = manifest["results"]
    assert {o["path"] for o in record["outputs"]} == FIGURES
    assert manifest["runs"][0]["outputs"] == ["figures/"]  # the pattern itself is kept


@pytest.mark.network
def test_the_figures_carry_the_capsules_timestamp_not_the_wall_clock(
    figures_capsule: Path,
) -> None:
    """The run saw the capsule's SOURCE_DATE_EPOCH (conftest scrubs the variable, so the
    capsule's time is 'now' at capture): the PDF's /CreationDate is that time. Without the
    variable matplotlib writes the wall-clock time of the run, and no replay would match."""
    manifest = manifest_of(figures_capsule)
    created = datetime.strptime(manifest["created"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    (record,) = manifest["results"]
    pdf = next(o for o in record["outputs"] if o["path"] == "figures/curve one.pdf")
    data = member(figures_capsule, pdf["capsule_path"])
    match = re.search(rb"/CreationDate \(D:(\d{14})", data)
    assert match is not None, data[:400]
    assert match.group(1).decode() == created.strftime("%Y%m%d%H%M%S")


@pytest.mark.network
def test_matplotlib_figures_replay_identical_with_no_rule_locally(figures_capsule: Path) -> None:
    code, report, _ = replay(figures_capsule, "--target", "local")
    assert code == 0, report["warnings"]
    found = verdicts(report)
    assert set(found) == FIGURES
    for path, (verdict, detail) in found.items():
        # Byte-identical: the PDF comparator had nothing to forgive.
        assert verdict == "identical" and detail.startswith("byte-identical"), (path, detail)
    assert report["reproduced"] and report["verified"] == 3


@pytest.mark.network
def test_matplotlib_figures_replay_identical_in_docker(
    figures_capsule: Path, docker_engine: str
) -> None:
    code, report, _ = replay(figures_capsule, "--target", "docker", "--base-image", docker_engine)
    assert code == 0, json.dumps(report["points"])[:3000]
    assert {v for v, _ in verdicts(report).values()} == {"identical"}
    assert all(d.startswith("byte-identical") for _, d in verdicts(report).values())


@pytest.mark.network
def test_the_pdf_comparator_forgives_the_dates_but_not_the_drawing(
    figures_capsule: Path, tmp_path: Path
) -> None:
    """A real matplotlib PDF: another /CreationDate (of another length, so every offset
    after it moves) and an /ID are volatile; a changed drawing is not."""
    manifest = manifest_of(figures_capsule)
    (record,) = manifest["results"]
    pdf = next(o for o in record["outputs"] if o["path"] == "figures/curve one.pdf")
    captured = member(figures_capsule, pdf["capsule_path"])
    # Both with an /ID (matplotlib writes none; other writers do), of other values.
    data = captured.replace(b"trailer\n<<", b"trailer\n<< /ID [<00ff> <00ff>]", 1)
    expected = tmp_path / "expected.pdf"
    expected.write_bytes(data)
    redated = re.sub(rb"/CreationDate \([^)]*\)", b"/CreationDate (D:20300102030405+01'00')", data)
    redated = redated.replace(b"/ID [<00ff> <00ff>]", b"/ID [<abcdef12> <abcdef12>]", 1)
    assert redated != data
    moved = tmp_path / "redated.pdf"
    moved.write_bytes(redated)
    verdict = compare_output("f.pdf", expected, moved, CompareRule())
    assert verdict.verdict == "identical", verdict.detail
    assert "/CreationDate" in verdict.detail and "/ID" in verdict.detail
    # The title drawn as text: changing one glyph reference changes what the page shows.
    changed = tmp_path / "changed.pdf"
    content = bytearray(redated)
    index = content.find(b"stream\n") + 20
    content[index] = (content[index] + 1) % 256
    changed.write_bytes(bytes(content))
    verdict = compare_output("f.pdf", expected, changed, CompareRule())
    assert verdict.verdict == "different", verdict.detail
    assert "volatile metadata masked" in verdict.detail


# --- folders and globs with spaces; new and missing files at replay ------------------------


@pytest.mark.network
def test_a_folder_and_a_glob_with_spaces_replay_and_report_new_and_missing_files(
    tmp_path: Path,
) -> None:
    project = prepare_project("globs-and-spaces", tmp_path / "globs", results=True)
    out = tmp_path / "globs.tgz"
    summary = capture(project, out)
    assert summary["ok"]
    (record,) = manifest_of(out)["results"]
    assert {o["path"] for o in record["outputs"]} == {
        "results/run summary.txt",
        "results/sub dir/a b.json",
        "tables/2023/first table.csv",
        "tables/2024 q1/second.csv",
    }
    code, report, _ = replay(out, "--target", "local")
    assert code == 0 and set(verdicts(report)) == {o["path"] for o in record["outputs"]}

    # the study reads a variable of the replaying user's: runs get it only when passed
    variant = {"GLOB_STUDY_VARIANT": "1"}
    code, report, _ = replay(out, "--target", "local", env=variant)
    assert code == 0, "an unpassed variable reached the run"
    code, report, _ = replay(
        out, "--target", "local", "--pass-env", "GLOB_STUDY_VARIANT", env=variant
    )
    assert code == NOT_REPRODUCED
    found = verdicts(report)
    assert found["tables/2023/first table.csv"][0] == "missing"
    assert found["tables/2024 q1/extra.csv"][0] == "different"
    assert found["tables/2024 q1/extra.csv"][1].startswith("new file")
    assert found["results/run summary.txt"][0] == "identical"
    assert "tables/2023/notes.txt" not in found  # not matched by *.csv


def test_an_output_pattern_leaving_the_project_is_refused(tmp_path: Path) -> None:
    project = tmp_path / "p"
    project.mkdir()
    for bad in ("../elsewhere/", "/etc/*.conf", "figs/../../x/*.pdf"):
        (project / "repro.toml").write_text(
            f'[[runs]]\nname = "r"\ncommand = "true"\noutputs = [{json.dumps(bad)}]\n'
        )
        result = run_cli("capture", str(project), "-o", str(tmp_path / "x.tgz"))
        assert result.returncode == 1, result.stderr
        errors = [ln for ln in result.stderr.splitlines() if ln.startswith("error:")]
        assert len(errors) == 1 and "inside the project" in errors[0], result.stderr
        assert "hint:" in result.stderr
        assert not (tmp_path / "x.tgz").exists()


# --- every failure at once -------------------------------------------------------------------


@pytest.mark.network
def test_one_capture_reports_every_failing_notebook_with_its_cell(tmp_path: Path) -> None:
    project = prepare_project("notebook-failures", tmp_path / "nbs", results=True)
    out = tmp_path / "nbs.tgz"
    result = run_cli("capture", str(project), "-o", str(out), "--no-sign", timeout=900)
    assert result.returncode == 1, result.stderr
    lines = result.stderr.splitlines()
    errors = [ln for ln in lines if ln.startswith("error:")]
    assert errors == [
        "error: 2 of 3 run point(s) and notebook(s) failed at capture; nothing was written"
    ]
    assert (
        "  notebook notebooks/02-model.ipynb: cell 2 raised ZeroDivisionError: division by zero"
        in lines
    )
    assert "  notebook notebooks/03-report.ipynb: cell 3 raised KeyError: 'mean'" in lines
    assert not any("01-load" in ln for ln in lines if not ln.startswith("·"))
    assert not out.exists()

    as_json = run_cli("capture", str(project), "-o", str(out), "--no-sign", "--json", timeout=900)
    error = json.loads(as_json.stdout)
    assert error["kind"] == "CaptureRunsFailedError" and len(error["details"]) == 2


def test_failing_runs_are_all_reported_with_both_tails_and_later_runs_still_run(
    tmp_path: Path,
) -> None:
    project = tmp_path / "p"
    project.mkdir()
    (project / "repro.toml").write_text(
        """\
[[runs]]
name = "build"
command = "echo compiling; echo step 2; set -x; which gfortran-that-is-not-there"
outputs = ["bin/model"]

[[runs]]
name = "independent"
command = "mkdir -p out && echo 7 > out/n.txt"
outputs = ["out/n.txt"]

[[runs]]
name = "plot"
command = "python -c 'import numpy'"
outputs = ["figures/"]
"""
    )
    result = run_cli("capture", str(project), "-o", str(tmp_path / "x.tgz"), timeout=600)
    assert result.returncode == 1, result.stderr
    text = result.stderr
    assert "error: 2 of 3 run point(s) and notebook(s) failed at capture" in text
    # The shell's trace (the last stderr line) and what the run printed before it.
    assert "run build failed with exit code 1" in text
    assert "+ which gfortran-that-is-not-there" in text
    assert "stdout (last 2 line(s)):\n      compiling\n      step 2" in text
    # The independent run ran (it did not fail) and the last one failed on its own.
    assert "run independent" not in text
    assert "run plot failed with exit code 1" in text
    assert "ModuleNotFoundError: No module named 'numpy'" in text
    assert "(it ran after build failed" in text
    # No dependency declaration: the empty-lock note is beside the missing module.
    after = text.split("No module named 'numpy'", 1)[1]
    assert "the lock is empty" in after.split("hint:", 1)[0]
    assert not (tmp_path / "x.tgz").exists()


# --- allow_errors ------------------------------------------------------------------------------


@pytest.mark.network
def test_a_teaching_notebook_with_allow_errors_captures_and_replays_identical(
    tmp_path: Path,
) -> None:
    project = prepare_project("teaching-notebook", tmp_path / "teach", results=True)
    out = tmp_path / "teach.tgz"
    capture(project, out)
    code, report, _ = replay(out, "--target", "local")
    assert code == 0, json.dumps(report["notebooks"])[:3000]
    (nb,) = report["notebooks"]
    assert nb["verdict"] == "identical" and nb["status"] == "ok"
    cells = {c["index"]: c for c in nb["cells"]}
    assert [o["path"] for o in cells[3]["outputs"]] == ["output 1: error"]
    assert [o["path"] for o in cells[4]["outputs"]] == ["output 1: error"]
    assert cells[5]["verdict"] == "identical"  # the cell after the errors ran, as captured


# --- no false green --------------------------------------------------------------------------


def test_a_run_without_outputs_is_warned_at_capture_and_not_reproduced(tmp_path: Path) -> None:
    project = tmp_path / "p"
    project.mkdir()
    (project / "repro.toml").write_text('[[runs]]\nname = "bare"\ncommand = "echo hi"\n')
    out = tmp_path / "bare.tgz"
    summary = capture(project, out)
    assert any("declares no outputs" in n for n in manifest_of(out)["notes"]), summary
    code, report, _ = replay(out, "--target", "local")
    assert code == NOT_REPRODUCED
    assert not report["reproduced"] and report["verified"] == 0
    assert any(w.startswith("nothing was verified") for w in report["warnings"])
    assert "nothing verified" in run_cli("replay", str(out), "--target", "local").stdout


def test_a_no_run_capsule_is_not_reproduced(tmp_path: Path) -> None:
    project = tmp_path / "p"
    project.mkdir()
    (project / "repro.toml").write_text(
        '[[runs]]\nname = "r"\ncommand = "mkdir -p out && echo 1 > out/a.txt"\noutputs = ["out/"]\n'
    )
    out = tmp_path / "norun.tgz"
    capture(project, out, "--no-run")
    code, report, _ = replay(out, "--target", "local")
    assert code == NOT_REPRODUCED
    assert {v for v, _ in verdicts(report).values()} == {"not_verified"}
    assert not report["reproduced"] and report["verified"] == 0
