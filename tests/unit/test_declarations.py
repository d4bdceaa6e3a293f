"""Reading environment declarations as repo2docker does: folders, precedence, each format's
edge cases, and the one-line errors for malformed files (no network: nothing is resolved)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from repro.config.models import EnvironmentSpec
from repro.env.conda import read_environment_yml
from repro.env.declarations import (
    declared_environment,
    parse_runtime,
    plan_environment,
    read_apt,
)
from repro.env.local_packages import index_requirements
from repro.env.pipfile import read_pipfile, read_pipfile_lock
from repro.env.requirements import read_requirements_txt, strip_credentials
from repro.errors import ConfigError

SHA = "sha256:" + "a" * 64


def write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def plan(root: Path, **spec: object):  # type: ignore[no-untyped-def]
    return plan_environment(root, EnvironmentSpec.model_validate(spec))


# --- folders and precedence ---------------------------------------------------------------


def test_binder_folder_is_the_only_place_read(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "requirements.txt": "never-installed==9.9\n",
            "runtime.txt": "python-3.9\n",
            "setup.py": "",
            "binder/requirements.txt": "six\n",
            "binder/apt.txt": "jq\n",
            "binder/postBuild": "#!/bin/sh\n",
        },
    )
    found = plan(tmp_path)
    assert found.folder == "binder"
    assert found.dependency_file == "binder/requirements.txt"
    assert found.apt == ["jq"] and found.post_build == "binder/postBuild"
    assert found.python.source == "this interpreter"  # the root runtime.txt is ignored
    assert found.project_file is None  # repo2docker installs the project only from the root
    assert any(
        i == "requirements.txt (configuration is read from binder/ only)" for i in found.ignored
    )
    assert any("setup.py" in n and "not installed" in n for n in found.notes)


def test_dot_binder_and_both_folders(tmp_path: Path) -> None:
    write(tmp_path, {".binder/environment.yml": "dependencies: [six]\n"})
    assert plan(tmp_path).dependency_file == ".binder/environment.yml"
    (tmp_path / "binder").mkdir()
    with pytest.raises(ConfigError, match=r"both binder/ and \.binder/"):
        plan(tmp_path)


@pytest.mark.parametrize(
    ("files", "used", "ignored"),
    [
        (["environment.yml", "Pipfile", "requirements.txt"], "environment.yml", 2),
        (["Pipfile.lock", "Pipfile", "requirements.txt"], "Pipfile.lock", 2),
        (["Pipfile", "requirements.txt"], "Pipfile", 1),
        (["requirements.txt", "requirements.in"], "requirements.txt", 1),
    ],
)
def test_precedence_is_repo2docker_s(
    tmp_path: Path, files: list[str], used: str, ignored: int
) -> None:
    contents = {
        "environment.yml": "dependencies: [six]\n",
        "Pipfile": "[packages]\nsix = '*'\n",
        "Pipfile.lock": json.dumps({"default": {}}),
        "requirements.txt": "six\n",
        "requirements.in": "six\n",
    }
    write(tmp_path, {n: contents[n] for n in files})
    found = plan(tmp_path)
    assert found.dependency_file == used
    assert len(found.ignored) == ignored
    assert all(f"{used} takes precedence" in i for i in found.ignored)


def test_requirements_in_config_overrides_detection(tmp_path: Path) -> None:
    write(tmp_path, {"environment.yml": "dependencies: [six]\n", "reqs/base.txt": "six\n"})
    found = plan(tmp_path, requirements="reqs/base.txt")
    assert found.dependency_file == "reqs/base.txt"
    assert "environment.yml ([environment] requirements chooses reqs/base.txt)" in found.ignored
    with pytest.raises(ConfigError, match="requirements file not found: nope.txt"):
        plan(tmp_path, requirements="nope.txt")


def test_project_installed_only_with_the_python_buildpack(tmp_path: Path) -> None:
    write(tmp_path, {"setup.py": "", "requirements.txt": "six\n"})
    assert plan(tmp_path).project_file == "setup.py"
    write(tmp_path, {"Pipfile": "[packages]\n"})
    found = plan(tmp_path)  # repo2docker's Pipfile buildpack does not install setup.py
    assert found.project_file is None
    assert plan(tmp_path, install_project=True).project_file == "setup.py"
    assert plan(tmp_path, install_project=False).project_file is None


def test_pyproject_needs_a_build_system_to_be_a_package(tmp_path: Path) -> None:
    write(tmp_path, {"pyproject.toml": '[project]\nname = "a"\ndependencies = ["six>=1"]\n'})
    found = plan(tmp_path)
    assert (found.dependency_file, found.project_file) == ("pyproject.toml", None)
    declared = declared_environment(tmp_path, found, "error")
    assert declared.requirements == ("six>=1",) and declared.local == ()
    with pytest.raises(ConfigError, match="install_project is true"):
        plan(tmp_path, install_project=True)


# --- Python version --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("python-3.10", "3.10"),
        ("python-3.10.4\n", "3.10"),
        ("python3.11", "3.11"),
        ("Python 3.8", "3.8"),
        ("3.7", "3.7"),
        ("", None),
    ],
)
def test_runtime_txt_forms(text: str, expected: str | None) -> None:
    assert parse_runtime(text, "runtime.txt") == expected


@pytest.mark.parametrize("text", ["pyhton 3.x", "python-three", "python-3"])
def test_runtime_txt_malformed(text: str) -> None:
    with pytest.raises(ConfigError, match="runtime.txt: cannot read a Python version") as info:
        parse_runtime(text, "runtime.txt")
    assert info.value.hint


def test_runtime_txt_with_r_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="asks for R"):
        parse_runtime("r-4.1-2021-10-22", "runtime.txt")


def test_python_precedence_and_conflicts(tmp_path: Path) -> None:
    write(tmp_path, {"environment.yml": "dependencies:\n  - python=3.10\n  - six\n"})
    assert (plan(tmp_path).python.version, plan(tmp_path).python.source) == (
        "3.10",
        "environment.yml",
    )
    write(tmp_path, {"runtime.txt": "python-3.11\n"})
    with pytest.raises(ConfigError, match="conflicting Python versions") as info:
        plan(tmp_path)
    assert "environment.yml asks for 3.10" in info.value.message and info.value.hint
    assert plan(tmp_path, python="3.11").python.version == "3.11"  # the user decides


def test_pipfile_requires_python(tmp_path: Path) -> None:
    write(tmp_path, {"Pipfile": '[packages]\nsix = "*"\n[requires]\npython_version = "3.9"\n'})
    assert plan(tmp_path).python.version == "3.9"


# --- requirements.txt ------------------------------------------------------------------------


def test_requirements_txt_splits_local_sources_from_index_requirements(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "requirements.txt": (
                "# analysis deps\n"
                "-r base.txt\n"
                "--extra-index-url https://example.org/simple\n"
                "-e .\n"
                "./vendor/tool[fast]\n"
                "git+https://user:tok@example.org/lab/helper.git@v1.2#egg=helper\n"
                "mylib @ file:///opt/mylib\n"
                "numpy>=1.21  # comment\n"
                "pandas==1.3.5 ; python_version < '3.11'\n"
            ),
            "base.txt": "six\n",
        },
    )
    declared = read_requirements_txt(tmp_path / "requirements.txt", tmp_path)
    assert declared.requirements == (
        "six",
        "numpy>=1.21",
        "pandas==1.3.5 ; python_version < '3.11'",
    )
    assert declared.options == ("--extra-index-url https://example.org/simple",)
    assert declared.files == ("requirements.txt", "base.txt")
    kinds = [(s.kind, s.origin, s.name, s.ref, s.extras, s.editable) for s in declared.local]
    assert kinds == [
        ("project", ".", None, None, (), True),
        ("path", "vendor/tool", None, None, ("fast",), False),
        ("git", "https://example.org/lab/helper.git", "helper", "v1.2", (), False),
        ("path", "/opt/mylib", "mylib", None, (), False),
    ]
    git = declared.local[2]
    assert "tok" not in git.origin and "tok" in git.location  # credentials never recorded


def test_requirements_txt_errors_name_the_line(tmp_path: Path) -> None:
    write(tmp_path, {"requirements.txt": "six\nnumpy>>1\n"})
    with pytest.raises(ConfigError, match=r"requirements.txt:2: not a valid requirement"):
        read_requirements_txt(tmp_path / "requirements.txt", tmp_path)
    write(tmp_path, {"requirements.txt": "-r missing.txt\n"})
    with pytest.raises(ConfigError, match="included file not found: missing.txt"):
        read_requirements_txt(tmp_path / "requirements.txt", tmp_path)
    write(tmp_path, {"requirements.txt": "hg+https://example.org/x#egg=x\n"})
    with pytest.raises(ConfigError, match="hg dependencies are not supported"):
        read_requirements_txt(tmp_path / "requirements.txt", tmp_path)


def test_strip_credentials() -> None:
    assert strip_credentials("https://u:p@h.org:8443/x.git") == "https://h.org:8443/x.git"
    assert strip_credentials("https://h.org/x") == "https://h.org/x"


# --- Pipfile ---------------------------------------------------------------------------------


PIPFILE = """
[[source]]
url = "https://pypi.org/simple"
verify_ssl = true
name = "pypi"

