"""What `repro init` proposes: run candidates and their ranking, README commands, a
Makefile's default target, packages guessed from imports, subfolder dependency files,
licences and other metadata, and the trial's record of what a run wrote."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest

from repro.capture.trial import files_under, written_files
from repro.config import load_config
from repro.init import InitOptions, init_project
from repro.init.candidates import (
    Candidate,
    accepted_by_yes,
    default_target,
    find_candidates,
    readme_commands,
    run_name,
)
from repro.init.detect import detect
from repro.init.imports import distribution, guess_packages, imports_in_source
from repro.init.listing import subfolder_declarations
from repro.init.metadata import family_first, find_metadata, license_id
from tests.conftest import run_cli

# --- candidates ----------------------------------------------------------------------------


def write(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_candidates_are_ranked_reproduce_readme_makefile_scripts(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "reproduce.sh": "#!/bin/sh\nmake\n",
            "Makefile": "all:\n\tpython main.py\n",
            "main.py": "",
            "scripts/analysis.py": "",
            "helpers.py": "",
            "README.md": "# X\n\n```bash\npython scripts/analysis.py --fast\n```\n",
        },
    )
    commands = [c.command for c in find_candidates(tmp_path)]
    assert commands == [
        "sh reproduce.sh",
        "python scripts/analysis.py --fast",
        "make",
        "python main.py",
        "python scripts/analysis.py",
    ]


def test_a_readme_command_naming_a_script_merges_with_it(tmp_path: Path) -> None:
    write(tmp_path, {"run.py": "", "README.md": "```\n$ python3 ./run.py\n```\n"})
    (cand,) = find_candidates(tmp_path)
    assert cand.command == "python3 ./run.py" and cand.file == "run.py"
    assert "README.md code block" in cand.source and "script" in cand.source


def test_shell_scripts_run_with_their_shebang(tmp_path: Path) -> None:
    write(tmp_path, {"run.sh": "#!/usr/bin/env bash\nset -e\n", "code/run_all.sh": "echo\n"})
    assert [c.command for c in find_candidates(tmp_path)] == ["bash code/run_all.sh", "bash run.sh"]


README = """\
# Study

```bash
git clone https://example.org/study.git
cd study
pip install -r requirements.txt
conda env create -f environment.yml
python -m pip install -e .
```

Then:

```console
(venv) $ python prepare.py --n 10
prepared 10 items
$ OMP_NUM_THREADS=1 python fit.py \\
    --seed 3
fit done
$ bash run.sh
```

```python
import fit  # not a shell block
```

