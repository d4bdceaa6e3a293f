"""The CLI in-process: option pairing, usage errors, and every command's --json against its
schema (the capture pipeline itself is tested in tests/integration/test_capture.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from typer.testing import CliRunner

import repro.capture.pipeline
from repro.capture.pipeline import CaptureOptions
from repro.cli import app, main
from repro.cli.capture import pair_runs
from repro.errors import ReproError, UsageError
from repro.schemas import COMMAND_SCHEMAS
from tests.conftest import ROOT


class StopBeforeCapturing(ReproError):
    """Raised by the fake capture: the test has what it wanted, nothing gets built."""


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args))
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def validated(command: str, stdout: str, schema_name: str | None = None) -> dict[str, Any]:
    """stdout parsed as JSON and checked against the command's committed schema."""
    data: dict[str, Any] = json.loads(stdout)
    name = schema_name or COMMAND_SCHEMAS[command]
    schema = json.loads((ROOT / "schemas" / name).read_text(encoding="utf-8"))
    jsonschema.validate(data, schema)
    return data


@pytest.fixture
def captured_options(monkeypatch: pytest.MonkeyPatch) -> list[CaptureOptions]:
    """Replace the capture pipeline: record the options the command passes it, then stop."""
    seen: list[CaptureOptions] = []

    def fake_capture(opts: CaptureOptions, observe: object = None) -> None:
        seen.append(opts)
        raise StopBeforeCapturing("stopped before capturing")

    monkeypatch.setattr(repro.capture.pipeline, "capture", fake_capture)
    return seen


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A tiny study with no dependencies; its one output is already there (--no-run)."""
    folder = tmp_path / "study"
    folder.mkdir()
    (folder / "a.txt").write_text("a\n")
    (folder / "b.txt").write_text("a\n")
    (folder / "repro.toml").write_text(
        '[[runs]]\nname = "copy"\ncommand = "cp a.txt b.txt"\noutputs = ["b.txt"]\n'
    )
    return folder


# --- --run / --output --------------------------------------------------------------------

PAIRING_ARGS = ("--run", "A", "--output", "a.txt", "--run", "B", "--output", "b.txt")


@pytest.mark.parametrize("entry", ["cli_runner", "main"])
def test_each_output_goes_with_the_run_before_it(
    tmp_path: Path,
    captured_options: list[CaptureOptions],
    capsys: pytest.CaptureFixture[str],
    entry: str,
) -> None:
    args = ["capture", str(tmp_path), "--no-run", *PAIRING_ARGS, "--output=c.txt"]
    if entry == "cli_runner":
        code, _, stderr = invoke(*args)
    else:  # an embedding calling main() with its own argv; sys.argv is pytest's
        with pytest.raises(SystemExit) as exited:
            main(args)
        code, stderr = int(str(exited.value.code)), capsys.readouterr().err
    assert code == 1 and "stopped before capturing" in stderr
    (opts,) = captured_options
    assert opts.runs is not None and not opts.execute
    assert [(r.name, r.command, r.outputs) for r in opts.runs] == [
        ("run1", "A", ["a.txt"]),
        ("run2", "B", ["b.txt", "c.txt"]),
    ]


def test_a_run_value_that_looks_like_a_flag_is_a_value(
    tmp_path: Path, captured_options: list[CaptureOptions]
) -> None:
    """The old argv re-parse took `--run --output` for two flags; click reads a value."""
    invoke("capture", str(tmp_path), "--run", "--output", "--output", "x.txt", "--run", "B")
    (opts,) = captured_options
    assert opts.runs is not None
    assert [(r.command, r.outputs) for r in opts.runs] == [("--output", ["x.txt"]), ("B", [])]


def test_a_single_run_is_named_run(tmp_path: Path, captured_options: list[CaptureOptions]) -> None:
    invoke("capture", str(tmp_path), "--run", "A", "--output", "a.txt", "--output", "b.txt")
    (opts,) = captured_options
    assert opts.runs is not None
    assert [(r.name, r.outputs) for r in opts.runs] == [("run", ["a.txt", "b.txt"])]


def test_without_run_flags_the_config_runs_apply(
    tmp_path: Path, captured_options: list[CaptureOptions]
) -> None:
    invoke("capture", str(tmp_path))
    assert captured_options[0].runs is None


@pytest.mark.parametrize(
    "flags",
    [
        ("--output", "x.txt"),
        ("--output", "x.txt", "--run", "A"),
        ("--output", "x.txt", "--run", "A", "--run", "B"),
    ],
)
@pytest.mark.parametrize("as_json", [False, True])
def test_output_before_any_run_is_a_usage_error(
    tmp_path: Path, captured_options: list[CaptureOptions], flags: tuple[str, ...], as_json: bool
) -> None:
    code, stdout, stderr = invoke(
        "capture", str(tmp_path), *flags, *(["--json"] if as_json else [])
    )
    assert code == 2
    assert stderr.splitlines() == [
        "error: --output needs a --run before it",
        "hint: --output is a run's output: repro capture --run CMD --output PATH; "
        "the capsule file is -o/--out: repro capture -o FILE",
    ]
    if as_json:
        error = validated("", stdout, "error.schema.json")
        assert (error["kind"], error["exit_code"]) == ("UsageError", 2)
    else:
        assert stdout == ""
    assert not captured_options  # refused before anything started


def test_pair_runs() -> None:
    order = ["run", "output", "run", "run", "output", "output"]
    assert pair_runs(order, ["A", "B", "C"], ["a", "c1", "c2"]) == [
        ("A", ["a"]),
        ("B", []),
        ("C", ["c1", "c2"]),
    ]
    assert pair_runs([], [], []) == []
    with pytest.raises(UsageError, match="--output needs a --run before it"):
        pair_runs(["output", "run"], ["A"], ["a"])


def test_a_malformed_command_line_is_still_clicks_usage_error(tmp_path: Path) -> None:
    code, _, stderr = invoke("capture", str(tmp_path), "--run")
    assert code == 2 and "--run" in stderr and "requires an argument" in stderr


# --- --json output of every command, against its schema ----------------------------------


def test_commands_print_json_their_schemas_describe(tmp_path: Path, project: Path) -> None:
    code, stdout, _ = invoke("keys", "list", "--json")
    assert code == 0
    assert validated("keys list", stdout) == {"ok": True, "keys": [], "trusted": []}

    code, stdout, _ = invoke("keys", "generate", "--name", "alice", "--json")
    assert code == 0
    alice = validated("keys generate", stdout)

    capsule = tmp_path / "study.tgz"
    code, stdout, stderr = invoke("capture", str(project), "-o", str(capsule), "--no-run", "--json")
    assert code == 0, stderr
    captured = validated("capture", stdout)
    assert captured["signed_by"] == alice["keyid"]
    assert captured["results"] == [
        {"run": "copy", "point": "_", "executed": False, "outputs": ["b.txt"]}
    ]

    code, stdout, _ = invoke("verify", str(capsule), "--json")
    assert code == 0
    verified = validated("verify", stdout)
    assert verified["capsule_id"] == captured["capsule_id"]
    assert verified["signature"]["state"] == "trusted"

    code, stdout, _ = invoke("inspect", str(capsule), "--json")
    assert code == 0
    inspected = validated("inspect", stdout)
    assert inspected["manifest"]["results"][0]["outputs"][0]["path"] == "b.txt"
    assert inspected["signature"] == verified["signature"]

    code, stdout, _ = invoke("diff", str(capsule), str(capsule), "--json")
    assert code == 0 and validated("diff", stdout)["identical"] is True

    code, pem, _ = invoke("keys", "export", "--name", "alice")
    assert code == 0
    (tmp_path / "alice.pub").write_text(pem)
    code, stdout, _ = invoke("keys", "trust", str(tmp_path / "alice.pub"), "--name", "A", "--json")
    assert code == 0 and validated("keys trust", stdout)["name"] == "A"
    code, stdout, _ = invoke("keys", "list", "--json")
    listed = validated("keys list", stdout)
    assert listed["trusted"] == [{"keyid": alice["keyid"], "name": "A"}]
    assert [k["name"] for k in listed["keys"]] == ["alice"]
    code, stdout, _ = invoke("keys", "untrust", "A", "--json")
    assert code == 0 and validated("keys untrust", stdout)["removed"] == [alice["keyid"]]


def test_init_json(tmp_path: Path) -> None:
    (tmp_path / "main.py").write_text("")
    code, stdout, _ = invoke("init", str(tmp_path), "--json")
    assert code == 0
    found = validated("init", stdout)
    assert found["config"] == str(tmp_path / "repro.toml")
    assert found["detected"]["scripts"] == ["main.py"]


def test_an_expected_failure_prints_the_error_schema(tmp_path: Path) -> None:
    code, stdout, stderr = invoke("verify", str(tmp_path / "missing.tgz"), "--json")
    assert code == 1
    error = validated("", stdout, "error.schema.json")
    assert error["kind"] == "CapsuleNotFoundError" and error["ok"] is False
    assert stderr.splitlines()[0] == f"error: {error['error']}"