[[source]]
url = "https://lab.example.org/simple"
name = "lab"

[packages]
six = "*"
requests = {version = ">=2.20", extras = ["socks"]}
pywin32 = {version = "*", sys_platform = "== 'win32'"}
colorama = {version = "*", markers = "os_name == 'nt'"}
mylib = {path = "./mylib", editable = true}
helper = {git = "https://example.org/lab/helper.git", ref = "v1.0"}

[dev-packages]
pytest = "==7.4.0"

[requires]
python_version = "3.11"
"""


def test_pipfile_packages_dev_extras_markers_local(tmp_path: Path) -> None:
    write(tmp_path, {"Pipfile": PIPFILE})
    declared = read_pipfile(tmp_path / "Pipfile", tmp_path)
    assert declared.requirements == (
        "six",
        "requests[socks]>=2.20",
        "pywin32 ; sys_platform == 'win32'",
        "colorama ; (os_name == 'nt')",
        "pytest==7.4.0",
    )
    assert declared.options == ("--extra-index-url https://lab.example.org/simple",)
    assert declared.python == "3.11"
    assert [(s.kind, s.name, s.origin, s.ref) for s in declared.local] == [
        ("path", "mylib", "mylib", None),
        ("git", "helper", "https://example.org/lab/helper.git", "v1.0"),
    ]


def test_pipfile_path_is_relative_to_the_pipfile(tmp_path: Path) -> None:
    write(tmp_path, {".binder/Pipfile": '[packages]\ndummy = {path = "..", editable = true}\n'})
    declared = read_pipfile(tmp_path / ".binder" / "Pipfile", tmp_path)
    assert [(s.kind, s.origin) for s in declared.local] == [("project", ".")]


def test_pipfile_malformed(tmp_path: Path) -> None:
    write(tmp_path, {"Pipfile": "[packages\nsix = '*'\n"})
    with pytest.raises(ConfigError, match="Pipfile is not valid TOML") as info:
        read_pipfile(tmp_path / "Pipfile", tmp_path)
    assert info.value.hint and "\n" not in info.value.message


def test_pipfile_lock_default_develop_and_local_entries(tmp_path: Path) -> None:
    lock = {
        "_meta": {"requires": {"python_full_version": "3.11.4"}, "sources": []},
        "default": {
            "six": {"version": "==1.16.0", "hashes": [SHA], "markers": "python_version >= '2.7'"},
            "mylib": {"path": ".", "editable": True},
            "helper": {"git": "https://example.org/h.git", "ref": "0" * 40},
        },
        "develop": {"toolz": {"version": "==0.12.0", "hashes": [SHA]}},
    }
    write(tmp_path, {"Pipfile.lock": json.dumps(lock)})
    declared = read_pipfile_lock(tmp_path / "Pipfile.lock", tmp_path)
    assert declared.python == "3.11"
    assert declared.locked is not None
    assert "six==1.16.0 ; python_version >= '2.7'" in declared.locked
    assert "toolz==0.12.0" in declared.locked
    assert [(s.kind, s.ref) for s in declared.local] == [("git", "0" * 40), ("project", None)]
    write(tmp_path, {"Pipfile.lock": "{not json"})
    with pytest.raises(ConfigError, match="Pipfile.lock is not valid JSON"):
        read_pipfile_lock(tmp_path / "Pipfile.lock", tmp_path)


# --- conda environment.yml ----------------------------------------------------------------


ENV_YML = """
name: my-analysis
channels:
  - conda-forge
  - defaults
