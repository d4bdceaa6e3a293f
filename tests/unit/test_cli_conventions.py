"""The command line's conventions (issue 19): help screens, global flags, usage errors, hints
that name the next command, the -o/--output trap, capsules never packed into capsules, the
generated references, and that `repro --help` loads neither rich nor pydantic."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from repro.cli import app
from repro.cli.docgen import outdated
from repro.errors import ExitCode
from repro.publish.errors import ZenodoUnavailableError
from tests.conftest import ROOT, run_cli


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args))
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def command_paths() -> list[tuple[str, ...]]:
    """Every command and group of the app, as argv prefixes: (), ("capture",), ("keys", "list")."""
    paths: list[tuple[str, ...]] = []

    def walk(command: object, prefix: tuple[str, ...]) -> None:
        paths.append(prefix)
        for name, sub in getattr(command, "commands", {}).items():
            walk(sub, (*prefix, name))

    walk(typer.main.get_command(app), ())
    return paths


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A tiny study with no dependencies; its run copies a file."""
    folder = tmp_path / "study"
    folder.mkdir()
    (folder / "a.txt").write_text("a\n")
    (folder / "repro.toml").write_text(
        '[[runs]]\nname = "copy"\ncommand = "cp a.txt b.txt"\noutputs = ["b.txt"]\n'
    )
    return folder


# --- help screens ----------------------------------------------------------------------------

LEAKS = re.compile(r"<[a-z][\w\[\], |.]*>|\{[a-z_]+\}|list\[|\bbool\b|<str>|<path>|int range")


@pytest.mark.parametrize("path", command_paths(), ids=lambda p: " ".join(p) or "repro")
def test_every_help_screen_has_metavars_examples_and_no_type_names(path: tuple[str, ...]) -> None:
    code, long_help, _ = invoke(*path, "--help")
    assert code == 0
    assert not LEAKS.findall(long_help), long_help
    assert "╭" not in long_help  # plain help, as git and uv print it
    assert "Examples:" in long_help
    assert invoke(*path, "-h")[1] == long_help


def test_help_shows_what_the_values_are_and_the_defaults() -> None:
    _, text, _ = invoke("capture", "--help")
    assert "Usage: repro capture [OPTIONS] [DIR]" in text
    for shown in ("-o, --out FILE", "--run CMD", "--output PATH", "--python X.Y", "-j, --jobs N"):
        assert shown in text
    assert "--target local|docker" in text and "[default: local]" in " ".join(text.split())
    assert "NAME.capsule.tgz" in text  # -o's default is said
    _, text, _ = invoke("verify", "--help")
    assert "Usage: repro verify [OPTIONS] CAPSULE" in text
    _, text, _ = invoke("verify-attestation", "--help")
    assert "ATTESTATION..." in text


@pytest.mark.parametrize(
    "args", [["--help"], ["keys", "--help"], ["capture", "--help"], ["verifyy"]], ids=str
)
def test_the_entry_point_builds_one_command_and_says_the_same(args: list[str]) -> None:
    """main() builds only the command being run (help-only stand-ins for the others):
    the same screens, the same errors."""
    from repro.cli.app import only

    name = None if args[0].startswith("-") else args[0]
    whole, pruned = CliRunner().invoke(app, args), CliRunner().invoke(only(name), args)
    assert (pruned.exit_code, pruned.stdout, pruned.stderr) == (
        whole.exit_code,
        whole.stdout,
        whole.stderr,
    )


def test_global_flags_and_completion_are_listed() -> None:
    _, text, _ = invoke("--help")
    for flag in ("-q, --quiet", "-v, --verbose", "-V, --version", "--install-completion"):
        assert flag in text


@pytest.mark.parametrize("flag", ["-V", "--version"])
def test_version(flag: str) -> None:
    from repro import __version__

    assert run_cli(flag).stdout == f"repro {__version__}\n"  # before typer is imported
    assert invoke("-q", flag)[1] == f"repro {__version__}\n"  # through the app's callback


