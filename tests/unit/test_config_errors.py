"""repro.toml typos as a researcher meets them: every problem, one per line, FILE:LINE:COL,
the key as written, "did you mean" for a misspelt key (repro.config.errors)."""

from __future__ import annotations

from pathlib import Path

import pytest

from repro.config import load_config
from repro.config.errors import key_positions
from repro.errors import ConfigError
from tests.conftest import run_cli


def problems_of(tmp_path: Path, text: str, name: str = "repro.toml") -> ConfigError:
    (tmp_path / name).write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path)
    return info.value


def lines_of(error: ConfigError) -> list[str]:
    return list(error.details) or [error.message]


MANY = """\
[capsule]
title = "Typos"

[environment]
  pyhton = "3.11"
  packages = "numpy"

[[runs]]
name = "train"
comand = "python train.py"
outputs = ["out.json"]
timeout = "ten"

[[runs]]
name = "plot"
command = "python plot.py"
[runs.resources]
memroy = "1G"
cpus = 0

[[runs]]
name = "report"
outputs = ["report.pdf"]
"""


def test_every_problem_on_its_own_line_in_file_order(tmp_path: Path) -> None:
    error = problems_of(tmp_path, MANY)
    assert error.message == "repro.toml has 7 problems"
    assert lines_of(error) == [
        "repro.toml:5:3: unknown key 'pyhton' in [environment]: did you mean 'python'?",
        "repro.toml:6:3: 'packages' in [environment] should be an array [...], not \"numpy\"",
        "repro.toml:10:1: unknown key 'comand' in [[runs]] #1 (\"train\"): did you mean 'command'?",
        'repro.toml:12:1: \'timeout\' in [[runs]] #1 ("train") should be a number, not "ten"',
        "repro.toml:18:1: unknown key 'memroy' in [runs.resources] of [[runs]] #2 (\"plot\"): "
        "did you mean 'memory'?",
        "repro.toml:19:1: 'cpus' in [runs.resources] of [[runs]] #2 (\"plot\") should be "
        "greater than or equal to 1, not 0",
        "repro.toml:21:1: [[runs]] #3 (\"report\") has no 'command' (required)",
    ]
    # The misspelt run's "command" is said once (as the misspelling), and no jargon is left.
    text = "\n".join(lines_of(error))
    for jargon in ("Field required", "Extra inputs", "and 1 more", "Input should", "runs.0"):
        assert jargon not in text
    assert error.hint and "fix repro.toml" in error.hint


def test_one_problem_is_the_message_itself(tmp_path: Path) -> None:
    error = problems_of(tmp_path, '[capsule]\ntitel = "x"\n')
    assert (
        error.message == "repro.toml:2:1: unknown key 'titel' in [capsule]: did you mean 'title'?"
    )
    assert error.details == ()


def test_an_unknown_key_with_no_near_name_lists_what_the_table_may_hold(tmp_path: Path) -> None:
    error = problems_of(tmp_path, '[[runs]]\nname = "a"\ncommand = "x"\nflavour = 3\n')
    assert error.message.startswith("repro.toml:4:1: unknown key 'flavour' in [[runs]] #1 (\"a\")")
    assert "it may hold: name, command, outputs" in error.message


def test_dotted_and_quoted_keys_are_found_where_written(tmp_path: Path) -> None:
    error = problems_of(
        tmp_path,
        'environment.pyhton = "3.11"\n'
        '[[runs]]\nname = "a"\ncommand = "x"\noutputs = ["r/x.json"]\n'
        '[runs.compare]\n"r/x.json" = { rtol = "tiny" }\n',
    )
    assert lines_of(error) == [
        "repro.toml:1:1: unknown key 'pyhton' in [environment]: did you mean 'python'?",
        "repro.toml:7:1: 'rtol' in [runs.compare.r/x.json] of [[runs]] #1 (\"a\") should be "
        'a number, not "tiny"',
    ]


def test_a_table_level_rule_names_its_table(tmp_path: Path) -> None:
    error = problems_of(
        tmp_path,
        '[[runs]]\nname = "s"\ncommand = "x {seed}"\noutputs = ["out.json"]\n'
        "[runs.sweep]\nseed = [1, 2]\n",
    )
    assert error.message.startswith(
        "repro.toml:1:1: [[runs]] #1 (\"s\"): output 'out.json' is the same for every sweep point"
    )


def test_a_sweep_value_of_the_wrong_kind(tmp_path: Path) -> None:
    error = problems_of(
        tmp_path,
        '[[runs]]\nname = "s"\ncommand = "x {seed}"\noutputs = ["o-{seed}"]\n'
        "[runs.sweep]\nseed = [1, { a = 1 }]\n",
    )
    assert error.message == (
        "repro.toml:6:1: 'seed' item #2 in [runs.sweep] of [[runs]] #1 (\"s\") should be "
        "true or false, a whole number, a number or a string, not a table"
    )


def test_in_pyproject_the_tables_are_named_as_written_there(tmp_path: Path) -> None:
    error = problems_of(
        tmp_path,
        '[project]\nname = "x"\n\n[tool.repro.environment]\npyhton = "3.11"\n\n'
        '[[tool.repro.runs]]\nname = "a"\n',
        name="pyproject.toml",
    )
    assert lines_of(error) == [
        "pyproject.toml:5:1: unknown key 'pyhton' in [tool.repro.environment]: "
        "did you mean 'python'?",
        "pyproject.toml:7:1: [[tool.repro.runs]] #1 (\"a\") has no 'command' (required)",
    ]


def test_the_position_index_is_not_fooled_by_strings_and_arrays() -> None:
    text = (
        'title = """\n[not.a.table]\nkey = "no"\n"""\n'
        "outputs = [\n  'a = b',\n  \"[x]\",\n]\n"
        "[capsule]  # a comment [x]\n"
        "  'quoted key' = 1\n"
        "[[runs]]\n[[runs]]\nname = 'b'\n"
    )
    positions = key_positions(text)
    assert positions[("title",)] == (1, 1)
    assert positions[("outputs",)] == (5, 1)
    assert ("not", "a", "table") not in positions and ("key",) not in positions
    assert positions[("capsule",)] == (9, 1)
    assert positions[("capsule", "quoted key")] == (10, 3)
    assert positions[("runs", 0)] == (11, 1)
    assert positions[("runs", 1, "name")] == (13, 1)


def test_the_cli_prints_one_problem_a_line_then_the_hint(tmp_path: Path) -> None:
    (tmp_path / "repro.toml").write_text(MANY)
    result = run_cli("capture", str(tmp_path), "-o", str(tmp_path / "x.tgz"), "--no-run")
    assert result.returncode == 1, result.stderr
    lines = result.stderr.splitlines()
    assert lines[0] == "error: repro.toml has 7 problems"
    assert lines[1] == (
        "  repro.toml:5:3: unknown key 'pyhton' in [environment]: did you mean 'python'?"
    )
    assert len([ln for ln in lines if ln.startswith("  repro.toml:")]) == 7
    assert lines[-1].startswith("hint: fix repro.toml")
