"""Outputs as folders and globs (matched the same at capture and replay), the PDF comparator's
volatile fields, and capture's failure blocks."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from repro.compare import compare_output
from repro.compare.pdf import normalise, volatile_differences
from repro.config.models import CompareRule, Run
from repro.execution.outputs import expand, is_pattern, matches
from repro.execution.runs import CommandResult, PointOutcome, collect_outputs, describe_failure


def touch(root: Path, *names: str) -> None:
    for name in names:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(name)


@pytest.mark.parametrize(
    ("pattern", "rel", "expected"),
    [
        ("results/", "results/a.txt", True),
        ("results/", "results/sub dir/b c.json", True),
        ("results/", "results", False),
        ("results/", "other/results/a.txt", False),
        ("figures/*.pdf", "figures/fig one.pdf", True),
        ("figures/*.pdf", "figures/sub/fig.pdf", False),
        ("figures/*.pdf", "figures/fig.png", False),
        ("tables/**/*.csv", "tables/a.csv", True),
        ("tables/**/*.csv", "tables/2024 q1/deep/b.csv", True),
        ("**/*.csv", ".repro-notebooks/x.csv", False),
        ("out/run?.txt", "out/run1.txt", True),
        ("out/run[0-9].txt", "out/runx.txt", False),
        ("plain/file.txt", "plain/file.txt", True),
    ],
)
def test_patterns_match_files_within_segments(pattern: str, rel: str, expected: bool) -> None:
    assert matches(pattern, rel) is expected


def test_expand_finds_regular_files_only_sorted(tmp_path: Path) -> None:
    touch(tmp_path, "figs/b b.pdf", "figs/a.pdf", "figs/a.png", "figs/deep/c.pdf")
    (tmp_path / "figs" / "link.pdf").symlink_to(tmp_path / "figs" / "a.pdf")
    (tmp_path / "figs" / "dir.pdf").mkdir()
    assert expand("figs/*.pdf", tmp_path) == ["figs/a.pdf", "figs/b b.pdf"]
    assert expand("figs/", tmp_path) == [
        "figs/a.pdf",
        "figs/a.png",
        "figs/b b.pdf",
        "figs/deep/c.pdf",
    ]
    assert expand("nowhere/", tmp_path) == []
    assert is_pattern("figs/") and is_pattern("a/*.x") and not is_pattern("a/b.txt")


def test_collect_outputs_reports_a_pattern_that_matched_nothing(tmp_path: Path) -> None:
    touch(tmp_path, "results/x.json")
    run = Run(name="r", command="true", outputs=["results/", "figs/*.pdf", "results/x.json"])
    found, missing = collect_outputs(run, {}, tmp_path)
    assert [rel for rel, _ in found] == ["results/x.json"]  # once, though named twice
    assert missing == ["figs/*.pdf"]


@pytest.mark.parametrize("bad", ["../up/", "/abs/*.pdf", "a/../../b/*.csv", "a//b/"])
def test_an_output_pattern_must_stay_inside_the_project(bad: str) -> None:
    with pytest.raises(ValidationError, match="inside the project"):
        Run(name="r", command="true", outputs=[bad])


def test_a_compare_rule_may_name_a_pattern() -> None:
    run = Run(
        name="r", command="true", outputs=["t/**/*.csv"], compare={"t/**/*.csv": {"rtol": 1e-6}}
    )
    assert run.compare["t/**/*.csv"].method == "numeric"


# --- the PDF comparator ------------------------------------------------------------------------

XMP = (
    b"<x:xmpmeta><rdf:Description xmp:CreateDate='2024-01-01T00:00:00Z'>"
    b"<xmp:ModifyDate>2024-01-01T00:00:00Z</xmp:ModifyDate>"
    b"<xmpMM:InstanceID>uuid:1111</xmpMM:InstanceID>"
    b"<xmpMM:DocumentID>uuid:2222</xmpMM:DocumentID></rdf:Description></x:xmpmeta>"
)


def pdf(date: bytes, ident: bytes, body: bytes = b"BT (Hello) Tj ET", xmp: bytes = XMP) -> bytes:
    """A small PDF whose xref offsets are right for its own bytes."""
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R /Metadata 4 0 R >>",
        b"<< /Type /Pages /Kids [] /Count 0 >>",
        b"<< /Length " + str(len(body)).encode() + b" >>\nstream\n" + body + b"\nendstream",
        b"<< /Type /Metadata /Length "
        + str(len(xmp)).encode()
        + b" >>\nstream\n"
        + xmp
        + b"\nendstream",
        b"<< /Producer (test) /CreationDate (" + date + b") /ModDate (" + date + b") >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for n, obj in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{n} 0 obj\n".encode() + obj + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    for offset in offsets:
        out += f"{offset:010d} 00000 n \n".encode()
    out += (
        b"trailer\n<< /Size 6 /Root 1 0 R /Info 5 0 R /ID [<" + ident + b"> <" + ident + b">] >>\n"
    )
    out += f"startxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_pdfs_differing_only_in_volatile_metadata_are_identical(tmp_path: Path) -> None:
    a = write(tmp_path / "a.pdf", pdf(b"D:20240101000000Z", b"00aa"))
    other_xmp = XMP.replace(b"2024-01-01T00:00:00Z", b"2031-12-31T23:59:59+05:00").replace(
        b"uuid:1111", b"uuid:9999-longer"
    )
    b = write(tmp_path / "b.pdf", pdf(b"D:20310101000000+01'00'", b"ffee", xmp=other_xmp))
    assert a.read_bytes() != b.read_bytes()
    verdict = compare_output("fig.pdf", a, b, CompareRule())
    assert verdict.verdict == "identical", verdict.detail
    assert set(volatile_differences(a.read_bytes(), b.read_bytes())) == {
        "/CreationDate",
        "/ModDate",
        "/ID",
        "XMP dates and ids",
    }
    assert normalise(a.read_bytes()) == normalise(b.read_bytes())


def test_a_pdf_whose_content_changed_is_different(tmp_path: Path) -> None:
    a = write(tmp_path / "a.pdf", pdf(b"D:20240101000000Z", b"00aa"))
    b = write(tmp_path / "b.pdf", pdf(b"D:20240101000000Z", b"00aa", body=b"BT (Hellp) Tj ET"))
    verdict = compare_output("fig.pdf", a, b, CompareRule())
    assert verdict.verdict == "different"
    assert "Hell" in (verdict.differences[0].expected or "")


def test_the_pdf_comparator_is_for_pdfs_and_the_exact_rule_only(tmp_path: Path) -> None:
    a = write(tmp_path / "a.pdf", pdf(b"D:20240101000000Z", b"00aa"))
    b = write(tmp_path / "b.pdf", pdf(b"D:20250101000000Z", b"00aa"))
    # Another extension: exact bytes, which differ.
    assert compare_output("fig.bin", a, b, CompareRule()).verdict == "different"
    # A declared text rule is the user's: no PDF forgiveness behind it.
    assert compare_output("fig.pdf", a, b, CompareRule(method="text")).verdict == "different"
    # Not a PDF at all, though named .pdf: exact.
    c = write(tmp_path / "c.pdf", b"not a pdf 1")
    d = write(tmp_path / "d.pdf", b"not a pdf 2")
    assert compare_output("x.pdf", c, d, CompareRule()).verdict == "different"


# --- capture's failure blocks ------------------------------------------------------------------


def outcome(code: int | None, out: str, err: str, missing: list[str] | None = None) -> PointOutcome:
    return PointOutcome("r", {}, "_", "cmd", CommandResult(code, 1.0, out, err), [], missing or [])


def test_a_failure_shows_the_tails_of_stderr_and_stdout() -> None:
    err = "\n".join(f"e{i}" for i in range(20)) + "\n+ which gfortran\n"
    block = describe_failure(outcome(1, "built a\nbuilt b\n", err), 60)
    assert block is not None
    lines = block.splitlines()
    assert lines[0] == "run r failed with exit code 1"
    # 15 lines of stderr (a Python traceback fits), 6 at most of stdout.
    assert lines[1] == "  stderr (last 15 line(s)):" and lines[2] == "    e6"
    assert lines[16] == "    + which gfortran"
    assert lines[17:] == ["  stdout (last 2 line(s)):", "    built a", "    built b"]


def test_timeouts_missing_outputs_and_successes() -> None:
    assert (describe_failure(outcome(None, "", ""), 5) or "").startswith(
        "run r timed out after 5 s"
    )
    assert describe_failure(outcome(0, "", "", ["figs/*.pdf"]), 5) == (
        "run r: its output figs/*.pdf matched no file"
    )
    assert describe_failure(outcome(0, "", "", ["a.txt", "b.txt"]), 5) == (
        "run r: its output a.txt was not produced (and 1 more)"
    )
    assert describe_failure(outcome(0, "ok", ""), 5) is None