dependencies:
  - python=3.11
  - pip
  - numpy=1.26
  - conda-forge::pyyaml>=6
  - pytorch
  - py-opencv 4.8.*
  - msgpack-python==1.0.5
  - scikit-learn=1.3.2=py311h_0
  - pip:
    - tabulate==0.9.0
    - -e .
"""


def test_environment_yml_translation(tmp_path: Path) -> None:
    write(tmp_path, {"environment.yml": ENV_YML})
    declared = read_environment_yml(tmp_path / "environment.yml", tmp_path)
    assert declared.python == "3.11"
    assert declared.requirements == (
        "numpy==1.26.*",
        "PyYAML>=6",
        "torch",
        "opencv-python==4.8.*",
        "msgpack==1.0.5",
        "scikit-learn==1.3.2.*",
        "tabulate==0.9.0",
    )
    assert declared.translated["pytorch"] == "torch"
    assert declared.translated["numpy=1.26"] == "numpy==1.26.*"
    assert [s.kind for s in declared.local] == ["project"]


def test_conda_only_packages_fail_or_are_left_out(tmp_path: Path) -> None:
    write(
        tmp_path, {"environment.yml": "dependencies:\n  - six\n  - cudatoolkit=11.8\n  - r-base\n"}
    )
    with pytest.raises(ConfigError, match="cudatoolkit is a conda-only package") as info:
        read_environment_yml(tmp_path / "environment.yml", tmp_path)
    assert "--skip-conda-only" in (info.value.hint or "")
    declared = read_environment_yml(tmp_path / "environment.yml", tmp_path, "skip")
    assert declared.requirements == ("six",)
    assert declared.left_out == ("cudatoolkit", "r-base")
    assert declared.notes


def test_environment_yml_malformed(tmp_path: Path) -> None:
    write(tmp_path, {"environment.yml": "dependencies:\n  - six\n - numpy\n"})
    with pytest.raises(ConfigError, match=r"environment.yml is not valid YAML at line \d") as info:
        read_environment_yml(tmp_path / "environment.yml", tmp_path)
    assert info.value.hint
    write(tmp_path, {"environment.yml": "dependencies:\n  - numpy=1.2|1.3\n"})
    with pytest.raises(ConfigError, match="cannot translate the conda version"):
        read_environment_yml(tmp_path / "environment.yml", tmp_path)


def test_environment_yml_python_range_pins_nothing(tmp_path: Path) -> None:
    write(tmp_path, {"environment.yml": "dependencies:\n  - python>=3.8\n  - six\n"})
    assert read_environment_yml(tmp_path / "environment.yml", tmp_path).python is None


# --- apt.txt, packages, local requirements -------------------------------------------------


def test_apt_txt(tmp_path: Path) -> None:
    write(tmp_path, {"apt.txt": "# tools\njq\n\nlibgsl-dev  # GSL\n"})
    assert read_apt(tmp_path / "apt.txt", "apt.txt") == ["jq", "libgsl-dev"]
    write(tmp_path, {"apt.txt": "jq; rm -rf /\n"})
    with pytest.raises(ConfigError, match=r"apt.txt:1: 'jq;' is not a Debian package name"):
        read_apt(tmp_path / "apt.txt", "apt.txt")


def test_packages_in_repro_toml(tmp_path: Path) -> None:
    found = plan(tmp_path, packages=["numpy>=1.24", "tabulate"])
    declared = declared_environment(tmp_path, found, "error")
    assert declared.requirements == ("numpy>=1.24", "tabulate")
    with pytest.raises(ConfigError, match=r"\[environment\] packages: 'git\+https"):
        plan(tmp_path, packages=["git+https://example.org/x.git"])


def test_local_requirements_apply_requested_extras() -> None:
    requires = [
        "numpy>=1.20",
        "matplotlib ; extra == 'plot'",
        "pytest ; extra == 'test'",
        "tomli ; python_version < '3.11'",
    ]
    assert index_requirements(requires, ("plot",), "3.11") == [
        "numpy>=1.20",
        "matplotlib",
        'tomli; python_version < "3.11"',
    ]


def test_windows_written_files_read_the_same(tmp_path: Path) -> None:
    """A UTF-8 byte-order mark and CRLF line endings, as Notepad saves them."""
    (tmp_path / "requirements.txt").write_bytes(
        "\ufeffsix==1.16.0\r\n# plots\r\ntabulate>=0.9 \\\r\n  ; python_version >= '3'\r\n".encode()
    )
    declared = read_requirements_txt(tmp_path / "requirements.txt", tmp_path)
    assert [r.split() for r in declared.requirements] == [
        ["six==1.16.0"],
        ["tabulate>=0.9", ";", "python_version", ">=", "'3'"],
    ]
    (tmp_path / "runtime.txt").write_bytes(b"\xef\xbb\xbfpython-3.10\r\n")
    assert plan(tmp_path).python.version == "3.10"


def test_environment_yaml_is_read_when_nothing_else_declares(tmp_path: Path) -> None:
    write(tmp_path, {"environment.yaml": "dependencies:\n  - six\n"})
    found = plan(tmp_path)
    assert found.dependency_file == "environment.yaml"
    assert any("repo2docker reads only the .yml" in n for n in found.notes)
    write(tmp_path, {"requirements.txt": "six\n"})
    assert plan(tmp_path).dependency_file == "requirements.txt"


def test_pip_options_and_conda_freeze_lines(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "requirements.txt": (
                "--use-feature=2020-resolver\n"
                "--only-binary :all:\n"
                "-rbase.txt\n"
                "certifi @ file:///croot/certifi_1690232220950/work/certifi\n"
                "six @ file:///home/conda/feedstock_root/build_artifacts/six_1620240208055/work\n"
            ),
            "base.txt": "toolz\n",
        },
    )
    declared = read_requirements_txt(tmp_path / "requirements.txt", tmp_path)
    assert declared.options == ("--only-binary :all:",)
    assert declared.requirements == ("toolz", "certifi", "six")
    assert declared.local == ()
    assert declared.notes and "certifi, six" in declared.notes[0]


def test_utf16_requirements_from_powershell(tmp_path: Path) -> None:
    (tmp_path / "requirements.txt").write_bytes("six==1.16.0\r\n".encode("utf-16"))
    assert read_requirements_txt(tmp_path / "requirements.txt", tmp_path).requirements == (
        "six==1.16.0",
    )


def test_a_poetry_project_is_a_package(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "pyproject.toml": (
                '[tool.poetry]\nname = "study"\nversion = "0.1.0"\n'
                '[build-system]\nrequires = ["poetry-core"]\n'
                'build-backend = "poetry.core.masonry.api"\n'
            )
        },
    )
    assert plan(tmp_path).project_file == "pyproject.toml"
    write(tmp_path, {"pyproject.toml": "[tool.black]\nline-length = 99\n"})
    found = plan(tmp_path)
    assert found.project_file is None
    assert any(i.startswith("pyproject.toml (neither") for i in found.ignored)


def test_a_git_ref_is_never_an_option_of_git(tmp_path: Path) -> None:
    from repro.env.local_packages import _checkout
    from repro.env.requirements import LocalSource

    source = LocalSource(
        "git", str(tmp_path / "nowhere"), "x", "requirements.txt", ref="--upload-pack=touch /tmp/p"
    )
    with pytest.raises(ConfigError, match="is not a git ref"):
        _checkout(source, tmp_path / "dest")
    assert not (tmp_path / "dest").exists()


def test_review_findings_stay_fixed(tmp_path: Path) -> None:
    """Each of these once produced a wrong requirement silently (found in review)."""
    write(tmp_path, {"Pipfile": '[packages]\nnumpy = "1.2"\n'})
    with pytest.raises(ConfigError, match="is not a version specifier"):
        read_pipfile(tmp_path / "Pipfile", tmp_path)  # would have been the project numpy1.2
    write(tmp_path, {"Pipfile": '[packages]\nattrs = {version = "*", python_version = ">=3.8"}\n'})
    assert read_pipfile(tmp_path / "Pipfile", tmp_path).requirements == (
        "attrs ; python_version >= '3.8'",
    )
    write(
        tmp_path,
        {"environment.yml": "dependencies:\n  - numpy=*\n  - scipy >= 1.2\n  - pandas >=1.2, <2\n"},
    )
    assert read_environment_yml(tmp_path / "environment.yml", tmp_path).requirements == (
        "numpy",
        "scipy>=1.2",
        "pandas>=1.2,<2",
    )
    write(tmp_path, {"environment.yml": "dependencies:\n  - libarrow\n"})
    with pytest.raises(ConfigError, match="libarrow is a conda-only package"):
        read_environment_yml(tmp_path / "environment.yml", tmp_path)
    write(
        tmp_path,
        {
            "requirements.txt": (
                "torch @ https://example.org/whl/torch-2.1.0-cp311-none-linux_x86_64.whl\n"
                "./vendor/winonly ; sys_platform == 'win32'\n"
                "tool @ https://example.org/tool-1.0.tar.gz?private_token=abc\n"
            )
        },
    )
    local = read_requirements_txt(tmp_path / "requirements.txt", tmp_path).local
    assert [(s.kind, s.name) for s in local] == [("url", "torch"), ("path", None), ("url", "tool")]
    assert local[1].marker == "sys_platform == 'win32'"
    assert "private_token" not in local[2].origin