def test_shell_completion_answers() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "repro"],
        env={
            **dict(__import__("os").environ),
            "_REPRO_COMPLETE": "complete_bash",
            "COMP_WORDS": "repro ver",
            "COMP_CWORD": "1",
        },
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.split() == ["verify", "verify-attestation"]


def test_help_and_version_load_neither_rich_nor_pydantic() -> None:
    """The start-up budget: `repro --help` imports typer and the command modules only
    (a command module that imports the core or repro.report.terminal at module level
    breaks this; import them inside the command function, or via repro.cli.lazy)."""
    probe = (
        "import sys; from repro.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('rich', 'pydantic', 'cryptography', 'numpy', 'httpx', 'docker')"
        " or m == 'repro.report.terminal')\n"
        "print(heavy, file=sys.stderr)"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert done.stderr.strip() == "[]"


# --- usage errors ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message", "hint"),
    [
        (["verifyy"], "error: no such command 'verifyy'", "repro --help"),
        (["verify"], "error: missing argument 'CAPSULE'", "repro verify --help"),
        (["verify", "x", "--bogus"], "error: no such option: --bogus", "repro verify --help"),
        (["capture", "-j", "0"], "error: invalid value for -j/--jobs:", "repro capture --help"),
        (["capture", "--run"], "error: option --run requires", "repro capture --help"),
        (["replay", "x", "--target", "moon"], "error: invalid value for --target:", "replay"),
        (["keys", "trust"], "error: missing argument 'FILE'", "repro keys trust --help"),
    ],
)
def test_usage_errors_are_one_line_and_a_hint(args: list[str], message: str, hint: str) -> None:
    code, stdout, stderr = invoke(*args)
    assert code == ExitCode.USAGE
    lines = stderr.splitlines()
    assert len(lines) == 2 and lines[0].startswith(message), stderr
    assert lines[1].startswith("hint: ") and hint in lines[1]
    assert "╭" not in stderr and "Value error" not in stderr and stdout == ""


def test_a_mistyped_command_gets_a_suggestion() -> None:
    _, _, stderr = invoke("verifyy", "x")
    assert "hint: did you mean 'verify'?" in stderr


def test_a_usage_error_with_json_prints_the_error_document() -> None:
    code, stdout, _ = invoke("verify", "x", "--json", "--bogus")
    doc = json.loads(stdout)
    assert code == 2 and (doc["kind"], doc["exit_code"], doc["ok"]) == ("UsageError", 2, False)


def test_a_bad_python_version_is_a_usage_error(project: Path) -> None:
    code, _, stderr = invoke("capture", str(project), "--python", "3.9x", "--no-run")
    assert code == ExitCode.USAGE and "'3.9x' is not a Python version" in stderr


# --- -q / -v ---------------------------------------------------------------------------------


def test_quiet_hides_progress_and_verbose_names_the_error(project: Path, tmp_path: Path) -> None:
    out = tmp_path / "a.capsule.tgz"
    code, _, loud = invoke("capture", str(project), "-o", str(out), "--no-run", "--no-sign")
    assert code == 0 and "· " in loud
    out.unlink()
    code, stdout, quiet = invoke("-q", "capture", str(project), "-o", str(out), "--no-run")
    assert code == 0 and "· " not in quiet and "captured" in stdout
    out.unlink()
    code, _, verbose = invoke("-v", "capture", str(project), "-o", str(out), "--no-run")
    assert code == 0 and "· run copy: cp a.txt b.txt" in verbose and "· timings: " in verbose
    assert "run copy:" not in loud
    code, _, stderr = invoke("-v", "verify", str(tmp_path / "missing.tgz"))
    assert code == 1 and "CapsuleNotFoundError" in stderr


# --- the -o trap -----------------------------------------------------------------------------


def test_output_without_run_says_that_the_capsule_is_o(project: Path) -> None:
    code, _, stderr = invoke("capture", str(project), "--output", "study.tgz")
    assert code == 2 and "--output needs a --run before it" in stderr
    assert "the capsule file is -o/--out" in stderr