```sh
python plot.py <figure>
jupyter nbconvert --execute analysis.ipynb
make figures
pytest tests/
```
"""


def test_readme_code_blocks_give_commands_without_setup_lines() -> None:
    assert readme_commands(README) == [
        (1, "python prepare.py --n 10"),
        (1, "OMP_NUM_THREADS=1 python fit.py --seed 3"),
        (1, "bash run.sh"),
        (3, "make figures"),
    ]


def test_readme_commands_for_missing_scripts_are_left_out(tmp_path: Path) -> None:
    write(tmp_path, {"README.md": README, "prepare.py": "", "fit.py": "", "Makefile": "x:\n"})
    commands = [c.command for c in find_candidates(tmp_path)]
    assert "bash run.sh" not in commands  # run.sh is not in this project
    assert commands[:3] == [
        "python prepare.py --n 10",
        "OMP_NUM_THREADS=1 python fit.py --seed 3",
        "make figures",
    ]


def test_yes_accepts_the_top_candidate_with_its_readme_block() -> None:
    block = [
        Candidate("python a.py", "README.md code block", 90, "README.md:1"),
        Candidate("make", "Makefile", 85),
        Candidate("python b.py", "README.md code block", 89, "README.md:1"),
        Candidate("python c.py", "README.md code block", 88, "README.md:2"),
    ]
    assert [c.command for c in accepted_by_yes(block)] == ["python a.py", "python b.py"]
    assert [c.command for c in accepted_by_yes(block[1:2])] == ["make"]
    assert accepted_by_yes([]) == []


MAKEFILE = """\
# comment
PYTHON ?= python
OUT := results
export FOO = bar
define BANNER
fake: target
endef
.PHONY: all clean
.DEFAULT:
%.o: %.c
\tcc -c $<
$(OUT)/x.txt: src/x.py
\t$(PYTHON) src/x.py
paper: $(OUT)/x.txt
clean:
\trm -rf $(OUT)
"""


def test_makefile_default_target_is_the_first_real_one() -> None:
    assert default_target(MAKEFILE) == "paper"
    assert default_target(".DEFAULT_GOAL := figures\nall:\n\techo\nfigures:\n") == "figures"
    assert default_target("CC = gcc\n") is None


@pytest.mark.parametrize(
    ("makefile", "command"),
    [
        ("all: results\nresults:\n\tpython run.py\n", "make"),
        ("help:\n\t@echo usage\nall:\n\tpython run.py\n", "make all"),
        ("install:\n\tpip install .\n", None),
    ],
)
def test_a_setup_first_target_gives_the_study_target(
    tmp_path: Path, makefile: str, command: str | None
) -> None:
    write(tmp_path, {"Makefile": makefile})
    commands = [c.command for c in find_candidates(tmp_path)]
    assert commands == ([command] if command else [])


def test_numbered_scripts_are_a_sequence_accepted_together(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "notebooks/10-report.py": "",
            "notebooks/2_fit.py": "",
            "notebooks/01-clean.py": "",
            "notebooks/helpers.py": "",
            "other/1-alone.py": "",
        },
    )
    cands = find_candidates(tmp_path)
    assert [c.command for c in accepted_by_yes(cands)] == [
        "python notebooks/01-clean.py",
        "python notebooks/2_fit.py",
        "python notebooks/10-report.py",
    ]
    assert "python other/1-alone.py" not in [c.command for c in cands]


def test_conda_only_packages_are_proposed_left_out(tmp_path: Path) -> None:
    write(
        tmp_path,
        {"environment.yml": "dependencies:\n  - python=3.11\n  - six\n  - cudatoolkit=11.8\n"},
    )
    result = init_project(InitOptions(tmp_path))
    assert result.detected.conda_only == ["cudatoolkit"]
    assert "# GUESS: cudatoolkit have no PyPI" in result.config.read_text()
    assert load_config(tmp_path)[0].environment.conda_only == "skip"


def test_run_names_are_valid_and_unique() -> None:
    taken: set[str] = set()
    names = []
    for command in ["make", "make figures", "python scripts/run.py", "python run.py", "./x y"]:
        names.append(run_name(command, taken))
        taken.add(names[-1])
    assert names == ["make", "figures", "run", "run-2", "x"]
    assert run_name("python notebook_tools.py", set()).startswith("run-")


# --- imports -------------------------------------------------------------------------------


def test_imports_skip_stdlib_relative_optional_and_future() -> None:
    source = (
        "from __future__ import annotations\nimport os, sys\nimport numpy as np\n"
        "from . import sibling\nfrom .pkg import x\nimport matplotlib.pyplot as plt\n"
        "from sklearn.metrics import r2_score\nfrom google.protobuf import message\n"
        "try:\n    import ujson as json\nexcept ImportError:\n    import json\n"
        "def f():\n    import PIL.Image\n"
    )
    names, parsed = imports_in_source(source)
    assert parsed
    dists = {d for n in names if (d := distribution(n))}
    assert dists == {"numpy", "matplotlib", "scikit-learn", "protobuf", "pillow"}


@pytest.mark.parametrize(
    ("name", "dist"),
    [
        ("sklearn", "scikit-learn"),
        ("cv2", "opencv-python"),
        ("PIL", "pillow"),
        ("yaml", "pyyaml"),
        ("bs4", "beautifulsoup4"),
        ("skimage.io", "scikit-image"),
        ("Bio.SeqIO", "biopython"),
        ("dateutil.parser", "python-dateutil"),
        ("attr", "attrs"),
        ("mpl_toolkits.mplot3d", "matplotlib"),
        ("dotenv", "python-dotenv"),
        ("Crypto.Cipher", "pycryptodome"),
        ("serial", "pyserial"),
        ("jwt", "PyJWT"),
        ("google.protobuf.message", "protobuf"),
        ("tables", "tables"),
        ("IPython.display", "ipython"),
        ("pandas", "pandas"),
        ("google", None),
        ("json", None),
        ("urllib2", None),
        ("_private", None),
    ],
)
def test_import_names_become_distributions(name: str, dist: str | None) -> None:
    assert distribution(name) == dist


def test_guess_reads_notebooks_python2_files_and_skips_own_modules(tmp_path: Path) -> None:
    notebook = {
        "cells": [
            {"cell_type": "markdown", "source": ["import fake_markdown_import"]},
            {
                "cell_type": "code",
                "source": ["%matplotlib inline\n", "!pip install seaborn\n", "import seaborn\n"],
            },
        ],
        "metadata": {},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    write(
        tmp_path,
        {
            "src/run.py": "import numpy\nfrom helpers import f\nimport mylib.core\n",
            "src/helpers.py": "import scipy.stats\n",
            "mylib/__init__.py": "",
            "old/py2.py": 'import urllib2\nimport cPickle, pandas\nprint "hello"\n',
            "nb/explore.ipynb": json.dumps(notebook),
            "broken.ipynb": "{not json",
        },
    )
    files = [p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file()]
    guess = guess_packages(tmp_path, sorted(files))
    assert guess.packages == ["numpy", "pandas", "scipy", "seaborn"]
    assert guess.where["seaborn"] == ["nb/explore.ipynb"]
    assert guess.unparsed == ["old/py2.py"]


def test_init_writes_guessed_packages_marked_as_a_guess(tmp_path: Path) -> None:
    write(tmp_path, {"main.py": "import numpy\nimport cv2\n"})
    result = init_project(InitOptions(tmp_path))
    text = result.config.read_text()
    assert "# GUESS:" in text
    config, _ = load_config(tmp_path)
    assert config.environment.packages == ["numpy", "opencv-python"]


# --- dependency files in subfolders ---------------------------------------------------------


def test_subfolder_declarations_rank_and_skip_docs() -> None:
    files = [
        "docs/requirements.txt",
        "tests/requirements.txt",
        "a/b/c/d/e/requirements.txt",
        "code/requirements.txt",
        "env/environment.yml",
        "analysis/Pipfile",
        "binder/requirements.txt",
        "requirements.txt",
    ]
    assert subfolder_declarations(files) == [
        "env/environment.yml",
        "analysis/Pipfile",
        "code/requirements.txt",
    ]


def test_a_root_declaration_wins_over_subfolders_and_guesses(tmp_path: Path) -> None:
    write(
        tmp_path,
        {"requirements.txt": "six\n", "code/requirements.txt": "toolz\n", "a.py": "import numpy"},
    )
    found = detect(tmp_path)
    assert found.requirements == "requirements.txt" and found.subfolder_file is None
    assert found.guess is None


def test_a_subfolder_file_is_proposed_when_the_root_has_none(tmp_path: Path) -> None:
    write(tmp_path, {"analysis/Pipfile": '[packages]\ntoolz = "*"\n', "a.py": "import numpy"})
    init_project(InitOptions(tmp_path))
    config, _ = load_config(tmp_path)
    assert config.environment.requirements == "analysis/Pipfile"
    assert config.environment.packages == []


# --- metadata ------------------------------------------------------------------------------

MIT = "Permission is hereby granted, free of charge, to any person obtaining a copy"
BSD = "Redistribution and use in source and binary forms, with or without modification"


@pytest.mark.parametrize(
    ("text", "spdx"),
    [
        (f"MIT License\n\n{MIT}\nof this software", "MIT"),
        (f"{BSD}\n2. ...", "BSD-2-Clause"),
        (f"{BSD}\n3. Neither the name of the copyright holder", "BSD-3-Clause"),
        ("Apache License\n Version 2.0, January 2004", "Apache-2.0"),
        ("GNU GENERAL PUBLIC LICENSE\nVersion 3, 29 June 2007", "GPL-3.0-or-later"),
        ("GNU GENERAL PUBLIC LICENSE\nVersion 2, June 1991", "GPL-2.0-or-later"),
        ("Attribution 4.0 International\n\n=====", "CC-BY-4.0"),
        ("Attribution-ShareAlike 4.0 International", "CC-BY-SA-4.0"),
        ("CC0 1.0 Universal\n\nStatement of Purpose", "CC0-1.0"),
        ("All rights reserved. Do not copy.", None),
    ],
)
def test_licence_texts_become_spdx_ids(text: str, spdx: str | None) -> None:
    assert license_id(text) == spdx


def test_no_licence_is_filled_in_silently(tmp_path: Path) -> None:
    write(tmp_path, {"run.py": ""})
    result = init_project(InitOptions(tmp_path))
    text = result.config.read_text()
    assert "CC-BY-4.0" not in tomllib.loads(text)["capsule"].get("license", "")
    assert "license" not in tomllib.loads(text)["capsule"]
    assert "# QUESTION: under which licence" in text
    assert any(q.startswith("license:") for q in result.questions)


def test_metadata_from_citation_cff_then_pyproject(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "CITATION.cff": (
                "cff-version: 1.2.0\ntitle: Tide study\nlicense: Apache-2.0\nauthors:\n"
                "  - family-names: Doe\n    given-names: Jane\n"
                "    orcid: https://orcid.org/0000-0002-1825-0097\n"
            ),
            "pyproject.toml": '[project]\nname = "x"\nauthors = [{name = "John Smith"}]\n',
            "LICENSE": MIT,
        },
    )
    meta = find_metadata(tmp_path)
    assert meta.title is not None and meta.title.value == "Tide study"
    assert meta.license is not None and (meta.license.value, meta.license.source) == (
        "Apache-2.0",
        "CITATION.cff",
    )
    assert [(a.name, a.orcid) for a in meta.authors] == [("Doe, Jane", "0000-0002-1825-0097")]
    assert meta.questions() == []
    (tmp_path / "CITATION.cff").unlink()
    meta = find_metadata(tmp_path)
    assert [a.name for a in meta.authors] == ["Smith, John"]
    assert meta.license is not None and meta.license.value == "MIT"
    assert meta.title is not None and meta.title.source == "pyproject.toml"
    init_project(InitOptions(tmp_path))
    config, _ = load_config(tmp_path)
    assert config.capsule.license == "MIT" and config.capsule.authors[0].name == "Smith, John"


def test_family_first() -> None:
    assert family_first("Jane Q. Doe") == "Doe, Jane Q."
    assert family_first("Doe, Jane") == "Doe, Jane"
    assert family_first("Plato") == "Plato"


# --- choosing runs, bad input ---------------------------------------------------------------


def test_run_flags_replace_candidates(tmp_path: Path) -> None:
    write(tmp_path, {"run.py": ""})
    init_project(InitOptions(tmp_path, runs=("python other.py --x 1", "make")))
    config, _ = load_config(tmp_path)
    assert [(r.name, r.command) for r in config.runs] == [
        ("other", "python other.py --x 1"),
        ("make", "make"),
    ]


def test_without_a_choice_the_candidates_are_listed_and_the_run_stays_commented(
    tmp_path: Path,
) -> None:
    write(tmp_path, {"run.py": "", "main.py": ""})
    result = init_project(InitOptions(tmp_path))
    text = result.config.read_text()
    assert "#   python main.py   (script)" in text and "#   python run.py   (script)" in text
    assert load_config(tmp_path)[0].runs == []
    proc = run_cli("init", str(tmp_path / "again"))
    assert proc.returncode == 1  # no such directory
    (tmp_path / "again").mkdir()
    (tmp_path / "again" / "run.py").write_text("")
    proc = run_cli("init", str(tmp_path / "again"))
    assert proc.returncode == 0, proc.stderr
    assert "python run.py" in proc.stdout and "--yes" in proc.stdout
    assert "Edit its [[runs]] section" in proc.stdout


def test_yes_records_the_top_candidate_untried(tmp_path: Path) -> None:
    write(tmp_path, {"run.py": "", "scripts/main.py": ""})
    result = init_project(InitOptions(tmp_path, yes=True))
    assert [(r.command, r.tried) for r in result.runs] == [("python run.py", False)]
    text = result.config.read_text()
    assert "# QUESTION: which files does it write?" in text
    assert any("outputs of run run" in q for q in result.questions)


@pytest.mark.parametrize(
    ("args", "code", "words"),
    [
        (["--run", " "], 2, "--run needs a command"),
        (["--try"], 2, "--try: no run was chosen (the top candidate is: python run.py)"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(
    tmp_path: Path, args: list[str], code: int, words: str
) -> None:
    write(tmp_path, {"run.py": ""})
    proc = run_cli("init", str(tmp_path), *args)
    assert proc.returncode == code, proc.stderr
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and words in errors[0], proc.stderr
    assert "hint:" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "repro.toml").exists()


def test_try_with_no_candidate_at_all(tmp_path: Path) -> None:
    proc = run_cli("init", str(tmp_path), "--try", "--yes", "--json")
    assert proc.returncode == 2
    out = json.loads(proc.stdout)
    assert out["kind"] == "NoRunToTryError" and "none was found or chosen" in out["error"]


def test_the_prompt_on_a_terminal_takes_numbers_or_a_command(tmp_path: Path) -> None:
    write(tmp_path, {"run.py": "", "main.py": ""})
    leader, follower = pty.openpty()
    env = {**os.environ, "COLUMNS": "200"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "repro", "init", str(tmp_path)],
        stdin=follower,
        stdout=subprocess.PIPE,
        stderr=follower,
        env=env,
    )
    os.close(follower)
    seen = b""
    deadline = time.monotonic() + 60
    while b"Runs to record" not in seen and time.monotonic() < deadline:
        seen += os.read(leader, 4096)
    assert b"1. python main.py" in seen and b"2. python run.py" in seen, seen
    os.write(leader, b"9\n")  # not a candidate: asked again
    os.write(leader, b"2\n")
    stdout, _ = proc.communicate(timeout=60)
    os.close(leader)
    assert proc.returncode == 0, stdout
    config, _ = load_config(tmp_path)
    assert [r.command for r in config.runs] == ["python run.py"]


# --- what a trial run wrote ----------------------------------------------------------------


def test_written_files_are_created_or_modified_and_never_caches(tmp_path: Path) -> None:
    write(tmp_path, {"in.csv": "1\n", "kept.txt": "same\n", "results/old.json": "{}"})
    before = files_under(tmp_path)
    time.sleep(0.01)
    write(
        tmp_path,
        {
            "results/new.png": "png",
            "results/old.json": '{"a": 1}',
            "__pycache__/m.cpython-311.pyc": "",
            "pkg/__pycache__/x.pyc": "",
            "stray.pyc": "",
            ".ipynb_checkpoints/a.ipynb": "",
            ".pytest_cache/v": "",
            ".mypy_cache/x": "",
            "out dir/with space.txt": "x",
        },
    )
    after = files_under(tmp_path)
    assert written_files(tmp_path, before, after, {}) == [
        "out dir/with space.txt",
        "results/new.png",
        "results/old.json",
    ]


def test_a_rewrite_the_timestamps_cannot_show_is_found_by_content(tmp_path: Path) -> None:
    path = tmp_path / "out.txt"
    path.write_text("aaaa")
    before = files_under(tmp_path)
    digests = {"out.txt": "0" * 64}  # the content before was something else
    assert written_files(tmp_path, before, before, digests) == ["out.txt"]
    assert written_files(tmp_path, before, before, {}) == []
