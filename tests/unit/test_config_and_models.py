"""repro.toml parsing, flags vs config, sweep expansion and placeholder rendering."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from pydantic import ValidationError

from repro.config import load_config
from repro.config.models import CompareRule, Run, point_id, render
from repro.errors import ConfigError

ISSUE_EXAMPLE = """
[capsule]
title = "..."
authors = [{ name = "Family, Given", orcid = "0000-0002-1825-0097", affiliation = "..." }]
license = "CC-BY-4.0"
keywords = ["..."]
[environment]
requirements = "requirements.txt"
[[data]]
path = "data"
[[runs]]
name = "analyse"
command = "python analyse.py"
outputs = ["results/metrics.json", "results/figure.png"]
[runs.compare]                          # per-output comparison rule, used by replay
"results/metrics.json" = { rtol = 1e-9 }
[runs.resources]                        # used by the docker and slurm targets
cpus = 1
memory = "1G"
walltime = "00:10:00"
[runs.sweep]                            # cartesian grid; {name} placeholders in command and outputs
seed = [0, 1, 2]
"""


def test_the_documented_minimal_keys_parse_exactly(tmp_path: Path) -> None:
    # The issue's example has a sweep but outputs without {seed}: every point would
    # overwrite the same files, which we refuse with a hint.
    (tmp_path / "repro.toml").write_text(ISSUE_EXAMPLE)
    with pytest.raises(
        ConfigError,
        match=r"\[\[runs\]\] #1 \(\"analyse\"\): output 'results/metrics.json' is the same for every "
        "sweep point",
    ):
        load_config(tmp_path)
    fixed = ISSUE_EXAMPLE.replace(
        '"results/metrics.json", "results/figure.png"',
        '"results/{seed}/metrics.json", "results/{seed}/figure.png"',
    )
    fixed = fixed.replace('"results/metrics.json" = {', '"results/{seed}/metrics.json" = {')
    (tmp_path / "repro.toml").write_text(fixed)
    config, source = load_config(tmp_path)
    assert source == "repro.toml"
    run = config.runs[0]
    assert run.compare["results/{seed}/metrics.json"] == CompareRule(method="numeric", rtol=1e-9)
    assert run.resources.memory == "1G" and run.resources.walltime == "00:10:00"
    assert [p["seed"] for p in run.points()] == [0, 1, 2]
    assert config.capsule.authors[0].orcid == "0000-0002-1825-0097"
    assert config.data[0].path == "data"


def test_tool_repro_in_pyproject(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "x"\n[tool.repro.capsule]\ntitle = "From pyproject"\n'
        '[[tool.repro.runs]]\nname = "a"\ncommand = "true"\n'
    )
    config, source = load_config(tmp_path)
    assert source == "pyproject.toml [tool.repro]"
    assert config.capsule.title == "From pyproject"
    assert config.runs[0].command == "true"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[capsule\n", "not valid TOML"),
        (
            '[capsule]\ntitel = "typo"\n',
            "repro.toml:2:1: unknown key 'titel' in [capsule]: did you mean 'title'?",
        ),
        ('[[runs]]\nname = "a b"\ncommand = "x"\n', "repro.toml:2:1: 'name' in [[runs]] #1"),
        ('[[runs]]\nname = "a"\ncommand = "x"\noutputs = ["../out"]\n', "inside the project"),
        ('[[data]]\nurl = "https://x/y"\npath = "d"\n', "needs its sha256"),
        ('[[runs]]\nname = "a"\ncommand = "x"\n[[runs]]\nname = "a"\ncommand = "y"\n', "unique"),
        ('[capsule]\nauthors = [{ name = "X", orcid = "123" }]\n', "orcid"),
        ('[[runs]]\nname = "a"\ncommand = "x"\n[runs.resources]\nmemory = "lots"\n', "memory"),
    ],
)
def test_bad_config_is_one_line_naming_the_field(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "repro.toml").write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path)
    assert message in info.value.message
    assert "\n" not in info.value.message


def test_sweep_is_a_cartesian_grid_in_declaration_order() -> None:
    run = Run(
        name="s",
        command="sim --a {a} --b {b}",
        outputs=["o/{a}-{b}.txt"],
        sweep={"a": [1, 2], "b": ["x", "y", "z"]},
    )
    points = run.points()
    assert len(points) == 6
    assert points[0] == {"a": 1, "b": "x"} and points[-1] == {"a": 2, "b": "z"}
    assert render(run.command, points[4]) == "sim --a 2 --b y"
    assert point_id(points[4]) == "a=2,b=y"
    assert point_id({}) == "_"


def test_render_leaves_other_braces_alone() -> None:
    assert render("awk '{print $1}' in-{seed}.txt", {"seed": 3}) == "awk '{print $1}' in-3.txt"
    assert render("echo {unknown}", {}) == "echo {unknown}"


def test_unknown_placeholder_in_output_is_refused() -> None:
    with pytest.raises(ValidationError, match="not a sweep parameter"):
        Run(name="r", command="x", outputs=["out-{sed}.txt"], sweep={"seed": [1]})


def test_toml_round_trip_of_bool_and_float_sweep_values() -> None:
    raw = tomllib.loads(
        'name = "r"\ncommand = "x {f} {b}"\noutputs = ["o-{f}-{b}"]\n'
        "[sweep]\nf = [0.5, 1.0]\nb = [true, false]\n"
    )
    run = Run.model_validate(raw)
    assert render(run.command, run.points()[0]) == "x 0.5 true"