def test_a_missing_destination_folder_fails_before_the_study_runs(
    project: Path, tmp_path: Path
) -> None:
    marker = tmp_path / "ran"
    code, _, stderr = invoke(
        "capture", str(project), "-o", str(tmp_path / "nope" / "x.capsule.tgz"),
        "--run", f"touch {marker}",
    )  # fmt: skip
    assert code == 2 and "does not exist" in stderr and "mkdir -p" in stderr
    assert not marker.exists()


def test_capsules_are_never_packed_into_capsules(project: Path, tmp_path: Path) -> None:
    first = project / "study.capsule.tgz"  # where the default lands when run inside it
    assert invoke("capture", str(project), "-o", str(first), "--no-run")[0] == 0
    (project / "old-copy.tgz").write_bytes(first.read_bytes())  # a capsule by content only
    with tarfile.open(project / "plain.tgz", "w:gz") as tar:  # a tarball that is no capsule
        tar.add(project / "a.txt", arcname="a.txt")
    second = tmp_path / "second.capsule.tgz"
    code, stdout, _ = invoke("capture", str(project), "-o", str(second), "--no-run", "--json")
    assert code == 0
    code, stdout, _ = invoke("inspect", str(second), "--json")
    manifest = json.loads(stdout)["manifest"]
    files = {f["path"].removeprefix("data/project/") for f in manifest["files"]}
    assert "plain.tgz" in files
    assert not files & {"study.capsule.tgz", "old-copy.tgz"}
    excluded = " ".join(manifest["excluded"])
    assert "study.capsule.tgz (a repro capsule" in excluded and "old-copy.tgz" in excluded


# --- hints that name the next command --------------------------------------------------------


def test_init_with_a_file_for_a_folder_points_to_init(tmp_path: Path) -> None:
    (tmp_path / "paper.pdf").write_text("%PDF")
    code, _, stderr = invoke("init", str(tmp_path / "paper.pdf"))
    assert code == 1 and f"hint: pass the project folder: repro init {tmp_path}" in stderr
    _, _, stderr = invoke("init", str(tmp_path / "missing"))
    assert "repro init" in stderr and "capture" not in stderr


def test_a_csv_is_not_a_capsule(tmp_path: Path) -> None:
    csv = tmp_path / "data.csv"
    csv.write_text("a,b\n1,2\n")
    code, _, stderr = invoke("verify", str(csv))
    assert code == ExitCode.INVALID_CAPSULE and "not a repro capsule" in stderr
    assert "do not trust" not in stderr and "repro capture" in stderr


def test_an_unsigned_capsule_says_how_to_sign(project: Path, tmp_path: Path) -> None:
    capsule = tmp_path / "u.capsule.tgz"
    assert invoke("capture", str(project), "-o", str(capsule), "--no-run", "--no-sign")[0] == 0
    for flag in ("--require-signed", "--require-trusted"):
        code, _, stderr = invoke("verify", str(capsule), flag)
        assert code == ExitCode.INVALID_CAPSULE
        assert "repro keys generate" in stderr and "keys trust" not in stderr


def test_zenodo_unavailable_speaks_of_a_journal_only_for_publish() -> None:
    assert "journal" not in ZenodoUnavailableError("GET /api/records/1: cannot connect").hint
    # the publish flow adds it (tests/integration/test_publish.py checks it end to end)


def test_keys_export_takes_json(tmp_path: Path) -> None:
    assert invoke("keys", "generate", "--name", "alice")[0] == 0
    code, pem, _ = invoke("keys", "export", "--name", "alice")
    code, stdout, _ = invoke("keys", "export", "--name", "alice", "--json")
    doc = json.loads(stdout)
    assert code == 0 and doc["public_key_pem"] == pem and doc["fingerprint"].startswith("SHA256:")


# --- generated references --------------------------------------------------------------------


def test_the_generated_references_are_current() -> None:
    stale = outdated()
    assert not stale, f"run: python -m repro.cli.docgen (stale: {stale})"
